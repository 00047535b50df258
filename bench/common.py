"""Shared pieces of the benchmark suite: result rows, subprocess measurement, the machine.

Every benchmark returns `Row`s: one figure each, with the baseline measured in the same run
and, where the issue sets one, a budget. A budget is checked against the ratio (or the figure)
and gives pass/fail; in quick mode it is reported but never fails the run.

Subjects whose peak RSS matters run in a fresh interpreter (`run_child`): the child imports
the module, calls the function with JSON arguments, and prints its JSON result plus its own
peak RSS (`ru_maxrss` of RUSAGE_SELF, so nothing the parent did is counted) on the last line.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "BENCH_RESULT "


@dataclass
class Row:
    benchmark: str
    metric: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    budget: str = ""  # human text, e.g. "≤ 3.0× floor"
    limit: float | None = None  # the number the budget compares against
    compare: str = ""  # "ratio"/"value" (≤ limit) or "ratio_min"/"value_min" (≥ limit)
    passed: bool | None = None  # None: no budget, or not enforced (quick mode)
    enforced: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self, quick: bool) -> "Row":
        if self.limit is None or not self.compare:
            return self
        x = self.ratio if self.compare.startswith("ratio") else self.value
        if x is not None:  # "ratio"/"value": at most the limit; "ratio_min"/"value_min": at least
            self.passed = bool(x >= self.limit) if self.compare.endswith("_min") else bool(x <= self.limit)
        self.enforced = not quick
        return self

    def as_dict(self) -> dict:
        return asdict(self)


def not_built(name: str, what: str) -> Row:
    return Row(benchmark=name, metric=what, value=None, unit="", note="not built yet", enforced=False)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class ChildError(RuntimeError):
    pass


def run_child(target: str, kwargs: dict, *, timeout: float = 3600, env: dict | None = None) -> dict:
    """Run `module:function(**kwargs)` in a fresh interpreter; its dict result plus
    `peak_rss_mb` and `child_wall_s` (interpreter start to exit)."""
    cmd = [sys.executable, "-m", "bench.child", target, json.dumps(kwargs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ChildError(f"{target} exited {proc.returncode}:\n{tail}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            out = json.loads(line[len(RESULT_MARK):])
            out["child_wall_s"] = wall
            return out
    raise ChildError(f"{target} printed no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def machine() -> dict:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    for mod in ("duckdb", "polars", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover
            pass
    return info


class Timer:
    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.s = time.perf_counter() - self.t0


def log(msg: str) -> None:
    print(f"  · {msg}", file=sys.stderr, flush=True)
