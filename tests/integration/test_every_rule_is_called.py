"""No output ignores a rule: make any rule of the ruleset (or the twin the engine calls in its
place) raise, and a replay of a small network fails; make one of the live path's rules raise,
and the live state it feeds fails.

Each section of ruleset v1 lists the functions the ingest, the close and the live path call for
it. A rule restated inline somewhere instead of called would leave its section's test green
with the function raising, so an edit of the rule would change nothing: this is the test that
fails then (STYLE.md, "A step of the close that re-states a rule inline").
"""

from __future__ import annotations

import shutil
import sys

import pytest

from store.ingest import ingest_files
from epochal.replay import replay
from eventkit import SPEC, EventKit, honest_network
from payouts.close import close_ready_epochs
from store.db import connect

H100 = SPEC["H100"]


class RuleCalled(Exception):
    pass


def network(kit: EventKit) -> None:
    """Four honest nodes over 7 h (eligible from epoch 5), and in the first hours every kind of
    slashing evidence: a reused fingerprint, an impossible benchmark, a failed_node job, a
    5-slot gap during a job, a stake change and an appeal."""
    honest_network(kit, hours=7)
    kit.register("n-thief", "H100", gpus=1)
    kit.benchmark("n-thief", 20, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["fp-n-h100-0"],
                  event_id="b-thief")
    kit.register("n-fast", "H100", gpus=1)
    kit.benchmark("n-fast", 25, H100[0] * 1.5, H100[1] * 0.95, 79.0, event_id="b-fast")
    kit.register("n-gap", "H100", gpus=1)
    kit.benchmark("n-gap", 2, H100[0] * 0.95, H100[1] * 0.95, 79.0)
    kit.stake_changed("n-gap", 30, 6_000_000)
    for n in ("n-thief", "n-fast", "n-gap"):
        kit.pings(n, [m for m in range(0, 7 * 60 + 10) if not (n == "n-gap" and 40 <= m < 46)])
    kit.job("n-gap", "job-gap", 35, 50)
    kit.job("n-thief", "job-failed", 10, 30, status="failed_node")
    from scoring.slashing import compute_decision_id

    kit.appeal("n-thief", compute_decision_id("downtime_during_job", "job-failed"), 70)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The network's events ingested (nothing closed yet), and its full replay's outputs."""
    tmp = tmp_path_factory.mktemp("rules")
    kit = EventKit()
    network(kit)
    events = kit.write(tmp / "events.jsonl")
    ingested = tmp / "ingested.duckdb"
    con = connect(ingested)
    ingest_files(con, [events])
    con.close()
    full = tmp / "full.duckdb"
    replay([events], full)
    return {"events": events, "ingested": ingested, "full": full, "tmp": tmp}


def test_the_network_exercises_every_section(archive):
    """Without any rule patched: epochs close, nodes are paid, and every kind of decision is made."""
    con = connect(archive["full"], read_only=True)
    assert con.execute("SELECT count(*) FROM reward_epochs").fetchall()[0][0] == 7
    assert con.execute("SELECT count(*) FROM epoch_rewards").fetchall()[0][0] > 0
    rules = dict(con.execute("SELECT rule, count(*) FROM slash_decisions GROUP BY 1").fetchall())
    assert rules.get("hardware_fraud", 0) >= 2 and rules.get("downtime_during_job", 0) >= 2
    reasons = {r[0] for r in con.execute("SELECT DISTINCT ineligible_reason FROM node_epoch_scores").fetchall()}
    assert {"not_registered", "banned", "hardware_unverified", "streak_short", None} <= reasons
    assert con.execute("SELECT count(*) FROM ledger_entries WHERE ref LIKE '%stake%'").fetchall()[0][0] > 0


# Per section of ruleset v1: (module, function) the engine calls for it, the rule or its twin.
INGEST = {  # called by the ingest (a replay from the files)
    "§1 time": [("scoring.timing", "compute_reward_epoch_sql"), ("scoring.timing", "compute_slot_sql")],
    "§10 registration": [("scoring.registration", "first_registration_sql")],
}
CLOSE = {  # called by the close (close_ready_epochs over the ingested archive)
    "§1 time": [("scoring.timing", "get_epoch_start_us"), ("scoring.timing", "get_epoch_end_us"),
                ("scoring.timing", "compute_reward_epoch_np"), ("scoring.timing", "compute_reward_epoch_sql")],
    "§2 uptime": [("scoring.uptime", "slot_bitmap_sql"), ("scoring.uptime", "compute_up_slots_np"),
                  ("scoring.uptime", "compute_uptime_ratio_np"), ("scoring.uptime", "compute_streak_states_np")],
    "§3 hardware": [("scoring.hardware", "get_model"), ("scoring.hardware", "latest_benchmark_sql"),
                    ("scoring.hardware", "compute_hw_verdicts_coded_np"), ("scoring.hardware", "is_benchmark_fresh_np"),
                    ("scoring.hardware", "compute_hw_verdict_column_np"),
                    ("scoring.hardware", "is_hardware_verified_np"), ("scoring.hardware", "compute_hw_verdict")],
    "§4 reputation": [("scoring.reputation", "compute_availability_state"),
                      ("scoring.reputation", "compute_availability_step_np"),
                      ("scoring.reputation", "compute_availability_np"), ("scoring.jobs", "standing_job_sql"),
                      ("scoring.jobs", "job_counts_sql"), ("scoring.reputation", "compute_jobs_score_np"),
                      ("scoring.reputation", "compute_hardware_score_np"), ("scoring.reputation", "compute_tenure_np"),
                      ("scoring.reputation", "compute_penalty"), ("scoring.reputation", "compute_reputation_np")],
    "§5 eligibility": [("scoring.eligibility", "get_ineligible_reason_codes_np")],
    "§6 emission": [("payouts.emission", "compute_emission"), ("payouts.emission", "compute_pools")],
    "§7 allocation": [("scoring.hardware", "get_multiplier_milli"), ("scoring.hardware", "get_pool"),
                      ("scoring.eligibility", "compute_weights_np"), ("payouts.allocation", "allocate_pool_np")],
    "§8 slashing": [("scoring.slashing", "process_slashing"), ("scoring.slashing", "decision_id_sql"),
                    ("scoring.slashing", "fingerprint_owners_sql"), ("scoring.slashing", "stake_deposit_sql"),
                    ("scoring.slashing", "compute_job_check_epoch"), ("scoring.slashing", "compute_window_epochs"),
                    ("scoring.slashing", "compute_first_down_run"), ("scoring.slashing", "is_downtime_during_job"),
                    ("scoring.slashing", "compute_fingerprint_owners"), ("scoring.slashing", "is_hardware_fraud"),
                    ("scoring.slashing", "compute_decision_id"), ("scoring.slashing", "compute_stake_deposit"),
                    ("scoring.slashing", "compute_stake_left"), ("scoring.slashing", "compute_finality_epoch"),
                    ("scoring.slashing", "compute_status"), ("scoring.slashing", "compute_slash_count"),
                    ("scoring.slashing", "is_banned"), ("payouts.ledger", "compute_stake_ledger_parts")],
    "§9 close": [("scoring.timing", "compute_watermark_us"), ("scoring.timing", "is_epoch_ready"),
                 ("payouts.manifest", "compute_manifest_sha256_frame"), ("payouts.ledger", "compute_ledger_parts"),
                 ("payouts.ledger", "entry_id_sql")],
    "§10 registration": [("scoring.registration", "first_registration_sql")],
}


def raise_everywhere(monkeypatch, module: str, name: str) -> None:
    """Replace the function in its module and wherever the project imported it by name."""
    original = getattr(sys.modules[module], name)

    def raising(*args, **kwargs):
        raise RuleCalled(f"{module}.{name}")

    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not mod_name.split(".")[0] in {"scoring", "payouts", "store", "epochal", "streams"}:
            continue
        for attr, value in list(vars(mod).items()):
            if value is original:
                monkeypatch.setattr(mod, attr, raising)


def cases(table: dict) -> list:
    return [pytest.param(module, name, id=f"{section} {name}")
            for section, fns in table.items() for module, name in fns]


@pytest.mark.parametrize("module,name", cases(INGEST))
def test_the_ingest_calls_the_rule(archive, tmp_path, monkeypatch, module, name):
    raise_everywhere(monkeypatch, module, name)
    with pytest.raises(RuleCalled):
        replay([archive["events"]], tmp_path / "s.duckdb")


@pytest.mark.parametrize("module,name", cases(CLOSE))
def test_the_close_calls_the_rule(archive, tmp_path, monkeypatch, module, name):
    db = tmp_path / "s.duckdb"
    shutil.copy(archive["ingested"], db)
    raise_everywhere(monkeypatch, module, name)
    con = connect(db)
    try:
        with pytest.raises(RuleCalled):
            close_ready_epochs(con)
    finally:
        con.close()


LIVE = {  # the closer's repartition by node and the live Table's snapshots (streams/live.py)
    "§2 uptime": [("scoring.uptime", "slot_bitmap_sql"), ("scoring.uptime", "compute_streak_states_np"),
                  ("scoring.uptime", "compute_up_slots"), ("scoring.uptime", "compute_uptime_ratio")],
    "§3 hardware": [("scoring.hardware", "latest_benchmark_sql"), ("scoring.hardware", "compute_hw_verdict"),
                    ("scoring.hardware", "is_benchmark_fresh"), ("scoring.hardware", "compute_hw_verdict_column")],
    "§10 registration": [("scoring.registration", "first_registration_sql")],
}


def live_state(db) -> int:
    """The live path over the replayed store: the closer's node-slots updates of every ping
    (and hardware verdicts), merged as the Table merges them, then every node's snapshots."""
    from streams import live

    con = connect(db)
    try:
        hi = con.execute("SELECT max(arrival_seq) FROM archive_pings").fetchall()[0][0]
        slots = live.get_slot_updates(con, 0, hi, None)
        hw = live.get_hw_updates(con, 0, hi)
    finally:
        con.close()
    messages = live.encode_updates(0, hi, True, None, None, slots, hw, lambda node: 0)
    table: dict = {}
    for _, value in messages:
        for node, update in live.decode_updates(value).items():
            table[node] = live.merge_node_state(table.get(node), update)
    return live.compute_live_snapshots(table.items()).height


def test_the_live_path_runs_unpatched(archive, tmp_path):
    db = tmp_path / "s.duckdb"
    shutil.copy(archive["full"], db)
    assert live_state(db) > 0


@pytest.mark.parametrize("module,name", cases(LIVE))
def test_the_live_path_calls_the_rule(archive, tmp_path, monkeypatch, module, name):
    db = tmp_path / "s.duckdb"
    shutil.copy(archive["full"], db)
    raise_everywhere(monkeypatch, module, name)
    with pytest.raises(RuleCalled):
        live_state(db)
