"""Traffic simulator: realistic event files plus the planted truth (farms, spoofers, outages).

`simulate(nodes, hours, seed, out_dir)` writes `out_dir/*.jsonl` and `out_dir/truth.json`.
"""

from .core import simulate
from .data import resolve_data_dir

__all__ = ["simulate", "resolve_data_dir"]
