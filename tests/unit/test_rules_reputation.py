"""Ruleset §4 by hand: the components A, J, H, T, P and the rounded reputation R."""

import math

from scoring.reputation import (
    compute_availability,
    compute_availability_step,
    compute_jobs_score,
    compute_penalty,
    compute_reputation,
    compute_tenure,
)
from scoring.ruleset import RULESET_V1

D = 2.0 ** (-1.0 / 168)
HOUR_US = 3_600_000_000
END_US = 1_767_225_600_000_000 + 1000 * HOUR_US


def running_availability(us: list[float]) -> float:
    num = den = 0.0
    for u in us:
        num, den = compute_availability_step(num, den, u)
    return compute_availability(num, den)


# A -----------------------------------------------------------------------------------------


def test_the_decay_is_two_to_the_minus_one_over_168():
    assert RULESET_V1.availability_decay == D
    assert math.isclose(D**168, 0.5, rel_tol=1e-14)


def test_availability_of_one_epoch_is_its_uptime_ratio():
    assert running_availability([0.75]) == 0.75


def test_availability_of_always_up_is_exactly_one():
    assert running_availability([1.0] * 500) == 1.0


def test_availability_of_never_up_is_zero():
    assert running_availability([0.0] * 50) == 0.0


def test_availability_of_up_down_up_weights_the_latest_epoch_most():
    # u(e-2) = 1, u(e-1) = 0, u(e) = 1: A = (d²·1 + d·0 + 1) / (d² + d + 1)
    direct = (D * D * 1 + D * 0 + 1) / (D * D + D + 1)
    assert abs(running_availability([1.0, 0.0, 1.0]) - direct) < 1e-12
    assert 2 / 3 < direct < 1  # the latest (up) epoch weighs more than the middle one


def test_availability_of_down_down_up_is_one_over_the_weight_sum():
    direct = 1 / (D * D + D + 1)
    assert abs(running_availability([0.0, 0.0, 1.0]) - direct) < 1e-12


def test_availability_running_form_agrees_with_the_direct_sum_over_a_week():
    us = [(k % 61) / 60 for k in range(24 * 7 + 5)]
    e = len(us) - 1
    num = sum(2 ** (-k / 168) * us[e - k] for k in range(e + 1))
    den = sum(2 ** (-k / 168) for k in range(e + 1))
    assert abs(running_availability(us) - num / den) < 1e-12


def test_an_epoch_168_back_weighs_half_the_current_one():
    # two epochs: u(e-168) = 1 and u(e) = 0 with 167 zeros between: A = 0.5 / Σ_{k≤168} d^k
    us = [1.0] + [0.0] * 168
    den = sum(D**k for k in range(169))
    assert abs(running_availability(us) - 0.5 / den) < 1e-12


# J -----------------------------------------------------------------------------------------


def test_jobs_score_with_no_jobs_is_one_half():
    assert compute_jobs_score(0, 0) == 0.5


def test_jobs_score_is_laplace_smoothed_success_rate():
    assert compute_jobs_score(3, 1) == 4 / 6
    assert compute_jobs_score(9, 0) == 10 / 11
    assert compute_jobs_score(0, 2) == 1 / 4


# T -----------------------------------------------------------------------------------------


def test_tenure_is_hours_over_720():
    assert compute_tenure(END_US, END_US - 360 * HOUR_US) == 0.5
    assert compute_tenure(END_US, END_US - 72 * HOUR_US) == 0.1
    assert compute_tenure(END_US, END_US - HOUR_US // 2) == 0.5 / 720


def test_tenure_reaches_one_at_exactly_720_hours_and_stays_there():
    assert compute_tenure(END_US, END_US - 720 * HOUR_US) == 1.0
    assert compute_tenure(END_US, END_US - 720 * HOUR_US + 1) < 1.0
    assert compute_tenure(END_US, END_US - 5000 * HOUR_US) == 1.0


def test_tenure_is_real_valued_to_the_microsecond():
    assert compute_tenure(END_US, END_US - 1) == (1 / 3_600_000_000) / 720


# P -----------------------------------------------------------------------------------------


def test_penalty_halves_per_slash():
    assert compute_penalty(0) == 1.0
    assert compute_penalty(1) == 0.5
    assert compute_penalty(3) == 0.125
    assert compute_penalty(10) == 1 / 1024


# R -----------------------------------------------------------------------------------------


def test_a_perfect_node_scores_1000():
    assert compute_reputation(1.0, 1.0, 1.0, 1.0, 1.0) == 1000


def test_a_node_with_nothing_but_the_jobs_prior_scores_150():
    # 1000 · (0.30 · 0.5) = 150
    assert compute_reputation(0.0, 0.5, 0.0, 0.0, 1.0) == 150


def test_reputation_adds_the_weighted_components():
    # 1000 · (0.40·0.5 + 0.30·0.75 + 0.20·0.9 + 0.10·0.5) = 1000 · 0.655 = 655
    assert compute_reputation(0.5, 0.75, 0.9, 0.5, 1.0) == 655


def test_a_half_is_rounded_down_to_the_even_integer():
    # always up, no jobs, verified at full ratio, 30 days old, two slashes:
    # 1000 · (0.40 + 0.15 + 0.20 + 0.10) · 0.25 = 850 · 0.25 = 212.5 → 212 (half to even)
    x = 0.40 * 1.0
    x = x + 0.30 * 0.5
    x = x + 0.20 * 1.0
    x = x + 0.10 * 1.0
    assert 1000 * x * 0.25 == 212.5  # the binary64 value really is a half
    assert compute_reputation(1.0, 0.5, 1.0, 1.0, compute_penalty(2)) == 212


def test_a_half_is_rounded_up_to_the_even_integer():
    # 1000 · (0.30 · 0.5) · 0.25 = 37.5 → 38
    assert 1000 * (0.30 * 0.5) * 0.25 == 37.5
    assert compute_reputation(0.0, 0.5, 0.0, 0.0, compute_penalty(2)) == 38


def test_slashes_scale_the_whole_score():
    assert compute_reputation(1.0, 1.0, 1.0, 1.0, compute_penalty(1)) == 500
    assert compute_reputation(1.0, 1.0, 1.0, 1.0, compute_penalty(3)) == 125
    assert compute_reputation(1.0, 1.0, 1.0, 1.0, compute_penalty(11)) == 0  # 0.48828125 → 0


def test_reputation_is_an_integer():
    r = compute_reputation(0.3, 0.6, 0.7, 0.2, 1.0)
    assert type(r) is int and r == 460  # 1000 · (0.12 + 0.18 + 0.14 + 0.02)
