"""The guarantees listed in payouts/allocation.py's docstring (§7), one property each."""

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.allocation import allocate_pool

node_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
weight = st.one_of(
    st.integers(0, 100),
    st.integers(0, 60 * 12000 * 64 * 1000),  # up to a full H200 x64 node at R = 1000
    st.just(0),
)
weights = st.dictionaries(node_ids, weight, max_size=30)
pools = st.one_of(st.integers(0, 1000), st.integers(0, 10**10), st.integers(0, 2**80))


@settings(max_examples=300)
@given(pools, weights)
def test_conservation(pool, ws):
    result = allocate_pool(pool, ws)
    assert sum(result.shares.values()) + result.unallocated_base_units == pool


@given(pools, weights)
def test_never_over_allocates(pool, ws):
    assert sum(allocate_pool(pool, ws).shares.values()) <= pool


@given(pools, weights)
def test_every_share_is_at_least_zero(pool, ws):
    result = allocate_pool(pool, ws)
    assert all(s >= 0 for s in result.shares.values())
    assert result.unallocated_base_units >= 0


@given(pools, weights)
def test_each_node_appears_exactly_once(pool, ws):
    assert sorted(allocate_pool(pool, ws).shares) == sorted(ws)


@settings(max_examples=300)
@given(pools, weights)
def test_each_share_is_within_one_unit_of_the_exact_pro_rata_share(pool, ws):
    total = sum(ws.values())
    result = allocate_pool(pool, ws)
    if total == 0:
        assert result.unallocated_base_units == pool
        assert all(s == 0 for s in result.shares.values())
        return
    assert result.unallocated_base_units == 0
    for node, w in ws.items():
        exact = Fraction(pool * w, total)
        assert abs(result.shares[node] - exact) < 1
        assert result.shares[node] in (exact.numerator // exact.denominator, -(-exact.numerator // exact.denominator))


@given(pools, weights, st.randoms(use_true_random=False))
def test_invariance_under_permutation_of_the_input_order(pool, ws, rnd):
    items = list(ws.items())
    rnd.shuffle(items)
    assert allocate_pool(pool, dict(items)).shares == allocate_pool(pool, ws).shares


@given(pools, weights)
def test_a_node_of_weight_zero_gets_nothing(pool, ws):
    result = allocate_pool(pool, ws)
    assert all(result.shares[n] == 0 for n, w in ws.items() if w == 0)


@settings(max_examples=300)
@given(pools, weights)
def test_extra_units_go_to_the_largest_remainders_ties_by_node_id(pool, ws):
    total = sum(ws.values())
    if total == 0:
        return
    result = allocate_pool(pool, ws)
    rank = {n: (-(pool * w % total), n.encode()) for n, w in ws.items()}
    got_extra = [n for n, w in ws.items() if result.shares[n] == pool * w // total + 1]
    no_extra = [n for n in ws if n not in got_extra]
    for a in got_extra:
        for b in no_extra:
            assert rank[a] < rank[b]


def test_permutation_invariance_holds_for_a_large_random_tie_heavy_pool():
    rnd = random.Random(2026)
    ws = {f"node-{i:04d}": rnd.choice([1, 2, 3]) for i in range(2000)}
    base = allocate_pool(1_000_003, ws).shares
    for _ in range(5):
        items = list(ws.items())
        rnd.shuffle(items)
        assert allocate_pool(1_000_003, dict(items)).shares == base


@settings(max_examples=300)
@given(st.one_of(st.integers(0, 1000), st.integers(0, 10**10), st.integers(0, 2**50), st.integers(0, 2**63 - 1)),
       st.dictionaries(node_ids, st.one_of(weight, st.integers(0, 2**62)), max_size=30))
def test_the_array_form_gives_the_reference_shares(pool, ws):
    """`allocate_pool_np` (the close's) is `allocate_pool`, ties by node_id byte order included."""
    import numpy as np

    from payouts.allocation import allocate_pool_np

    ids = sorted(ws, key=str.encode)
    shares, unallocated = allocate_pool_np(pool, ids, np.array([ws[i] for i in ids], dtype=np.int64))
    ref = allocate_pool(pool, ws)
    assert shares.tolist() == [ref.shares[i] for i in ids] and unallocated == ref.unallocated_base_units
