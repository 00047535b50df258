"""`python -m bench.child module:function '{json kwargs}'`: one measured subject, fresh process.

Prints `BENCH_RESULT {json}` last: the function's dict plus `peak_rss_mb`, the peak resident
set of this process alone (its own `ru_maxrss`), so nothing the parent holds is counted.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if os.environ.get("EPOCHAL_BENCH_ENGINE"):  # `bench/run --engine DIR`: another checkout's engine
    sys.path.insert(0, os.environ["EPOCHAL_BENCH_ENGINE"])

from bench.common import RESULT_MARK, current_rss_mb, peak_rss_mb  # noqa: E402


def main() -> None:
    target, kwargs = sys.argv[1], json.loads(sys.argv[2])
    mod_name, fn_name = target.split(":")
    fn = getattr(importlib.import_module(mod_name), fn_name)
    out = fn(**kwargs)
    out = dict(out or {})
    out["peak_rss_mb"] = peak_rss_mb()
    print(RESULT_MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
