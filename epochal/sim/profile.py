"""Derive the simulator's packaged profile from the full traces.

    python -m epochal.sim.profile --traces DIR [--out FILE]

DIR holds the alibaba/clusterdata files named in `epochal.sim.data.REQUIRED`; FILE defaults to
the packaged `epochal/sim/trace_profile.npz`. The profile holds the figures the simulator draws
from (see `epochal.sim.data`), so a simulation from it is byte-identical to one from DIR. Re-run
this after changing what the simulator reads from the traces (and bump `PROFILE_FORMAT` if the
members change); `tests/sim/test_sim_profile.py` fails while the committed profile and the
traces disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import PROFILE, derive_traces, read_profile, resolve_data_dir, write_profile


def derive_profile(traces_dir: Path, out: Path = PROFILE) -> Path:
    """Read the traces in `traces_dir`, write their profile to `out`, check it reads back equal."""
    d = resolve_data_dir(traces_dir)
    assert d is not None  # an explicit folder always resolves (or raises)
    traces = derive_traces(d)
    path = write_profile(traces, out)
    differ = traces.differences(read_profile(path))
    if differ:  # a programmer error in the format, not bad input
        raise RuntimeError(f"profile {path} does not read back as written: {', '.join(differ)}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m epochal.sim.profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=Path, required=True, help="folder of the alibaba-clusterdata traces")
    ap.add_argument("--out", type=Path, default=PROFILE, help=f"profile file to write (default {PROFILE})")
    args = ap.parse_args(argv)
    try:
        path = derive_profile(args.traces, args.out)
    except ValueError as exc:
        print(f"epochal.sim.profile: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size:,} bytes) from {args.traces}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
