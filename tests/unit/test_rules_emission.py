"""Ruleset §6 by hand: emission in exact rational arithmetic (fractions.Fraction) as the
independent check of the 50-digit decimal evaluation, and the 95/5 pool split."""

from fractions import Fraction
import math

import pytest

from payouts.emission import compute_emission, compute_pools

BASE = Fraction(500_000_000) * 10**6 * Fraction(8, 100) / 8760  # = 10^12 / 219 per epoch
DECAY = 1 - Fraction(13_886_952, 10**12)  # 1 − 1.3886952e-5


def exact_emission(e: int) -> int:
    return math.floor(BASE * DECAY**e)


def test_the_first_epochs_emission_is_a_year_of_eight_percent_over_8760_hours():
    # 5·10^14 · 0.08 / 8760 = 4·10^13 / 8760 = 10^12 / 219 = 4566210045.66…
    assert BASE == Fraction(10**12, 219)
    assert 10**12 // 219 == 4_566_210_045
    assert compute_emission(0) == 4_566_210_045


def test_emission_of_epoch_1_is_the_floor_of_the_exact_rational():
    assert exact_emission(1) == 4_566_146_634
    assert compute_emission(1) == exact_emission(1)


def test_emission_after_a_year_of_epochs_is_the_floor_of_the_exact_rational():
    assert exact_emission(8760) == 4_043_186_040
    assert compute_emission(8760) == exact_emission(8760)


@pytest.mark.parametrize("e", [2, 3, 24, 168, 720, 10_000, 17_520, 87_600])
def test_emission_equals_the_floor_of_the_exact_rational(e):
    assert compute_emission(e) == exact_emission(e)


def test_a_negative_epoch_has_no_emission():
    with pytest.raises(ValueError):
        compute_emission(-1)


def test_emission_is_an_integer_of_base_units():
    assert type(compute_emission(5)) is int


def test_pools_of_the_first_epoch_split_95_to_5_with_the_floor_on_enterprise():
    # 4566210045 · 9500 / 10000 = 4337899542.75 → 4337899542; community gets the rest
    assert compute_pools(4_566_210_045) == (4_337_899_542, 228_310_503)


def test_pools_of_small_emissions_floor_the_enterprise_pool():
    assert compute_pools(10_000) == (9_500, 500)
    assert compute_pools(19) == (18, 1)  # 18.05 → 18
    assert compute_pools(1) == (0, 1)
    assert compute_pools(0) == (0, 0)


def test_pools_add_up_to_the_emission():
    for e in (0, 1, 8760):
        em = compute_emission(e)
        ent, com = compute_pools(em)
        assert ent + com == em
        assert ent == em * 95 // 100
