"""§3 Hardware: the latest benchmark before end(e) judged against the first registration's
claim, and the score row's verdict column (fresh, stale or none)."""

from __future__ import annotations

import numpy as np

from payouts.epoch import EpochState
from scoring.hardware import (
    CODE_OF_VERDICT,
    VERDICT_NONE,
    VERDICT_STALE,
    VERDICT_VERIFIED,
    compute_hw_verdict_column_np,
    compute_hw_verdicts_coded_np,
    is_benchmark_fresh_np,
    is_hardware_verified_np,
)


def process_hardware(state: EpochState) -> None:
    cfg = state.cfg
    has_benchmark = ~state.frame["bench_event_id"].is_null().to_numpy()
    verdicts, ratios = compute_hw_verdicts_coded_np(
        state.model_keys, state.model_code, state.gpu_count,
        state.column("fp32_tflops", 0.0, np.float64), state.column("mem_bandwidth_gbps", 0.0, np.float64),
        state.column("vram_gb", 0.0, np.float64), state.column("found_gpu_count", 0, np.int64), cfg)
    fresh = has_benchmark & is_benchmark_fresh_np(state.column("bench_at_us", 0, np.int64), state.end_us, cfg)
    # (as verdict codes: a million strings as Python objects cost a second)
    state.hw_verdict = compute_hw_verdict_column_np(has_benchmark, verdicts, fresh, none=CODE_OF_VERDICT[VERDICT_NONE],
                                                    stale=CODE_OF_VERDICT[VERDICT_STALE])
    state.hw_verified = is_hardware_verified_np(state.hw_verdict, verified=CODE_OF_VERDICT[VERDICT_VERIFIED])
    state.hw_ratio = ratios
