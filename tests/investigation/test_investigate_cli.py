"""`epochal investigate farming`: what it writes (contract.md "Investigation output") and how it
refuses a mistake (one sentence on stderr, non-zero exit)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLUSTER_KEYS = {"cluster_id", "kind", "score", "strength", "node_ids", "wallets", "signals", "rewards_base_units"}


def _run(*args):
    return subprocess.run([sys.executable, "-m", "epochal.cli", *args], capture_output=True, text=True)


def test_writes_suspects_json_in_the_contract_form_and_a_report(sim_store, tmp_path):
    events, db = sim_store(2)
    out = tmp_path / "inv"
    r = _run("investigate", "farming", "--db", str(db), "--out", str(out), "--truth", str(events / "truth.json"))
    assert r.returncode == 0, r.stderr
    assert "suspect clusters" in r.stdout and str(out / "suspects.json") in r.stdout
    doc = json.loads((out / "suspects.json").read_text())
    assert {"ruleset_version", "up_to_reward_epoch", "clusters"} <= set(doc)
    assert doc["clusters"]
    kinds = set()
    for c in doc["clusters"]:
        assert set(c) == CLUSTER_KEYS
        assert 0.0 <= c["score"] <= 1.0 and c["strength"] in ("hard", "circumstantial")
        assert isinstance(c["rewards_base_units"], int)
        for s in c["signals"]:
            assert set(s) == {"name", "value", "event_ids"}
        kinds.add(c["kind"])
        if c["kind"] == "farm" and c["score"] >= 0.5:
            # every signal of a flagged farm cites the events behind it
            assert all(s["event_ids"] for s in c["signals"]), c["cluster_id"]
    assert kinds == {"farm", "spoofing"}
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 1
    assert "Reward leaked to planted farms" in page and "Honest look-alikes" in page


@pytest.mark.parametrize("args, words", [
    (["--db", "/nonexistent/x.duckdb"], "no store at"),
    (["--up-to-epoch", "999"], "is not closed"),
    (["--min-score", "1.5"], "--min-score"),
])
def test_a_mistake_is_one_sentence(sim_store, tmp_path, args, words):
    _, db = sim_store(2)
    base = ["investigate", "farming", "--out", str(tmp_path / "o")]
    if "--db" not in args:
        base += ["--db", str(db)]
    r = _run(*base, *args)
    assert r.returncode != 0
    assert words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
