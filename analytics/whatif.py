"""What-if: closed epochs A..B recomputed from the archive under another ruleset, compared with
what was recorded. This is how the treasury evaluates a ruleset v2 before adopting it.

    ruleset   a TOML file of `RulesetConfig` parameters with a `ruleset_version` of its own
              (`load_ruleset`; every parameter it leaves out is v1's)
    inputs    each epoch's recorded inputs (the events arrived by its `input_arrival_seq`),
              starting from the state recorded before A (scores of A − 1, slashing decisions
              made before A with the status they had then, the stake ledger before A) and
              carrying the what-if's own state from A on
    outputs   nothing in the store (it is attached read-only): the what-if closes the epochs with
              the engine's own close (`payouts.close.close_epoch`: the same gather, steps and
              write, with every invariant, `Σ rewards + unallocated = emission` included) into a
              scratch DuckDB of its own, then compares

The comparison (`WhatIf`): per pool (a GPU model's class is its pool, Appendix A: enterprise,
community) the pool, allocated and unallocated on each side, then the rewards per pool and GPU
model that move; how many nodes gain
or lose eligibility and why (the first failing reason on the side where they do not earn); the
top gainers and losers with the component that moved them; per (node, epoch) deltas, which
`write_outputs` saves as Parquet beside an HTML summary with a plot (inline SVG).
"""

from __future__ import annotations

import html
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

import store.db as store
from payouts.close import close_epoch
from store import published as published_module
from scoring.hardware import POOL_COMMUNITY, POOL_ENTERPRISE
from scoring.invariants import invariant
from scoring.ruleset import RULESET_V1, RulesetConfig, RulesetError, ruleset_from_mapping

# The recorded outputs a what-if reads from before A; everything else comes from the archive.
COMPONENTS = ("rep_availability", "rep_jobs", "rep_hardware", "rep_tenure")
COMPONENT_NAMES = {"rep_availability": "A (availability)", "rep_jobs": "J (jobs)", "rep_hardware": "H (hardware)",
                   "rep_tenure": "T (tenure)", "rep_penalty": "P (penalty)", "up_slots": "up slots"}


class WhatIfError(Exception):
    """A what-if that cannot run as asked, in one sentence (a user's mistake)."""


