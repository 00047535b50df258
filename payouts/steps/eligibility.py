"""§5 Eligibility: the first failing reason of each node, or none."""

from __future__ import annotations


from payouts.epoch import EpochState
from scoring.eligibility import get_ineligible_reason_codes_np


def process_eligibility(state: EpochState) -> None:
    # as codes (0: eligible; else 1 + the reason's index in scoring.eligibility.INELIGIBLE_REASONS)
    state.ineligible_reason = get_ineligible_reason_codes_np(
        state.registered, state.registered_at_us, state.start_us, state.banned, state.hw_verified,
        state.streak_slots, state.up_slots, state.cfg)
    state.eligible = state.ineligible_reason == 0
