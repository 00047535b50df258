"""Ruleset §1 and §2 by hand: slots, up slots, uptime ratio and the streak across epoch borders.

Bitmaps: bit i is slot i of the epoch (slot 0 = the epoch's first minute).
"""

from scoring.ruleset import RULESET_V1
from scoring.timing import (
    compute_reward_epoch,
    compute_slot,
    get_epoch_end_us,
    get_epoch_start_us,
)
from scoring.uptime import (
    STREAK_START,
    StreakState,
    compute_streak_after_idle,
    compute_streak_state,
    compute_up_slots,
    compute_uptime_ratio,
)

ALL_UP = (1 << 60) - 1
GENESIS_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
HOUR_US = 3_600_000_000


def down(*slots: int) -> int:
    """An epoch that is up in every slot except the given ones."""
    bitmap = ALL_UP
    for s in slots:
        bitmap &= ~(1 << s)
    return bitmap


def up(*slots: int) -> int:
    """An epoch that is up only in the given slots."""
    return sum(1 << s for s in set(slots))


def run(state: StreakState, *bitmaps: int) -> StreakState:
    for b in bitmaps:
        state = compute_streak_state(state, b)
    return state


# §1 time -----------------------------------------------------------------------------------


def test_genesis_is_the_first_slot_of_reward_epoch_zero():
    assert RULESET_V1.genesis_us == GENESIS_US
    assert compute_reward_epoch(GENESIS_US, RULESET_V1) == 0
    assert compute_slot(GENESIS_US, RULESET_V1) == 0


def test_the_last_microsecond_of_an_epoch_is_in_its_slot_59_and_the_next_is_in_the_next_epoch():
    last = GENESIS_US + HOUR_US - 1
    assert (compute_reward_epoch(last, RULESET_V1), compute_slot(last, RULESET_V1)) == (0, 59)
    assert (compute_reward_epoch(last + 1, RULESET_V1), compute_slot(last + 1, RULESET_V1)) == (1, 0)


def test_a_slot_is_sixty_seconds_aligned_to_the_epoch_start():
    t = GENESIS_US + 5 * HOUR_US + 61_000_000  # epoch 5, 1 min 1 s in
    assert compute_reward_epoch(t, RULESET_V1) == 5
    assert compute_slot(t, RULESET_V1) == 1
    assert compute_slot(t - 1_000_001, RULESET_V1) == 0


def test_an_epoch_is_the_half_open_hour_from_its_start():
    assert get_epoch_start_us(0, RULESET_V1) == GENESIS_US
    assert get_epoch_end_us(0, RULESET_V1) == GENESIS_US + HOUR_US
    assert get_epoch_end_us(7, RULESET_V1) == get_epoch_start_us(8, RULESET_V1)


def test_an_instant_before_genesis_falls_in_a_negative_epoch():
    assert compute_reward_epoch(GENESIS_US - 1, RULESET_V1) == -1


# §2 up slots and uptime ratio ---------------------------------------------------------------


def test_up_slots_count_the_set_bits_of_the_slot_bitmap():
    assert compute_up_slots(0) == 0
    assert compute_up_slots(ALL_UP) == 60
    assert compute_up_slots(up(0, 59)) == 2
    assert compute_up_slots(down(3, 4, 5)) == 57


def test_uptime_ratio_is_up_slots_over_sixty():
    assert compute_uptime_ratio(0) == 0.0
    assert compute_uptime_ratio(60) == 1.0
    assert compute_uptime_ratio(30) == 0.5
    assert compute_uptime_ratio(1) == 1 / 60
    assert compute_uptime_ratio(compute_up_slots(down(0, 1, 2, 3, 4, 5))) == 0.9


# §2 streak -----------------------------------------------------------------------------------


def test_an_all_up_epoch_adds_sixty_to_the_streak():
    assert compute_streak_state(STREAK_START, ALL_UP) == (60, True)


def test_all_up_epochs_accumulate_sixty_per_epoch():
    assert run(STREAK_START, ALL_UP, ALL_UP, ALL_UP) == (180, True)
    assert run(STREAK_START, *[ALL_UP] * 5) == (300, True)  # the 5 h of §5


def test_a_single_isolated_non_up_slot_neither_counts_nor_breaks_the_streak():
    assert compute_streak_state(STREAK_START, down(30)) == (59, True)
    assert compute_streak_state(StreakState(100, True), down(30)) == (159, True)


def test_several_isolated_non_up_slots_each_pend_without_breaking():
    # slot 0 down (a reset of nothing), then up/down alternating: 30 up slots, no double gap
    alternating = up(*range(1, 60, 2))
    assert compute_streak_state(STREAK_START, alternating) == (30, True)
    assert compute_streak_state(StreakState(200, True), alternating) == (230, True)


def test_two_consecutive_non_up_slots_reset_the_streak_to_zero():
    # slots 0..29 counted, 30 and 31 reset, 32..59 counted again
    assert compute_streak_state(StreakState(500, True), down(30, 31)) == (28, True)


def test_three_consecutive_non_up_slots_reset_the_same_as_two():
    assert compute_streak_state(StreakState(500, True), down(30, 31, 32)) == (27, True)


def test_an_epoch_ending_on_one_non_up_slot_keeps_its_streak():
    assert compute_streak_state(STREAK_START, down(59)) == (59, False)
    assert compute_streak_state(StreakState(60, True), down(59)) == (119, False)


def test_an_epoch_ending_on_two_non_up_slots_ends_at_zero():
    assert compute_streak_state(StreakState(60, True), down(58, 59)) == (0, False)


def test_after_a_pending_end_the_next_epoch_resets_when_its_slot_0_is_not_up():
    # epoch 1 ends on one non-up slot (59 kept, pending); epoch 2's slot 0 is the second
    # non-up slot in a row: reset to 0, then slots 1..59 count 59.
    assert run(STREAK_START, down(59), down(0)) == (59, True)


def test_after_a_pending_end_the_next_epoch_keeps_counting_when_its_slot_0_is_up():
    assert run(STREAK_START, down(59), ALL_UP) == (59 + 60, True)


def test_a_not_up_first_slot_of_the_first_epoch_counts_nothing():
    assert STREAK_START == (0, False)
    assert compute_streak_state(STREAK_START, down(0)) == (59, True)


def test_two_not_up_first_slots_of_the_first_epoch_count_nothing():
    assert compute_streak_state(STREAK_START, down(0, 1)) == (58, True)


def test_an_idle_epoch_resets_any_streak():
    assert compute_streak_after_idle() == (0, False)
    assert compute_streak_state(StreakState(12_345, True), 0) == (0, False)
    assert compute_streak_state(StreakState(12_345, False), 0) == (0, False)


def test_a_single_up_slot_at_the_end_of_an_idle_epoch_starts_a_new_streak():
    assert compute_streak_state(StreakState(999, True), up(59)) == (1, True)


def test_the_streak_carries_across_many_epochs_with_isolated_gaps_at_the_borders():
    # down at 59 then up at 0, repeatedly: every border gap is single, never breaking.
    epochs = [down(59)] + [down(59)] * 4 + [ALL_UP]
    assert run(STREAK_START, *epochs) == (5 * 59 + 60, True)
