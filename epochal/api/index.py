"""The API's read model: what `epochal serve` answers from, built from the published folder.

The API never opens the store (the writer holds it); it reads the published folder through the
reader module `store.published` and keeps its own state in memory, in immutable `Snapshot`s:

- `latest`: one row per node, its most recent score row (every reputation component, the
  ruleset version), what it was paid in that epoch, and its registry entry as of the latest
  manifested close (`nodes.parquet`: region, operator, stake). `GET /nodes` filters and pages
  over it; for every sort key a permutation of its rows is computed once per snapshot, so a
  page is a vectorised mask over ~10⁵ rows and a gather of 50, never a sort per request.
- `window`: the score rows of the last `window_epochs` manifested epochs (default 48), with each
  row's reward, sorted by (node_id, reward_epoch), and a dict node_id → (offset, length):
  `GET /nodes/{id}` slices it (no scan).
- `hw_runs`: the hardware verdict history of every node over all manifested epochs, one row per
  run of equal (hw_verdict, benchmark_event_id, hw_ratio), computed once at start and then from
  each new epoch's rows and the previous run of each node.
- `slashes`: every decision as the latest manifested close left it, with its evidence events
  found in the published `inputs` (looked up once: ids not found yet are searched in new epochs).
- `epochs`: each manifested epoch's manifest and figures (emission and pools by the rules of
  `payouts.emission`, allocated per pool from its rewards, unallocated the rest).

Live: `refresh()` lists the manifests (`store.published.list_epochs`: one directory listing) and
ingests the epochs that appeared into a new snapshot, which replaces the old one by one reference
assignment; requests keep using the snapshot they started with. The server calls it from a
background thread every `refresh_s` and whenever a request finds the last listing older than that.

Wallet reward histories run over all epochs and are not budgeted: they are answered by DuckDB
over the reader's views (`store.published.attach`), re-attached when the epochs change.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import orjson
import polars as pl

from payouts.emission import compute_emission, compute_pools
from scoring.hardware import POOL_COMMUNITY, POOL_ENTERPRISE
from scoring.invariants import invariant
from scoring.ruleset import RULESET_V1
from store import published

log = logging.getLogger("epochal.api")

WINDOW_EPOCHS = 48
MAX_PAGE = 200

# node_epoch_scores columns the API serves (contract.md, plus the store's explanatory extensions)
COMPONENTS = ("rep_availability", "rep_jobs", "rep_hardware", "rep_tenure", "rep_penalty")
WINDOW_COLUMNS = ("reward_epoch", "node_id", "up_slots", "uptime_ratio", "streak_slots", "hw_verdict",
                  "reputation", *COMPONENTS, "eligible", "ineligible_reason", "weight", "ruleset_version",
                  "slot_bitmap", "hw_ratio")
LATEST_EXTRA = ("gpu_model_claimed", "gpu_model_key", "gpu_count", "pool", "multiplier_milli", "wallet",
                "registered_at_us", "benchmark_event_id", "jobs_succeeded", "jobs_failed_node", "slash_count",
                "banned")
REGISTRY_COLUMNS = ("region", "operator_id", "stake_base_units")
HW_COLUMNS = ("hw_verdict", "benchmark_event_id", "hw_ratio")

# sort keys of GET /nodes: a column of `latest`; nulls sort as -1 (every key is ≥ 0), ties by node_id
SORT_KEYS = ("reputation", "node_id", "up_slots", "streak_slots", "reward_base_units", "weight",
             *COMPONENTS)
HW_VERDICTS = ("verified", "mismatch", "impossible", "unknown_model", "stale", "none")
GPU_CLASSES = (POOL_ENTERPRISE, POOL_COMMUNITY)


class CursorError(ValueError):
    """A pagination cursor that this API did not hand out (or for another sort)."""


# ----------------------------------------------------------------------------------------
# cursors: opaque to clients, a keyset position (sort key value, node_id) underneath
# ----------------------------------------------------------------------------------------

def encode_cursor(*parts) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise CursorError("the cursor is not one this API handed out") from exc
    if not isinstance(parts, list) or not parts or parts[0] != kind:
        raise CursorError("the cursor is not one this API handed out for this listing")
    return parts[1:]


# ----------------------------------------------------------------------------------------
# pure frame steps (each a function of frames, so a refresh is a short list of them)
# ----------------------------------------------------------------------------------------

def _present(frame_cols, wanted) -> list[str]:
    """The wanted columns a frame has, each once, in the wanted order."""
    return [c for c in dict.fromkeys(wanted) if c in frame_cols]


def compute_rows(scores: pl.DataFrame, rewards: pl.DataFrame) -> pl.DataFrame:
    """Score rows with what each node was paid in that epoch (0 when nothing) and the pool."""
    paid = (rewards.group_by(["reward_epoch", "node_id"])
            .agg(pl.col("amount_base_units").sum().cast(pl.Int64).alias("reward_base_units"),
                 pl.col("pool").first().alias("reward_pool")))
    out = scores.join(paid, on=["reward_epoch", "node_id"], how="left")
    return out.with_columns(pl.col("reward_base_units").fill_null(0))


def compute_run_starts(previous: pl.DataFrame | None, rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of `rows` where a node's hardware verdict run starts: its first row, or one whose
    (hw_verdict, benchmark_event_id, hw_ratio) differs from the node's row before it. `previous`
    holds each node's last run start so far (continuing across refreshes)."""
    cols = ["node_id", "reward_epoch", *HW_COLUMNS]
    new = rows.select(cols).with_columns(pl.lit(False).alias("_old"))
    frames = [new]
    if previous is not None and previous.height:
        last = previous.sort("reward_epoch").unique(subset="node_id", keep="last", maintain_order=True)
        frames.insert(0, last.select(cols).with_columns(pl.lit(True).alias("_old")))
    allr = pl.concat(frames, how="vertical_relaxed").sort(["node_id", "reward_epoch"])
    changed = pl.lit(False)
    for c in HW_COLUMNS:
        changed = changed | pl.col(c).ne_missing(pl.col(c).shift(1).over("node_id"))
    first = pl.col("reward_epoch").cum_count().over("node_id") == 1
    return allr.filter((first | changed) & ~pl.col("_old")).drop("_old")


