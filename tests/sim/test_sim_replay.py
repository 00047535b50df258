"""A small simulated directory replays in the embedded engine: every input is accounted for,
every simulated epoch closes, and planted hardware verdicts come out as planted."""

from __future__ import annotations

import duckdb
import orjson
import pytest

from epochal.sim import simulate

replay_mod = pytest.importorskip("epochal.replay")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    d = tmp_path_factory.mktemp("rp")
    sim = d / "sim"
    summary = simulate(120, 7, 3, sim)
    report = replay_mod.replay([sim], d / "e.duckdb")
    truth = orjson.loads((sim / "truth.json").read_bytes())
    con = duckdb.connect(str(d / "e.duckdb"), read_only=True)
    yield summary, report, truth, con
    con.close()


def test_inputs_accounted_for(replayed):
    summary, report, truth, _ = replayed
    c = report.counts
    assert c.adds_up()
    assert c.inputs == summary["lines"]
    assert c.duplicates == truth["params"]["duplicate_lines"]
    assert c.rejected == truth["params"]["malformed_lines"]
    ev = summary["events"]
    assert c.pings == ev["ping"] + ev["ping.batch.inner"]


def test_every_simulated_epoch_closes(replayed):
    _, _, truth, con = replayed
    lo, hi = truth["params"]["reward_epochs"]
    closed = [r[0] for r in con.execute("select reward_epoch from reward_epochs order by 1").fetchall()]
    assert closed[: hi - lo + 1] == list(range(lo, hi + 1))
    eligible = con.execute("select eligible_nodes from reward_epochs where reward_epoch = ?", [hi]).fetchone()[0]
    assert eligible > 0.25 * truth["nodes"]  # streaks of >= 5 h exist from the trace's steady machines


def test_spoofer_verdicts_in_engine(replayed):
    _, _, truth, con = replayed
    hi = truth["params"]["reward_epochs"][1]
    for p in truth["plants"]:
        if p["kind"] != "spoofer":
            continue
        (nid,) = p["node_ids"]
        row = con.execute(
            "select hw_verdict, eligible from node_epoch_scores where reward_epoch = ? and node_id = ?", [hi, nid]
        ).fetchone()
        assert row is not None
        assert row[0] == p["params"]["expected_verdict"], p
        if row[0] != "verified":
            assert not row[1]


def test_slashes_match_planted_truth(replayed):
    import hashlib

    _, _, truth, con = replayed
    if con.execute("select count(*) from slash_decisions").fetchone()[0] == 0:
        pytest.skip("the engine records no slashing decisions yet")
    fraud = {r[0] for r in con.execute("select node_id from slash_decisions where rule = 'hardware_fraud'").fetchall()}
    expected = set(truth["params"]["expected_fingerprint_fraud_node_ids"])
    expected |= {
        p["node_ids"][0]
        for p in truth["plants"]
        if p["kind"] == "spoofer" and p["params"]["expected_verdict"] == "impossible"
    }
    assert fraud == expected
    downtime = {
        r[0] for r in con.execute("select decision_id from slash_decisions where rule = 'downtime_during_job'").fetchall()
    }
    want = {
        hashlib.sha256(f"downtime_during_job|{j}".encode()).hexdigest()
        for j in truth["params"]["expected_downtime_job_ids"]
    }
    assert downtime == want
