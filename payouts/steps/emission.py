"""§6 Emission and pools: the epoch's emission (decimal, 50 digits) split into the
enterprise and community pools."""

from __future__ import annotations

from payouts.emission import compute_emission, compute_pools
from payouts.epoch import EpochState
from scoring.hardware import POOL_COMMUNITY, POOL_ENTERPRISE


def process_emission_and_pools(state: EpochState) -> None:
    state.emission = compute_emission(state.reward_epoch, state.cfg)
    enterprise, community = compute_pools(state.emission, state.cfg)
    state.pools = {POOL_ENTERPRISE: enterprise, POOL_COMMUNITY: community}
