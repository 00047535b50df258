import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# No timed tests (BRIEFING): hypothesis's per-example deadline fails a property test on a machine
# shared with other work (an example that took 0.3 ms alone took 390 ms under load); a test that
# sets its own settings still sets its own deadline.
settings.register_profile("epochal", deadline=None)
settings.load_profile("epochal")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# The full traces, when this workplace has them beside the repository (a fresh clone does not:
# the simulator then reads its packaged profile, and the tests that need the raw files skip).
SHARED_DATA = ROOT.parent / "shared" / "data" / "alibaba-clusterdata"


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The folder of full alibaba-clusterdata traces ($EPOCHAL_DATA_DIR, else ../shared/data/…);
    skips the test when there is none."""
    d = Path(os.environ.get("EPOCHAL_DATA_DIR") or SHARED_DATA)
    if not d.is_dir():
        pytest.skip(f"no full traces at {d} (set EPOCHAL_DATA_DIR)")
    return d
