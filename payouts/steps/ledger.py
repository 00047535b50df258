"""§8, §9 The ledger of the close: emission → pools → rewards and unallocated, then the stake
accounts brought to their targets and this close's final slashes (payouts/ledger.py)."""

from __future__ import annotations

import polars as pl

from payouts.epoch import EpochState
from payouts.ledger import compute_ledger_frame, compute_ledger_parts, compute_stake_ledger_parts
from payouts.steps.allocation import get_pool_column


def process_ledger(state: EpochState) -> None:
    e = state.reward_epoch
    parts = [compute_ledger_parts(state.pools, state.node_id, get_pool_column(state), state.amounts,
                                  state.unallocated_by_pool)]
    if state.slashing is not None and state.inputs.stake is not None:
        parts.append(compute_stake_ledger_parts(e, state.inputs.stake, state.slashing))
    state.ledger = compute_ledger_frame(e, pl.concat(parts))
