"""Benchmark of publishing (issue 14): the replay with its published folder against the same
replay without it, in one run, and what the folder costs on disk.

Input (untimed, written by bench/genpings.py, as bench_replay's): one JSONL file of valid
events, N nodes × H hours of one ping a minute, registrations and benchmarks.

Measured, each in a fresh process, alternating, `REPEATS` (5) times each (best of each counts):
- the subject: `epochal.replay.replay([file], fresh_db)` publishing every closed epoch into a
  fresh `<db>.published/` (the default: every file, fsync, manifests);
- the baseline: the same call with `publish=False`.
Budget: with publishing ≤ 1.15× without (wall clock). Also reported: the CPU time of each
(all threads; least and median of each), which the machine's other load disturbs less than the
wall clock, and the median of the run-by-run wall ratios.
Reported: bytes per ping of `inputs.parquet` (the whole archive lands in the first epoch's
inputs in a replay: its size over the pings), and the folder's bytes against the store's.

Full: 1,000 nodes × 24 h (1.44 M pings, 23 epochs). Quick: 200 nodes × 6 h.

Usage: python bench/bench_publish.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, Timer, log, run_child  # noqa: E402

FULL = {"nodes": 1000, "hours": 24}
QUICK = {"nodes": 200, "hours": 6}
REPEATS = 5  # the machine is shared: five of each, alternating, for a stable best
RATIO_BUDGET = 1.15


def _fresh(db: Path) -> None:
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(str(db) + ".published", ignore_errors=True)


def subject(path: str, db: str, publish: bool) -> dict:
    """One replay, timed (runs in a fresh process); with `publish`, its folder measured after."""
    from epochal.replay import replay
    from store import published as pub

    _fresh(Path(db))
    cpu0 = _cpu_s()
    with Timer() as t:
        rep = replay([Path(path)], db, publish=None if publish else False)
    out = {"seconds": t.s, "cpu_s": _cpu_s() - cpu0, "closed_epochs": len(rep.closed), "published": len(rep.published),
           "pings": rep.counts.pings, "db_bytes": Path(db).stat().st_size}
    if publish:
        root = Path(str(db) + ".published")
        out["folder_bytes"] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        inputs = [f for e in pub.list_epochs(root) for f in pub.read_manifest(root, e)["files"]
                  if f["name"] == "inputs.parquet"]
        out["inputs_bytes"] = sum(f["bytes"] for f in inputs)
        out["inputs_rows"] = sum(f["rows"] for f in inputs)
    return out


def _cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def generate(path: str, nodes: int, hours: int) -> dict:
    from bench.genpings import write_events_file

    with Timer() as t:
        info = write_events_file(Path(path), nodes, hours)
    return {**info, "seconds": t.s}


def run(quick: bool, workdir: Path | None = None) -> list[Row]:
    cfg = QUICK if quick else FULL
    N, H = cfg["nodes"], cfg["hours"]
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="epochal-bench-publish-")) if own_tmp else workdir
    try:
        path, db = workdir / f"publish-{N}x{H}h.jsonl", workdir / "publish.duckdb"
        log(f"publish: writing {N:,} nodes × {H} h")
        gen = run_child("bench.bench_publish:generate", {"path": str(path), "nodes": N, "hours": H})
        with_pub, without = [], []
        for k in range(2 if quick else REPEATS):
            without.append(run_child("bench.bench_publish:subject", {"path": str(path), "db": str(db), "publish": False}))
            with_pub.append(run_child("bench.bench_publish:subject", {"path": str(path), "db": str(db), "publish": True}))
            log(f"publish: run {k + 1}: with {with_pub[-1]['seconds']:.2f} s, without {without[-1]['seconds']:.2f} s")
        _fresh(db)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)

    best, base = min(with_pub, key=lambda r: r["seconds"]), min(without, key=lambda r: r["seconds"])
    best_cpu, base_cpu = min(with_pub, key=lambda r: r["cpu_s"]), min(without, key=lambda r: r["cpu_s"])
    pairs = [w["seconds"] / b["seconds"] for w, b in zip(with_pub, without)]
    cpu_med_with = statistics.median(r["cpu_s"] for r in with_pub)
    cpu_med_without = statistics.median(r["cpu_s"] for r in without)
    label = f"{N:,}×{H} h"
    per_ping = best["inputs_bytes"] / max(1, best["pings"])
    rows = [
        Row(benchmark="publish", metric=f"replay {label} with publishing ({gen['pings']:,} pings)", value=best["seconds"],
            unit="s", baseline=base["seconds"], baseline_label="without", ratio=best["seconds"] / base["seconds"],
            budget=f"≤ {RATIO_BUDGET:g}× without", limit=RATIO_BUDGET, compare="ratio",
            note=(f"{best['published']} epochs published; runs: with " + ", ".join(f"{r['seconds']:.2f}" for r in with_pub)
                  + " s, without " + ", ".join(f"{r['seconds']:.2f}" for r in without)
                  + " s; ratio run by run " + ", ".join(f"{x:.2f}" for x in pairs)
                  + f" (median {statistics.median(pairs):.2f})"
                  + f"; CPU (all threads) with {best_cpu['cpu_s']:.2f} s, without {base_cpu['cpu_s']:.2f} s"
                  f" ({best_cpu['cpu_s'] / base_cpu['cpu_s']:.2f}×, least of each; medians {cpu_med_with:.2f} s"
                  f" against {cpu_med_without:.2f} s, {cpu_med_with / cpu_med_without:.2f}×)"),
            extra={"with": with_pub, "without": without, "file": gen, "pair_ratios": pairs}),
        Row(benchmark="publish", metric="inputs.parquet bytes per ping", value=per_ping, unit="B",
            note=f"{best['inputs_bytes']:,} bytes for {best['inputs_rows']:,} inputs ({best['pings']:,} pings);"
                 f" the event file: {gen['bytes'] / max(1, gen['lines']):.0f} bytes a line"),
        Row(benchmark="publish", metric="published folder vs store", value=best["folder_bytes"] / 2**20, unit="MB",
            baseline=best["db_bytes"] / 2**20, baseline_label="store", ratio=best["folder_bytes"] / best["db_bytes"],
            note=f"folder {best['folder_bytes']:,} bytes, store {best['db_bytes']:,} bytes"),
    ]
    for r in rows:
        r.check(quick)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    t = time.perf_counter()
    for r in run(a.quick):
        base = f" baseline {r.baseline:,.3f} ratio {r.ratio:.3f}" if r.baseline is not None else ""
        print(f"{r.metric}: {r.value:,.3f} {r.unit}{base} {r.budget} {r.passed} | {r.note}")
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
