"""Properties of §3 and Appendix A: the verdict follows the thresholds, hw_ratio is bounded,
and the claimed model's spelling does not matter beyond its normalised form."""

from hypothesis import given
from hypothesis import strategies as st

from scoring.hardware import (
    MODEL_TABLE,
    VERDICT_IMPOSSIBLE,
    VERDICT_MISMATCH,
    VERDICT_UNKNOWN_MODEL,
    VERDICT_VERIFIED,
    compute_hw_verdict,
    get_model,
    normalize_model_name,
)

models = st.sampled_from(MODEL_TABLE)
ratios = st.floats(0.0, 2.0, allow_nan=False)
counts = st.integers(1, 64)
ascii_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_\t"), max_size=30)


@given(models, ratios, ratios, st.floats(0.0, 2.0), counts, counts)
def test_the_verdict_is_the_first_rule_that_applies(model, rf, rb, rv, found, claimed):
    fp32, bw, vram = rf * model.spec_fp32_tflops, rb * model.spec_bw_gbps, rv * model.spec_memory_gb
    verdict, hw_ratio = compute_hw_verdict(model.aliases[0], claimed, fp32, bw, vram, found)
    r_flops, r_bw = fp32 / model.spec_fp32_tflops, bw / model.spec_bw_gbps
    if r_flops > 1.10 or r_bw > 1.10:
        assert (verdict, hw_ratio) == (VERDICT_IMPOSSIBLE, None)
    elif r_flops < 0.60 or r_bw < 0.60 or vram < 0.9 * model.spec_memory_gb or found != claimed:
        assert (verdict, hw_ratio) == (VERDICT_MISMATCH, None)
    else:
        assert verdict == VERDICT_VERIFIED
        assert hw_ratio == min(1.0, r_flops, r_bw)
        assert 0.60 <= hw_ratio <= 1.0


@given(models, st.data())
def test_any_spelling_of_an_alias_finds_the_same_model(model, data):
    alias = data.draw(st.sampled_from(model.aliases))
    words = alias.split(" ")
    seps = data.draw(st.lists(st.sampled_from([" ", "-", "_", "  ", " - "]), min_size=len(words), max_size=len(words)))
    spelled = "".join(w + s for w, s in zip(words, seps))
    spelled = data.draw(st.sampled_from(["", "NVIDIA ", "nvidia-", "Tesla ", "GeForce "])) + spelled
    spelled = data.draw(st.sampled_from([str.lower, str.upper, str.title, lambda s: s]))(spelled)
    assert get_model(spelled) == model


@given(ascii_names)
def test_normalisation_is_idempotent(name):
    once = normalize_model_name(name)
    assert normalize_model_name(once) == once


@given(ascii_names)
def test_a_normalised_name_has_no_lower_case_no_separators_and_single_spaces(name):
    out = normalize_model_name(name)
    assert out == out.upper() and "-" not in out and "_" not in out
    assert out == out.strip() and "  " not in out and "\t" not in out
    assert not {"NVIDIA", "GEFORCE", "TESLA"} & set(out.split())


@given(ascii_names, ratios, ratios, counts)
def test_a_name_outside_the_table_is_always_unknown_model(name, rf, rb, count):
    if get_model(name) is None:
        assert compute_hw_verdict(name, count, rf * 10, rb * 100, 100.0, count) == (VERDICT_UNKNOWN_MODEL, None)
