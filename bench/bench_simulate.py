"""Benchmark of the traffic simulator: events generated per second.

Full: 10,000 nodes × 24 h; quick: 1,000 nodes × 6 h; into a temporary directory, in a fresh
process (peak RSS is its own). Events count a `ping.batch`'s inner pings one by one (the batch
envelope is not an event of its own).

Baseline, same run, same sizes: the suite's bare columnar writer (bench/genpings.py: plain
single pings plus registrations and benchmarks, no traces, outages, batches or noise), as
events/s. The ratio is floor rate / simulator rate: what realism costs per event (below 1 means
the simulator writes faster, e.g. because batches make fewer, longer lines).

Usage: python bench/bench_simulate.py [--nodes N] [--hours H] [--seed S] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, Timer, log, peak_rss_mb, run_child  # noqa: E402

FULL = {"nodes": 10_000, "hours": 24}
QUICK = {"nodes": 1_000, "hours": 6}


def subject(nodes: int, hours: int, seed: int, out: str) -> dict:
    """The simulator, timed (runs in a fresh process)."""
    from epochal.sim import simulate

    out_dir = Path(out)
    with Timer() as t:
        s = simulate(nodes, hours, seed, out_dir)
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    ev = s["events"]
    events = sum(v for k, v in ev.items() if k != "ping.batch")  # inner pings count as ping events
    pings = ev["ping"] + ev["ping.batch.inner"]
    return {"seconds": t.s, "events": events, "pings": pings, "lines": s["lines"], "bytes": size,
            "events_per_s": events / t.s}


def floor(nodes: int, hours: int, out: str) -> dict:
    """The bare columnar writer of the same nodes × hours (runs in a fresh process)."""
    from bench.genpings import write_events_file

    with Timer() as t:
        info = write_events_file(Path(out), nodes, hours)
    return {"seconds": t.s, **info, "events_per_s": info["lines"] / t.s}


def run(quick: bool, workdir: Path | None = None, seed: int = 1) -> list[Row]:
    cfg = QUICK if quick else FULL
    N, H = cfg["nodes"], cfg["hours"]
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="epochal-bench-sim-")) if own_tmp else workdir
    try:
        log(f"simulate: {N:,} nodes × {H} h")
        s = run_child("bench.bench_simulate:subject", {"nodes": N, "hours": H, "seed": seed,
                                                       "out": str(workdir / "sim")})
        shutil.rmtree(workdir / "sim", ignore_errors=True)
        f = run_child("bench.bench_simulate:floor", {"nodes": N, "hours": H, "out": str(workdir / "floor.jsonl")})
        (workdir / "floor.jsonl").unlink(missing_ok=True)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"simulate: {s['events_per_s']:,.0f} events/s (floor {f['events_per_s']:,.0f})")
    return [Row(
        benchmark="simulate", metric=f"simulate {N:,}×{H} h", value=s["events_per_s"], unit="events/s",
        baseline=f["events_per_s"], baseline_label="bare writer",
        ratio=f["events_per_s"] / s["events_per_s"],
        note=(f"{s['events']:,} events ({s['pings']:,} pings) in {s['seconds']:.1f} s, {s['lines']:,} lines, "
              f"{s['bytes'] / 2**20:,.0f} MiB, peak RSS {s['peak_rss_mb']:.0f} MB; "
              f"ratio = floor rate / simulator rate"),
        extra={"subject": s, "floor": f},
    )]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=FULL["nodes"])
    ap.add_argument("--hours", type=int, default=FULL["hours"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="write here instead of a temp dir")
    a = ap.parse_args()
    out = a.keep or Path(tempfile.mkdtemp(prefix="epochal-bench-"))
    try:
        s = subject(a.nodes, a.hours, a.seed, str(out))
    finally:
        if a.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    print(f"nodes={a.nodes} hours={a.hours} seed={a.seed}")
    print(f"events={s['events']:,} (pings={s['pings']:,}, lines={s['lines']:,}, bytes={s['bytes']:,})")
    print(f"seconds={s['seconds']:.2f}")
    print(f"events_per_s={s['events_per_s']:,.0f}")
    print(f"peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
