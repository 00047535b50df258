"""The pure close of one epoch (ruleset §2–§9): `compute_epoch`, a flat list of steps in the
order of the ruleset's sections, over the inputs the store gathered.

It reads no clock and no store: the batch replay, the live stream, `epoch verify` and the
what-if run all hand it an `EpochInputs` and get the same `EpochResult` for the same inputs.
Per-node arithmetic is vectorised (numpy) through the named twins of the scalar rules of
scoring/, each held to its reference by a differential test; money stays in Python integers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from payouts.epoch import EpochInputs, EpochResult, EpochState
from payouts.steps.allocation import process_allocation
from payouts.steps.eligibility import process_eligibility
from payouts.steps.emission import process_emission_and_pools
from payouts.steps.hardware import process_hardware
from payouts.steps.ledger import process_ledger
from payouts.steps.manifest import process_manifest
from payouts.steps.reputation import process_reputation
from payouts.steps.slashing import process_slashing
from payouts.steps.uptime import process_uptime
from payouts.steps.allocation import get_pool_column
from scoring.eligibility import INELIGIBLE_REASONS
from scoring.hardware import POOL_COMMUNITY, POOL_ENTERPRISE, VERDICT_CODES
from scoring.ruleset import RULESET_V1, RulesetConfig


def compute_epoch(inputs: EpochInputs, cfg: RulesetConfig = RULESET_V1) -> EpochResult:
    state = EpochState.start(inputs, cfg)
    process_uptime(state)
    process_hardware(state)
    process_slashing(state)
    process_reputation(state)
    process_eligibility(state)
    process_emission_and_pools(state)
    process_allocation(state)
    process_ledger(state)
    process_manifest(state)
    return get_epoch_result(state)


# A node not registered by end(e) has reputation, its components and its carried state null (§10).
NULL_UNLESS_REGISTERED = ("reputation", "rep_availability", "rep_jobs", "rep_hardware", "rep_tenure", "rep_penalty",
                          "avail_num", "avail_den", "registered_at_us", "hw_ratio")


def get_scores_frame(s: EpochState) -> pl.DataFrame:
    """The `node_epoch_scores` rows of the epoch (one per scored node, node_id order). Columns
    are made from the arrays directly, their nulls set where they belong (a polars expression
    per column over the frame costs more than the rest of it)."""
    n, cfg = s.n, s.cfg
    unregistered = np.flatnonzero(~s.registered)

    def column(values, dtype, nulls: np.ndarray | None = None) -> pl.Series:
        """The values as a column, null at `nulls` (positions)."""
        series = pl.Series(values, dtype=dtype)
        return series.scatter(nulls, None) if nulls is not None and len(nulls) else series

    def unless_registered(name: str, dtype) -> pl.Series:  # (NULL_UNLESS_REGISTERED)
        return column(getattr(s, name), dtype, unregistered)

    # hw_ratio: the hardware score where the hardware is verified, null elsewhere (and NaN: none)
    hw_ratio = np.where(s.hw_verified, s.rep_hardware, np.nan)
    hw_nulls = np.union1d(unregistered, np.flatnonzero(np.isnan(hw_ratio)))
    return pl.DataFrame({
        "reward_epoch": pl.Series(np.full(n, s.reward_epoch, dtype=np.int64), dtype=pl.Int64),
        "node_id": s.node_id,
        "up_slots": pl.Series(s.up_slots, dtype=pl.Int32),
        "uptime_ratio": pl.Series(s.uptime_ratio, dtype=pl.Float64),
        "streak_slots": pl.Series(s.streak_slots, dtype=pl.Int64),
        "hw_verdict": pl.Series(VERDICT_CODES, dtype=pl.String).gather(s.hw_verdict),
        "reputation": unless_registered("reputation", pl.Int32),
        "rep_availability": unless_registered("rep_availability", pl.Float64),
        "rep_jobs": unless_registered("rep_jobs", pl.Float64),
        "rep_hardware": unless_registered("rep_hardware", pl.Float64),
        "rep_tenure": unless_registered("rep_tenure", pl.Float64),
        "rep_penalty": unless_registered("rep_penalty", pl.Float64),
        "eligible": pl.Series(s.eligible, dtype=pl.Boolean),
        "ineligible_reason": pl.Series((None, *INELIGIBLE_REASONS), dtype=pl.String).gather(s.ineligible_reason),
        "weight": pl.Series(s.weight, dtype=pl.Int64),
        "ruleset_version": pl.Series([cfg.ruleset_version], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
        "slot_bitmap": pl.Series(s.slot_bitmap, dtype=pl.UInt64),
        "streak_prev_up": pl.Series(s.streak_prev_up, dtype=pl.Boolean),
        "avail_num": unless_registered("avail_num", pl.Float64),
        "avail_den": unless_registered("avail_den", pl.Float64),
        "registered_at_us": unless_registered("registered_at_us", pl.Int64),
        "gpu_model_claimed": s.gpu_model_claimed,
        "gpu_model_key": s.gpu_model_key,
        "gpu_count": pl.Series(s.gpu_count, dtype=pl.Int32),
        "pool": get_pool_column(s),
        "multiplier_milli": pl.Series(s.multiplier_milli, dtype=pl.Int32),
        "wallet": s.wallet,
        "hw_ratio": column(hw_ratio, pl.Float64, hw_nulls),
        "benchmark_event_id": s.frame["bench_event_id"],
        "jobs_succeeded": pl.Series(s.jobs_succeeded, dtype=pl.Int64),
        "jobs_failed_node": pl.Series(s.jobs_failed_node, dtype=pl.Int64),
        "slash_count": pl.Series(s.slash_count, dtype=pl.Int32),
        "banned": pl.Series(s.banned, dtype=pl.Boolean),
    })


def get_epoch_result(s: EpochState) -> EpochResult:
    inputs, cfg = s.inputs, s.cfg
    count, digest = inputs.input_event_count, inputs.input_events_digest
    epoch_row = {
        "reward_epoch": s.reward_epoch,
        "emission_base_units": s.emission,
        "enterprise_pool": s.pools[POOL_ENTERPRISE],
        "community_pool": s.pools[POOL_COMMUNITY],
        "allocated_base_units": s.allocated,
        "unallocated_base_units": s.unallocated,
        "eligible_nodes": int(s.eligible.sum()),
        "manifest_sha256": s.manifest_sha256,
        "ruleset_version": cfg.ruleset_version,
        "enterprise_unallocated": s.unallocated_by_pool[POOL_ENTERPRISE],
        "community_unallocated": s.unallocated_by_pool[POOL_COMMUNITY],
        "scored_nodes": s.n,
        "params_sha256": cfg.params_sha256,
        "input_arrival_seq": inputs.input_arrival_seq,
        "input_event_count": count,
        "input_events_sha256": digest,
        "watermark_us": inputs.watermark_us,
        "late_events": inputs.late_events,
    }
    return EpochResult(s.reward_epoch, get_scores_frame(s), s.rewards, epoch_row, s.ledger, s.slashing)
