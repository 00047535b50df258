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
    """The `node_epoch_scores` rows of the epoch (one per scored node, node_id order)."""
    n, cfg = s.n, s.cfg
    scores = pl.DataFrame({
        "reward_epoch": pl.Series([s.reward_epoch] * n, dtype=pl.Int64),
        "node_id": s.node_id,
        "up_slots": pl.Series(s.up_slots, dtype=pl.Int32),
        "uptime_ratio": pl.Series(s.uptime_ratio, dtype=pl.Float64),
        "streak_slots": pl.Series(s.streak_slots, dtype=pl.Int64),
        "hw_verdict": pl.Series(s.hw_verdict, dtype=pl.Int64).replace_strict(
            dict(enumerate(VERDICT_CODES)), return_dtype=pl.String),
        "reputation": pl.Series(s.reputation, dtype=pl.Int32),
        "rep_availability": pl.Series(s.rep_availability, dtype=pl.Float64),
        "rep_jobs": pl.Series(s.rep_jobs, dtype=pl.Float64),
        "rep_hardware": pl.Series(s.rep_hardware, dtype=pl.Float64),
        "rep_tenure": pl.Series(s.rep_tenure, dtype=pl.Float64),
        "rep_penalty": pl.Series(s.rep_penalty, dtype=pl.Float64),
        "eligible": pl.Series(s.eligible, dtype=pl.Boolean),
        "ineligible_reason": pl.Series(s.ineligible_reason, dtype=pl.Int64).replace_strict(
            dict(enumerate((None, *INELIGIBLE_REASONS))), return_dtype=pl.String),
        "weight": pl.Series(s.weight, dtype=pl.Int64),
        "ruleset_version": pl.Series([cfg.ruleset_version] * n, dtype=pl.String),
        "slot_bitmap": pl.Series(s.slot_bitmap, dtype=pl.UInt64),
        "streak_prev_up": pl.Series(s.streak_prev_up, dtype=pl.Boolean),
        "avail_num": pl.Series(s.avail_num, dtype=pl.Float64),
        "avail_den": pl.Series(s.avail_den, dtype=pl.Float64),
        "registered_at_us": pl.Series(s.registered_at_us, dtype=pl.Int64),
        "gpu_model_claimed": s.gpu_model_claimed,
        "gpu_model_key": s.gpu_model_key,
        "gpu_count": pl.Series(s.gpu_count, dtype=pl.Int32),
        "pool": get_pool_column(s),
        "multiplier_milli": pl.Series(s.multiplier_milli, dtype=pl.Int32),
        "wallet": s.wallet,
        "hw_ratio": pl.Series(np.where(s.hw_verified, s.rep_hardware, np.nan), dtype=pl.Float64),
        "benchmark_event_id": s.frame["bench_event_id"],
        "jobs_succeeded": pl.Series(s.jobs_succeeded, dtype=pl.Int64),
        "jobs_failed_node": pl.Series(s.jobs_failed_node, dtype=pl.Int64),
        "slash_count": pl.Series(s.slash_count, dtype=pl.Int32),
        "banned": pl.Series(s.banned, dtype=pl.Boolean),
    })
    registered = pl.Series(s.registered)
    return scores.with_columns(
        [pl.when(registered).then(pl.col(c)).otherwise(None).alias(c) for c in NULL_UNLESS_REGISTERED]
    ).with_columns(pl.col("hw_ratio").fill_nan(None))


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
