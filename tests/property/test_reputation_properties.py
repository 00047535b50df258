"""Properties of §4: the vectorised forms are bit-identical to the scalar reference, the
running availability equals the direct weighted mean, and R stays in 0..1000."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.reputation import (
    compute_availability,
    compute_availability_step,
    compute_penalty,
    compute_reputation,
    compute_reputation_np,
    compute_tenure,
    compute_tenure_np,
)

unit = st.floats(0.0, 1.0, allow_nan=False)
# components as they arise: u/60-style ratios, J = (s+1)/(s+f+2), and arbitrary floats in [0, 1]
ratio = st.one_of(unit, st.integers(0, 60).map(lambda k: k / 60))
jobs = st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)).map(lambda sf: (sf[0] + 1) / (sf[0] + sf[1] + 2))
penalty = st.integers(0, 40).map(compute_penalty)
components = st.tuples(ratio, st.one_of(jobs, unit), unit, unit, penalty)

GENESIS_US = 1_767_225_600_000_000
HOUR_US = 3_600_000_000


@settings(max_examples=300)
@given(st.lists(components, min_size=1, max_size=200))
def test_vectorised_reputation_is_bit_identical_to_the_scalar_reference(rows):
    A, J, H, T, P = (list(col) for col in zip(*rows))
    got = compute_reputation_np(A, J, H, T, P)
    assert got.dtype == np.int64
    assert got.tolist() == [compute_reputation(*row) for row in rows]


@given(st.lists(st.sampled_from([0.5, 1.5, 2.5, 212.5, 37.5]), min_size=1, max_size=5))
def test_vectorised_reputation_rounds_halves_to_even_like_the_reference(halves):
    # P chosen so that 1000·x·P lands on exact halves: A = 1 → 400·P
    ps = [h / 400 for h in halves]
    rows = [(1.0, 0.0, 0.0, 0.0, p) for p in ps]
    expected = [compute_reputation(*r) for r in rows]
    assert expected == [round(h) for h in halves]
    assert compute_reputation_np(*(list(c) for c in zip(*rows))).tolist() == expected


@settings(max_examples=300)
@given(
    st.integers(0, 200_000),
    st.lists(st.integers(-10 * 8760 * HOUR_US, 200_000 * HOUR_US), min_size=1, max_size=100),
)
def test_vectorised_tenure_is_bit_identical_to_the_scalar_reference(epoch, registered_offsets):
    end = GENESIS_US + (epoch + 1) * HOUR_US
    registered = [end - HOUR_US - off for off in registered_offsets]
    got = compute_tenure_np(end, np.array(registered, dtype=np.int64))
    assert got.tolist() == [compute_tenure(end, r) for r in registered]


@settings(max_examples=200)
@given(st.lists(ratio, min_size=1, max_size=400))
def test_running_availability_equals_the_direct_weighted_mean(us):
    num = den = 0.0
    for u in us:
        num, den = compute_availability_step(num, den, u)
    e = len(us) - 1
    direct_num = sum(2 ** (-k / 168) * us[e - k] for k in range(e + 1))
    direct_den = sum(2 ** (-k / 168) for k in range(e + 1))
    A = compute_availability(num, den)
    assert abs(A - direct_num / direct_den) < 1e-12
    assert 0.0 <= A <= 1.0 + 1e-15
    assert min(us) - 1e-12 <= A <= max(us) + 1e-12


@given(components)
def test_reputation_is_an_integer_from_0_to_1000(c):
    r = compute_reputation(*c)
    assert type(r) is int and 0 <= r <= 1000


@given(components, st.integers(0, 3), unit)
def test_reputation_never_falls_when_one_component_rises(c, which, bump):
    raised = list(c)
    raised[which] = max(raised[which], bump)
    assert compute_reputation(*raised) >= compute_reputation(*c)


@given(st.integers(0, 10**6 * HOUR_US), st.integers(0, 10**6 * HOUR_US))
def test_tenure_is_between_0_and_1_and_grows_with_age(age1, age2):
    end = GENESIS_US + 10**7 * HOUR_US
    t1, t2 = compute_tenure(end, end - age1), compute_tenure(end, end - age2)
    assert 0.0 <= t1 <= 1.0
    if age1 <= age2:
        assert t1 <= t2
