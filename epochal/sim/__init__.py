"""Traffic simulator: realistic event files plus the planted truth (farms, spoofers, outages).

`simulate(nodes, hours, seed, out_dir)` writes `out_dir/*.jsonl` and `out_dir/truth.json`. It draws
from the packaged profile of the real traces, or from the full traces with `data_dir` /
$EPOCHAL_DATA_DIR (`epochal.sim.data`; `python -m epochal.sim.profile` derives the profile).
"""

from .core import simulate
from .data import load_traces, resolve_data_dir

__all__ = ["simulate", "load_traces", "resolve_data_dir"]
