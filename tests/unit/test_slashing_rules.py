"""Hand-computed vectors for the slashing rules (ruleset §8, §10), one behaviour per test."""

from __future__ import annotations

import hashlib

from scoring.slashing import (
    RULE_DOWNTIME,
    RULE_FRAUD,
    STATUS_FINAL,
    STATUS_OVERTURNED,
    STATUS_PROPOSED,
    BenchmarkFacts,
    Decision,
    JobFacts,
    RegistrationFacts,
    SlashInputs,
    compute_decision_id,
    compute_finality_epoch,
    compute_first_down_run,
    compute_fingerprint_owners,
    compute_job_window_slots,
    compute_stake_deposit,
    compute_stake_left,
    compute_status,
    get_reused_fingerprints,
    is_banned_by,
    is_counted_in_penalty,
    process_slashing,
)

G = 1767225600 * 1_000_000  # genesis, µs
MIN = 60_000_000
HOUR = 60 * MIN
FULL = (1 << 60) - 1


def at(minute: float) -> int:
    return G + int(minute * MIN)


def bitmap_without(*slots: int) -> int:
    bm = FULL
    for s in slots:
        bm &= ~(1 << s)
    return bm


def test_decision_id_is_the_sha256_of_rule_and_subject():
    assert compute_decision_id("downtime_during_job", "job-1") == hashlib.sha256(b"downtime_during_job|job-1").hexdigest()
    assert compute_decision_id("hardware_fraud", "n1|b1") == hashlib.sha256(b"hardware_fraud|n1|b1").hexdigest()


def test_the_window_holds_only_whole_slots():
    assert compute_job_window_slots(at(10), at(20), at(20)) == range(10, 20)
    assert compute_job_window_slots(at(10.5), at(20), at(20)) == range(11, 20)
    assert compute_job_window_slots(at(10), at(19.99), at(30)) == range(10, 19)
    assert compute_job_window_slots(at(10), at(30), at(15)) == range(10, 15)  # committed_until cuts
    assert len(compute_job_window_slots(at(10.2), at(10.9), at(11))) == 0
    assert len(compute_job_window_slots(at(20), at(10), at(30))) == 0  # ends before it starts


def test_four_non_up_slots_are_no_run_five_are():
    assert compute_first_down_run({0: bitmap_without(10, 11, 12, 13)}, range(0, 60)) is None
    assert compute_first_down_run({0: bitmap_without(10, 11, 12, 13, 14)}, range(0, 60)) == 10


def test_a_run_continues_across_epochs_and_missing_epochs_are_down():
    assert compute_first_down_run({0: bitmap_without(58, 59), 1: bitmap_without(0, 1, 2)}, range(0, 120)) == 58
    assert compute_first_down_run({0: FULL}, range(50, 70)) == 60  # epoch 1 has no bitmap: not up
    # a very long window over nothing recorded ends after five slots
    assert compute_first_down_run({}, range(0, 10**12)) == 0


def test_fingerprints_bind_to_the_first_reporter_by_time_then_event_id():
    a = BenchmarkFacts("b-2", "A", at(5), ("X",))
    b = BenchmarkFacts("b-1", "B", at(5), ("X",))
    c = BenchmarkFacts("b-0", "C", at(6), ("X", "Y"))
    owners = compute_fingerprint_owners([c, a, b])
    assert owners["X"].node_id == "B" and owners["Y"].node_id == "C"
    assert [o.node_id for _, o in get_reused_fingerprints(a, owners)] == ["B"]
    assert get_reused_fingerprints(b, owners) == []


def test_the_deposit_is_the_latest_declared_at_or_before_the_time():
    events = [(at(0), "reg", 900), (at(10), "s-b", 600), (at(10), "s-a", 300)]
    assert compute_stake_deposit(events, at(9)) == 900
    assert compute_stake_deposit(events, at(10)) == 600  # a tie in time: the larger event_id is latest
    assert compute_stake_deposit([], at(10)) == 0


def test_stake_left_subtracts_earlier_decisions_unless_overturned_in_time():
    assert compute_stake_left(900, [(300, None), (300, at(5))], at(10)) == 600
    assert compute_stake_left(900, [(300, None), (300, at(11))], at(10)) == 300
    assert compute_stake_left(100, [(300, None)], at(10)) == 0  # never below 0


def test_finality_is_the_first_epoch_ending_24_hours_after():
    assert compute_finality_epoch(at(120), 2) == 25  # 02:00 + 24 h = 26:00 = end(25)
    assert compute_finality_epoch(at(120) + 1, 2) == 26
    assert compute_finality_epoch(at(120), 40) == 40  # very late evidence: resolved at its own close


