"""Eligibility for epoch rewards (ruleset §5): all must hold, else the first failing reason.

Order: not_registered, banned, hardware_unverified, streak_short, no_uptime.
"Registered before start(e)" is strict: registered_at < start(e) (§10 boundaries). Every
registration carries a wallet (the contract requires it), so "with a wallet" needs no check.
"""

from __future__ import annotations

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


def compute_weight(up_slots: int, multiplier_milli: int, gpu_count: int, reputation: int) -> int:
    """§7: weight = up_slots · multiplier_milli · gpu_count · R, an integer."""
    return up_slots * multiplier_milli * gpu_count * reputation
