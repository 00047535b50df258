"""The relations between ruleset v1's constants (as consensus-specs asserts those of its
configuration): each one a parameter of scoring/ruleset.py relies on, written out here so that a
change of one constant without the others fails by name. `check_ruleset` states the same
relations for any proposed ruleset (the what-if run)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from payouts.emission import compute_emission, compute_pools
from scoring.models import MODEL_TABLE, POOL_COMMUNITY, POOL_ENTERPRISE
from scoring.ruleset import RULESET_V1 as C, check_ruleset


def test_ruleset_v1_satisfies_every_relation():
    assert check_ruleset(C) == []


def test_slots_times_slot_length_is_the_epoch():
    assert C.slots_per_epoch * C.slot_duration_s == C.reward_epoch_duration_s == 3600
    assert C.slots_per_epoch * C.slot_us == C.reward_epoch_us
    assert C.slots_per_epoch <= 63  # an epoch's slot bitmap is a BIGINT


def test_the_reputation_weights_sum_to_one_and_R_spans_its_scale():
    weights = [C.rep_weight_availability, C.rep_weight_jobs, C.rep_weight_hardware, C.rep_weight_tenure]
    assert sum(Decimal(repr(w)) for w in weights) == 1
    assert round(C.rep_scale * (0.40 * 1.0 + 0.30 * 1.0 + 0.20 * 1.0 + 0.10 * 1.0) * 1.0) == C.rep_scale == 1000


def test_the_availability_decay_halves_over_its_half_life():
    assert C.availability_decay == 2.0 ** (-1.0 / C.availability_half_life_epochs)
    assert C.availability_decay ** C.availability_half_life_epochs == pytest.approx(0.5, rel=1e-12)
    assert C.availability_half_life_epochs * C.reward_epoch_duration_s == 7 * 24 * 3600  # 7 days


def test_the_durations_in_epochs_and_hours_agree():
    assert C.epochs_per_year * C.reward_epoch_duration_s == 365 * 24 * 3600
    assert C.penalty_window_epochs * C.reward_epoch_duration_s == C.tenure_full_hours * 3600 == 30 * 86400
    assert C.min_streak_slots * C.slot_duration_s == 5 * 3600
    assert C.hw_freshness_s == C.finality_delay_s == 24 * 3600
    assert C.allowed_lateness_s == C.max_future_skew_s == 5 * C.slot_duration_s


def test_the_pools_split_the_emission():
    assert 0 <= C.enterprise_share_bps <= 10_000
    for e in (0, 1, 8760):
        emission = compute_emission(e, C)
        enterprise, community = compute_pools(emission, C)
        assert enterprise + community == emission and enterprise >= 0 and community >= 0
        assert emission <= C.max_base_units
    assert {m.gpu_class for m in MODEL_TABLE} == {POOL_ENTERPRISE, POOL_COMMUNITY}


def test_the_hardware_bounds_are_ordered():
    assert 0 < C.hw_mismatch_ratio < 1 < C.hw_impossible_ratio
    assert 0 < C.hw_vram_min_fraction <= 1


def test_a_weight_fits_a_bigint():
    biggest = C.slots_per_epoch * max(m.multiplier_milli for m in MODEL_TABLE) * C.max_gpu_count * C.rep_scale
    assert biggest < 2**63


@pytest.mark.parametrize("change,words", [
    ({"slots_per_epoch": 30}, "slots_per_epoch × slot_duration_s"),
    ({"rep_weight_jobs": 0.35}, "sum to 1"),
    ({"enterprise_share_bps": 10_001}, "enterprise_share_bps"),
    ({"hw_mismatch_ratio": 1.2}, "hw_mismatch_ratio"),
    ({"streak_reset_gap_slots": 3}, "streak_reset_gap_slots"),
    ({"emission_decay_per_epoch": "x"}, "decimal numbers"),
])
def test_a_ruleset_breaking_a_relation_is_named(change, words):
    problems = check_ruleset(replace(C, **change))
    assert any(words in p for p in problems), problems
