"""The committed test vectors (tests/vectors/ruleset-<version>.<kind>.json) against the rule
functions: the scalar references and, where a rule has one, its vectorised twin."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from payouts.allocation import allocate_pool, allocate_pool_np
from payouts.epoch import REWARD_SCHEMA
from payouts.emission import compute_emission, compute_pools
from payouts.manifest import compute_manifest_sha256, compute_manifest_sha256_frame
from scoring.eligibility import get_ineligible_reason
from scoring.events import Accepted, PingBatch, expand_batch, parse_line
from scoring.hardware import compute_hw_verdict, get_model, is_benchmark_fresh, normalize_model_name
from scoring.reputation import (
    compute_availability,
    compute_availability_step,
    compute_jobs_score,
    compute_penalty,
    compute_reputation,
    compute_reputation_np,
    compute_tenure,
    compute_tenure_np,
)
from scoring.ruleset import RULESET_V1
from scoring.uptime import StreakState, compute_streak_state, compute_streak_states_np, compute_up_slots, compute_uptime_ratio

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
KINDS = ("streak", "availability", "reputation", "hardware", "eligibility", "emission", "allocation", "manifest", "events")


def load(kind: str) -> dict:
    path = VECTORS_DIR / f"ruleset-{RULESET_V1.ruleset_version}.{kind}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def bitmap_of(text: str) -> int:
    return sum(1 << i for i, c in enumerate(text) if c == "1")


@pytest.mark.parametrize("kind", KINDS)
def test_every_vector_file_names_this_ruleset_version_and_its_parameters(kind):
    doc = load(kind)
    assert doc["kind"] == kind
    assert doc["ruleset_version"] == RULESET_V1.ruleset_version
    # a parameter changed without a new ruleset version would show here
    assert doc["params_sha256"] == RULESET_V1.params_sha256
    assert doc["cases"]


def test_the_generator_still_reproduces_the_committed_vectors():
    spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS_DIR / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert set(generate.KINDS) == set(KINDS)
    for kind in KINDS:
        committed = (VECTORS_DIR / generate.file_name(kind)).read_text(encoding="utf-8")
        assert generate.render(kind) == committed, kind


# §2 -------------------------------------------------------------------------------------------


def test_streak_vectors_hold_for_the_scalar_reference():
    for case in load("streak")["cases"]:
        state = StreakState(case["start"]["streak_slots"], case["start"]["prev_up"])
        for step in case["epochs"]:
            bitmap = bitmap_of(step["slots"])
            state = compute_streak_state(state, bitmap)
            assert compute_up_slots(bitmap) == step["up_slots"], case["name"]
            assert compute_uptime_ratio(step["up_slots"]) == step["uptime_ratio"], case["name"]
            assert state == (step["streak_slots"], step["prev_up"]), case["name"]


def test_streak_vectors_hold_for_the_vectorised_form_over_all_cases_at_once():
    cases = load("streak")["cases"]
    n_epochs = max(len(c["epochs"]) for c in cases)
    streak = np.array([c["start"]["streak_slots"] for c in cases], dtype=np.int64)
    prev = np.array([c["start"]["prev_up"] for c in cases], dtype=bool)
    for e in range(n_epochs):
        # cases with fewer epochs are fed idle epochs and no longer checked
        bitmaps = np.array([bitmap_of(c["epochs"][e]["slots"]) if e < len(c["epochs"]) else 0 for c in cases], dtype=np.uint64)
        streak, prev = compute_streak_states_np(streak, prev, bitmaps)
        for i, c in enumerate(cases):
            if e < len(c["epochs"]):
                step = c["epochs"][e]
                assert (int(streak[i]), bool(prev[i])) == (step["streak_slots"], step["prev_up"]), c["name"]


# §4 -------------------------------------------------------------------------------------------


def test_availability_vectors_hold_bit_for_bit_in_the_running_form():
    for case in load("availability")["cases"]:
        num = den = 0.0
        for u in case["uptime_ratios"]:
            num, den = compute_availability_step(num, den, u)
        assert (num, den) == (case["num"], case["den"])
        assert compute_availability(num, den) == case["A"]


def test_availability_vectors_agree_with_the_direct_weighted_sum():
    for case in load("availability")["cases"]:
        us = case["uptime_ratios"]
        e = len(us) - 1
        num = sum(2 ** (-k / 168) * us[e - k] for k in range(e + 1))
        den = sum(2 ** (-k / 168) for k in range(e + 1))
        assert abs(case["A"] - num / den) < 1e-12


def test_reputation_vectors_hold_for_the_scalar_and_vectorised_forms():
    cases = load("reputation")["cases"]
    rows = cases["reputation"]
    for row in rows:
        assert compute_reputation(row["A"], row["J"], row["H"], row["T"], row["P"]) == row["R"], row
    cols = [[row[k] for row in rows] for k in "AJHTP"]
    assert compute_reputation_np(*cols).tolist() == [row["R"] for row in rows]


def test_jobs_tenure_and_penalty_vectors_hold():
    cases = load("reputation")["cases"]
    for c in cases["jobs"]:
        assert compute_jobs_score(c["succeeded"], c["failed_node"]) == c["J"]
    for c in cases["tenure"]:
        assert compute_tenure(c["epoch_end_us"], c["registered_at_us"]) == c["T"]
        assert compute_tenure_np(c["epoch_end_us"], np.array([c["registered_at_us"]], dtype=np.int64)).tolist() == [c["T"]]
    for c in cases["penalty"]:
        assert compute_penalty(c["slashes"]) == c["P"]


# §3 -------------------------------------------------------------------------------------------


def test_hardware_verdict_vectors_hold():
    for c in load("hardware")["cases"]["verdicts"]:
        got = compute_hw_verdict(c["claimed_model"], c["claimed_gpu_count"], c["fp32_tflops"],
                                 c["mem_bandwidth_gbps"], c["vram_gb"], c["found_gpu_count"])
        assert got == (c["verdict"], c["hw_ratio"]), c


def test_model_name_normalisation_vectors_hold():
    for c in load("hardware")["cases"]["normalisation"]:
        assert normalize_model_name(c["claimed"]) == c["normalised"], c
        model = get_model(c["claimed"])
        assert (model.model_key if model else None) == c["model_key"], c


def test_benchmark_freshness_vectors_hold():
    for c in load("hardware")["cases"]["freshness"]:
        assert is_benchmark_fresh(c["benchmark_at_us"], c["epoch_end_us"]) == c["fresh"], c


# §5, §6, §7, §9 -------------------------------------------------------------------------------


def test_eligibility_vectors_hold():
    for c in load("eligibility")["cases"]:
        got = get_ineligible_reason(c["registered_at_us"], c["epoch_start_us"], c["banned"],
                                    c["hardware_verified"], c["streak_slots"], c["up_slots"])
        assert got == c["reason"], c


def test_emission_and_pool_vectors_hold():
    for c in load("emission")["cases"]:
        assert compute_emission(c["reward_epoch"]) == c["emission_base_units"], c
        assert compute_pools(c["emission_base_units"]) == (c["enterprise_pool"], c["community_pool"]), c


def test_allocation_vectors_hold():
    for c in load("allocation")["cases"]:
        pool = int(c["pool_base_units"])
        weights = {n: int(w) for n, w in c["weights"]}
        result = allocate_pool(pool, weights)
        assert result.shares == {n: int(s) for n, s in c["shares"]}
        assert result.unallocated_base_units == int(c["unallocated_base_units"])
        assert sum(result.shares.values()) + result.unallocated_base_units == pool
        if pool < 2**63:  # the close's twin, over the same vectors
            ids = sorted(weights, key=str.encode)
            shares, unallocated = allocate_pool_np(pool, ids, np.array([weights[n] for n in ids], dtype=np.int64))
            assert dict(zip(ids, shares.tolist())) == result.shares and unallocated == result.unallocated_base_units


def test_manifest_vectors_hold():
    for c in load("manifest")["cases"]:
        rows = [(e, n, p, int(a), w) for e, n, p, a, w in c["rows"]]
        assert compute_manifest_sha256(rows) == c["manifest_sha256"]
        if all(r[3] < 2**63 for r in rows):  # the close's twin, over BIGINT amounts (as the store holds them)
            frame = pl.DataFrame(rows, orient="row", schema=REWARD_SCHEMA)
            assert compute_manifest_sha256_frame(frame) == c["manifest_sha256"]


# contract -------------------------------------------------------------------------------------


def test_event_line_vectors_hold():
    for c in load("events")["cases"]["lines"]:
        out = parse_line(c["line"].encode("utf-8"))
        if c["outcome"] == "accepted":
            assert isinstance(out, Accepted), c
            assert out.canonical.decode() == c["canonical"]
            assert out.event.occurred_at_us == c["occurred_at_us"]
            if "inner_pings" in c:
                assert isinstance(out.event, PingBatch)
                got = [[p.event_id, p.node_id, p.occurred_at_us, p.reachable] for p in expand_batch(out.event)]
                assert got == c["inner_pings"]
        else:
            assert not isinstance(out, Accepted), c
            assert out.reason.value == c["outcome"], c
