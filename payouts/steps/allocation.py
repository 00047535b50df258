"""§7 Allocation: each eligible node's weight, the largest-remainder shares of its pool, and the
reward rows (node_id byte order)."""

from __future__ import annotations

import numpy as np
import polars as pl

from payouts.allocation import allocate_pool_np
from payouts.epoch import REWARD_SCHEMA, EpochState
from scoring.eligibility import compute_weights_np
from scoring.hardware import get_multiplier_milli, get_pool
from scoring.invariants import invariant


def process_allocation(state: EpochState) -> None:
    e, n = state.reward_epoch, state.n
    # Appendix A per distinct model (the rule itself), spread over the nodes by their model's code
    state.multiplier_milli = np.array([get_multiplier_milli(k) for k in state.model_keys], dtype=np.int64)[
        state.model_code]
    state.pool_names = list(state.pools)
    pool_index = {p: i for i, p in enumerate(state.pool_names)}
    state.pool_code = np.array([pool_index.get(get_pool(k), -1) for k in state.model_keys], dtype=np.int64)[
        state.model_code]
    state.weight = compute_weights_np(state.eligible, state.up_slots, state.multiplier_milli, state.gpu_count,
                                      state.reputation)
    state.unallocated_by_pool, state.amounts = {}, np.zeros(n, dtype=np.int64)
    for pool_name, pool_amount in state.pools.items():
        idx = np.flatnonzero(state.eligible & (state.pool_code == pool_index[pool_name]))  # in node_id byte order
        shares, unallocated = allocate_pool_np(pool_amount, state.node_id.gather(idx), state.weight[idx])
        state.unallocated_by_pool[pool_name] = unallocated
        state.amounts[idx] = shares
    invariant(bool((state.amounts >= 0).all()), "every share is >= 0")
    paid = np.flatnonzero(state.amounts > 0)
    state.rewards = pl.DataFrame({
        "reward_epoch": pl.Series(np.full(len(paid), e, dtype=np.int64), dtype=pl.Int64),
        "node_id": state.node_id.gather(paid),
        "pool": get_pool_column(state).gather(paid),
        "amount_base_units": pl.Series(state.amounts[paid], dtype=pl.Int64),
        "wallet": state.wallet.gather(paid),
    }, schema=REWARD_SCHEMA)
    state.allocated = int(state.rewards["amount_base_units"].sum())
    state.unallocated = sum(state.unallocated_by_pool.values())
    invariant(state.allocated + state.unallocated == state.emission, f"Σ shares + unallocated == emission in epoch {e}")


def get_pool_column(state: EpochState) -> pl.Series:
    """Each node's pool as a string column (null: none); made once, by the first step that asks."""
    if state.pool_column is None:
        names = len(state.pool_names)  # (the index of the null after them: no pool)
        state.pool_column = pl.Series("pool", [*state.pool_names, None], dtype=pl.String).gather(
            np.where((state.pool_code >= 0) & (state.pool_code < names), state.pool_code, names))
    return state.pool_column
