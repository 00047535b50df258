"""The investigation reads the published folder (store/published.py, the one reader of it) as it
reads the store: the same suspects at every cut; and it falls back to the folder when a writer
holds the store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

published = pytest.importorskip("store.published")

from analytics.investigate import run  # noqa: E402
from analytics.report import suspects  # noqa: E402
from analytics.source import open_source  # noqa: E402


def _suspects(db=None, pub=None, epoch=None) -> dict:
    src = open_source(db, pub, epoch)
    try:
        return suspects(run(src))
    finally:
        src.close()


def test_published_folder_gives_the_same_suspects_at_every_cut(sim_store):
    _, db = sim_store(2)
    root = published.published_root(db)
    assert published.list_epochs(root), "the replay published its closes"
    for epoch in (2, 5, None):
        assert _suspects(None, root, epoch) == _suspects(db, None, epoch)


def test_a_writer_holding_the_store_sends_the_reader_to_the_folder(sim_store, tmp_path):
    _, db = sim_store(2)
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(db)!r}); "
                               "print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = subprocess.run([sys.executable, "-m", "epochal.cli", "investigate", "farming", "--db", str(db),
                            "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "published folder" in r.stdout
        doc = json.loads((tmp_path / "o" / "suspects.json").read_text())
        assert doc["clusters"]
    finally:
        holder.kill()
        holder.wait()
