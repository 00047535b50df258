"""Benchmark of the traffic simulator: 10,000 nodes x 24 h into a temporary directory.

Prints events/s, seconds and peak RSS. Usage: python bench/bench_simulate.py [--nodes N] [--hours H]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from epochal.sim import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="write here instead of a temp dir")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="epochal-bench-") as tmp:
        out = a.keep or Path(tmp)
        t = time.perf_counter()
        s = simulate(a.nodes, a.hours, a.seed, out)
        secs = time.perf_counter() - t
        size = sum(f.stat().st_size for f in out.iterdir())
    ev = s["events"]
    events = sum(v for k, v in ev.items() if k != "ping.batch")  # inner pings count as ping events
    pings = ev["ping"] + ev["ping.batch.inner"]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"nodes={a.nodes} hours={a.hours} seed={a.seed}")
    print(f"events={events:,} (pings={pings:,}, lines={s['lines']:,}, bytes={size:,})")
    print(f"seconds={secs:.2f}")
    print(f"events_per_s={events / secs:,.0f}")
    print(f"peak_rss_mb={rss_mb:.0f}")


if __name__ == "__main__":
    main()
