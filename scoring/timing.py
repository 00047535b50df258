"""Event time: reward epochs, slots and the watermark (ruleset §1, §9, §10 "Time resolution",
"Watermark").

All times inside the rules are integers of microseconds since the Unix epoch, UTC, so that
every boundary comparison is exact. RFC 3339 digits beyond the microsecond are truncated.

    reward_epoch(t) = floor((t − genesis) / 3600 s)        (may be < 0 before genesis)
    slot(t)         = ((t − genesis) mod 3600 s) // 60 s   (0..59, mod taken non-negative)
    watermark       = max ping occurred_at − 5 min
    e is ready      ⇔ end(e) ≤ watermark

The scalar functions are the reference. `compute_reward_epoch_sql` and `compute_slot_sql` are
their SQL twins (the ingest's archive columns), `compute_reward_epoch_np` the numpy one; each is
held to the reference by tests/property/test_rule_twins.py over every int64 time, before
genesis included (DuckDB's `//` and `%` truncate toward zero, so the SQL corrects them to floor).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from scoring.ruleset import RulesetConfig

US_PER_S = 1_000_000
US_PER_MS = 1_000


def compute_reward_epoch(occurred_at_us: int, cfg: RulesetConfig) -> int:
    """The reward epoch whose half-open hour contains the instant (may be < 0 before genesis)."""
    return (occurred_at_us - cfg.genesis_us) // cfg.reward_epoch_us


def compute_reward_epoch_np(occurred_at_us: np.ndarray, cfg: RulesetConfig) -> np.ndarray:
    """`compute_reward_epoch` over an int64 array (numpy's // floors, as Python's)."""
    return (occurred_at_us.astype(np.int64) - np.int64(cfg.genesis_us)) // np.int64(cfg.reward_epoch_us)


def compute_reward_epoch_sql(occurred_at_us: str, cfg: RulesetConfig) -> str:
    """`compute_reward_epoch` of a BIGINT SQL expression."""
    d = f"({occurred_at_us} - {cfg.genesis_us})"
    return f"({d} // {cfg.reward_epoch_us} - ({d} % {cfg.reward_epoch_us} < 0)::BIGINT)"


def compute_slot(occurred_at_us: int, cfg: RulesetConfig) -> int:
    """Slot index 0..59 inside the instant's reward epoch."""
    return ((occurred_at_us - cfg.genesis_us) % cfg.reward_epoch_us) // cfg.slot_us


def compute_slot_sql(occurred_at_us: str, cfg: RulesetConfig) -> str:
    """`compute_slot` of a BIGINT SQL expression."""
    ep = cfg.reward_epoch_us
    return f"(((({occurred_at_us} - {cfg.genesis_us}) % {ep}) + {ep}) % {ep} // {cfg.slot_us})"


def get_epoch_start_us(reward_epoch: int, cfg: RulesetConfig) -> int:
    return cfg.genesis_us + reward_epoch * cfg.reward_epoch_us


def get_epoch_end_us(reward_epoch: int, cfg: RulesetConfig) -> int:
    return cfg.genesis_us + (reward_epoch + 1) * cfg.reward_epoch_us


def compute_watermark_us(max_ping_us: int | None, cfg: RulesetConfig) -> int | None:
    """§10 Watermark: the highest ping occurred_at seen (any accepted ping, reachable or not)
    minus the allowed lateness; None before any ping."""
    return None if max_ping_us is None else int(max_ping_us) - cfg.allowed_lateness_s * US_PER_S


def is_epoch_ready(reward_epoch: int, watermark_us: int | None, cfg: RulesetConfig) -> bool:
    """§9: epoch e may close once the watermark has reached end(e)."""
    return watermark_us is not None and get_epoch_end_us(reward_epoch, cfg) <= watermark_us


def format_us(ts_us: int) -> str:
    """RFC 3339 with microseconds and Z, for people and for the archive's readable columns."""
    seconds, micros = divmod(ts_us, US_PER_S)
    dt = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=micros)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
