"""§3 Hardware: the latest benchmark before end(e) judged against the first registration's
claim, and the score row's verdict column (fresh, stale or none)."""

from __future__ import annotations

import numpy as np

from payouts.epoch import EpochState
from scoring.hardware import (
    compute_hw_verdict_column_np,
    compute_hw_verdicts_np,
    is_benchmark_fresh_np,
    is_hardware_verified_np,
)


def process_hardware(state: EpochState) -> None:
    cfg = state.cfg
    has_benchmark = ~state.frame["bench_event_id"].is_null().to_numpy()
    verdicts, ratios = compute_hw_verdicts_np(
        state.gpu_model_key, state.gpu_count,
        state.column("fp32_tflops", 0.0, np.float64), state.column("mem_bandwidth_gbps", 0.0, np.float64),
        state.column("vram_gb", 0.0, np.float64), state.column("found_gpu_count", 0, np.int64), cfg)
    fresh = has_benchmark & is_benchmark_fresh_np(state.column("bench_at_us", 0, np.int64), state.end_us, cfg)
    state.hw_verdict = compute_hw_verdict_column_np(has_benchmark, verdicts, fresh)
    state.hw_verified = is_hardware_verified_np(state.hw_verdict)
    state.hw_ratio = ratios
