"""§2 Time score: up slots, uptime ratio, and the streak carried across epochs."""

from __future__ import annotations

import numpy as np
import polars as pl

from payouts.epoch import EpochState
from scoring.uptime import compute_streak_states_np, compute_up_slots_np, compute_uptime_ratio_np


def process_uptime(state: EpochState) -> None:
    cfg = state.cfg
    # DuckDB's UBIGINT may arrive as a decimal
    state.slot_bitmap = state.frame["slot_bitmap"].cast(pl.UInt64).to_numpy()
    state.up_slots = compute_up_slots_np(state.slot_bitmap)
    state.uptime_ratio = compute_uptime_ratio_np(state.up_slots, cfg)
    # no row for the epoch before: the start state (streak 0, previous slot not up)
    prev_streak = state.column("prev_streak", 0, np.int64)
    prev_up = state.column("prev_up", False, bool)
    state.streak_slots, state.streak_prev_up = compute_streak_states_np(prev_streak, prev_up, state.slot_bitmap, cfg)
