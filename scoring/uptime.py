"""Time score (ruleset §2): up slots and the streak.

A node's epoch is a 60-bit slot bitmap: bit i is set when at least one reachable ping has
`occurred_at` inside slot i. `up_slots` is its population count.

The streak runs forward slot by slot from the first slot of the first epoch (§10), carried
across epochs as a `StreakState(streak_slots, prev_up)`:
    up slot                          → streak + 1
    non-up slot after an up slot     → pending: not counted, not breaking
    non-up slot after a non-up slot  → reset to 0
Before the first epoch the state is (0, not up): a first slot that is not up resets (to 0).

`compute_slot_bitmap` (one node's pings), `compute_up_slots`, `compute_uptime_ratio` and
`compute_streak_state` (one node, one epoch) are the references; `slot_bitmap_sql` (the
aggregate over archived pings), `compute_up_slots_np`, `compute_uptime_ratio_np` and
`compute_streak_states_np` are their twins for many nodes at once, each held to its reference
by a differential test (tests/property/test_rule_twins.py, test_streak_properties.py).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from scoring.ruleset import RULESET_V1, RulesetConfig


class StreakState(NamedTuple):
    streak_slots: int
    prev_up: bool


STREAK_START = StreakState(0, False)


def compute_slot_bitmap(pings: Iterable[tuple[int, bool]]) -> int:
    """§2: bit `slot` is set when some ping of the node in the epoch, (slot, reachable), is reachable."""
    bitmap = 0
    for slot, reachable in pings:
        if reachable:
            bitmap |= 1 << int(slot)
    return bitmap


def slot_bitmap_sql(slot: str = "slot", reachable: str = "reachable") -> str:
    """`compute_slot_bitmap` as a DuckDB aggregate expression (UBIGINT) over a group of pings."""
    return f"bit_or(CASE WHEN {reachable} THEN (1::UBIGINT << {slot}::UBIGINT) ELSE 0::UBIGINT END)"


def compute_up_slots(slot_bitmap: int) -> int:
    return int(slot_bitmap).bit_count()


def compute_up_slots_np(slot_bitmaps: np.ndarray) -> np.ndarray:
    return np.bitwise_count(slot_bitmaps.astype(np.uint64, copy=False)).astype(np.int64)


def compute_uptime_ratio(up_slots: int, cfg: RulesetConfig = RULESET_V1) -> float:
    return up_slots / cfg.slots_per_epoch


def compute_uptime_ratio_np(up_slots: np.ndarray, cfg: RulesetConfig = RULESET_V1) -> np.ndarray:
    # int64 → binary64 is exact below 2^53, then one correctly rounded division, as int / int
    return up_slots.astype(np.int64) / float(cfg.slots_per_epoch)


def compute_streak_state(
    prev: StreakState, slot_bitmap: int, cfg: RulesetConfig = RULESET_V1, slots: int | None = None
) -> StreakState:
    """The state after the epoch's first `slots` slots (all of them by default; the live
    snapshot of an open epoch runs the slots seen so far)."""
    streak, prev_up = prev
    for slot in range(cfg.slots_per_epoch if slots is None else slots):
        up = (slot_bitmap >> slot) & 1 == 1
        if up:
            streak += 1
        elif not prev_up:
            streak = 0  # second non-up slot in a row
        prev_up = up
    return StreakState(streak, prev_up)


def compute_streak_states_np(
    streak: np.ndarray, prev_up: np.ndarray, bitmaps: np.ndarray, cfg: RulesetConfig = RULESET_V1,
    slots: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The same transition for arrays of nodes (int64 streaks, bool prev_up, uint64 bitmaps);
    `slots`, when given, is each node's number of slots to run (as `compute_streak_state`'s).

    In closed form rather than slot by slot: a slot resets the streak when it and the slot
    before it (before slot 0: the carried previous slot) are both not up; after the last reset
    the streak is the number of up slots that follow it, and with no reset it is the carried
    streak plus every up slot. So: the reset slots as a bitmap, the highest one by its bit
    length, population counts for the rest."""
    n = len(bitmaps)
    one = np.uint64(1)
    k = (np.full(n, cfg.slots_per_epoch, dtype=np.int64) if slots is None
         else np.clip(np.asarray(slots, dtype=np.int64), 0, cfg.slots_per_epoch))
    mask = (one << k.astype(np.uint64)) - one  # the slots run (at most 63: check_ruleset)
    up = bitmaps.astype(np.uint64, copy=False) & mask
    down = ~up & mask
    prev = prev_up.astype(bool, copy=False)
    resets = down & ((down << one) | (~prev).astype(np.uint64)) & mask
    last_reset = _bit_length(resets).astype(np.int64) - 1  # −1: no reset
    after_reset = np.bitwise_count(up >> (last_reset + 1).astype(np.uint64)).astype(np.int64)
    streak_out = np.where(last_reset >= 0, after_reset,
                          streak.astype(np.int64) + np.bitwise_count(up).astype(np.int64))
    last_slot = np.maximum(k - 1, 0).astype(np.uint64)
    prev_out = np.where(k > 0, ((up >> last_slot) & one).astype(bool), prev)
    return streak_out, prev_out


def _bit_length(x: np.ndarray) -> np.ndarray:
    """The bit length of each uint64 (0 for 0): every bit below the highest one set, counted."""
    x = x.copy()
    for shift in (1, 2, 4, 8, 16, 32):
        x |= x >> np.uint64(shift)
    return np.bitwise_count(x)


def compute_streak_after_idle(cfg: RulesetConfig = RULESET_V1) -> StreakState:
    """A whole epoch with no up slot (a node with no row for it) always ends at (0, not up)."""
    return compute_streak_state(STREAK_START, 0, cfg)
