"""Event time: reward epochs and slots (ruleset §1, §10 "Time resolution").

All times inside the rules are integers of microseconds since the Unix epoch, UTC, so that
every boundary comparison is exact. RFC 3339 digits beyond the microsecond are truncated.
"""

from __future__ import annotations

from datetime import datetime, timezone

from scoring.ruleset import RulesetConfig

US_PER_S = 1_000_000
US_PER_MS = 1_000


def compute_reward_epoch(occurred_at_us: int, cfg: RulesetConfig) -> int:
    """The reward epoch whose half-open hour contains the instant (may be < 0 before genesis)."""
    return (occurred_at_us - cfg.genesis_us) // cfg.reward_epoch_us


def compute_slot(occurred_at_us: int, cfg: RulesetConfig) -> int:
    """Slot index 0..59 inside the instant's reward epoch."""
    return ((occurred_at_us - cfg.genesis_us) % cfg.reward_epoch_us) // cfg.slot_us


def get_epoch_start_us(reward_epoch: int, cfg: RulesetConfig) -> int:
    return cfg.genesis_us + reward_epoch * cfg.reward_epoch_us


def get_epoch_end_us(reward_epoch: int, cfg: RulesetConfig) -> int:
    return cfg.genesis_us + (reward_epoch + 1) * cfg.reward_epoch_us


def format_us(ts_us: int) -> str:
    """RFC 3339 with microseconds and Z, for people and for the archive's readable columns."""
    seconds, micros = divmod(ts_us, US_PER_S)
    dt = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=micros)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
