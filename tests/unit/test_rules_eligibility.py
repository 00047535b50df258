"""Ruleset §5 (and the §7 weight) by hand: each reason in order, the first failing one wins."""

from scoring.eligibility import (
    BANNED,
    HARDWARE_UNVERIFIED,
    INELIGIBLE_REASONS,
    NO_UPTIME,
    NOT_REGISTERED,
    STREAK_SHORT,
    compute_weight,
    get_ineligible_reason,
    is_registered_before_start,
)

START_US = 1_767_225_600_000_000 + 10 * 3_600_000_000  # start of epoch 10
REGISTERED_US = START_US - 7 * 3_600_000_000


def reason(registered=REGISTERED_US, banned=False, verified=True, streak=300, up=60):
    return get_ineligible_reason(registered, START_US, banned, verified, streak, up)


def test_the_reasons_are_listed_in_the_spec_order():
    assert INELIGIBLE_REASONS == ("not_registered", "banned", "hardware_unverified", "streak_short", "no_uptime")


def test_a_node_meeting_every_condition_has_no_reason():
    assert reason() is None


def test_a_node_that_never_registered_is_not_registered():
    assert reason(registered=None) == NOT_REGISTERED


def test_a_node_registered_exactly_at_the_epoch_start_is_not_registered():
    assert not is_registered_before_start(START_US, START_US)
    assert reason(registered=START_US) == NOT_REGISTERED


def test_a_node_registered_one_microsecond_before_the_start_is_registered():
    assert is_registered_before_start(START_US - 1, START_US)
    assert reason(registered=START_US - 1) is None


def test_a_node_registered_during_the_epoch_is_not_registered():
    assert reason(registered=START_US + 1) == NOT_REGISTERED


def test_a_banned_node_is_banned():
    assert reason(banned=True) == BANNED


def test_an_unverified_node_is_hardware_unverified():
    assert reason(verified=False) == HARDWARE_UNVERIFIED


def test_a_streak_of_299_slots_is_streak_short():
    assert reason(streak=299) == STREAK_SHORT


def test_a_streak_of_exactly_300_slots_is_enough():
    assert reason(streak=300) is None


def test_no_up_slot_is_no_uptime():
    # unreachable with the 300-slot streak rule in practice, but still checked last (§10)
    assert reason(up=0) == NO_UPTIME
    assert reason(up=1) is None


def test_the_first_failing_reason_wins():
    assert reason(registered=None, banned=True, verified=False, streak=0, up=0) == NOT_REGISTERED
    assert reason(banned=True, verified=False, streak=0, up=0) == BANNED
    assert reason(verified=False, streak=0, up=0) == HARDWARE_UNVERIFIED
    assert reason(streak=0, up=0) == STREAK_SHORT


def test_weight_is_the_product_of_up_slots_multiplier_gpu_count_and_reputation():
    assert compute_weight(60, 1000, 1, 500) == 30_000_000
    assert compute_weight(45, 6000, 8, 874) == 45 * 6000 * 8 * 874 == 1_887_840_000
    # a full H200 x64 node at R = 1000: 60 · 12000 · 64 · 1000
    assert compute_weight(60, 12000, 64, 1000) == 46_080_000_000
    assert compute_weight(60, 12000, 64, 0) == 0
