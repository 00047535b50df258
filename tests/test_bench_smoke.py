"""Smoke run of the benchmark suite: `bench/run --quick` works and writes its results.

This checks the suite, not the budgets: the figures must be there and be numbers, whatever
they are (quick mode never fails a budget).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEASURED = {"replay", "close", "history", "simulate", "stream", "publish", "api", "investigation", "settlement", "demo"}
NOT_BUILT: set[str] = set()


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
def test_bench_quick_runs_and_writes_results(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--quick", "--out", str(out), "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,  # a guard, not a budget (shared machine)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "quick"
    assert set(res["benchmarks"]) == MEASURED | NOT_BUILT
    assert res["machine"]["cpus"] >= 1

    for name in MEASURED:
        b = res["benchmarks"][name]
        assert b["status"] != "error", b["error"]
        assert b["rows"], name
        for r in b["rows"]:
            assert _finite(r["value"]), (name, r)
            if r["baseline"] is not None:
                assert _finite(r["baseline"]) and r["baseline"] > 0, (name, r)
                assert _finite(r["ratio"]) and r["ratio"] > 0, (name, r)
    for name in NOT_BUILT:
        b = res["benchmarks"][name]
        assert b["status"] == "not built yet"
        assert all(r["value"] is None for r in b["rows"])  # no fake figures

    replay = res["benchmarks"]["replay"]["rows"]
    assert {r["compare"] for r in replay if r["budget"]} == {"ratio"}  # time and memory budgets
    assert len([r for r in replay if r["budget"]]) == 2
    publish = res["benchmarks"]["publish"]["rows"]
    assert [r["compare"] for r in publish if r["budget"]] == ["ratio"]  # with / without publishing
    close = res["benchmarks"]["close"]["rows"]
    assert [r["extra"]["nodes"] for r in close if "nodes" in r["extra"]] == [10_000, 100_000]
    assert all(r["extra"]["eligible"] > 0.9 * r["extra"]["nodes"] for r in close if "nodes" in r["extra"])
    settle = {r["metric"]: r for r in res["benchmarks"]["settlement"]["rows"]}
    assert settle["largest transaction (bytes)"]["value"] <= 1232
    assert settle["transfers per transaction (every batch but the last)"]["value"] >= 50
    # quick mode reports budgets but never enforces them
    assert all(not b["enforced"] for b in res["budgets"])
    assert res["figures"] and all(_finite(v) for v in res["figures"].values())
