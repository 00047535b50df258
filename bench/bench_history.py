"""Benchmark: does a close's time depend on the history behind it?

A store is grown as the live stream grows it: hour by hour, the hour's events are archived by
the engine's own ingest (`Ingestor.stage_lines`, the fast path and the reference parser), then
`close_ready_epochs` closes the epoch the watermark has passed, and its time is recorded. Every
hour has the same events, so every close does the same work but for the history behind it:
- a ping per node per minute (`bench/genpings.ping_lines`);
- a verified benchmark per node every 12 h (at hours ≡ 0 mod 12, so neither the 2nd nor the
  100th epoch has one), registrations at genesis;
- a job per node every 4 h (a quarter of the nodes each hour), 3 h long (from genesis at the
  start), 1 in 200 `failed_node` (a downtime decision, final a day later: stake moves);
- a stake change for 1 node in 50 each hour.
So that the 2nd epoch pays as many nodes as the 100th, the ruleset is v1 with `min_streak_slots
= 0` (every registered, verified node is eligible from its first epoch); everything else is v1.

Figure: the close of the 100th epoch (epoch 99) against the close of the 2nd (epoch 1), each
the median of a window of 10 closes (epochs 90..99 and 1..10: the machine is shared and noisy,
and a window of 5 around either end held 3 or 4 closes, one of them epoch 0, the first);
budget ≤ 1.2×. The process's CPU time of the same closes is reported beside it; the per-epoch
times are kept in `extra` for a plot.

Usage: python bench/bench_history.py [--nodes 2000] [--epochs 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, log, run_child  # noqa: E402

FULL = {"nodes": 2000, "epochs": 100}
QUICK = {"nodes": 200, "epochs": 20}
BUDGET = 1.2
JOB_EVERY_H = 4
FAILED_EVERY = 200
STAKE_EVERY = 50


def hour_lines(nodes: int, h: int, prefixes: list[str], wallets: list[str]) -> list[bytes]:
    """Every event of hour h, in time order within each kind."""
    import orjson

    from bench import fleet
    from bench.genpings import BENCH_EVERY_H, ping_lines

    lines: list[bytes] = []
    base_ms = fleet.GENESIS_MS + h * 3_600_000
    if h == 0:
        lines += [orjson.dumps(fleet.registered_event(k, fleet.GENESIS_MS, wallets[k % len(wallets)]))
                  for k in range(nodes)]
    if h % BENCH_EVERY_H == 0:
        lines += [orjson.dumps(fleet.benchmark_event(k, base_ms + 30_000, f"bench-{fleet.node_id(k)}-{h}"))
                  for k in range(nodes)]
    for k in range(h % JOB_EVERY_H, nodes, JOB_EVERY_H):  # a quarter of the nodes end a job this hour
        nid = fleet.node_id(k)
        end = base_ms + 40 * 60_000 + (k % 600) * 1000
        failed = (k // JOB_EVERY_H + h) % FAILED_EVERY == 0
        lines.append(orjson.dumps(dict(
            event_id=f"job-{nid}-{h}", event_type="job.completed", schema_version=1, node_id=nid, occurred_at=end,
            job_id=f"j-{nid}-{h}", buyer_id="buyer-1", started_at=max(fleet.GENESIS_MS, end - 3 * 3_600_000),
            ended_at=end,
            committed_until=end, status="failed_node" if failed else "succeeded", gpu_hours=3.0,
            fee_base_units=1000)))
    for k in range(h % STAKE_EVERY, nodes, STAKE_EVERY):
        nid = fleet.node_id(k)
        lines.append(orjson.dumps(dict(event_id=f"stake-{nid}-{h}", event_type="node.stake_changed",
                                       schema_version=1, node_id=nid, occurred_at=base_ms + 50 * 60_000,
                                       stake_base_units=3_000_000 + 1000 * h)))
    pings = ping_lines(nodes, h * 60, (h + 1) * 60, prefixes)
    lines += [s.encode() for s in pings.to_list()]
    return lines


def measure(db: str, nodes: int, epochs: int) -> dict:
    """Grow the store hour by hour and time each epoch's close (runs in its own process)."""
    from bench import fleet
    from bench.genpings import _minute_prefixes
    from payouts.close import close_ready_epochs
    from scoring.ruleset import RULESET_V1
    from store.db import connect
    from store.ingest import Ingestor

    cfg = replace(RULESET_V1, min_streak_slots=0, ruleset_version="bench-history")
    prefixes = _minute_prefixes(epochs + 1)
    wallets = fleet.wallets(min(nodes, fleet.N_WALLETS))
    con = connect(db)
    close_s: dict[int, float] = {}
    close_cpu_s: dict[int, float] = {}  # the process's CPU (DuckDB's threads included): steadier on a busy machine
    ingest_s = 0.0
    paid: dict[int, int] = {}
    for h in range(epochs + 1):  # hour `epochs` only moves the watermark past the last epoch
        t0 = time.perf_counter()
        ing = Ingestor(con, cfg)
        ing.stage_lines(hour_lines(nodes, h, prefixes, wallets), f"hour-{h}")
        ing.commit()
        ingest_s += time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        results = close_ready_epochs(con, cfg)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        for r in results:
            close_s[r.reward_epoch] = dt / len(results)
            close_cpu_s[r.reward_epoch] = dc / len(results)
            paid[r.reward_epoch] = r.rewards.height
    counts = con.execute("SELECT (SELECT count(*) FROM archive_pings), (SELECT count(*) FROM archive_events),"
                         " (SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM slash_decisions)").fetchall()[0]
    con.close()
    return {"close_s": {str(k): v for k, v in sorted(close_s.items())},
            "close_cpu_s": {str(k): v for k, v in sorted(close_cpu_s.items())}, "paid": {str(k): v for k, v in paid.items()},
            "ingest_s": ingest_s, "pings": counts[0], "events": counts[1], "ledger_rows": counts[2],
            "decisions": counts[3], "db_bytes": Path(db).stat().st_size}


