"""Ruleset §7 by hand: exact largest-remainder allocation of one pool."""

from fractions import Fraction

import pytest

from payouts.allocation import allocate_pool
from scoring.invariants import InvariantViolation


def test_shares_are_floors_and_the_leftover_goes_to_the_largest_remainders_ties_by_node_id():
    # pool 101, W = 7:
    #   d: 101·3 = 303 = 43·7 + 2      c: 101·2 = 202 = 28·7 + 6
    #   b: 101·1 = 101 = 14·7 + 3      a: 101·1 = 101 = 14·7 + 3
    # Σ floors = 99, leftover 2: c (remainder 6), then the tie a/b (3) goes to "a".
    result = allocate_pool(101, {"d": 3, "c": 2, "b": 1, "a": 1})
    assert result.shares == {"a": 15, "b": 14, "c": 29, "d": 43}
    assert result.unallocated_base_units == 0


def test_an_even_three_way_tie_gives_the_extra_unit_to_the_smallest_node_id():
    # 10 / 3 = 3 rem 1 each; one leftover unit; the tie goes to "a"
    assert allocate_pool(10, {"c": 1, "b": 1, "a": 1}).shares == {"a": 4, "b": 3, "c": 3}


def test_two_leftover_units_in_a_three_way_tie_go_to_the_two_smallest_node_ids():
    assert allocate_pool(11, {"c": 1, "a": 1, "b": 1}).shares == {"a": 4, "b": 4, "c": 3}


def test_ties_break_by_node_id_in_byte_order():
    # "Z" (0x5A) sorts before "a" (0x61)
    assert allocate_pool(1, {"a": 1, "Z": 1}).shares == {"a": 0, "Z": 1}


def test_an_exact_division_leaves_no_leftover():
    assert allocate_pool(100, {"x": 1, "y": 3}).shares == {"x": 25, "y": 75}


def test_a_pool_with_zero_total_weight_is_entirely_unallocated():
    result = allocate_pool(228_310_503, {"a": 0, "b": 0})
    assert result.shares == {"a": 0, "b": 0}
    assert result.unallocated_base_units == 228_310_503


def test_a_pool_with_no_nodes_is_entirely_unallocated():
    result = allocate_pool(4_337_899_542, {})
    assert result.shares == {}
    assert result.unallocated_base_units == 4_337_899_542


def test_a_zero_weight_node_gets_nothing_beside_weighted_ones():
    assert allocate_pool(7, {"a": 0, "b": 2, "c": 1}).shares == {"a": 0, "b": 5, "c": 2}


def test_an_empty_pool_pays_nothing_and_leaves_nothing():
    result = allocate_pool(0, {"a": 5})
    assert result.shares == {"a": 0}
    assert result.unallocated_base_units == 0


def test_products_beyond_two_to_the_64_are_exact():
    # pool 2^40 + 1, two equal weights 2^30: pool · w ≈ 2^70 overflows any 64-bit column.
    pool, w = 2**40 + 1, 2**30
    assert pool * w > 2**64
    result = allocate_pool(pool, {"b": w, "a": w})
    assert result.shares == {"a": 2**39 + 1, "b": 2**39}


def test_a_large_h200_node_beside_a_small_one_is_allocated_exactly():
    # epoch 0 enterprise pool; an H200 x64 node at R = 1000 and one A100 at R = 900, all up
    pool = 4_337_899_542
    big, small = 60 * 12000 * 64 * 1000, 60 * 6000 * 1 * 900  # 46_080_000_000 and 324_000_000
    assert pool * big > 2**64
    total = big + small
    exact_big, exact_small = Fraction(pool * big, total), Fraction(pool * small, total)
    result = allocate_pool(pool, {"h200": big, "a100": small})
    # big / W = 3840 / 3867 and small / W = 27 / 3867:
    #   pool · 3840 = 4307611647 · 3867 + 2331,  pool · 27 = 30287894 · 3867 + 1536
    # Σ floors = pool − 1; the larger remainder (2331) takes the leftover unit.
    assert (int(exact_big), int(exact_small)) == (4_307_611_647, 30_287_894)
    assert result.shares == {"h200": 4_307_611_648, "a100": 30_287_894}
    assert sum(result.shares.values()) == pool


def test_a_negative_weight_is_a_programmer_error():
    with pytest.raises(InvariantViolation):
        allocate_pool(10, {"a": -1, "b": 2})


def test_a_negative_pool_is_a_programmer_error():
    with pytest.raises(InvariantViolation):
        allocate_pool(-1, {"a": 1})