def compute_epoch_figures(n: int, manifest: dict, recorded: dict, rows: pl.DataFrame) -> dict:
    """One epoch's figures: emission and pools by the rules (§6), allocated per pool from its
    published rewards, the rest unallocated. The epoch's published row (`reward_epochs.parquet`,
    `recorded`) must agree with all of them: a folder that contradicts itself is not served."""
    emission = compute_emission(n, RULESET_V1)
    enterprise, community = compute_pools(emission, RULESET_V1)
    by_pool = dict(rows.filter(pl.col("reward_base_units") > 0).group_by("reward_pool")
                   .agg(pl.col("reward_base_units").sum()).iter_rows())
    alloc_e, alloc_c = int(by_pool.get(POOL_ENTERPRISE, 0)), int(by_pool.get(POOL_COMMUNITY, 0))
    invariant(alloc_e <= enterprise and alloc_c <= community,
              f"epoch {n}: published rewards exceed their pools")
    fig = {
        "reward_epoch": n,
        "ruleset_version": manifest.get("ruleset_version"),
        "manifest_sha256": manifest.get("manifest_sha256"),
        "emission_base_units": emission,
        "enterprise_pool": enterprise,
        "community_pool": community,
        "allocated_base_units": alloc_e + alloc_c,
        "enterprise_allocated": alloc_e,
        "community_allocated": alloc_c,
        "unallocated_base_units": emission - alloc_e - alloc_c,
        "scored_nodes": rows.height,
        "eligible_nodes": int(rows.get_column("eligible").sum()) if rows.height else 0,
        "paid_nodes": int((rows.get_column("reward_base_units") > 0).sum()) if rows.height else 0,
    }
    for k in ("emission_base_units", "enterprise_pool", "community_pool", "allocated_base_units",
              "unallocated_base_units", "eligible_nodes", "scored_nodes", "manifest_sha256"):
        if recorded.get(k) is not None:
            invariant(recorded[k] == fig[k], f"epoch {n}: {k} {fig[k]} differs from the published row's {recorded[k]}")
    for k in ("closed_at", "watermark_us", "late_events", "input_event_count"):
        if recorded.get(k) is not None:
            fig[k] = recorded[k].isoformat() if hasattr(recorded[k], "isoformat") else recorded[k]
    return fig


def build_offsets(frame: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """node_id → (first row, rows) of a frame sorted by node_id."""
    if frame.height == 0:
        return {}
    g = frame.group_by("node_id", maintain_order=True).agg(pl.len().alias("n"))
    lens = g.get_column("n").to_numpy().astype(np.int64)
    starts = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(lens)[:-1]))
    return dict(zip(g.get_column("node_id").to_list(), zip(starts.tolist(), lens.tolist())))


def _sort_key(frame: pl.DataFrame, key: str):
    if key == "node_id":
        return None
    return frame.get_column(key).cast(pl.Float64).fill_null(-1.0)


