"""The investigation is a pure function of the archive up to an epoch: the same --up-to-epoch
gives the same suspects.json whatever arrived later, and the same as a store that never saw the
later events at all."""

from __future__ import annotations

import json
import shutil

from analytics.investigate import run
from analytics.report import write_suspects
from analytics.source import open_source
from epochal.replay import replay


def _investigate(db, out, epoch) -> dict:
    """What `epochal investigate farming --db DB --up-to-epoch EPOCH --out OUT` writes as suspects.json."""
    out.mkdir(parents=True, exist_ok=True)
    src = open_source(db, None, epoch)
    try:
        path = write_suspects(run(src), out)
    finally:
        src.close()
    return json.loads(path.read_text())


def test_same_cut_same_clusters_whatever_arrived_later(sim_store, tmp_path):
    events, full_db = sim_store(1)
    first = tmp_path / "first"
    first.mkdir()
    for name in ("nodes.jsonl", "benchmarks.jsonl", "jobs.jsonl", "pings-000.jsonl"):
        shutil.copy(events / name, first / name)
    db = tmp_path / "growing.duckdb"
    replay([first], db)
    before = _investigate(db, tmp_path / "before", 2)
    assert before["up_to_reward_epoch"] == 2
    assert any(c["kind"] == "farm" for c in before["clusters"])
    replay([events / "pings-001.jsonl"], db)  # four more hours arrive, more epochs close
    after = _investigate(db, tmp_path / "after", 2)
    assert after == before
    later = _investigate(db, tmp_path / "later", 5)
    assert later["up_to_reward_epoch"] == 5 and later != before
    # a store that read everything at once, cut at the same epoch
    assert _investigate(full_db, tmp_path / "full", 2) == before
