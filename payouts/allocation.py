"""Exact largest-remainder allocation of one pool (ruleset §7), in Python integers.

    share_i = floor(pool · w_i / W)
    leftover = pool − Σ share_i, one base unit each to the largest remainders pool · w_i mod W,
    ties by node_id ascending (byte order). W = 0: the whole pool is unallocated.

Guarantees (pinned by property tests of the same names):
- conservation: Σ shares + unallocated == pool
- never over-allocates, every share ≥ 0, each node at most once
- a node's share is within one base unit of its exact pro-rata share
`pool · w_i` exceeds 2^64 for large nodes: `allocate_pool` (the reference) works in Python
integers; `allocate_pool_np` (its twin, the close's) in int64 arrays where that is exact, by the
reference itself elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoring.invariants import invariant


@dataclass(frozen=True)
class PoolAllocation:
    shares: dict[str, int]  # node_id → base units (zeros included)
    unallocated_base_units: int


def allocate_pool(pool_base_units: int, weights: dict[str, int]) -> PoolAllocation:
    invariant(pool_base_units >= 0, "a pool is never negative")
    invariant(all(w >= 0 for w in weights.values()), "weights are never negative")
    total_weight = sum(weights.values())
    if total_weight == 0:
        return PoolAllocation({n: 0 for n in weights}, pool_base_units)
    shares: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    for node_id, w in weights.items():
        q, r = divmod(pool_base_units * w, total_weight)
        shares[node_id] = q
        remainders.append((r, node_id))
    leftover = pool_base_units - sum(shares.values())
    invariant(0 <= leftover < max(1, len(weights)), "leftover is less than one unit per node")
    if leftover:
        # largest remainder first; ties by node_id ascending in byte order
        remainders.sort(key=lambda rn: (-rn[0], rn[1].encode()))
        for _, node_id in remainders[:leftover]:
            shares[node_id] += 1
    invariant(sum(shares.values()) == pool_base_units, "Σ shares == pool when W > 0")
    return PoolAllocation(shares, 0)


# Below 2^50 base units in the pool and 2^61 of total weight, the shares and remainders are
# computed exactly in int64 (a binary64 estimate of each quotient, off by at most one, then
# corrected with the remainder computed modulo 2^64, which holds it exactly).
FAST_POOL_LIMIT = 2**50
FAST_WEIGHT_LIMIT = 2**61


def allocate_pool_np(pool_base_units: int, node_ids: list[str], weights: np.ndarray) -> tuple[np.ndarray, int]:
    """`allocate_pool` over arrays: (shares, unallocated) for `weights` (int64, one per node of
    `node_ids`, which are in node_id byte order: the order of the ties). The same guarantees;
    held to `allocate_pool` by tests/property/test_allocation_properties.py and the committed
    vectors. Outside the exact int64 range it is `allocate_pool` itself."""
    w = np.asarray(weights, dtype=np.int64)
    invariant(0 <= pool_base_units < 2**63, "a pool is never negative and fits a BIGINT")
    invariant(bool((w >= 0).all()), "weights are never negative")
    if not len(w):
        total = 0
    elif int(w.max()) * len(w) < 2**63:  # the int64 sum cannot overflow
        total = int(w.sum())
    else:
        total = sum(w.tolist())
    if total == 0:
        return np.zeros(len(w), dtype=np.int64), pool_base_units
    if not (pool_base_units < FAST_POOL_LIMIT and total < FAST_WEIGHT_LIMIT):
        alloc = allocate_pool(pool_base_units, dict(zip(node_ids, w.tolist())))
        return np.fromiter(map(alloc.shares.__getitem__, node_ids), dtype=np.int64, count=len(w)), 0
    pool = np.int64(pool_base_units)
    q = np.floor(w.astype(np.float64) * (float(pool_base_units) / float(total))).astype(np.int64)
    with np.errstate(over="ignore"):
        exact = (w.astype(np.uint64) * np.uint64(pool)) - (q.astype(np.uint64) * np.uint64(total))
    r = exact.view(np.int64)  # pool·w − q·W, exactly: it lies within (−2W, 3W)
    for _ in range(2):
        low, high = r < 0, r >= total
        q, r = q - low + high, r + np.where(low, total, 0) - np.where(high, total, 0)
    invariant(bool(((r >= 0) & (r < total)).all()), "remainders lie in [0, W)")
    leftover = pool_base_units - int(q.sum())
    invariant(0 <= leftover < max(1, len(w)), "leftover is less than one unit per node")
    if leftover:
        # the `leftover` largest remainders, ties by position (node_id byte order): every remainder
        # above the leftover-th largest, then the first positions holding that one
        threshold = np.partition(r, len(r) - leftover)[len(r) - leftover]
        above = r > threshold
        q[above] += 1
        q[np.flatnonzero(r == threshold)[:leftover - int(above.sum())]] += 1
    invariant(int(q.sum()) == pool_base_units, "Σ shares == pool when W > 0")
    return q, 0
