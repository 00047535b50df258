"""The analyst's notebook runs headless (jupytext → nbclient) on a simulated store, so it never rots."""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "investigate_farming.py"


def test_investigation_notebook_executes(sim_store, monkeypatch):
    events, db = sim_store(3)
    monkeypatch.setenv("EPOCHAL_NOTEBOOK_DB", str(db))
    monkeypatch.setenv("EPOCHAL_NOTEBOOK_TRUTH", str(events / "truth.json"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(NOTEBOOK)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "clusters flagged" in outputs and "rewards_base_units" in outputs
    assert os.environ["EPOCHAL_NOTEBOOK_DB"] == str(db)
