"""Eligibility for epoch rewards (ruleset §5) and the weight of an eligible node (§7).

All must hold, else the first failing reason, in this order: not_registered, banned,
hardware_unverified, streak_short, no_uptime. "Registered before start(e)" is strict:
registered_at < start(e) (§10 boundaries). Every registration carries a wallet (the contract
requires it), so "with a wallet" needs no check.

    weight = up_slots · multiplier_milli · gpu_count · R      (an integer; 0 when ineligible)

`get_ineligible_reason` and `compute_weight` are the references; `get_ineligible_reasons_np`
and `compute_weights_np` their vectorised twins for the close, held to them by
tests/property/test_rule_twins.py (and the committed eligibility vectors).
"""

from __future__ import annotations

import numpy as np

from scoring.ruleset import RULESET_V1, RulesetConfig

NOT_REGISTERED = "not_registered"
BANNED = "banned"
HARDWARE_UNVERIFIED = "hardware_unverified"
STREAK_SHORT = "streak_short"
NO_UPTIME = "no_uptime"
INELIGIBLE_REASONS = (NOT_REGISTERED, BANNED, HARDWARE_UNVERIFIED, STREAK_SHORT, NO_UPTIME)


def is_registered_before_start(registered_at_us: int | None, epoch_start_us: int) -> bool:
    return registered_at_us is not None and registered_at_us < epoch_start_us


def get_ineligible_reason(
    registered_at_us: int | None,
    epoch_start_us: int,
    banned: bool,
    hardware_verified: bool,
    streak_slots: int,
    up_slots: int,
    cfg: RulesetConfig = RULESET_V1,
) -> str | None:
    """None when the node earns; otherwise the first reason that fails."""
    if not is_registered_before_start(registered_at_us, epoch_start_us):
        return NOT_REGISTERED
    if banned:
        return BANNED
    if not hardware_verified:
        return HARDWARE_UNVERIFIED
    if streak_slots < cfg.min_streak_slots:
        return STREAK_SHORT
    if up_slots < cfg.min_up_slots:
        return NO_UPTIME
    return None


def get_ineligible_reasons_np(
    registered: np.ndarray,
    registered_at_us: np.ndarray,
    epoch_start_us: int,
    banned: np.ndarray,
    hardware_verified: np.ndarray,
    streak_slots: np.ndarray,
    up_slots: np.ndarray,
    cfg: RulesetConfig = RULESET_V1,
) -> np.ndarray:
    """`get_ineligible_reason` over arrays: an object array of the reason, None where the node
    earns (the names of `get_ineligible_reason_codes_np`'s codes)."""
    codes = get_ineligible_reason_codes_np(registered, registered_at_us, epoch_start_us, banned, hardware_verified,
                                           streak_slots, up_slots, cfg)
    return np.array((None, *INELIGIBLE_REASONS), dtype=object)[codes]


def get_ineligible_reason_codes_np(
    registered: np.ndarray,
    registered_at_us: np.ndarray,
    epoch_start_us: int,
    banned: np.ndarray,
    hardware_verified: np.ndarray,
    streak_slots: np.ndarray,
    up_slots: np.ndarray,
    cfg: RulesetConfig = RULESET_V1,
) -> np.ndarray:
    """`get_ineligible_reason` over arrays, as codes: 0 where the node earns, else 1 + the
    reason's index in INELIGIBLE_REASONS. `registered` marks the nodes with a registration
    (`registered_at_us` is read there only)."""
    registered_before_start = registered & (registered_at_us < epoch_start_us)
    return np.select(
        [~registered_before_start, banned, ~hardware_verified, streak_slots < cfg.min_streak_slots,
         up_slots < cfg.min_up_slots],
        [1 + INELIGIBLE_REASONS.index(r) for r in (NOT_REGISTERED, BANNED, HARDWARE_UNVERIFIED, STREAK_SHORT, NO_UPTIME)],
        default=0,
    ).astype(np.int8)


def compute_weight(up_slots: int, multiplier_milli: int, gpu_count: int, reputation: int) -> int:
    """§7: weight = up_slots · multiplier_milli · gpu_count · R, an integer."""
    return up_slots * multiplier_milli * gpu_count * reputation


def compute_weights_np(eligible: np.ndarray, up_slots: np.ndarray, multiplier_milli: np.ndarray,
                       gpu_count: np.ndarray, reputation: np.ndarray) -> np.ndarray:
    """`compute_weight` of the eligible nodes, 0 for the others (int64: at most
    60 · 12000 · 64 · 1000 < 2^36)."""
    return np.where(eligible, up_slots * multiplier_milli * gpu_count * reputation, 0).astype(np.int64)
