"""A fresh clone works: `git clone` of this repository's HEAD into a folder with no `../shared`
beside it, then the demo, as a new user runs it (README: `make demo`).

To stay fast the clone runs with this test's interpreter and installed dependencies (the ones
`make setup` installs from requirements.lock), its own code first on PYTHONPATH, in place of the
editable install `make setup` would do; the Makefile's recipe is checked to install from the lock.
No full traces are reachable: $EPOCHAL_DATA_DIR is unset and the clone's parent folder holds
nothing but the clone, so the simulator can only read the profile packaged in the clone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("epochal", "scoring", "payouts", "streams", "analytics")

# Runs the clone's `epochal` command after checking that every package comes from the clone.
RUN_FROM_CLONE = """
import importlib, sys
clone = sys.argv[1]
for name in {packages!r}:
    f = importlib.import_module(name).__file__
    if not f.startswith(clone + "/"):
        sys.exit(f"{{name}} imported from {{f}}, not from the clone")
from epochal.cli import main
sys.argv = ["epochal", *sys.argv[2:]]
main()
""".format(packages=PACKAGES)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    home = tmp_path_factory.mktemp("fresh")
    dest = home / "epochal"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(dest)],
                   check=True, timeout=120)
    assert sorted(p.name for p in home.iterdir()) == ["epochal"]  # no shared/ beside the clone
    return dest


def _clone_env(clone: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHAL_")}
    env["PYTHONPATH"] = str(clone)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_the_demo_runs_in_a_fresh_clone_without_shared(clone):
    out = clone / "demo-out"
    done = subprocess.run(
        [sys.executable, "-c", RUN_FROM_CLONE, str(clone), "demo", "--nodes", "40", "--hours", "6", "--out", str(out)],
        cwd=clone, env=_clone_env(clone), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from the packaged trace profile" in done.stdout  # the simulator says what it read
    assert (out / "report.html").stat().st_size > 1000
    assert (out / "events" / "truth.json").is_file()
    assert not (clone.parent / "shared").exists()


def test_the_clone_installs_from_the_lock(clone):
    lock = (clone / "requirements.lock").read_text().splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all("==" in line or " @ " in line for line in pins)
    names = {line.split("==")[0].split(" @ ")[0].lower().replace("_", "-") for line in pins}
    assert {"duckdb", "polars", "numpy", "pydantic", "typer", "pytest"} <= names
    dry = subprocess.run(["make", "-n", "-B", "setup"], cwd=clone, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    steps = dry.stdout.splitlines()
    lock_step = next(i for i, s in enumerate(steps) if "pip install" in s and "-r requirements.lock" in s)
    project_step = next(i for i, s in enumerate(steps) if "pip install" in s and "-e" in s)
    assert lock_step < project_step and "-c requirements.lock" in steps[project_step]
    # and the README's two commands go through that setup
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", "-B", target], cwd=clone, capture_output=True, text=True, timeout=60)
        assert "-r requirements.lock" in dry.stdout


def test_a_wheel_built_from_the_clone_carries_the_profile(clone, tmp_path):
    # pip builds it the way `make setup` builds the editable install (setuptools from the index)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--wheel-dir", str(tmp_path), str(clone)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("epochal-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "epochal/sim/trace_profile.npz" in names
        assert z.read("epochal/sim/trace_profile.npz") == (clone / "epochal/sim/trace_profile.npz").read_bytes()
