"""Properties of §2 (slots and streak): the vectorised form is the reference's twin, and the
streak is what the spec's sentence says it is."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.uptime import (
    STREAK_START,
    StreakState,
    compute_streak_state,
    compute_streak_states_np,
    compute_up_slots,
    compute_uptime_ratio,
)

bitmaps = st.one_of(
    st.integers(0, (1 << 60) - 1),
    # mostly-up epochs with a few gaps, where single vs double gaps matter most
    st.lists(st.integers(0, 59), max_size=6).map(lambda gaps: ((1 << 60) - 1) & ~sum(1 << g for g in set(gaps))),
    st.just(0),
    st.just((1 << 60) - 1),
)
states = st.builds(StreakState, st.integers(0, 10**9), st.booleans())


def slots_of(bitmap: int) -> list[bool]:
    return [(bitmap >> i) & 1 == 1 for i in range(60)]


@settings(max_examples=200)
@given(st.lists(st.tuples(states, st.lists(bitmaps, min_size=1, max_size=6)), min_size=1, max_size=40))
def test_scalar_and_vectorised_streaks_agree_for_many_nodes(nodes):
    n_epochs = max(len(bms) for _, bms in nodes)
    # pad every node to the same number of epochs with idle epochs
    padded = [(s, bms + [0] * (n_epochs - len(bms))) for s, bms in nodes]
    streak = np.array([s.streak_slots for s, _ in padded], dtype=np.int64)
    prev = np.array([s.prev_up for s, _ in padded], dtype=bool)
    expected = [s for s, _ in padded]
    for e in range(n_epochs):
        col = np.array([bms[e] for _, bms in padded], dtype=np.uint64)
        streak, prev = compute_streak_states_np(streak, prev, col)
        expected = [compute_streak_state(st_, bms[e]) for st_, (_, bms) in zip(expected, padded)]
        assert streak.tolist() == [x.streak_slots for x in expected]
        assert prev.tolist() == [x.prev_up for x in expected]


@given(st.lists(bitmaps, min_size=1, max_size=8))
def test_the_streak_is_the_up_slots_since_the_last_two_consecutive_non_up_slots(epochs):
    # Independent reading of §2: before the first slot the node counts as not up, and a run of
    # two or more non-up slots wipes everything before it; single gaps neither count nor break.
    slots = [False, False] + [s for b in epochs for s in slots_of(b)]
    last_double = max(i for i in range(1, len(slots)) if not slots[i] and not slots[i - 1])
    expected = sum(slots[last_double + 1:])
    state = STREAK_START
    for b in epochs:
        state = compute_streak_state(state, b)
    assert state.streak_slots == expected
    assert state.prev_up == slots[-1]


@given(states, bitmaps)
def test_an_epoch_adds_at_most_its_up_slots_to_the_streak(state, bitmap):
    after = compute_streak_state(state, bitmap)
    assert 0 <= after.streak_slots <= state.streak_slots + compute_up_slots(bitmap)
    assert after.prev_up == bool((bitmap >> 59) & 1)


@given(states, bitmaps)
def test_an_epoch_without_a_double_gap_keeps_the_streak_it_inherited(state, bitmap):
    slots = [state.prev_up] + slots_of(bitmap)
    has_double = any(not a and not b for a, b in zip(slots, slots[1:]))
    if not has_double:
        after = compute_streak_state(state, bitmap)
        assert after.streak_slots == state.streak_slots + compute_up_slots(bitmap)


@given(states)
def test_an_idle_epoch_always_ends_at_zero_not_up(state):
    assert compute_streak_state(state, 0) == (0, False)


@given(bitmaps)
def test_up_slots_and_uptime_ratio_are_bounded_and_consistent(bitmap):
    n = compute_up_slots(bitmap)
    assert n == sum(slots_of(bitmap))
    assert 0 <= n <= 60
    assert 0.0 <= compute_uptime_ratio(n) <= 1.0
    assert compute_uptime_ratio(n) == n / 60
