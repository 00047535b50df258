"""The epoch run (ruleset §9): which epochs are ready, and each one's close.

    close_ready_epochs   closes, in order, every epoch the ping watermark has passed
    close_epoch          one epoch: gather (store) → compute (pure) → write (one transaction)

The batch replay and the live stream both close through `close_ready_epochs` (the stream passes
its per-partition watermark), so the two paths cannot disagree:

    gather_epoch_inputs   payouts/gather.py   the inputs arrived by the cutoff, over the state the
                                              previous close carried forward (payouts/carry.py)
    compute_epoch         payouts/compute.py  the steps of payouts/steps/, in ruleset order
    write_epoch           payouts/write.py    one transaction, invariants before and after
"""

from __future__ import annotations

from datetime import datetime, timezone

from payouts.carry import READ_BASE, Carry
from payouts.compute import compute_epoch
from payouts.epoch import EpochResult
from payouts.gather import gather_epoch_inputs, get_first_reward_epoch, get_watermark_us
from payouts.write import write_epoch
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.timing import is_epoch_ready
from store.db import last_closed_epoch, next_arrival_seq


def close_epoch(con, e: int, cfg: RulesetConfig = RULESET_V1, cutoff_seq: int | None = None,
                closed_at: datetime | None = None, before_commit=None) -> EpochResult:
    """Close epoch `e` with the events arrived by `cutoff_seq` (all of them by default)."""
    return _close_epoch(con, e, cfg, cutoff_seq, closed_at, before_commit)[0]


def _close_epoch(con, e: int, cfg: RulesetConfig, cutoff_seq: int | None, closed_at: datetime | None,
                 before_commit, carried=READ_BASE) -> tuple[EpochResult, Carry | object]:
    """`close_epoch`, and the carried state it left in the store (READ_BASE: unknown, it wrote
    nothing). `carried`: the store's carried state when the caller knows it."""
    if cutoff_seq is None:
        cutoff_seq = next_arrival_seq(con) - 1
    inputs = gather_epoch_inputs(con, e, cutoff_seq, cfg, carried=carried)
    result = compute_epoch(inputs, cfg)
    # closed_at is the one wall-clock column (§9); the clock is read here, at the edge.
    wrote = write_epoch(con, result, closed_at or datetime.now(timezone.utc), before_commit, carry=inputs.carry)
    return result, inputs.carry.after if wrote else READ_BASE


def get_ready_epochs(con, cfg: RulesetConfig = RULESET_V1, watermark_us: int | None = None) -> list[int]:
    """Epochs after the last closed one whose end the watermark has reached, in order.

    `watermark_us` overrides the archive's own (max ping time − lateness): the live stream
    passes its per-partition watermark (§10)."""
    first = get_first_reward_epoch(con, cfg)
    wm = get_watermark_us(con, cfg) if watermark_us is None else watermark_us
    if first is None or wm is None:
        return []
    last = last_closed_epoch(con)
    e = first if last is None else last + 1
    ready = []
    while is_epoch_ready(e, wm, cfg):
        ready.append(e)
        e += 1
    return ready


def close_ready_epochs(con, cfg: RulesetConfig = RULESET_V1, *, on_closed=None,
                       watermark_us: int | None = None, before_commit=None) -> list[EpochResult]:
    """Close every ready epoch in order. `on_closed(result)` after each commit and
    `before_commit(reward_epoch)` inside each close's transaction are hooks for the caller (the
    live stream's crash tests); neither takes part in the result."""
    ready = get_ready_epochs(con, cfg, watermark_us)
    if not ready:
        return []
    # nothing arrives during a pass: every epoch of it closes with the same inputs cutoff, and
    # from the state the close before it carried (known here, not read again)
    cutoff = next_arrival_seq(con) - 1
    results = []
    carried = READ_BASE
    for e in ready:
        result, carried = _close_epoch(con, e, cfg, cutoff, None, before_commit, carried)
        results.append(result)
        if on_closed:
            on_closed(result)
    return results
