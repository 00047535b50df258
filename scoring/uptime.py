"""Time score (ruleset §2): up slots and the streak.

A node's epoch is a 60-bit slot bitmap: bit i is set when at least one reachable ping has
`occurred_at` inside slot i. `up_slots` is its population count.

The streak runs forward slot by slot from the first slot of the first epoch (§10), carried
across epochs as a `StreakState(streak_slots, prev_up)`:
    up slot                          → streak + 1
    non-up slot after an up slot     → pending: not counted, not breaking
    non-up slot after a non-up slot  → reset to 0
Before the first epoch the state is (0, not up): a first slot that is not up resets (to 0).

`compute_streak_state` is the reference (one node, one epoch); `compute_streak_states_np` is the
vectorised form for many nodes at once, held to the reference by a differential test.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scoring.ruleset import RULESET_V1, RulesetConfig


class StreakState(NamedTuple):
    streak_slots: int
    prev_up: bool


STREAK_START = StreakState(0, False)


def compute_up_slots(slot_bitmap: int) -> int:
    return int(slot_bitmap).bit_count()


def compute_uptime_ratio(up_slots: int, cfg: RulesetConfig = RULESET_V1) -> float:
    return up_slots / cfg.slots_per_epoch


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
    `slots`, when given, is each node's number of slots to run (as `compute_streak_state`'s)."""
    streak = streak.astype(np.int64, copy=True)
    prev = prev_up.astype(bool, copy=True)
    bitmaps = bitmaps.astype(np.uint64, copy=False)
    one = np.uint64(1)
    for slot in range(cfg.slots_per_epoch):
        up = ((bitmaps >> np.uint64(slot)) & one).astype(bool)
        if slots is None:
            streak = np.where(up, streak + 1, np.where(prev, streak, 0))
            prev = up
        else:
            run = slot < slots
            streak = np.where(run, np.where(up, streak + 1, np.where(prev, streak, 0)), streak)
            prev = np.where(run, up, prev)
    return streak, prev


def compute_streak_after_idle(cfg: RulesetConfig = RULESET_V1) -> StreakState:
    """A whole epoch with no up slot (a node with no row for it) always ends at (0, not up)."""
    return compute_streak_state(STREAK_START, 0, cfg)