def test_status_turns_at_the_finality_close_and_an_appeal_must_precede_its_end():
    end25 = G + 26 * HOUR
    assert compute_status(25, 24, []) == STATUS_PROPOSED
    assert compute_status(25, 25, [end25 - HOUR]) == STATUS_OVERTURNED
    assert compute_status(25, 25, [end25]) == STATUS_FINAL
    assert compute_status(25, 25, [end25 + HOUR]) == STATUS_FINAL


def test_ban_and_penalty_boundaries():
    end = G + 10 * HOUR
    assert is_banned_by(end, [], end)  # decided_at ≤ end(e)
    assert not is_banned_by(end + 1, [], end)
    assert not is_banned_by(end - HOUR, [end], end)  # an appeal at end(e) already lifts the ban
    assert is_counted_in_penalty(end - 1, [end], end)  # ... but P needs the appeal before end(e)
    assert not is_counted_in_penalty(end - 1, [end - 1], end)
    assert is_counted_in_penalty(end - 720 * HOUR, [], end)
    assert not is_counted_in_penalty(end - 720 * HOUR - 1, [], end)
    assert not is_counted_in_penalty(end, [], end)


def _job(job_id, node, start, end, status="succeeded", occurred=None):
    return JobFacts(job_id, node, f"jc-{job_id}", occurred if occurred is not None else end, start, end, end, status)


def test_a_close_caps_its_decisions_in_decided_at_order():
    inputs = SlashInputs(
        reward_epoch=3,
        jobs=[_job("j2", "n", at(150), at(170), "failed_node"), _job("j1", "n", at(100), at(120), "failed_node")],
        stake_events={"n": [(at(0), "reg-n", 900)]},
    )
    out = process_slashing(inputs, {})
    amounts = [(d.subject, d.amount_base_units, d.stake_left_base_units) for d in out.new_decisions]
    assert amounts == [("j1", 300, 900), ("j2", 300, 600)]
    assert out.slash_count == {"n": 2} and out.banned == {"n": False}


def test_a_job_whose_check_epoch_is_later_waits():
    job = _job("j", "n", at(100), at(200), "failed_node", occurred=at(110))  # ended_at in epoch 3
    assert process_slashing(SlashInputs(reward_epoch=2, jobs=[job]), {}).new_decisions == []
    assert len(process_slashing(SlashInputs(reward_epoch=3, jobs=[job]), {}).new_decisions) == 1


def test_the_current_epochs_bitmap_decides_a_window_inside_it():
    job = _job("j", "n", at(130), at(160))
    inputs = SlashInputs(reward_epoch=2, jobs=[job])
    assert process_slashing(inputs, {"n": bitmap_without(11, 12, 13, 14)}).new_decisions == []
    assert len(process_slashing(inputs, {"n": bitmap_without(11, 12, 13, 14, 15)}).new_decisions) == 1


def test_an_impossible_benchmark_and_a_reused_fingerprint_give_one_decision():
    reg = RegistrationFacts("n2", "reg-n2", at(0), "H100", 1)
    first = BenchmarkFacts("b1", "n1", at(1), ("X",), 60.0, 3000.0, 79.0, 1)
    fast = BenchmarkFacts("b2", "n2", at(2), ("X",), 200.0, 3000.0, 79.0, 1)
    inputs = SlashInputs(reward_epoch=0, benchmarks=[fast], related_benchmarks=[first, fast],
                         registrations={"n2": reg}, stake_events={"n2": [(at(0), "reg-n2", 500)]})
    out = process_slashing(inputs, {})
    (d,) = out.new_decisions
    assert (d.rule, d.subject, d.amount_base_units, d.evidence) == (RULE_FRAUD, "n2|b2", 500, ("b2", "reg-n2", "b1"))
    assert out.banned["n2"]


def test_a_known_decision_is_never_made_twice_and_resolves_once():
    did = compute_decision_id(RULE_DOWNTIME, "j")
    known = Decision(did, RULE_DOWNTIME, "n", "j", at(120), ("jc-j",), 300, 900, 900, 2, 25, "")
    job = _job("j", "n", at(100), at(120), "failed_node")
    out = process_slashing(SlashInputs(reward_epoch=25, decisions=[known], jobs=[job]), {})
    assert out.new_decisions == []
    assert [(d.decision_id, d.status, d.resolved_in_epoch) for d in out.resolved] == [(did, STATUS_FINAL, 25)]
    assert [d.decision_id for d in out.finalized] == [did]
