"""§8 Slashing at this close: the decisions it makes and the statuses it settles
(`scoring.slashing.process_slashing`), then each node's count for P and its ban."""

from __future__ import annotations

import numpy as np

from payouts.epoch import EpochState
from scoring import slashing as rules
from scoring.invariants import invariant


def process_slashing(state: EpochState) -> None:
    n = state.n
    state.slash_count = np.zeros(n, dtype=np.int64)
    state.banned = np.zeros(n, dtype=bool)
    inputs = state.inputs.slashing
    if inputs is None:
        return  # nothing known about slashing: no decision, no P, no ban
    invariant(inputs.reward_epoch == state.reward_epoch, "slashing inputs are for this epoch")
    # this epoch's slot bitmaps of the nodes whose jobs are checked (the rules read no other)
    checked = sorted({j.node_id for j in inputs.jobs})
    current = {nid: int(state.slot_bitmap[i]) for nid, i in zip(checked, state.positions(checked)) if i >= 0}
    state.slashing = outcome = rules.process_slashing(inputs, current, state.cfg)
    for per_node, column in ((outcome.slash_count, state.slash_count), (outcome.banned, state.banned)):
        ids = list(per_node)
        at = state.positions(ids)
        known = at >= 0
        column[at[known]] = np.array([per_node[nid] for nid in ids], dtype=column.dtype)[known]
