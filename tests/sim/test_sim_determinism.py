"""Same arguments -> byte-identical files; bad arguments -> ValueError with one sentence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from epochal.sim import simulate


def _digests(d: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.iterdir())}


def test_same_arguments_give_byte_identical_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    sa = simulate(120, 6, 11, a)
    sb = simulate(120, 6, 11, b)
    assert _digests(a) == _digests(b)
    assert {k: v for k, v in sa.items() if k != "out_dir"} == {k: v for k, v in sb.items() if k != "out_dir"}
    simulate(120, 6, 12, c)
    assert _digests(a)["nodes.jsonl"] != _digests(c)["nodes.jsonl"]


def test_rerun_into_same_dir_replaces_output(tmp_path):
    simulate(30, 9, 1, tmp_path)  # 3 pings files
    simulate(30, 2, 1, tmp_path)  # 1 pings file: stale ones must go
    assert sorted(p.name for p in tmp_path.glob("pings-*.jsonl")) == ["pings-000.jsonl"]


def test_start_reward_epoch_shifts_time(tmp_path):
    s = simulate(25, 2, 5, tmp_path, start_reward_epoch=100)
    assert s["reward_epochs"] == [100, 101]
    first = (tmp_path / "nodes.jsonl").read_text().splitlines()[0]
    assert '"occurred_at":"2026-01-05T04:' in first  # genesis + 100 h


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(nodes=0, hours=1, seed=1),
        dict(nodes=5, hours=0, seed=1),
        dict(nodes=5, hours=1, seed=-1),
        dict(nodes=5, hours=1, seed=1, data_dir=Path("/nonexistent/epochal-data")),
    ],
)
def test_bad_arguments_raise_value_error(tmp_path, kwargs):
    with pytest.raises(ValueError) as exc:
        simulate(out_dir=tmp_path, **kwargs)
    msg = str(exc.value)
    assert msg.endswith(".") and "\n" not in msg


def test_env_var_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EPOCHAL_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="EPOCHAL_DATA_DIR"):
        simulate(5, 1, 1, tmp_path / "out")


def test_progress_is_reported(tmp_path):
    seen: list[float] = []
    simulate(20, 2, 1, tmp_path, progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
