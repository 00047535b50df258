"""Exact largest-remainder allocation of one pool (ruleset §7), in Python integers.

    share_i = floor(pool · w_i / W)
    leftover = pool − Σ share_i, one base unit each to the largest remainders pool · w_i mod W,
    ties by node_id ascending (byte order). W = 0: the whole pool is unallocated.

Guarantees (pinned by property tests of the same names):
- conservation: Σ shares + unallocated == pool
- never over-allocates, every share ≥ 0, each node at most once
- a node's share is within one base unit of its exact pro-rata share
`pool · w_i` exceeds 2^64 for large nodes, so nothing here is a fixed-width integer.
"""

from __future__ import annotations

from dataclasses import dataclass

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