def load_ruleset(path: Path) -> RulesetConfig:
    """The ruleset of a TOML file (see `scoring.ruleset.ruleset_from_mapping`)."""
    try:
        values = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise WhatIfError(f"cannot read the ruleset file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WhatIfError(f"{path} is not a TOML file: {exc}") from exc
    try:
        return ruleset_from_mapping(values)
    except RulesetError as exc:
        raise WhatIfError(f"{path}: {exc}") from exc


@dataclass
class WhatIf:
    ruleset_version: str
    baseline_version: str
    first: int
    last: int
    epochs: pl.DataFrame  # per epoch: emission, allocated and unallocated, both sides
    deltas: pl.DataFrame  # per (node, epoch) present on either side
    by_pool: pl.DataFrame = field(default_factory=pl.DataFrame)  # per pool (= class): pool, allocated, unallocated
    by_pool_model: pl.DataFrame = field(default_factory=pl.DataFrame)
    eligibility: pl.DataFrame = field(default_factory=pl.DataFrame)
    movers: pl.DataFrame = field(default_factory=pl.DataFrame)


def run_whatif(db: Path | None, cfg: RulesetConfig, first: int, last: int, workdir: Path | None = None,
               progress=None, published: Path | None = None) -> WhatIf:
    """Recompute epochs first..last under `cfg` and compare: from the store (only read), or from
    the published folder `published` (loaded into a scratch store of the same schema, by the
    folder's own reader, `store.published.load_store`) while a writer holds the store."""
    if first > last:
        raise WhatIfError(f"--from {first} comes after --to {last}")
    with tempfile.TemporaryDirectory(prefix="epochal-whatif-", dir=workdir) as tmp:
        if published is not None:
            db = _load_published(Path(published), last, Path(tmp) / "recorded.duckdb")
        elif db is None or not Path(db).exists():
            raise WhatIfError(f"no store at {db}")
        con = store.connect(Path(tmp) / "whatif.duckdb")
        try:
            try:
                con.execute(f"ATTACH '{str(db).replace(chr(39), chr(39) * 2)}' AS src (READ_ONLY)")
            except Exception as exc:  # noqa: BLE001 - DuckDB's lock or format error, said in one sentence
                raise WhatIfError(f"cannot read the store {db}: {str(exc).splitlines()[0]}") from exc
            recorded = _recorded_epochs(con, first, last)
            used = {r[0] for r in con.execute("SELECT DISTINCT ruleset_version FROM src.reward_epochs").fetchall()}
            if cfg.ruleset_version in used:
                raise WhatIfError(f"ruleset_version {cfg.ruleset_version!r} already closed epochs in {db};"
                                  " give the what-if ruleset a version of its own")
            _seed(con, first)
            for e, cutoff, closed_at in recorded:
                result = close_epoch(con, e, cfg, cutoff_seq=cutoff, closed_at=closed_at)
                row = result.epoch_row
                invariant(row["allocated_base_units"] + row["unallocated_base_units"] == row["emission_base_units"],
                          f"Σ rewards + unallocated == emission in the what-if's epoch {e}")
                if progress:
                    progress(e)
            baseline = recorded and con.execute(
                "SELECT any_value(ruleset_version) FROM src.reward_epochs WHERE reward_epoch BETWEEN ? AND ?",
                [first, last]).fetchall()[0][0]
            return _compare(con, cfg, baseline or RULESET_V1.ruleset_version, first, last)
        finally:
            con.close()


def _load_published(root: Path, last: int, path: Path) -> Path:
    """The published epochs through `last` as a store of their own (the archive and the
    recorded closes), for the what-if to read as it reads a store."""
    epochs = published_module.list_epochs(root) if root.is_dir() else []
    if not epochs:
        raise WhatIfError(f"no published epoch in {root}")
    con = store.connect(path)
    try:
        published_module.load_store(con, root, min(last, epochs[-1]))
    finally:
        con.close()
    return path


def _recorded_epochs(con, first: int, last: int) -> list[tuple]:
    rows = con.execute("SELECT reward_epoch, input_arrival_seq, closed_at FROM src.reward_epochs"
                       " WHERE reward_epoch BETWEEN ? AND ? ORDER BY 1", [first, last]).fetchall()
    if [r[0] for r in rows] != list(range(first, last + 1)):
        closed = con.execute("SELECT min(reward_epoch), max(reward_epoch) FROM src.reward_epochs").fetchall()[0]
        where = "no epoch is closed" if closed[0] is None else f"epochs {closed[0]}..{closed[1]} are closed"
        raise WhatIfError(f"epochs {first}..{last} are not all closed in the store ({where})")
    return rows


def _seed(con, first: int) -> None:
    """The scratch store: the archive as views onto the attached store; the recorded outputs
    the close of `first` reads (scores, epoch rows, the stake ledger before it; decisions made
    before it, with the status they had after the close of first − 1)."""
    for table in ("archive_pings", "archive_events", "rejected_events", "ingest_runs"):
        con.execute(f"DROP TABLE {table}")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM src.{table}")
    p = {"a": first}
    con.execute("INSERT INTO node_epoch_scores SELECT * FROM src.node_epoch_scores WHERE reward_epoch < $a", p)
    con.execute("INSERT INTO reward_epochs SELECT * FROM src.reward_epochs WHERE reward_epoch < $a", p)
    con.execute("""INSERT INTO ledger_entries SELECT * FROM src.ledger_entries WHERE reward_epoch < $a
                   AND (credit_account LIKE 'node:%:stake' OR debit_account LIKE 'node:%:stake')""", p)
    con.execute("""
        INSERT INTO slash_decisions BY NAME
        SELECT * REPLACE (CASE WHEN resolved_in_epoch >= $a THEN 'proposed' ELSE status END AS status,
                          CASE WHEN resolved_in_epoch >= $a THEN NULL ELSE resolved_in_epoch END AS resolved_in_epoch)
        FROM src.slash_decisions WHERE decided_in_epoch < $a""", p)
    con.execute("INSERT INTO engine_meta SELECT * FROM src.engine_meta WHERE key = 'first_reward_epoch'")


SIDE_COLUMNS = ("eligible", "ineligible_reason", "reputation", "rep_availability", "rep_jobs", "rep_hardware",
                "rep_tenure", "rep_penalty", "up_slots", "streak_slots", "weight")


def _compare(con, cfg: RulesetConfig, baseline: str, first: int, last: int) -> WhatIf:
    p = {"a": first, "b": last}
    epochs = store.fetch_polars(con, """
        SELECT b.reward_epoch, b.emission_base_units AS emission,
               b.allocated_base_units AS baseline_allocated, w.allocated_base_units AS whatif_allocated,
               b.unallocated_base_units AS baseline_unallocated, w.unallocated_base_units AS whatif_unallocated,
               b.eligible_nodes AS baseline_eligible, w.eligible_nodes AS whatif_eligible
        FROM src.reward_epochs b JOIN main.reward_epochs w USING (reward_epoch)
        WHERE reward_epoch BETWEEN $a AND $b ORDER BY 1""", p)
    side = lambda alias: ", ".join(f"{alias}.{c} AS {'baseline' if alias == 'b' else 'whatif'}_{c}"  # noqa: E731
                                   for c in SIDE_COLUMNS)
    deltas = store.fetch_polars(con, f"""
        WITH b AS (SELECT * FROM src.node_epoch_scores WHERE reward_epoch BETWEEN $a AND $b),
             w AS (SELECT * FROM main.node_epoch_scores WHERE reward_epoch BETWEEN $a AND $b),
             br AS (SELECT reward_epoch, node_id, sum(amount_base_units) AS r FROM src.epoch_rewards
                    WHERE reward_epoch BETWEEN $a AND $b GROUP BY ALL),
             wr AS (SELECT reward_epoch, node_id, sum(amount_base_units) AS r FROM main.epoch_rewards
                    WHERE reward_epoch BETWEEN $a AND $b GROUP BY ALL)
        SELECT reward_epoch, node_id, coalesce(w.pool, b.pool) AS pool,
               coalesce(w.gpu_model_key, b.gpu_model_key) AS gpu_model_key,
               coalesce(br.r, 0)::BIGINT AS baseline_reward, coalesce(wr.r, 0)::BIGINT AS whatif_reward,
               (coalesce(wr.r, 0) - coalesce(br.r, 0))::BIGINT AS delta, {side('b')}, {side('w')}
        FROM b FULL JOIN w USING (reward_epoch, node_id)
        LEFT JOIN br USING (reward_epoch, node_id) LEFT JOIN wr USING (reward_epoch, node_id)
        ORDER BY reward_epoch, node_id""", p)
    invariant(deltas["baseline_reward"].sum() == epochs["baseline_allocated"].sum(), "baseline rewards add up")
    invariant(deltas["whatif_reward"].sum() == epochs["whatif_allocated"].sum(), "what-if rewards add up")
    w = WhatIf(cfg.ruleset_version, baseline, first, last, epochs, deltas)
    w.by_pool = pool_totals(con, first, last)
    w.by_pool_model = (deltas.group_by("pool", "gpu_model_key")
                       .agg(pl.col("baseline_reward").sum(), pl.col("whatif_reward").sum(), pl.col("delta").sum())
                       .sort("pool", "gpu_model_key", nulls_last=True))
    w.eligibility = eligibility_changes(deltas)
    # the recorded side's weights: ruleset v1's (the only version this engine closes with)
    w.movers = top_movers(deltas, RULESET_V1, cfg)
    return w


def pool_totals(con, first: int, last: int) -> pl.DataFrame:
    """Per pool over the range, each side: the pool, what it allocated, what it left unallocated
    (the epoch rows' figures; a pool's allocated + unallocated = the pool, checked)."""
    sides = []
    for name in (POOL_ENTERPRISE, POOL_COMMUNITY):
        sides.append(f"""SELECT '{name}' AS pool, b.{name}_pool AS bp, b.{name}_unallocated AS bu,
                                w.{name}_pool AS wp, w.{name}_unallocated AS wu
                         FROM src.reward_epochs b JOIN main.reward_epochs w USING (reward_epoch)
                         WHERE reward_epoch BETWEEN $a AND $b""")
    frame = store.fetch_polars(con, f"""
        SELECT pool, sum(bp)::BIGINT AS baseline_pool, sum(wp)::BIGINT AS whatif_pool,
               sum(bp - bu)::BIGINT AS baseline_allocated, sum(wp - wu)::BIGINT AS whatif_allocated,
               (sum(wp - wu) - sum(bp - bu))::BIGINT AS delta,
               sum(bu)::BIGINT AS baseline_unallocated, sum(wu)::BIGINT AS whatif_unallocated
        FROM ({" UNION ALL ".join(sides)}) GROUP BY pool ORDER BY pool""", {"a": first, "b": last})
    invariant(((frame["whatif_allocated"] + frame["whatif_unallocated"]) == frame["whatif_pool"]).all(),
              "each what-if pool: allocated + unallocated == the pool")
    return frame


def eligibility_changes(deltas: pl.DataFrame) -> pl.DataFrame:
    """Per change (gain / loss) and reason (the first failing one where the node does not earn):
    node-epochs and distinct nodes."""
    base = pl.col("baseline_eligible").fill_null(False)
    what = pl.col("whatif_eligible").fill_null(False)
    rows = deltas.with_columns(
        pl.when(~base & what).then(pl.lit("gains")).when(base & ~what).then(pl.lit("loses")).alias("change"),
        pl.when(~base & what).then(pl.col("baseline_ineligible_reason"))
        .otherwise(pl.col("whatif_ineligible_reason")).fill_null("no score row").alias("why"))
    return (rows.filter(pl.col("change").is_not_null())
            .group_by("change", "why").agg(pl.len().alias("node_epochs"), pl.col("node_id").n_unique().alias("nodes"))
            .sort("change", "node_epochs", descending=[False, True]))


WEIGHTS = {"rep_availability": "rep_weight_availability", "rep_jobs": "rep_weight_jobs",
           "rep_hardware": "rep_weight_hardware", "rep_tenure": "rep_weight_tenure"}


def explain(rows: pl.DataFrame, baseline: RulesetConfig, cfg: RulesetConfig) -> str:
    """The component that moved one node's rewards over the range (its rows of `deltas`), in
    the direction its rewards moved: eligibility gained or lost (and the reason on the side
    where it does not earn); else, when the node's own weight moved the way its rewards did, the
    reputation component whose weighted share of R moved most that way (w·X, in points of R,
    each side under its own ruleset), or P, or the up slots; else the node's share of its pool
    (other nodes' weights or eligibility moved)."""
    delta = int(rows["delta"].sum())
    base = rows["baseline_eligible"].fill_null(False)
    what = rows["whatif_eligible"].fill_null(False)
    gained, lost = int((~base & what).sum()), int((base & ~what).sum())
    if gained and delta >= 0:
        why = rows.filter(~base & what)["baseline_ineligible_reason"].drop_nulls().mode().sort().to_list()
        return f"eligibility: {why[0] if why else 'no score row'} → eligible in {gained} epoch(s)"
    if lost and delta <= 0:
        why = rows.filter(base & ~what)["whatif_ineligible_reason"].drop_nulls().mode().sort().to_list()
        return f"eligibility: eligible → {why[0] if why else 'no score row'} in {lost} epoch(s)"
    both = rows.filter(base & what)
    own = float((both["whatif_weight"] - both["baseline_weight"]).cast(pl.Float64).mean()) if both.height else 0.0
    if not own or (own > 0) != (delta > 0):
        # the node's own weight did not move its way: others' weights (or eligibility) did
        return "pool share (other nodes' weights moved)"
    moves = {}
    for c, weight in WEIGHTS.items():
        w0, w1 = getattr(baseline, weight) * baseline.rep_scale, getattr(cfg, weight) * cfg.rep_scale
        moves[c] = float((both[f"whatif_{c}"].cast(pl.Float64) * w1 - both[f"baseline_{c}"].cast(pl.Float64) * w0).mean())
    moves["rep_penalty"] = float((both["whatif_rep_penalty"] - both["baseline_rep_penalty"]).mean()) * cfg.rep_scale
    moves["up_slots"] = float((both["whatif_up_slots"] - both["baseline_up_slots"]).cast(pl.Float64).mean())
    moves = {k: v for k, v in moves.items() if v and (v > 0) == (delta > 0)}
    if not moves:
        return "pool share (other nodes' weights moved)"
    c = max(moves, key=lambda k: abs(moves[k]))
    unit = " slots" if c == "up_slots" else " points of R"
    return f"{COMPONENT_NAMES[c]}: {moves[c]:+.3g}{unit} on average"


def top_movers(deltas: pl.DataFrame, baseline: RulesetConfig, cfg: RulesetConfig, k: int = 10) -> pl.DataFrame:
    per_node = (deltas.group_by("node_id")
                .agg(pl.col("baseline_reward").sum(), pl.col("whatif_reward").sum(), pl.col("delta").sum())
                .filter(pl.col("delta") != 0))
    top = pl.concat([per_node.sort(["delta", "node_id"], descending=[True, False]).head(k)
                     .with_columns(pl.lit("gainer").alias("side")),
                     per_node.sort(["delta", "node_id"]).head(k).filter(pl.col("delta") < 0)
                     .with_columns(pl.lit("loser").alias("side"))])
    top = top.filter(~((pl.col("side") == "gainer") & (pl.col("delta") <= 0)))
    why = [explain(deltas.filter(pl.col("node_id") == n), baseline, cfg) for n in top["node_id"].to_list()]
    return top.with_columns(pl.Series("moved_by", why, dtype=pl.String)).select(
        "side", "node_id", "baseline_reward", "whatif_reward", "delta", "moved_by")


# ----------------------------------------------------------------------------------------
# --out: the deltas as Parquet and an HTML summary with a plot
# ----------------------------------------------------------------------------------------

def write_outputs(w: WhatIf, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / f"whatif-{_safe(w.ruleset_version)}-epochs-{w.first}-{w.last}.parquet"
    w.deltas.write_parquet(parquet, compression="zstd")
    page = out_dir / f"whatif-{_safe(w.ruleset_version)}-epochs-{w.first}-{w.last}.html"
    page.write_text(render_html(w))
    return parquet, page


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in s)


def _table(frame: pl.DataFrame) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(_fmt(v))}</td>" for v in row) + "</tr>" for row in frame.rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def plot_svg(epochs: pl.DataFrame, width: int = 720, height: int = 260) -> str:
    """Allocated base units per epoch, the recorded ruleset's bars beside the what-if's."""
    n = max(epochs.height, 1)
    top = max([1, *epochs["baseline_allocated"].to_list(), *epochs["whatif_allocated"].to_list(),
               *epochs["emission"].to_list()])
    pad, bw = 40, (width - 60) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="allocated per epoch">',
             f'<line x1="{pad}" y1="{height - 30}" x2="{width - 10}" y2="{height - 30}" stroke="#333"/>']
    scale = (height - 50) / top
    for i, (e, em, b, wv) in enumerate(epochs.select("reward_epoch", "emission", "baseline_allocated",
                                                     "whatif_allocated").rows()):
        x = pad + i * bw
        for j, (v, color, label) in enumerate(((b, "#8899aa", "recorded"), (wv, "#cc6633", "what-if"))):
            h = v * scale
            parts.append(f'<rect x="{x + j * bw * 0.4 + bw * 0.1:.1f}" y="{height - 30 - h:.1f}" width="{bw * 0.4:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>epoch {e} {label}: {v:,}</title></rect>')
        parts.append(f'<line x1="{x:.1f}" x2="{x + bw:.1f}" y1="{height - 30 - em * scale:.1f}" '
                     f'y2="{height - 30 - em * scale:.1f}" stroke="#222" stroke-dasharray="3,2"/>')
        if n <= 40 or i % max(1, n // 20) == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - 14}" font-size="10" text-anchor="middle">{e}</text>')
    parts.append('<text x="42" y="14" font-size="11">allocated per epoch: grey recorded, orange what-if; '
                 'dashed: emission</text></svg>')
    return "".join(parts)


def render_html(w: WhatIf) -> str:
    esc = html.escape
    moved = w.by_pool_model.filter(pl.col("delta") != 0)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>what-if {esc(w.ruleset_version)}, epochs {w.first}..{w.last}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>
<h1>What-if: ruleset {esc(w.ruleset_version)} against {esc(w.baseline_version)}, epochs {w.first}..{w.last}</h1>
<p>Every epoch closed under both: Σ rewards + unallocated = emission (asserted on each side).</p>
{plot_svg(w.epochs)}
<h2>Per epoch</h2>{_table(w.epochs)}
<h2>Per pool (class)</h2>{_table(w.by_pool)}
<h2>Rewards per pool and GPU model that move</h2>{_table(moved) if moved.height else "<p>none</p>"}
<h2>Eligibility gained and lost, by reason</h2>{_table(w.eligibility) if w.eligibility.height else "<p>none</p>"}
<h2>Top gainers and losers</h2>{_table(w.movers) if w.movers.height else "<p>none</p>"}
</body></html>
"""