def build_orders(latest: pl.DataFrame) -> dict[tuple[str, bool], np.ndarray]:
    """For each (sort key, descending): the row order of `latest`, ties by node_id ascending."""
    orders = {}
    for key in SORT_KEYS:
        for desc in (False, True):
            if key == "node_id":
                by, d = [pl.col("node_id")], [desc]
            else:
                by = [pl.col(key).cast(pl.Float64).fill_null(-1.0), pl.col("node_id")]
                d = [desc, False]
            orders[(key, desc)] = latest.select(pl.arg_sort_by(by, descending=d)).to_series().to_numpy()
    return orders


# ----------------------------------------------------------------------------------------
# the snapshot
# ----------------------------------------------------------------------------------------

@dataclass
class Snapshot:
    epochs: list[int] = field(default_factory=list)
    manifests: dict[int, dict] = field(default_factory=dict)
    figures: dict[int, dict] = field(default_factory=dict)
    latest: pl.DataFrame | None = None
    orders: dict = field(default_factory=dict)
    node_row: dict[str, int] = field(default_factory=dict)
    window: pl.DataFrame | None = None
    window_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    hw_runs: pl.DataFrame | None = None
    hw_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    slashes: dict[str, list[dict]] = field(default_factory=dict)
    evidence: dict[str, dict] = field(default_factory=dict)
    built_at: float = 0.0
    build_s: float = 0.0

    @property
    def last_epoch(self) -> int | None:
        return self.epochs[-1] if self.epochs else None

    # -- GET /nodes ------------------------------------------------------------------------
    def page_nodes(self, *, gpu: str | None = None, gpu_class: str | None = None, region: str | None = None,
                   min_reputation: int | None = None, eligible: bool | None = None,
                   hw_verdict: str | None = None, sort: str = "-reputation", limit: int = 50,
                   cursor: str | None = None) -> tuple[list[dict], str | None, int]:
        """A page of nodes matching every filter, in `sort` order (`-key` descending), ties by
        node_id; returns (rows, next cursor or None, how many nodes match)."""
        desc = sort.startswith("-")
        key = sort.lstrip("-")
        if key not in SORT_KEYS:
            raise CursorError(f"unknown sort key {key!r}")
        latest = self.latest
        if latest is None or latest.height == 0:
            return [], None, 0
        mask = pl.repeat(True, latest.height, eager=True)
        if gpu is not None:
            mask = mask & (latest.get_column("gpu_model_key") == gpu).fill_null(False)
        if gpu_class is not None:
            mask = mask & (latest.get_column("pool") == gpu_class).fill_null(False)
        if region is not None:
            mask = mask & (latest.get_column("region") == region).fill_null(False)
        if min_reputation is not None:
            mask = mask & (latest.get_column("reputation") >= min_reputation).fill_null(False)
        if eligible is not None:
            mask = mask & (latest.get_column("eligible") == eligible).fill_null(False)
        if hw_verdict is not None:
            mask = mask & (latest.get_column("hw_verdict") == hw_verdict).fill_null(False)
        m = mask.to_numpy()
        order = self.orders[(key, desc)]
        start = 0
        if cursor is not None:
            parts = decode_cursor(cursor, f"nodes:{sort}")
            if len(parts) != 2 or not isinstance(parts[1], str) or not isinstance(parts[0], (int, float, str)):
                raise CursorError("the cursor is not one this API handed out for this listing")
            value, after_id = parts
            ids = latest.get_column("node_id")
            if key == "node_id":
                before = (ids >= after_id) if desc else (ids <= after_id)
            else:
                if not isinstance(value, (int, float)):
                    raise CursorError("the cursor is not one this API handed out for this listing")
                k = _sort_key(latest, key)
                v = float(value)
                tie = (k == v) & (ids <= after_id)
                before = ((k > v) if desc else (k < v)) | tie
            start = int(before.sum())
        rest = order[start:]
        hits = rest[m[rest]]
        total = int(m.sum())
        take = hits[: limit + 1]
        rows = latest[take[:limit]].to_dicts() if len(take) else []
        nxt = None
        if len(take) > limit:
            last = rows[-1]
            kv = last["node_id"] if key == "node_id" else (
                -1.0 if last.get(key) is None else float(last[key]))
            nxt = encode_cursor(f"nodes:{sort}", kv, last["node_id"])
        return rows, nxt, total

    # -- GET /nodes/{id} -------------------------------------------------------------------
    def node(self, node_id: str, last_epochs: int) -> dict | None:
        i = self.node_row.get(node_id)
        if i is None:
            return None
        current = self.latest.row(i, named=True)
        epochs = []
        at = self.window_at.get(node_id)
        if at is not None:
            off, n = at
            k = min(n, last_epochs)
            epochs = self.window.slice(off + n - k, k).to_dicts()
        runs = []
        at = self.hw_at.get(node_id)
        if at is not None:
            runs = self.hw_runs.slice(*at).to_dicts()
        return {"current": current, "epochs": epochs, "hw_runs": runs,
                "slashes": self.slashes.get(node_id, [])}


