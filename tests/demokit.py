"""One small `epochal demo` per test session, run as a user runs it (the command, in a
subprocess), shared by the tests of the demo and of its report in a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# small, and still every kind of plant: seed 3 plants farms, spoofers, outages and fleets
NODES, HOURS, SEED = 80, 8, 3


@dataclass
class DemoResult:
    out: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> Path:
        return self.out / "report.html"


def run_demo(out: Path, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "epochal.cli", "demo", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env or {k: v for k, v in os.environ.items() if k != "EPOCHAL_DB"})


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo") / "out"
    done = run_demo(out, "--nodes", str(NODES), "--hours", str(HOURS), "--seed", str(SEED))
    return DemoResult(out, done.returncode, done.stdout, done.stderr)


def chromium_executable() -> str:
    """Debian's chromium (installed by .ci/run); on CI ($EPOCHAL_REQUIRE_BROWSER set) its absence
    fails the test, elsewhere it skips."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("EPOCHAL_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path
