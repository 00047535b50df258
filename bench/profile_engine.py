"""Where the time goes: the replay or one epoch close, with every DuckDB statement timed.

    python bench/profile_engine.py replay FILE.jsonl [--cprofile]
    python bench/profile_engine.py close STORE.duckdb [--epoch 48]   (a store from bench_close.build)
    python bench/profile_engine.py closer FILE.jsonl [--batch 400]   (the stream worker's closer, no Kafka)

The store connection is wrapped so that each `execute` is timed and attributed to its SQL
(first words) and to the engine function that issued it; the top statements, the phases
(stage / commit / close) and, with --cprofile, the top Python functions are printed. The
wrapper costs microseconds per statement, nothing per row.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if os.environ.get("EPOCHAL_BENCH_ENGINE"):  # as bench/run --engine: another checkout's engine
    sys.path.insert(0, os.environ["EPOCHAL_BENCH_ENGINE"])

from bench.common import peak_rss_mb  # noqa: E402

STATS: dict[tuple[str, str], list[float]] = defaultdict(list)
CPU: dict[tuple[str, str], float] = defaultdict(float)  # process CPU seconds (all threads) per statement


def _label(sql: str) -> str:
    s = re.sub(r"\s+", " ", sql.strip())
    return s[:110]


def _caller() -> str:
    for fr in reversed(traceback.extract_stack(limit=8)[:-2]):
        if "/bench/" not in fr.filename:
            return f"{Path(fr.filename).stem}.{fr.name}:{fr.lineno}"
    return "?"


class TimedConnection:
    """A store connection that times every statement (the engine registers every frame it
    reads by name, so nothing else is needed)."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            STATS[(_caller(), _label(sql))].append(time.perf_counter() - t0)
            CPU[(_caller(), _label(sql))] += time.process_time() - c0

    def __getattr__(self, name):
        return getattr(self._con, name)


def _patch_store():
    import store.db as store

    real = store.connect

    def connect(*a, **k):
        return TimedConnection(real(*a, **k))

    store.connect = connect
    return store


PHASE_RSS: dict[str, float] = defaultdict(float)  # the highest RSS sampled during each phase
_current = ["start"]


def _sample_rss(stop: threading.Event) -> None:
    import psutil

    proc = psutil.Process()
    while not stop.is_set():
        rss = proc.memory_info().rss / 2**20
        ph = _current[-1]
        PHASE_RSS[ph] = max(PHASE_RSS[ph], rss)
        stop.wait(0.02)


def _phases():
    """Time the replay's phases by wrapping the module functions it calls."""
    import store.ingest as ingest
    import payouts.close as close

    phases: dict[str, float] = defaultdict(float)

    def wrap(mod, name, label):
        fn = getattr(mod, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            _current.append(label)
            try:
                return fn(*a, **k)
            finally:
                _current.pop()
                phases[label] += time.perf_counter() - t0

        setattr(mod, name, timed)

    wrap(ingest.Ingestor, "stage_file", "ingest: stage files")
    wrap(ingest.Ingestor, "commit", "ingest: commit (dedup, archive)")
    if hasattr(ingest.Ingestor, "_flush_pings"):
        wrap(ingest.Ingestor, "_flush_pings", "ingest: flush pings to archive")
    wrap(close, "gather_epoch_inputs", "close: gather")
    wrap(close, "compute_epoch", "close: compute")
    wrap(close, "write_epoch", "close: write")
    return phases


def report(total: float, phases: dict[str, float], prof: cProfile.Profile | None) -> None:
    print(f"total {total:.2f} s, peak RSS {peak_rss_mb():.0f} MB")
    for k, v in phases.items():
        print(f"  {k:<34} {v:7.2f} s  {v / total:5.1%}   peak RSS inside {PHASE_RSS.get(k, 0):6.0f} MB")
    print(f"  (outside any phase: peak RSS {max(v for k, v in PHASE_RSS.items() if k not in phases):.0f} MB;"
          " nested phases count in the innermost)")
    rows = sorted(STATS.items(), key=lambda kv: -sum(kv[1]))
    print("top DuckDB statements (sum over calls):")
    print("  (wall s, calls, cores busy on average: process CPU / wall, 1.0 = one core)")
    for (caller, label), ts in rows[:int(os.environ.get("PROFILE_TOP", "18"))]:
        cores = CPU[(caller, label)] / max(sum(ts), 1e-9)
        print(f"  {sum(ts):7.2f} s ×{len(ts):<4} {cores:4.1f} {caller:<44} {label}")
    print(f"  all statements: {sum(sum(v) for v in STATS.values()):.2f} s")
    if prof is not None:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(15)
        print(s.getvalue())


def _closer(path: Path, batch: int, store, prof) -> float:
    """The worker's pipeline without Kafka: each line is one message of `epochal.pings`
    partition 0, in micro-batches of `batch`, each stepped through the closer (archive +
    watermark + closes), as `streams.worker.Pipeline.handle` does on the closer's worker."""
    import streams.closer as closer_mod
    from streams.segments import Message, now_us

    closer_mod.store = store
    lines = path.read_bytes().splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        c = closer_mod.Closer.open(Path(tmp) / "p.duckdb", Path(tmp) / "segments")
        c.set_ping_partitions([0], time.time())
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        for i in range(0, len(lines), batch):
            msgs = [Message(closer_mod.PINGS_TOPIC, 0, i + k, v, now_us()) for k, v in enumerate(lines[i:i + batch])]
            rep = c.step(batch=msgs)
            print(f"  step: {len(msgs)} messages, {rep.pings:,} pings, closed {rep.closed} in {rep.seconds:.3f} s")
        if prof:
            prof.disable()
        total = time.perf_counter() - t0
        print(f"closer: {c.totals.pings:,} pings archived, epochs closed {c.totals.closed}, "
              f"{c.totals.pings / total:,.0f} pings/s")
        c.close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["replay", "close", "closer"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--epoch", type=int, default=48)
    ap.add_argument("--batch", type=int, default=400, help="closer: messages per micro-batch")
    ap.add_argument("--cprofile", action="store_true")
    a = ap.parse_args()
    store = _patch_store()
    phases = _phases()
    prof = cProfile.Profile() if a.cprofile else None
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(stop,), daemon=True)
    sampler.start()
    if a.what == "replay":
        from epochal import replay as replay_mod

        replay_mod.store = store
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            if prof:
                prof.enable()
            replay_mod.replay([a.path], Path(tmp) / "p.duckdb")
            if prof:
                prof.disable()
            total = time.perf_counter() - t0
    elif a.what == "closer":
        total = _closer(a.path, a.batch, store, prof)
    else:
        import payouts.close as close

        con = store.connect(str(a.path))
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        close.close_epoch(con, a.epoch)
        if prof:
            prof.disable()
        total = time.perf_counter() - t0
    stop.set()
    sampler.join()
    report(total, phases, prof)


if __name__ == "__main__":
    main()