WINDOW = 10  # closes a figure is the median of


def window_median(close_s: dict, e: int, window: int = WINDOW) -> float:
    """The median of `window` closes from epoch e on (e = 1, the 2nd) or up to it (the last)."""
    span = range(e, e + window) if e <= 1 else range(e - window + 1, e + 1)
    return statistics.median(close_s[str(k)] for k in span if str(k) in close_s)


def run(quick: bool, workdir: Path) -> list[Row]:
    cfg = QUICK if quick else FULL
    n, epochs = cfg["nodes"], cfg["epochs"]
    db = workdir / "history.duckdb"
    log(f"history: growing a store of {n:,} nodes over {epochs} epochs, closing each")
    m = run_child("bench.bench_history:measure", {"db": str(db), "nodes": n, "epochs": epochs})
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    last = epochs - 1
    second, hundredth = window_median(m["close_s"], 1), window_median(m["close_s"], last)
    cpu2, cpu100 = window_median(m["close_cpu_s"], 1), window_median(m["close_cpu_s"], last)
    log(f"history: epoch 1 closes in {second:.3f} s ({cpu2:.3f} s CPU), epoch {last} in {hundredth:.3f} s"
        f" ({cpu100:.3f} s CPU)")
    row = Row(benchmark="history", metric=f"close of epoch {last} vs epoch 1 ({n:,} nodes)", value=hundredth, unit="s",
              baseline=second, baseline_label="epoch 1", ratio=hundredth / second,
              budget=f"≤ {BUDGET:g}×", limit=BUDGET, compare="ratio",
              note=(f"medians of {WINDOW} closes (epochs 1..{WINDOW}, {last - WINDOW + 1}..{last}); CPU {cpu2:.3f} s → {cpu100:.3f} s ({cpu100 / cpu2:.2f}×); "
                    f"exact: epoch 1 {m['close_s']['1']:.3f} s, epoch {last} "
                    f"{m['close_s'][str(last)]:.3f} s; {m['paid']['1']:,} / {m['paid'][str(last)]:,} paid; history at "
                    f"the end: {m['pings']:,} pings, {m['events']:,} events, {m['ledger_rows']:,} ledger rows, "
                    f"{m['decisions']:,} decisions"),
              extra={"history_nodes": n, "epochs": epochs, **m})
    return [row.check(quick)]


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=FULL["nodes"])
    ap.add_argument("--epochs", type=int, default=FULL["epochs"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="epochal-bench-history-") as tmp:
        db = Path(tmp) / "history.duckdb"
        m = run_child("bench.bench_history:measure", {"db": str(db), "nodes": a.nodes, "epochs": a.epochs})
    last = a.epochs - 1
    print({k: v for k, v in m.items() if k not in ("close_s", "close_cpu_s", "paid")})
    for key in ("close_s", "close_cpu_s"):
        print(f"{key} per epoch:", " ".join(f"{k}:{v:.3f}" for k, v in m[key].items()))
        print(f"{key}: epoch 1 {window_median(m[key], 1):.3f} s, epoch {last} {window_median(m[key], last):.3f} s, "
              f"ratio {window_median(m[key], last) / window_median(m[key], 1):.2f}")


if __name__ == "__main__":
    main()
