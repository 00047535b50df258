"""§4 Reputation: A (from the carried availability state), J, H, T, P, and R from them."""

from __future__ import annotations

import numpy as np

from payouts.epoch import EpochState
from scoring.reputation import (
    compute_availability_np,
    compute_availability_state,
    compute_availability_step_np,
    compute_hardware_score_np,
    compute_jobs_score_np,
    compute_penalty_np,
    compute_reputation_np,
    compute_tenure_np,
)
from scoring.timing import compute_reward_epoch_np


def process_reputation(state: EpochState) -> None:
    cfg, e = state.cfg, state.reward_epoch
    registered = state.registered
    # A: the running form from the previous epoch's state; a registered node with none yet
    # (its first close after registration) runs it from its registration epoch over the
    # recorded uptime ratios (u = 0 where none was recorded)
    num = state.column("prev_num", 0.0, np.float64)
    den = state.column("prev_den", 0.0, np.float64)
    has_state = state.frame["prev_den"].is_not_null().to_numpy() & registered
    registration_epoch = compute_reward_epoch_np(state.registered_at_us, cfg)
    history = state.inputs.uptime_history
    for i in np.flatnonzero(registered & ~has_state):
        num[i], den[i] = compute_availability_state(
            history.get(state.node_id[int(i)], {}), int(registration_epoch[i]), e, cfg)
    state.avail_num, state.avail_den = compute_availability_step_np(num, den, state.uptime_ratio, cfg)
    state.rep_availability = compute_availability_np(state.avail_num, state.avail_den)
    state.jobs_succeeded = state.column("jobs_succeeded", 0, np.int64)
    state.jobs_failed_node = state.column("jobs_failed_node", 0, np.int64)
    state.rep_jobs = compute_jobs_score_np(state.jobs_succeeded, state.jobs_failed_node)
    state.rep_hardware = compute_hardware_score_np(state.hw_verified, state.hw_ratio)
    state.rep_tenure = compute_tenure_np(state.end_us, state.registered_at_us, cfg)
    state.rep_penalty = compute_penalty_np(state.slash_count, cfg)
    state.reputation = compute_reputation_np(state.rep_availability, state.rep_jobs, state.rep_hardware,
                                             state.rep_tenure, state.rep_penalty, cfg)
