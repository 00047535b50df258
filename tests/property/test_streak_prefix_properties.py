"""§2 over the first n slots of an epoch (the live snapshot of an open epoch runs the slots seen
so far): the vectorised form is the scalar rule's twin, and running all the slots is the rule
itself."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.uptime import StreakState, compute_streak_state, compute_streak_states_np


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.booleans(), st.integers(0, (1 << 60) - 1), st.integers(0, 60)),
                min_size=1, max_size=30))
def test_scalar_and_vectorised_streaks_agree_over_the_first_slots(nodes):
    streak = np.array([n[0] for n in nodes], dtype=np.int64)
    prev = np.array([n[1] for n in nodes], dtype=bool)
    bits = np.array([n[2] for n in nodes], dtype=np.uint64)
    slots = np.array([n[3] for n in nodes], dtype=np.int64)
    got_s, got_p = compute_streak_states_np(streak, prev, bits, slots=slots)
    for i, (s0, p0, b, k) in enumerate(nodes):
        want = compute_streak_state(StreakState(s0, p0), b, slots=k)
        assert (int(got_s[i]), bool(got_p[i])) == want


@settings(max_examples=200)
@given(st.integers(0, 10**6), st.booleans(), st.integers(0, (1 << 60) - 1))
def test_all_sixty_slots_are_the_epoch_and_none_leave_the_state_as_it_was(s0, p0, bits):
    state = StreakState(s0, p0)
    assert compute_streak_state(state, bits, slots=60) == compute_streak_state(state, bits)
    assert compute_streak_state(state, bits, slots=0) == state