# ----------------------------------------------------------------------------------------
# the index: builds snapshots from the published folder
# ----------------------------------------------------------------------------------------

class ApiIndex:
    def __init__(self, root: Path, window_epochs: int = WINDOW_EPOCHS, refresh_s: float = 1.0) -> None:
        self.root = Path(root)
        self.window_epochs = max(1, int(window_epochs))
        self.refresh_s = refresh_s
        self.snap = Snapshot()
        self._lock = threading.Lock()  # one refresh at a time
        self._listed_at = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._duck = duckdb.connect()  # the reader's views over the folder, for wallet histories
        self._duck_epochs: tuple[int, ...] = ()
        self._duck_lock = threading.Lock()
        self.last_error: str | None = None

    # -- refreshing ------------------------------------------------------------------------
    def refresh(self) -> list[int]:
        """Ingest the epochs whose manifest appeared since the last refresh; returns them."""
        with self._lock:
            self._listed_at = time.monotonic()
            listed = published.list_epochs(self.root)
            old = self.snap
            new = [n for n in listed if n not in old.manifests]
            if not new:
                return []
            t0 = time.perf_counter()
            snap = self._ingest(old, new)
            snap.build_s = time.perf_counter() - t0
            snap.built_at = time.time()
            self.snap = snap  # one reference assignment: requests see the old or the new snapshot
            log.info("indexed epochs %s..%s in %.2f s", new[0], new[-1], snap.build_s)
            return new

    def maybe_refresh(self) -> None:
        """Called on each request: wake the refresher when the last listing is older than refresh_s."""
        if time.monotonic() - self._listed_at > self.refresh_s:
            self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="epochal-api-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:  # a half-written or unreadable folder: keep serving, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("refresh of %s failed: %s", self.root, self.last_error)

    # -- building --------------------------------------------------------------------------
    def _scan(self, name: str, epochs: list[int], wanted) -> pl.DataFrame:
        lf = published.scan(self.root, name, epochs=epochs)
        cols = _present(lf.collect_schema().names(), wanted)
        return lf.select(cols).collect()

    def _ingest(self, old: Snapshot, new: list[int]) -> Snapshot:
        new = sorted(new)
        manifests = {**old.manifests, **{n: published.read_manifest(self.root, n) for n in new}}
        epochs = sorted(manifests)
        scores = self._scan("node_epoch_scores", new, (*WINDOW_COLUMNS, *LATEST_EXTRA))
        rewards = self._scan("epoch_rewards", new, ("reward_epoch", "node_id", "pool", "amount_base_units"))
        rows = compute_rows(scores, rewards)
        recorded = {r["reward_epoch"]: r for r in self._scan("reward_epochs", new, (
            "reward_epoch", "emission_base_units", "enterprise_pool", "community_pool", "allocated_base_units",
            "unallocated_base_units", "eligible_nodes", "scored_nodes", "manifest_sha256", "closed_at",
            "watermark_us", "late_events", "input_event_count")).to_dicts()}
        figures = dict(old.figures)
        for n in new:
            figures[n] = compute_epoch_figures(n, manifests[n], recorded.get(n, {}),
                                               rows.filter(pl.col("reward_epoch") == n))

        # the window: the last window_epochs epochs' rows, by (node_id, reward_epoch)
        floor = epochs[-1] - self.window_epochs
        wcols = _present(rows.columns, (*WINDOW_COLUMNS, "reward_base_units", "reward_pool"))
        parts = [rows.select(wcols).filter(pl.col("reward_epoch") > floor)]
        if old.window is not None:
            parts.insert(0, old.window.filter(pl.col("reward_epoch") > floor))
        window = pl.concat(parts, how="vertical_relaxed").sort(["node_id", "reward_epoch"])

        # latest: each node's newest row, with the registry of the newest close
        newest = rows.sort("reward_epoch").unique(subset="node_id", keep="last", maintain_order=True)
        lparts = [newest]
        if old.latest is not None:
            keep = old.latest.drop(_present(old.latest.columns, REGISTRY_COLUMNS))
            lparts.insert(0, keep.join(newest.select("node_id"), on="node_id", how="anti"))
        latest = pl.concat(lparts, how="diagonal_relaxed")
        registry = self._scan("nodes", [epochs[-1]], ("node_id", *REGISTRY_COLUMNS))
        latest = latest.join(registry.unique(subset="node_id", keep="first"), on="node_id", how="left")
        for c in REGISTRY_COLUMNS:
            if c not in latest.columns:
                latest = latest.with_columns(pl.lit(None).alias(c))
        latest = latest.sort("node_id")

        # the hardware verdict history
        starts = compute_run_starts(old.hw_runs, rows.select(["node_id", "reward_epoch", *_present(rows.columns, HW_COLUMNS)])
                                    if all(c in rows.columns for c in HW_COLUMNS) else
                                    rows.select("node_id", "reward_epoch").with_columns(
                                        *[pl.lit(None).alias(c) for c in HW_COLUMNS]))
        hw_runs = starts if old.hw_runs is None else pl.concat([old.hw_runs, starts], how="vertical_relaxed")
        hw_runs = hw_runs.sort(["node_id", "reward_epoch"])

        # slashes as the newest close left them, with their evidence events
        slashes, evidence = self._slashes(epochs, new, old.evidence)

        snap = Snapshot(epochs=epochs, manifests=manifests, figures=figures, latest=latest,
                        orders=build_orders(latest), window=window, window_at=build_offsets(window),
                        hw_runs=hw_runs, hw_at=build_offsets(hw_runs), slashes=slashes, evidence=evidence)
        snap.node_row = dict(zip(latest.get_column("node_id").to_list(), range(latest.height)))
        return snap

    def _slashes(self, epochs: list[int], new: list[int], known: dict[str, dict]):
        decisions = published.scan(self.root, "slash_decisions", epochs=[epochs[-1]]).collect()
        decisions = decisions.drop([c for c in ("reward_epoch", "published_epoch") if c in decisions.columns])
        wanted = sorted({e for ev in decisions.get_column("evidence").to_list() for e in (ev or [])}
                        - set(known)) if decisions.height else []
        evidence = dict(known)
        if wanted:
            # evidence arrives no later than the close that decided on it: new ids are searched in
            # the epochs just published, and on a first build in every epoch
            search = epochs if not known else new
            lf = published.scan(self.root, "inputs", epochs=search)
            names = lf.collect_schema().names()
            cols = _present(names, ("event_id", "event_type", "node_id", "occurred_at_us", "occurred_at_raw",
                                    "payload", "arrival_seq", "reward_epoch"))
            ids = pl.Series("ids", wanted, dtype=pl.String)
            found = lf.filter((pl.col("event_type") != "ping") & pl.col("event_id").is_in(ids)).select(cols).collect()
            for r in found.to_dicts():
                evidence.setdefault(r["event_id"], r)
        out: dict[str, list[dict]] = {}
        for d in decisions.sort(["node_id", "decided_at_us" if "decided_at_us" in decisions.columns
                                 else "decided_at", "decision_id"]).to_dicts():
            d["evidence_events"] = [evidence.get(e, {"event_id": e, "missing": True}) for e in (d.get("evidence") or [])]
            out.setdefault(d["node_id"], []).append(d)
        return out, evidence

    # -- wallet histories (DuckDB over the reader's views) ---------------------------------
    def wallet_rewards(self, wallet: str, limit: int, after: tuple[int, str] | None) -> tuple[list[tuple], int, int] | None:
        """(rows newest first, ties by node_id, after the keyset position `after`; total base
        units; epochs paid) of a wallet's rewards, or None when no published epoch paid it."""
        snap = self.snap
        if not snap.epochs:
            return None
        with self._duck_lock:
            if self._duck_epochs != tuple(snap.epochs):
                published.attach(self._duck, self.root, epochs=snap.epochs)
                self._duck_epochs = tuple(snap.epochs)
            cur = self._duck.cursor()
        try:
            total = cur.execute("SELECT sum(amount_base_units)::BIGINT, count(DISTINCT reward_epoch) FROM epoch_rewards"
                                " WHERE wallet = $w", {"w": wallet}).fetchall()[0]
            if total[0] is None:
                return None
            rows = cur.execute(
                "SELECT reward_epoch, node_id, pool, amount_base_units FROM epoch_rewards"
                " WHERE wallet = $w AND ($e IS NULL OR reward_epoch < $e OR (reward_epoch = $e AND node_id > $n))"
                " ORDER BY reward_epoch DESC, node_id LIMIT $lim",
                {"w": wallet, "e": after[0] if after else None, "n": after[1] if after else None,
                 "lim": limit}).fetchall()
        finally:
            cur.close()
        return rows, int(total[0]), int(total[1])
