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
    e, n, node_ids, keys = state.reward_epoch, state.n, state.node_ids, state.gpu_model_key
    distinct = set(keys)
    multiplier_of = {k: get_multiplier_milli(k) for k in distinct}
    pool_of = {k: get_pool(k) for k in distinct}
    state.multiplier_milli = np.fromiter(map(multiplier_of.__getitem__, keys), dtype=np.int64, count=n)
    state.pool = np.array(list(map(pool_of.__getitem__, keys)), dtype=object)
    state.weight = compute_weights_np(state.eligible, state.up_slots, state.multiplier_milli, state.gpu_count,
                                      state.reputation)
    state.unallocated_by_pool, state.amounts = {}, np.zeros(n, dtype=np.int64)
    for pool_name, pool_amount in state.pools.items():
        idx = np.flatnonzero(state.eligible & (state.pool == pool_name))  # in node_id byte order
        shares, unallocated = allocate_pool_np(pool_amount, [node_ids[i] for i in idx], state.weight[idx])
        state.unallocated_by_pool[pool_name] = unallocated
        state.amounts[idx] = shares
    invariant(bool((state.amounts >= 0).all()), "every share is >= 0")
    paid = np.flatnonzero(state.amounts > 0)
    state.rewards = pl.DataFrame({
        "reward_epoch": pl.Series([e] * len(paid), dtype=pl.Int64),
        "node_id": pl.Series([node_ids[i] for i in paid.tolist()], dtype=pl.String),
        "pool": pl.Series(state.pool[paid].tolist(), dtype=pl.String),
        "amount_base_units": pl.Series(state.amounts[paid], dtype=pl.Int64),
        "wallet": pl.Series([state.wallets[i] for i in paid.tolist()], dtype=pl.String),
    }, schema=REWARD_SCHEMA)
    state.allocated = int(state.rewards["amount_base_units"].sum())
    state.unallocated = sum(state.unallocated_by_pool.values())
    invariant(state.allocated + state.unallocated == state.emission, f"Σ shares + unallocated == emission in epoch {e}")
