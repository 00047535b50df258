"""Benchmark of the epoch close: 10⁴, 10⁵ and 10⁶ nodes, one steady-state epoch each.

Set-up (untimed, its own process): a fresh store built directly with DuckDB SQL, shaped exactly
as the ingest writes it —
- `archive_events`: a `node.registered` per node at genesis and a `benchmark` per node 1 h
  before the epoch (verified: 95 % of the Appendix A figures), payloads in the canonical JSON
  of `scoring.events.parse_line` (sorted keys), digest md5(payload). Templates are made by
  `parse_line` itself and a sample of rows is checked against it after the build.
- `archive_pings`: the epoch's pings, one per node per slot (60 per node), arrival order = time
  order, and their digests (`archive_ping_digests`) as the ingest writes them with the pings.
- `node_epoch_scores` for epoch e − 1: streak 60·e slots, previous slot up, and the
  availability state (num, den) of e full-uptime epochs; the epoch row of e − 1, each node's
  stake deposit in its stake account, and the state the close of e − 1 carried forward
  (`steady_state`), so the close of e is a steady-state close. A few nodes vary so every branch works: 1 in 10 misses one slot (pending, still
  earns, lower weight), 1 in 50 misses three in a row (streak reset: `streak_short`), 1 in 97
  has a 30-hour-old benchmark (`hardware_unverified`). Most nodes earn, in both pools.

Measured (a fresh process per size): `payouts.close.close_epoch(con, e)` only,
against the floor, a bare DuckDB `SELECT node_id, count(*) FROM archive_pings WHERE
reward_epoch = e GROUP BY node_id` over the same pings on the same connection (best of 3, the
result fetched as Arrow). The close's three phases (gather, compute, write) are timed by
wrapping them, to show where the time goes. Budget: at 10⁶ nodes, ≤ 5× the floor.

Usage: python bench/bench_close.py [--nodes 10000 100000 ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, Timer, current_rss_mb, log, run_child  # noqa: E402

EPOCH = 48  # two days after genesis; every node registered at genesis
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
BUDGET_RATIO = 5.0  # issue 16: the close of 10⁶ nodes ≤ 5× the bare GROUP BY over its pings
BUDGET_NODES = 1_000_000

NODE_SQL = "'node-' || lpad(CAST({i} AS VARCHAR), 7, '0')"
NODE_TOKEN = "node-@@@@@@@"
WALLET_TOKEN_INDEX = 0


def _templates():
    """Canonical payloads made by the reference parser, with tokens for the node and wallet."""
    import orjson

    from bench import fleet
    from scoring.events import Accepted, parse_line

    token_wallet = fleet.wallet(WALLET_TOKEN_INDEX)
    start_ms = fleet.GENESIS_MS + EPOCH * 3_600_000
    out = {}

    def canon(ev: dict) -> str:
        ev = {**ev, "node_id": NODE_TOKEN, "event_id": ev["event_id"].replace(ev["node_id"], NODE_TOKEN)}
        if "gpu_fingerprints" in ev:
            ev["gpu_fingerprints"] = [f.replace(fleet.node_id(0), NODE_TOKEN) for f in ev["gpu_fingerprints"]]
        res = parse_line(orjson.dumps(ev))
        assert isinstance(res, Accepted), res
        return res.canonical.decode()

    for m, model in enumerate(fleet.MODELS):
        for g_idx, _ in enumerate(model.gpu_counts):
            i = m + len(fleet.MODELS) * g_idx  # a node index with this model and gpu count
            reg = fleet.registered_event(i, fleet.GENESIS_MS, token_wallet)
            reg["node_id"] = fleet.node_id(0)
            reg["event_id"] = f"reg-{fleet.node_id(0)}"
            out[("reg", m, g_idx)] = canon(reg)
            for kind, at in (("bench", start_ms - 3_600_000 + 30_000), ("stale", start_ms - 30 * 3_600_000)):
                b = fleet.benchmark_event(i, at, f"bench-{fleet.node_id(0)}-{kind}")
                b["node_id"] = fleet.node_id(0)
                b["gpu_fingerprints"] = [f.replace(fleet.node_id(i), fleet.node_id(0)) for f in b["gpu_fingerprints"]]
                out[(kind, m, g_idx)] = canon(b)
    return out, token_wallet


def _prev_state(e: int):
    from scoring.reputation import compute_availability_step

    num = den = 0.0
    for _ in range(e):  # epochs 0 .. e−1, full uptime
        num, den = compute_availability_step(num, den, 1.0)
    return num, den


def build(db: str, nodes: int, epoch: int = EPOCH) -> dict:
    """Write the store for one close benchmark (runs in its own process)."""
    import polars as pl

    from bench import fleet
    import store.db as store
    from scoring.ruleset import RULESET_V1 as cfg

    t0 = time.perf_counter()
    N, e = int(nodes), int(epoch)
    g, ep, slot_us = cfg.genesis_us, cfg.reward_epoch_us, cfg.slot_us
    start_us = g + e * ep
    con = store.connect(db, memory_limit="6GB")
    con.execute("SET preserve_insertion_order = true")
    templates, token_wallet = _templates()
    nm = len(fleet.MODELS)

    # node table: model, gpu-count choice, wallet, which variation
    tpl = pl.DataFrame(
        [(k[0], k[1], k[2], v) for k, v in templates.items()], orient="row",
        schema=[("kind", pl.String), ("m", pl.Int64), ("g", pl.Int64), ("payload", pl.String)])
    wal = pl.DataFrame({"w": list(range(fleet.N_WALLETS)), "wallet": fleet.wallets()})
    gcounts = pl.DataFrame(
        [(m, len(model.gpu_counts)) for m, model in enumerate(fleet.MODELS)], orient="row",
        schema=[("m", pl.Int64), ("ng", pl.Int64)])
    con.register("tpl", tpl)
    con.register("wal", wal)
    con.register("gcounts", gcounts)
    con.execute(f"""
        CREATE TEMP TABLE bn AS
        SELECT i, {NODE_SQL.format(i='i')} AS node_id, i % {nm} AS m,
               (i // {nm}) % gc.ng AS g, i % {fleet.N_WALLETS} AS w,
               (i % 97 = 0) AS stale, (i % 50 = 0) AS gap3, (i % 10 = 3) AS gap1
        FROM range({N}) r(i) JOIN gcounts gc ON gc.m = i % {nm}
    """)
    # registrations, then benchmarks: arrival order 0 .. 2N−1
    reg_at = g
    bench_at = start_us - ep + 30_000_000
    stale_at = start_us - 30 * ep
    con.execute(f"""
        INSERT INTO archive_events
        SELECT seq, event_id, event_type, node_id, occ, (occ - {g}) // {ep}, false, payload, md5(payload)
        FROM (
            SELECT bn.i AS seq, 'reg-' || bn.node_id AS event_id, 'node.registered' AS event_type,
                   bn.node_id, {reg_at} AS occ,
                   replace(replace(t.payload, '{NODE_TOKEN}', bn.node_id), '{token_wallet}', wal.wallet) AS payload
            FROM bn JOIN tpl t ON t.kind = 'reg' AND t.m = bn.m AND t.g = bn.g JOIN wal USING (w)
            UNION ALL
            SELECT {N} + bn.i, 'bench-' || bn.node_id || CASE WHEN stale THEN '-stale' ELSE '-bench' END,
                   'benchmark', bn.node_id, CASE WHEN stale THEN {stale_at} ELSE {bench_at} END,
                   replace(t.payload, '{NODE_TOKEN}', bn.node_id)
            FROM bn JOIN tpl t ON t.kind = CASE WHEN stale THEN 'stale' ELSE 'bench' END
                               AND t.m = bn.m AND t.g = bn.g
        ) ORDER BY seq
    """)
    t_events = time.perf_counter() - t0

    # the epoch's pings: arrival order = time order (slot-major), one per node per slot
    con.execute(f"""
        INSERT INTO archive_pings
        SELECT arrival_seq, event_id, node_id, occurred_at_us, occurred_at_raw, checker_id, reachable,
               rtt_ms, NULL, {e}, slot, false, NULL
        FROM (
            SELECT {2 * N} + t AS arrival_seq, s AS slot, i,
                   'p-' || {NODE_SQL.format(i='i')} || '-' || CAST({e * 60} + s AS VARCHAR) AS event_id,
                   {NODE_SQL.format(i='i')} AS node_id,
                   {start_us} + s * {slot_us} + (i * 7 % 60) * 1000000 + (i * 13 % 1000) * 1000 AS occurred_at_us,
                   CAST(({start_us} + s * {slot_us} + (i * 7 % 60) * 1000000 + (i * 13 % 1000) * 1000) // 1000
                        AS VARCHAR) AS occurred_at_raw,
                   'chk-' || CAST(i % 16 AS VARCHAR) AS checker_id, true AS reachable,
                   20.5 + (i % 100) * 0.25 AS rtt_ms
            FROM (SELECT t, t // {N} AS s, t % {N} AS i FROM range({60 * N}) r(t))
        )
        WHERE NOT ((i % 50 = 0 AND slot BETWEEN 20 AND 22) OR (i % 10 = 3 AND slot = 30))
    """)
    # the digests the ingest writes with its ping flushes (one flush here)
    con.execute("""
        INSERT INTO archive_ping_digests
        SELECT reward_epoch, max(arrival_seq), count(*), bit_xor(md5_number(event_id)) FROM archive_pings GROUP BY ALL
    """)
    t_pings = time.perf_counter() - t0 - t_events

    # the carried state of epoch e − 1
    num, den = _prev_state(e)
    con.execute(f"""
        INSERT INTO node_epoch_scores BY NAME
        SELECT {e - 1} AS reward_epoch, node_id, 60 AS up_slots, 1.0 AS uptime_ratio,
               {60 * e} AS streak_slots, 'verified' AS hw_verdict, false AS eligible, 0 AS weight,
               '{cfg.ruleset_version}' AS ruleset_version, {(1 << 60) - 1}::UBIGINT AS slot_bitmap,
               true AS streak_prev_up, {num!r}::DOUBLE AS avail_num, {den!r}::DOUBLE AS avail_den,
               {reg_at} AS registered_at_us
        FROM bn
    """)
    store.set_meta(con, "first_reward_epoch", "0")
    steady_state(con, e)
    con.execute("CHECKPOINT")
    t_state = time.perf_counter() - t0 - t_events - t_pings

    # the archive is shaped exactly as the ingest writes it: check a sample against parse_line
    import orjson

    from scoring.events import parse_line

    sample = sorted({0, 1, 3, 50, 97, 194, N // 2, N - 1} | {k for k in range(min(N, 40))})
    wallets = fleet.wallets()
    for i in sample:
        stale = i % 97 == 0
        want = {
            "reg-" + fleet.node_id(i): parse_line(orjson.dumps(
                fleet.registered_event(i, reg_at // 1000, wallets[i % fleet.N_WALLETS]))).canonical.decode(),
            f"bench-{fleet.node_id(i)}-{'stale' if stale else 'bench'}": parse_line(orjson.dumps(
                fleet.benchmark_event(i, (stale_at if stale else bench_at) // 1000,
                                      f"bench-{fleet.node_id(i)}-{'stale' if stale else 'bench'}"))).canonical.decode(),
        }
        for eid, payload in want.items():
            got = con.execute("SELECT payload, digest = md5(payload) FROM archive_events WHERE event_id = ?",
                              [eid]).fetchone()
            assert got is not None and got[0] == payload and got[1], f"archive row {eid} differs from the ingest's shape"
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM archive_pings), (SELECT count(*) FROM archive_events),"
        f" (SELECT count(*) FROM node_epoch_scores)").fetchone()
    con.close()
    return {"build_s": time.perf_counter() - t0, "events_s": t_events, "pings_s": t_pings, "state_s": t_state,
            "pings": counts[0], "events": counts[1], "prev_rows": counts[2],
            "db_bytes": Path(db).stat().st_size}


def steady_state(con, e: int) -> None:
    """What the close of e − 1 left besides its scores: its epoch row (the inputs cutoff: every
    event archived so far), the stake ledger (each node's deposit, declared at registration, in
    its stake account), and the state it carried forward (payouts/carry.py, derived here from the
    archive). So the close of e moves no stake and checks for fraud only what is new, as every
    close after the first does."""
    import store.db as store
    from payouts.carry import build
    from payouts.emission import compute_emission, compute_pools
    from payouts.ledger import entry_id_sql
    from scoring.ruleset import RULESET_V1 as cfg

    cutoff = store.next_arrival_seq(con) - 1
    emission = compute_emission(e - 1, cfg)
    enterprise, community = compute_pools(emission, cfg)
    con.execute("""
        INSERT INTO reward_epochs BY NAME SELECT
            $e AS reward_epoch, $em AS emission_base_units, $ent AS enterprise_pool, $com AS community_pool,
            $em AS allocated_base_units, 0 AS unallocated_base_units, 0 AS eligible_nodes, '' AS manifest_sha256,
            now() AS closed_at, $v AS ruleset_version, 0 AS enterprise_unallocated, 0 AS community_unallocated,
            0 AS scored_nodes, $p AS params_sha256, 'bench' AS engine_version, $cut AS input_arrival_seq,
            0 AS input_event_count, '' AS input_events_sha256, 0 AS watermark_us, 0 AS late_events
    """, {"e": e - 1, "em": emission, "ent": enterprise, "com": community, "v": cfg.ruleset_version,
          "p": cfg.params_sha256, "cut": cutoff})
    con.execute(f"""
        INSERT INTO ledger_entries
        SELECT {entry_id_sql(str(e - 1), "'stake_deposit'", "node_id")}, 'external:stake_deposits',
               'node:' || node_id || ':stake', (payload ->> '$.stake_base_units')::BIGINT, {e - 1},
               'reward_epoch:{e - 1}:stake_deposit:' || node_id
        FROM archive_events WHERE event_type = 'node.registered' ORDER BY 1
    """)
    build(con, e - 1, cutoff, cfg)


def measure(db: str, epoch: int = EPOCH, baseline_repeats: int = 3) -> dict:
    """Baseline, then the close, in this (fresh) process."""
    import payouts.close as close
    import store.db as store

    rss_before = current_rss_mb()
    con = store.connect(db)
    e = int(epoch)
    sql = f"SELECT node_id, count(*) FROM archive_pings WHERE reward_epoch = {e} GROUP BY node_id"
    base = []
    for _ in range(baseline_repeats):
        with Timer() as t:
            tbl = con.execute(sql).to_arrow_table()
        base.append(t.s)
    groups = tbl.num_rows

    phases: dict[str, float] = {}
    originals = {}
    for name in ("gather_epoch_inputs", "compute_epoch", "write_epoch"):
        fn = getattr(close, name)
        originals[name] = fn

        def timed(*a, _fn=fn, _name=name, **k):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                phases[_name] = time.perf_counter() - t0

        setattr(close, name, timed)
    try:
        with Timer() as t:
            result = close.close_epoch(con, e)
    finally:
        for name, fn in originals.items():
            setattr(close, name, fn)
    row = con.execute(
        "SELECT eligible_nodes, scored_nodes, allocated_base_units, unallocated_base_units, manifest_sha256,"
        " (SELECT count(*) FROM epoch_rewards WHERE reward_epoch = $e),"
        " (SELECT count(*) FROM ledger_entries WHERE reward_epoch = $e)"
        " FROM reward_epochs WHERE reward_epoch = $e", {"e": e}).fetchone()
    reasons = dict(con.execute(
        "SELECT coalesce(ineligible_reason, 'eligible'), count(*) FROM node_epoch_scores"
        " WHERE reward_epoch = $e GROUP BY 1", {"e": e}).fetchall())
    con.close()
    return {"close_s": t.s, "baseline_s": min(base), "baseline_all_s": base, "groups": groups,
            "phases_s": phases, "eligible": row[0], "scored": row[1], "allocated": row[2],
            "unallocated": row[3], "manifest_sha256": row[4], "rewards": row[5], "ledger": row[6],
            "reasons": reasons, "rss_before_mb": rss_before, "rewards_in_result": result.rewards.height}


def run_size(nodes: int, workdir: Path) -> dict:
    db = workdir / f"close-{nodes}.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    log(f"close: building a store of {nodes:,} nodes")
    b = run_child("bench.bench_close:build", {"db": str(db), "nodes": nodes})
    log(f"close: built in {b['build_s']:.1f} s ({b['pings']:,} pings); closing epoch {EPOCH}")
    m = run_child("bench.bench_close:measure", {"db": str(db)})
    log(f"close: {nodes:,} nodes closed in {m['close_s']:.2f} s (baseline {m['baseline_s']:.3f} s)")
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    return {"nodes": nodes, "build": b, **m}


def run(quick: bool, workdir: Path | None = None) -> list[Row]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="epochal-bench-close-")) if own_tmp else workdir
    rows: list[Row] = []
    results = []
    try:
        for n in sizes:
            r = run_size(n, workdir)
            results.append(r)
            ph = r["phases_s"]
            row = Row(
                benchmark="close", metric=f"close {n:,} nodes", value=r["close_s"], unit="s",
                baseline=r["baseline_s"], baseline_label="GROUP BY",
                ratio=r["close_s"] / r["baseline_s"],
                note=(f"{r['close_s'] / n * 1e6:.1f} µs/node; gather {ph.get('gather_epoch_inputs', 0):.2f} s,"
                      f" compute {ph.get('compute_epoch', 0):.2f} s, write {ph.get('write_epoch', 0):.2f} s;"
                      f" {r['eligible']:,}/{r['scored']:,} eligible, {r['rewards']:,} paid;"
                      f" peak RSS {r['peak_rss_mb']:.0f} MB"),
                extra={k: v for k, v in r.items() if k != "build"} | {"build": r["build"],
                                                                          "us_per_node": r["close_s"] / n * 1e6},
            )
            if n == BUDGET_NODES:
                row.budget, row.limit, row.compare = f"≤ {BUDGET_RATIO:g}× GROUP BY", BUDGET_RATIO, "ratio"
            rows.append(row.check(quick))
        if len(results) >= 2:
            a, b = results[0], results[-1]
            k = math.log(b["close_s"] / a["close_s"]) / math.log(b["nodes"] / a["nodes"])
            rows.append(Row(
                benchmark="close", metric=f"scaling exponent {a['nodes']:,}→{b['nodes']:,}", value=k, unit="",
                note="time ∝ nodes^k (1 = linear); per node: "
                     + ", ".join(f"{r['close_s'] / r['nodes'] * 1e6:.1f} µs @ {r['nodes']:,}" for r in results),
                extra={"us_per_node": {str(r["nodes"]): r["close_s"] / r["nodes"] * 1e6 for r in results}},
            ))
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=list(QUICK_SIZES))
    ap.add_argument("--keep", type=Path, default=None, help="build the stores here (deleted after each size)")
    a = ap.parse_args()
    workdir = a.keep or Path(tempfile.mkdtemp(prefix="epochal-bench-close-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for n in a.nodes:
        r = run_size(n, workdir)
        print({k: v for k, v in r.items()})


if __name__ == "__main__":
    main()
