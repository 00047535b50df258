"""The packaged trace profile: what the simulator reads when no traces sit beside the repository.

It must be exactly what `python -m epochal.sim.profile` derives from the full traces (whenever
they are present), small, and a simulation from it must be byte-identical to one from the traces.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from epochal.sim import load_traces, simulate
from epochal.sim.data import PROFILE, derive_traces, read_profile, resolve_data_dir, write_profile


def _digests(d: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.iterdir())}


def test_the_committed_profile_is_what_the_script_derives_from_the_traces(traces_dir, tmp_path):
    out = tmp_path / "profile.npz"
    done = subprocess.run([sys.executable, "-m", "epochal.sim.profile", "--traces", str(traces_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    derived, committed = read_profile(out), read_profile(PROFILE)
    assert derived.differences(committed) == [], "re-run: python -m epochal.sim.profile --traces DIR"
    assert derive_traces(traces_dir).differences(committed) == []


def test_a_simulation_from_the_profile_is_byte_identical_to_one_from_the_traces(traces_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("EPOCHAL_DATA_DIR", raising=False)
    a, b = tmp_path / "profile", tmp_path / "traces"
    sa = simulate(80, 3, 21, a)
    sb = simulate(80, 3, 21, b, data_dir=traces_dir)
    assert _digests(a) == _digests(b)
    assert {k: v for k, v in sa.items() if k != "out_dir"} == {k: v for k, v in sb.items() if k != "out_dir"}


def test_without_traces_the_simulator_reads_the_packaged_profile(monkeypatch, tmp_path):
    monkeypatch.delenv("EPOCHAL_DATA_DIR", raising=False)
    assert resolve_data_dir(None) is None
    t = load_traces()
    assert t.differences(read_profile(PROFILE)) == []
    # the figures of the traces (data/README.md): 143 containers over 22.8 h of minutes,
    # both inventories, the GPU pods of the pod list
    assert t.presence.shape[0] == len(t.containers) == 143
    assert 22 * 60 < t.presence.shape[1] < 23 * 60 and 0.3 < t.presence.mean() < 1
    assert len(t.inventory_openb) > 1000 and len(t.inventory_spot) == 4278
    assert {"T4", "V100M32", "G2"} <= {m for m, _ in t.inventory_openb}
    assert set(np.unique(t.pods["phase"])) == {"Failed", "Pending", "Running", "Succeeded"}
    assert all(v.dtype == np.int64 for k, v in t.pods.items() if k != "phase")
    assert PROFILE.stat().st_size < 300_000
    s = simulate(20, 1, 3, tmp_path)
    assert s["lines"] > 0


def test_the_profile_round_trips_to_the_same_bytes(tmp_path):
    t = read_profile(PROFILE)
    a = write_profile(t, tmp_path / "a.npz")
    b = write_profile(read_profile(a), tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes()
    assert read_profile(b).differences(t) == []


def test_a_profile_of_another_format_is_refused(tmp_path):
    with np.load(PROFILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["format"] = np.array([999], dtype=np.int64)
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(ValueError, match="format 999"):
        read_profile(tmp_path / "p.npz")


def test_the_script_says_one_sentence_on_a_missing_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "epochal.sim.profile", "--traces", str(tmp_path / "none"),
                           "--out", str(tmp_path / "p.npz")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not found" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "p.npz").exists()
