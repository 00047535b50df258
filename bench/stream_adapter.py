"""The stream benchmark in the suite: runs bench/bench_stream.py (owned by the streams work) in
a fresh process and turns its last JSON line into rows.

Budget (issue 5): one worker ≥ 100,000 pings/s on `ping.batch` messages of 500 pings, and ≥ 15 %
of the rate of a bare aiokafka consumer + orjson reading the same messages in the same run.
Full: 2,000 messages (1 M pings); quick: 200 (100 k pings; fixed costs weigh more).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, Row, log

FULL_MESSAGES = 6000  # 3 M pings, 12 epoch closes: long enough for the steady state
QUICK_MESSAGES = 200
MIN_PINGS_PER_S = 100_000
MIN_SHARE_OF_BARE = 0.15


def run(quick: bool, workdir: Path | None = None) -> list[Row]:
    n = QUICK_MESSAGES if quick else FULL_MESSAGES
    log(f"stream: {n:,} ping.batch messages of 500 pings through bench/bench_stream.py")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_stream.py"), "--messages", str(n)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"bench/bench_stream.py exited {proc.returncode}:\n{tail}")
    r = json.loads(lines[-1])
    worker, bare = float(r["worker_pings_per_s"]), float(r["bare_pings_per_s"])
    log(f"stream: worker {worker:,.0f} pings/s, bare consumer {bare:,.0f} pings/s")
    info = [ln for ln in proc.stdout.splitlines() if not ln.startswith("{")]
    rows = [
        Row(benchmark="stream", metric=f"stream worker, {n:,}×500-ping batches", value=worker, unit="pings/s",
            baseline=bare, baseline_label="bare aiokafka+orjson", ratio=worker / bare,
            budget=f"≥ {MIN_SHARE_OF_BARE:.0%} of bare", limit=MIN_SHARE_OF_BARE, compare="ratio_min",
            note="ratio = worker rate / bare consumer rate; " + "; ".join(info[-4:]), extra=r),
        Row(benchmark="stream", metric="stream worker absolute", value=worker, unit="pings/s",
            budget=f"≥ {MIN_PINGS_PER_S:,} pings/s", limit=MIN_PINGS_PER_S, compare="value_min"),
    ]
    return [row.check(quick) for row in rows]
