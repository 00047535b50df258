"""Properties of §6: emission is the floor of the exact rational, never increases, and the
pools always add up to it."""

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.emission import compute_emission, compute_pools

BASE = Fraction(10**12, 219)  # 5·10^14 · 0.08 / 8760
DECAY = 1 - Fraction(13_886_952, 10**12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3000))
def test_emission_is_the_floor_of_the_exact_rational(e):
    assert compute_emission(e) == math.floor(BASE * DECAY**e)


@given(st.integers(0, 10**6))
def test_emission_never_increases_from_one_epoch_to_the_next(e):
    assert 0 <= compute_emission(e + 1) <= compute_emission(e)


@given(st.integers(0, 10**13))
def test_pools_add_up_to_the_emission_and_enterprise_is_the_floor_of_95_percent(emission):
    ent, com = compute_pools(emission)
    assert ent + com == emission
    assert ent == (emission * 95) // 100
    assert 0 <= com and 20 * com >= emission  # community gets at least its 5 %
