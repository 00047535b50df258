"""§5 Eligibility: the first failing reason of each node, or none."""

from __future__ import annotations

import numpy as np

from payouts.epoch import EpochState
from scoring.eligibility import get_ineligible_reasons_np


def process_eligibility(state: EpochState) -> None:
    state.ineligible_reason = get_ineligible_reasons_np(
        state.registered, state.registered_at_us, state.start_us, state.banned, state.hw_verified,
        state.streak_slots, state.up_slots, state.cfg)
    state.eligible = np.equal(state.ineligible_reason, None)
