"""Benchmark: does a close's time depend on the history behind it?

A store is grown as the live stream grows it: hour by hour, the hour's events are archived by
the engine's own ingest (`Ingestor.stage_lines`, the fast path and the reference parser), then
`close_ready_epochs` closes the epoch the watermark has passed, and its time is recorded. Every
hour has the same events, so every close does the same work but for the history behind it:
- a ping per node per minute (`bench/genpings.ping_lines`);
- a verified benchmark per node every 12 h (at hours ≡ 0 mod 12, so neither the 2nd nor the
  100th epoch has one), registrations at genesis;
- a job per node every 4 h (a quarter of the nodes each hour), 90 min long (so from epoch 1 on
  no job is cut short by genesis), 1 in 200 `failed_node` (a downtime decision, final the next
  epoch: stake moves);
- a stake change for 1 node in 50 each hour.
So that the 2nd epoch does the same work as the 100th, the ruleset is v1 with `min_streak_slots
= 0` (every registered, verified node is eligible from its first epoch, so both pay as many nodes)
and `finality_delay_s = 3600` (each close makes a day's decisions final in v1 only from epoch
24 on; here every close from epoch 1 on finalises the decisions of the epoch before);
everything else is v1. (Until 2026-12-07 the jobs were 3 h long and finality was v1's: the
2nd epoch then checked jobs cut short by genesis and finalised nothing, and the figure compared
less work with more: 1.17× to 1.31× alternating, the per-job downtime check's slots 1.7× and the
finalisations the difference.)

Figure: the close of the 100th epoch (epoch 99) against the close of the 2nd (epoch 1), the
same close repeated in alternation. The store is copied just before each of those two closes
(closed and checkpointed, so the copy is the whole store); once the store is grown, each copy is
restored and closed in turn, A B B A A B ..., `REPEATS` times each, each in a newly opened store
(as `epochal close` opens it), and the figure is the median of each. On this shared 2-core
machine the load drifts over the minutes a growth takes, and a figure that compares the first
minute with the last measured the drift as much as the close (0.74× to 1.56× in the runs of 2026-12-07);
alternating the two closes within one minute leaves the drift out of the ratio. Budget ≤ 1.2×.

The closes of the growth itself, in one long-lived connection as the stream closer keeps it, are
reported beside it: the median of a window of 10 closes at either end (epochs 1..10 and 90..99)
and their CPU time; the per-epoch times are kept in `extra` for a plot.

Usage: python bench/bench_history.py [--nodes 2000] [--epochs 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
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
JOB_MINUTES = 90  # ends 40-50 min into its hour, so from hour 1 on it starts after genesis
FAILED_EVERY = 200
STAKE_EVERY = 50
REPEATS = 7  # alternating closes of each snapshot


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
            job_id=f"j-{nid}-{h}", buyer_id="buyer-1", started_at=max(fleet.GENESIS_MS, end - JOB_MINUTES * 60_000),
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

    cfg = replace(RULESET_V1, min_streak_slots=0, finality_delay_s=3600, ruleset_version="bench-history")
    prefixes = _minute_prefixes(epochs + 1)
    wallets = fleet.wallets(min(nodes, fleet.N_WALLETS))
    snaps = {1: f"{db}.before-epoch-1", epochs - 1: f"{db}.before-epoch-{epochs - 1}"}
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
        if h - 1 in snaps:  # epoch h - 1 closes now: keep the store as it stands before its close
            con.close()  # a closed store is checkpointed whole into its one file
            shutil.copyfile(db, snaps[h - 1])
            con = connect(db)
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
    alternating = alternate_closes(db, snaps, cfg, paid)
    for snap in snaps.values():
        Path(snap).unlink()
    return {"alternating_s": alternating, "close_s": {str(k): v for k, v in sorted(close_s.items())},
            "close_cpu_s": {str(k): v for k, v in sorted(close_cpu_s.items())}, "paid": {str(k): v for k, v in paid.items()},
            "ingest_s": ingest_s, "pings": counts[0], "events": counts[1], "ledger_rows": counts[2],
            "decisions": counts[3], "db_bytes": Path(db).stat().st_size}


def alternate_closes(db: str, snaps: dict[int, str], cfg, paid: dict[int, int]) -> dict[str, list[float]]:
    """Restore each snapshot in turn (A B B A ...) and time its close in a newly opened store;
    each must close its one epoch and pay what the growth paid (the close is deterministic)."""
    from payouts.close import close_ready_epochs
    from store.db import connect

    times: dict[str, list[float]] = {str(e): [] for e in snaps}
    order = list(snaps)
    for i in range(REPEATS):
        for e in order if i % 2 == 0 else order[::-1]:
            shutil.copyfile(snaps[e], db)
            os.sync()  # the copy's writeback (GBs at 100 epochs) is done before the clock starts, not during
            con = connect(db, create=False)
            t0 = time.perf_counter()
            results = close_ready_epochs(con, cfg)
            times[str(e)].append(time.perf_counter() - t0)
            con.close()
            assert [(r.reward_epoch, r.rewards.height) for r in results] == [(e, paid[e])], (e, results)
    return times


WINDOW = 10  # closes a figure is the median of


def fmt_runs(xs: list[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in xs)


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
    alt = m["alternating_s"]
    second, hundredth = statistics.median(alt["1"]), statistics.median(alt[str(last)])
    grow2, grow100 = window_median(m["close_s"], 1), window_median(m["close_s"], last)
    cpu2, cpu100 = window_median(m["close_cpu_s"], 1), window_median(m["close_cpu_s"], last)
    log(f"history: alternating, epoch 1 closes in {second:.3f} s, epoch {last} in {hundredth:.3f} s"
        f" (medians of {REPEATS}); while growing, {grow2:.3f} s ({cpu2:.3f} s CPU) and {grow100:.3f} s"
        f" ({cpu100:.3f} s CPU)")
    row = Row(benchmark="history", metric=f"close of epoch {last} vs epoch 1 ({n:,} nodes)", value=hundredth, unit="s",
              baseline=second, baseline_label="epoch 1", ratio=hundredth / second,
              budget=f"≤ {BUDGET:g}×", limit=BUDGET, compare="ratio",
              note=(f"each close restored from a copy of the store and repeated {REPEATS}× in alternation, medians "
                    f"(runs: epoch 1 {fmt_runs(alt['1'])}; epoch {last} {fmt_runs(alt[str(last)])}); "
                    f"while growing, in one connection: medians of {WINDOW} closes (epochs 1..{WINDOW}, "
                    f"{last - WINDOW + 1}..{last}) {grow2:.3f} → {grow100:.3f} s ({grow100 / grow2:.2f}×), CPU "
                    f"{cpu2:.3f} s → {cpu100:.3f} s ({cpu100 / cpu2:.2f}×); {m['paid']['1']:,} / "
                    f"{m['paid'][str(last)]:,} paid; history at the end: {m['pings']:,} pings, {m['events']:,} events, "
                    f"{m['ledger_rows']:,} ledger rows, {m['decisions']:,} decisions"),
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
    print({k: v for k, v in m.items() if k not in ("close_s", "close_cpu_s", "paid", "alternating_s")})
    alt = m["alternating_s"]
    for e, xs in alt.items():
        print(f"alternating, epoch {e}: {fmt_runs(xs)} (median {statistics.median(xs):.3f} s)")
    print(f"alternating: ratio {statistics.median(alt[str(last)]) / statistics.median(alt['1']):.2f}")
    for key in ("close_s", "close_cpu_s"):
        print(f"{key} per epoch:", " ".join(f"{k}:{v:.3f}" for k, v in m[key].items()))
        print(f"{key}: epoch 1 {window_median(m[key], 1):.3f} s, epoch {last} {window_median(m[key], last):.3f} s, "
              f"ratio {window_median(m[key], last) / window_median(m[key], 1):.2f}")


if __name__ == "__main__":
    main()
