"""The epoch run (ruleset §9): gate, gather, compute, write in one transaction, manifest.

    close_ready_epochs   closes, in order, every epoch the ping watermark has passed
    close_epoch          one epoch: gather_epoch_inputs → compute_epoch → write_epoch
    compute_epoch        pure: the rules of scoring/ and payouts/ over the gathered inputs

`compute_epoch` is the one place where the rules meet for an epoch: the batch replay and the
live stream both hand it an `EpochInputs` and write what it returns, so the two paths cannot
disagree. It reads no clock and no store. Per-node arithmetic is vectorised (numpy) where
scale demands, through the vectorised forms of the rules that are held to the scalar
reference functions by differential tests; money stays in Python integers.

Slashing (§8) runs inside the same pure step: `gather_slash_inputs` hands `compute_epoch` the
decisions made by earlier closes and the jobs and benchmarks to check now, and
`scoring.slashing.process_slashing` returns this close's decisions, the statuses it settles, and
the `P` count and ban of every node; the decisions, their status changes and the stake ledger
entries are written in the epoch's transaction.

Inputs of a close (§9): the archived events whose `arrival_seq` is at most the epoch's
`input_arrival_seq` (everything that had arrived when it closed). The recorded figures of
earlier epochs (up slots, uptime ratio, streak, availability state) are what later epochs
build on; a late ping never changes them.
"""

from __future__ import annotations

import bisect
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import polars as pl

from payouts.allocation import allocate_pool
from payouts.emission import compute_emission, compute_pools
from payouts.manifest import compute_manifest_sha256
from scoring import eligibility as elig
from scoring.hardware import (
    MODELS_BY_KEY,
    POOL_COMMUNITY,
    POOL_ENTERPRISE,
    VERDICT_NONE,
    VERDICT_STALE,
    VERDICT_VERIFIED,
    compute_hw_verdicts_np,
    get_model,
)
from scoring.invariants import invariant
from scoring.reputation import (
    compute_availability_step,
    compute_jobs_score,
    compute_penalty,
    compute_reputation_np,
    compute_tenure_np,
)
from epochal.store import fetch_polars
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.events import time_to_us
from scoring.slashing import (
    STATUS_FINAL,
    BenchmarkFacts,
    Decision,
    JobFacts,
    RegistrationFacts,
    SlashInputs,
    SlashOutcome,
    compute_job_check_epoch,
    compute_window_epochs,
    process_slashing,
)
from scoring.timing import get_epoch_end_us, get_epoch_start_us
from scoring.uptime import compute_streak_states_np

ACCOUNT_EMISSION = "treasury:emission"
ACCOUNT_POOL = "pool:{pool}"
ACCOUNT_REWARDS = "node:{node_id}:rewards"
ACCOUNT_UNALLOCATED = "treasury:unallocated"
# Stake (§8): a node's stake account holds its declared deposit less its final slashes (never
# below 0); deposits come from and withdrawals go to the outside world; final slashes go to the
# slashed-stake treasury.
ACCOUNT_STAKE = "node:{node_id}:stake"
ACCOUNT_STAKE_EXTERNAL = "external:stake_deposits"
ACCOUNT_SLASHED = "treasury:slashed"


@dataclass
class EpochInputs:
    """Everything a close reads, per node, as one frame (one row per scored node)."""

    reward_epoch: int
    first_reward_epoch: int
    input_arrival_seq: int
    # both may be given as a `Future` of (count, digest) while the store still computes them
    input_event_count: int
    input_events_digest: str
    watermark_us: int
    late_events: int
    # columns: node_id, slot_bitmap (u64), active (bool), registered_at_us, wallet, gpu_model,
    # claimed_gpu_count, bench_event_id, bench_at_us, fp32_tflops, mem_bandwidth_gbps, vram_gb,
    # found_gpu_count, jobs_succeeded, jobs_failed_node, prev_streak, prev_up, prev_num, prev_den,
    # has_prev, slash_count, banned
    nodes: pl.DataFrame
    # for nodes registered before this epoch with no availability state yet: node_id → {epoch: u}
    uptime_history: dict[str, dict[int, float]] = field(default_factory=dict)
    # §8: candidates and state for slashing; None leaves slash_count / banned as in `nodes`
    slashing: SlashInputs | None = None
    # the stake ledger before this close: node_id → balance of its stake account
    stake_balances: dict[str, int] = field(default_factory=dict)
    # the same, vectorised (what the store gathers): node_id, deposit_base_units (declared at
    # end(e)), balance_base_units; when set, it replaces stake_balances and the deposits that
    # `slashing.stake_events` would give (those then need only cover the nodes decided on)
    stake: pl.DataFrame | None = None


@dataclass
class EpochResult:
    reward_epoch: int
    scores: pl.DataFrame
    rewards: list[tuple[int, str, str, int, str]]  # (reward_epoch, node_id, pool, amount, wallet)
    epoch_row: dict
    # ledger_entries rows: entry_id, debit_account, credit_account, amount_base_units, reward_epoch, ref
    ledger: pl.DataFrame
    slashing: SlashOutcome | None = None


# ----------------------------------------------------------------------------------------
# pure computation
# ----------------------------------------------------------------------------------------

def compute_availability_from_history(
    registered_epoch: int, reward_epoch: int, history: dict[int, float], cfg: RulesetConfig = RULESET_V1
) -> tuple[float, float]:
    """(num, den) after epochs registered_epoch .. reward_epoch − 1, u = 0 where none recorded."""
    num, den = 0.0, 0.0
    for k in range(registered_epoch, reward_epoch):
        num, den = compute_availability_step(num, den, history.get(k, 0.0), cfg)
    return num, den


def compute_epoch(inputs: EpochInputs, cfg: RulesetConfig = RULESET_V1) -> EpochResult:
    e = inputs.reward_epoch
    input_event_count, input_events_digest = inputs.input_event_count, inputs.input_events_digest
    start_us, end_us = get_epoch_start_us(e, cfg), get_epoch_end_us(e, cfg)
    df = inputs.nodes.sort("node_id")
    n = df.height
    node_ids = df["node_id"].to_list()

    # §2 up slots and streak
    bitmaps = df["slot_bitmap"].cast(pl.UInt64).to_numpy()  # DuckDB's UBIGINT may arrive as a decimal
    up_slots = np.bitwise_count(bitmaps).astype(np.int64)
    uptime_ratio = up_slots / float(cfg.slots_per_epoch)
    prev_streak = df["prev_streak"].fill_null(0).to_numpy().astype(np.int64)
    prev_up = df["prev_up"].fill_null(False).to_numpy().astype(bool)
    streak, last_up = compute_streak_states_np(prev_streak, prev_up, bitmaps, cfg)

    # registration (§10: the first one stands); "registered by end(e)" is registered_at < end(e)
    reg_at = df["registered_at_us"].to_numpy()
    registered = ~df["registered_at_us"].is_null().to_numpy()
    reg_at_i = np.where(registered, df["registered_at_us"].fill_null(0).to_numpy(), 0).astype(np.int64)
    claimed = df["gpu_model"].to_list()
    model_of = {c: get_model(c) for c in set(claimed)}  # normalise each distinct claim once
    model_keys = [m.model_key if m is not None else None for m in map(model_of.__getitem__, claimed)]
    claimed_count = df["claimed_gpu_count"].fill_null(0).to_numpy().astype(np.int64)

    # §3 hardware: verdict of the latest benchmark against the claim, fresh or stale
    has_bench = ~df["bench_event_id"].is_null().to_numpy()
    verdicts, ratios = compute_hw_verdicts_np(
        model_keys,
        claimed_count,
        df["fp32_tflops"].fill_null(0.0).to_numpy(),
        df["mem_bandwidth_gbps"].fill_null(0.0).to_numpy(),
        df["vram_gb"].fill_null(0.0).to_numpy(),
        df["found_gpu_count"].fill_null(0).to_numpy(),
        cfg,
    )
    bench_at = df["bench_at_us"].fill_null(0).to_numpy().astype(np.int64)
    fresh = has_bench & ((end_us - bench_at) <= cfg.hw_freshness_s * 1_000_000)
    hw_col = np.where(~has_bench, VERDICT_NONE, np.where(fresh, verdicts, VERDICT_STALE))
    hw_verified = hw_col == VERDICT_VERIFIED
    H = np.where(hw_verified, np.nan_to_num(ratios, nan=0.0), 0.0)

    # §4 availability: running form from the previous epoch's state, or from the history
    has_state = df["prev_den"].is_not_null().to_numpy() & registered
    num = df["prev_num"].fill_null(0.0).to_numpy().astype(np.float64)
    den = df["prev_den"].fill_null(0.0).to_numpy().astype(np.float64)
    reg_epoch = np.where(registered, (reg_at_i - cfg.genesis_us) // cfg.reward_epoch_us, e)
    for i in np.flatnonzero(registered & ~has_state):
        num[i], den[i] = compute_availability_from_history(
            int(reg_epoch[i]), e, inputs.uptime_history.get(node_ids[i], {}), cfg
        )
    d = cfg.availability_decay
    num = d * num + uptime_ratio
    den = d * den + 1.0
    A = num / den

    s = df["jobs_succeeded"].fill_null(0).to_numpy().astype(np.int64)
    f = df["jobs_failed_node"].fill_null(0).to_numpy().astype(np.int64)
    J = (s + 1) / (s + f + 2)
    invariant(all(J[i] == compute_jobs_score(int(s[i]), int(f[i])) for i in range(min(n, 3))),
              "vectorised J equals the scalar rule")
    T = compute_tenure_np(end_us, reg_at_i, cfg)
    # §8 slashing: decisions of this close, statuses, and P's count and the ban per node
    slash_count = df["slash_count"].fill_null(0).to_numpy().astype(np.int64)
    banned = df["banned"].fill_null(False).to_numpy().astype(bool)
    outcome = None
    if inputs.slashing is not None:
        invariant(inputs.slashing.reward_epoch == e, "slashing inputs are for this epoch")
        # the current bitmaps of the nodes whose jobs are checked (the rules read no other)
        job_nodes = {j.node_id for j in inputs.slashing.jobs}
        current = {node_ids[i]: int(bitmaps[i]) for i in _positions(node_ids, job_nodes)}
        outcome = process_slashing(inputs.slashing, current, cfg)
        slash_count = np.zeros(n, dtype=np.int64)
        banned = np.zeros(n, dtype=bool)
        for nid, i in zip(outcome.slash_count, _positions(node_ids, outcome.slash_count, keep_missing=True)):
            if i is not None:
                slash_count[i] = outcome.slash_count[nid]
        for nid, i in zip(outcome.banned, _positions(node_ids, outcome.banned, keep_missing=True)):
            if i is not None:
                banned[i] = outcome.banned[nid]
    # P per distinct count, by the scalar rule
    counts, count_index = np.unique(slash_count, return_inverse=True)
    P = np.array([compute_penalty(int(c), cfg) for c in counts], dtype=np.float64)[count_index.reshape(-1)] \
        if n else np.zeros(0)
    R = compute_reputation_np(A, J, H, T, P, cfg)

    # §5 eligibility, first failing reason
    registered_before_start = registered & (reg_at_i < start_us)
    reason = np.select(
        [~registered_before_start, banned, ~hw_verified, streak < cfg.min_streak_slots,
         up_slots < cfg.min_up_slots],
        [elig.NOT_REGISTERED, elig.BANNED, elig.HARDWARE_UNVERIFIED, elig.STREAK_SHORT, elig.NO_UPTIME],
        default="",
    )
    eligible = reason == ""

    # §6 / §7 weights, pools, allocation (Python integers)
    mult_of = {k: MODELS_BY_KEY[k].multiplier_milli if k is not None else 0 for k in set(model_keys)}
    pool_of = {k: MODELS_BY_KEY[k].gpu_class if k is not None else None for k in set(model_keys)}
    mult = np.fromiter(map(mult_of.__getitem__, model_keys), dtype=np.int64, count=n)
    pools = np.array(list(map(pool_of.__getitem__, model_keys)), dtype=object)
    weight = np.where(eligible, up_slots * mult * claimed_count * R, 0).astype(np.int64)
    emission = compute_emission(e, cfg)
    enterprise_pool, community_pool = compute_pools(emission, cfg)
    wallets = df["wallet"].to_list()
    allocations = {}
    amounts = np.zeros(n, dtype=np.int64)
    eligible_idx = np.flatnonzero(eligible)
    for pool_name, pool_amount in ((POOL_ENTERPRISE, enterprise_pool), (POOL_COMMUNITY, community_pool)):
        idx = eligible_idx[pools[eligible_idx] == pool_name]
        ids = [node_ids[i] for i in idx]
        alloc = allocate_pool(pool_amount, dict(zip(ids, weight[idx].tolist())))
        allocations[pool_name] = alloc
        invariant(len(alloc.shares) == len(ids), "one share per weighted node")
        amounts[idx] = np.fromiter(map(alloc.shares.__getitem__, ids), dtype=np.int64, count=len(ids))
    invariant(bool((amounts >= 0).all()), "every share is >= 0")
    # node_ids are in byte order (polars sorts strings by their UTF-8 bytes), so are the rewards
    paid = np.flatnonzero(amounts > 0)
    rewards: list[tuple[int, str, str, int, str]] = [
        (e, node_ids[i], pools[i], a, wallets[i]) for i, a in zip(paid.tolist(), amounts[paid].tolist())]
    invariant(all(rewards[k][1].encode() < rewards[k + 1][1].encode() for k in range(min(len(rewards), 64) - 1)),
              "rewards are in node_id byte order")
    allocated = sum(r[3] for r in rewards)
    unallocated = sum(a.unallocated_base_units for a in allocations.values())
    invariant(allocated + unallocated == emission, f"Σ shares + unallocated == emission in epoch {e}")

    manifest = compute_manifest_sha256(rewards)
    scores = pl.DataFrame(
        {
            "reward_epoch": pl.Series([e] * n, dtype=pl.Int64),
            "node_id": pl.Series(node_ids, dtype=pl.String),
            "up_slots": pl.Series(up_slots, dtype=pl.Int32),
            "uptime_ratio": pl.Series(uptime_ratio, dtype=pl.Float64),
            "streak_slots": pl.Series(streak, dtype=pl.Int64),
            "hw_verdict": pl.Series(hw_col, dtype=pl.String),
            "reputation": pl.Series(np.where(registered, R, 0), dtype=pl.Int32),
            "rep_availability": pl.Series(A, dtype=pl.Float64),
            "rep_jobs": pl.Series(J, dtype=pl.Float64),
            "rep_hardware": pl.Series(H, dtype=pl.Float64),
            "rep_tenure": pl.Series(T, dtype=pl.Float64),
            "rep_penalty": pl.Series(P, dtype=pl.Float64),
            "eligible": pl.Series(eligible, dtype=pl.Boolean),
            "ineligible_reason": pl.Series(reason, dtype=pl.String).replace("", None),
            "weight": pl.Series(weight, dtype=pl.Int64),
            "ruleset_version": pl.Series([cfg.ruleset_version] * n, dtype=pl.String),
            "slot_bitmap": pl.Series(bitmaps, dtype=pl.UInt64),
            "streak_prev_up": pl.Series(last_up, dtype=pl.Boolean),
            "avail_num": pl.Series(num, dtype=pl.Float64),
            "avail_den": pl.Series(den, dtype=pl.Float64),
            "registered_at_us": pl.Series(np.where(registered, reg_at_i, 0), dtype=pl.Int64),
            "gpu_model_claimed": pl.Series(claimed, dtype=pl.String),
            "gpu_model_key": pl.Series(model_keys, dtype=pl.String),
            "gpu_count": pl.Series(claimed_count, dtype=pl.Int32),
            "pool": pl.Series(pools.tolist(), dtype=pl.String),
            "multiplier_milli": pl.Series(mult, dtype=pl.Int32),
            "wallet": pl.Series(wallets, dtype=pl.String),
            "hw_ratio": pl.Series(np.where(hw_verified, H, np.nan), dtype=pl.Float64),
            "benchmark_event_id": df["bench_event_id"],
            "jobs_succeeded": pl.Series(s, dtype=pl.Int64),
            "jobs_failed_node": pl.Series(f, dtype=pl.Int64),
            "slash_count": pl.Series(slash_count, dtype=pl.Int32),
            "banned": pl.Series(banned, dtype=pl.Boolean),
        }
    )
    # A node not registered by end(e) has reputation, its components and state null (§10).
    null_if_unregistered = ["reputation", "rep_availability", "rep_jobs", "rep_hardware", "rep_tenure",
                            "rep_penalty", "avail_num", "avail_den", "registered_at_us", "hw_ratio"]
    reg_series = pl.Series(registered)
    scores = scores.with_columns(
        [pl.when(reg_series).then(pl.col(c)).otherwise(None).alias(c) for c in null_if_unregistered]
    ).with_columns(pl.col("hw_ratio").fill_nan(None))

    epoch_row = {
        "reward_epoch": e,
        "emission_base_units": emission,
        "enterprise_pool": enterprise_pool,
        "community_pool": community_pool,
        "allocated_base_units": allocated,
        "unallocated_base_units": unallocated,
        "eligible_nodes": int(eligible.sum()),
        "manifest_sha256": manifest,
        "ruleset_version": cfg.ruleset_version,
        "enterprise_unallocated": allocations[POOL_ENTERPRISE].unallocated_base_units,
        "community_unallocated": allocations[POOL_COMMUNITY].unallocated_base_units,
        "scored_nodes": n,
        "params_sha256": cfg.params_sha256,
        "input_arrival_seq": inputs.input_arrival_seq,
        "input_event_count": input_event_count,
        "input_events_sha256": input_events_digest,
        "watermark_us": inputs.watermark_us,
        "late_events": inputs.late_events,
    }
    parts = [compute_ledger_parts(enterprise_pool, community_pool, node_ids, pools, amounts, paid, allocations)]
    if outcome is not None:
        if inputs.stake is not None:
            parts.append(compute_stake_ledger_parts(e, inputs.stake, outcome, cfg))
        else:
            parts.append(ledger_parts_from_entries(
                compute_stake_ledger_entries(e, inputs.slashing, outcome, inputs.stake_balances, cfg)))
    ledger = compute_ledger_frame(e, pl.concat(parts))
    if isinstance(input_events_digest, Future):  # the store's digest of the inputs, computed meanwhile
        input_event_count, input_events_digest = input_events_digest.result()
        epoch_row["input_event_count"], epoch_row["input_events_sha256"] = input_event_count, input_events_digest
    return EpochResult(e, scores, rewards, epoch_row, ledger, outcome)


def _positions(node_ids: list[str], wanted, keep_missing: bool = False) -> list:
    """Indexes in the sorted `node_ids` of the ids in `wanted` (in its order); a missing one is
    skipped, or None with keep_missing."""
    out = []
    for nid in wanted:
        i = bisect.bisect_left(node_ids, nid)
        found = i < len(node_ids) and node_ids[i] == nid
        if found or keep_missing:
            out.append(i if found else None)
    return out


LEDGER_PARTS_SCHEMA = {"kind": pl.String, "subject": pl.String, "debit_account": pl.String,
                       "credit_account": pl.String, "amount_base_units": pl.Int64}


def compute_ledger_frame(e: int, parts: pl.DataFrame) -> pl.DataFrame:
    """The ledger rows of (kind, subject, debit, credit, amount) entries, in their order:
    entry_id = sha256("<e>|<kind>|<subject>") in lower-case hex, ref = "reward_epoch:<e>:<kind>:<subject>".

    The hashing runs in DuckDB (an in-memory database, no store): at 10⁶ entries Python's
    hashlib costs seconds. `tests/property` holds it to hashlib."""
    with _HASHER_LOCK:
        mem = _hasher()
        mem.register("parts", parts)
        try:
            out = mem.sql("""
                SELECT sha256(CAST($e AS VARCHAR) || '|' || kind || '|' || subject) AS entry_id,
                       debit_account, credit_account, amount_base_units, $e::BIGINT AS reward_epoch,
                       'reward_epoch:' || CAST($e AS VARCHAR) || ':' || kind || ':' || subject AS ref
                FROM parts
            """, params={"e": e}).to_arrow_table()
        finally:
            mem.unregister("parts")
    return pl.from_arrow(out)


_HASHER_LOCK = __import__("threading").Lock()
_HASHER: list = []


def _hasher():
    """One in-memory DuckDB for hashing, made once: opening one costs ~20 ms, more than a small
    epoch's whole ledger."""
    if not _HASHER:
        import duckdb

        _HASHER.append(duckdb.connect())
    return _HASHER[0]


def ledger_parts_from_entries(entries) -> pl.DataFrame:
    """(kind, subject, …) parts of ledger tuples written by the scalar functions below."""
    rows = []
    for entry_id, debit, credit, amount, e, ref in entries:
        _, _, kind, subject = ref.split(":", 3)
        rows.append((kind, subject, debit, credit, amount))
    return pl.DataFrame(rows, orient="row", schema=LEDGER_PARTS_SCHEMA)


def compute_ledger_parts(enterprise_pool, community_pool, node_ids, pools, amounts, paid, allocations) -> pl.DataFrame:
    """`compute_ledger_entries` as columns (its reference): fund, reward per paid node (node_id byte
    order), unallocated per pool."""
    fund = [("fund", pool_name, ACCOUNT_EMISSION, ACCOUNT_POOL.format(pool=pool_name), amount)
            for pool_name, amount in ((POOL_ENTERPRISE, enterprise_pool), (POOL_COMMUNITY, community_pool))]
    unalloc = [("unallocated", pool_name, ACCOUNT_POOL.format(pool=pool_name), ACCOUNT_UNALLOCATED,
                alloc.unallocated_base_units)
               for pool_name, alloc in allocations.items() if alloc.unallocated_base_units]
    ids = pl.Series("subject", [node_ids[i] for i in paid.tolist()], dtype=pl.String)
    reward = pl.DataFrame({
        "kind": pl.Series(["reward"] * len(paid), dtype=pl.String),
        "subject": ids,
        "debit_account": pl.Series(pools[paid].tolist(), dtype=pl.String),
        "amount_base_units": pl.Series(amounts[paid], dtype=pl.Int64),
    }).select(
        "kind", "subject", ("pool:" + pl.col("debit_account")).alias("debit_account"),
        ("node:" + pl.col("subject") + ":rewards").alias("credit_account"), "amount_base_units")
    return pl.concat([pl.DataFrame(fund, orient="row", schema=LEDGER_PARTS_SCHEMA), reward,
                      pl.DataFrame(unalloc, orient="row", schema=LEDGER_PARTS_SCHEMA)])


def _slash_totals(outcome: SlashOutcome) -> tuple[dict[str, int], list, dict[str, int]]:
    """Per node, the amount of every final decision so far; the decisions finalised at this
    close (by decision_id); per node, the amount those move now."""
    final_total: dict[str, int] = {}
    for d in outcome.decisions:
        if d.status == STATUS_FINAL:
            final_total[d.node_id] = final_total.get(d.node_id, 0) + d.amount_base_units
    finalized = sorted(outcome.finalized, key=lambda d: d.decision_id)
    slashed_now: dict[str, int] = {}
    for d in finalized:
        slashed_now[d.node_id] = slashed_now.get(d.node_id, 0) + d.amount_base_units
    return final_total, finalized, slashed_now


def compute_stake_ledger_parts(e: int, stake: pl.DataFrame, outcome: SlashOutcome,
                               cfg: RulesetConfig = RULESET_V1) -> pl.DataFrame:
    """`compute_stake_ledger_entries` (the reference) over columns: `stake` holds per node the
    declared deposit at end(e) and the balance before this close; the decisions are few and stay
    in Python. Same entries, same order (deposits / withdrawals by node_id, then slashes by
    decision_id)."""
    final_total, finalized, slashed_now = _slash_totals(outcome)
    keys = sorted(set(final_total) | set(slashed_now))
    adj = pl.DataFrame({"node_id": keys, "final_total": [final_total.get(k, 0) for k in keys],
                        "slashed_now": [slashed_now.get(k, 0) for k in keys]},
                       schema={"node_id": pl.String, "final_total": pl.Int64, "slashed_now": pl.Int64})
    f = (stake.select("node_id", "deposit_base_units", "balance_base_units")
         .join(adj, on="node_id", how="full", coalesce=True)
         .with_columns(pl.col("deposit_base_units", "balance_base_units", "final_total", "slashed_now").fill_null(0))
         .with_columns(pl.max_horizontal(pl.lit(0, pl.Int64),
                                         pl.col("deposit_base_units") - pl.col("final_total")).alias("target"))
         .with_columns((pl.col("target") + pl.col("slashed_now") - pl.col("balance_base_units")).alias("delta")))
    bad = f.filter((pl.col("balance_base_units") + pl.col("delta") - pl.col("slashed_now") != pl.col("target"))
                   | (pl.col("target") < 0))
    invariant(bad.height == 0, f"stake of {bad['node_id'][0] if bad.height else ''} stays >= 0 in epoch {e}")
    moves = (f.filter(pl.col("delta") != 0).sort("node_id")
             .select(pl.when(pl.col("delta") > 0).then(pl.lit("stake_deposit")).otherwise(pl.lit("stake_withdrawal"))
                     .alias("kind"),
                     pl.col("node_id").alias("subject"),
                     pl.when(pl.col("delta") > 0).then(pl.lit(ACCOUNT_STAKE_EXTERNAL))
                     .otherwise("node:" + pl.col("node_id") + ":stake").alias("debit_account"),
                     pl.when(pl.col("delta") > 0).then("node:" + pl.col("node_id") + ":stake")
                     .otherwise(pl.lit(ACCOUNT_STAKE_EXTERNAL)).alias("credit_account"),
                     pl.col("delta").abs().alias("amount_base_units")))
    slashes = pl.DataFrame(
        [("slash", d.decision_id, ACCOUNT_STAKE.format(node_id=d.node_id), ACCOUNT_SLASHED, d.amount_base_units)
         for d in finalized if d.amount_base_units > 0], orient="row", schema=LEDGER_PARTS_SCHEMA)
    return pl.concat([moves.cast(LEDGER_PARTS_SCHEMA), slashes])


def compute_ledger_entries(e, enterprise_pool, community_pool, rewards, allocations):
    """Double entry: emission funds the two pools, each pool pays its rewards and the rest
    goes to the unallocated account, so every pool account nets to zero per epoch."""
    entries = []

    def entry(kind: str, subject: str, debit: str, credit: str, amount: int) -> None:
        entry_id = hashlib.sha256(f"{e}|{kind}|{subject}".encode()).hexdigest()
        entries.append((entry_id, debit, credit, int(amount), e, f"reward_epoch:{e}:{kind}:{subject}"))

    for pool_name, amount in ((POOL_ENTERPRISE, enterprise_pool), (POOL_COMMUNITY, community_pool)):
        entry("fund", pool_name, ACCOUNT_EMISSION, ACCOUNT_POOL.format(pool=pool_name), amount)
    for _, node_id, pool_name, amount, _ in rewards:
        entry("reward", node_id, ACCOUNT_POOL.format(pool=pool_name), ACCOUNT_REWARDS.format(node_id=node_id), amount)
    for pool_name, alloc in allocations.items():
        if alloc.unallocated_base_units:
            entry("unallocated", pool_name, ACCOUNT_POOL.format(pool=pool_name), ACCOUNT_UNALLOCATED,
                  alloc.unallocated_base_units)
    return entries


def compute_stake_ledger_entries(e: int, slashing: SlashInputs, outcome: SlashOutcome,
                                 balances: dict[str, int], cfg: RulesetConfig = RULESET_V1):
    """Double entry for stake (§8): only final slashes move stake.

    Each node's stake account is brought to its target at end(e),
        target = max(0, deposit(end(e)) − Σ final slash amounts)
    by one deposit (from `external:stake_deposits`) or withdrawal entry, then each slash that
    became final at this close moves its amount from the node's stake to `treasury:slashed`.
    The deposit entry is sized so that the account holds target + the slashes of this close
    before they leave it: no stake account is ever below 0, between or after the entries."""
    end_us = get_epoch_end_us(e, cfg)
    final_total, finalized, slashed_now = _slash_totals(outcome)
    entries = []

    def entry(kind: str, subject: str, debit: str, credit: str, amount: int) -> None:
        entry_id = hashlib.sha256(f"{e}|{kind}|{subject}".encode()).hexdigest()
        entries.append((entry_id, debit, credit, int(amount), e, f"reward_epoch:{e}:{kind}:{subject}"))

    for node_id in sorted(set(slashing.stake_events) | set(balances) | set(final_total), key=str.encode):
        deposit = compute_stake_deposit_before(slashing.stake_events.get(node_id, ()), end_us)
        target = max(0, deposit - final_total.get(node_id, 0))
        before = balances.get(node_id, 0)
        now = slashed_now.get(node_id, 0)
        delta = target + now - before
        account = ACCOUNT_STAKE.format(node_id=node_id)
        if delta > 0:
            entry("stake_deposit", node_id, ACCOUNT_STAKE_EXTERNAL, account, delta)
        elif delta < 0:
            entry("stake_withdrawal", node_id, account, ACCOUNT_STAKE_EXTERNAL, -delta)
        invariant(before + delta - now == target >= 0, f"stake of {node_id} stays >= 0 in epoch {e}")
    for d in finalized:
        if d.amount_base_units > 0:
            entry("slash", d.decision_id, ACCOUNT_STAKE.format(node_id=d.node_id), ACCOUNT_SLASHED,
                  d.amount_base_units)
    return entries


def compute_stake_deposit_before(stake_events, end_us: int) -> int:
    """The declared deposit at end(e): the latest stake event with occurred_at < end(e)."""
    from scoring.slashing import compute_stake_deposit

    return compute_stake_deposit(stake_events, end_us - 1)


# ----------------------------------------------------------------------------------------
# the store side: gather inputs, write results
# ----------------------------------------------------------------------------------------

def get_watermark_us(con, cfg: RulesetConfig = RULESET_V1) -> int | None:
    """Highest accepted ping time minus the allowed lateness (§10 Watermark)."""
    row = con.execute("SELECT max(occurred_at_us) FROM archive_pings").fetchone()
    return None if row[0] is None else row[0] - cfg.allowed_lateness_s * 1_000_000


def get_first_reward_epoch(con, cfg: RulesetConfig = RULESET_V1) -> int | None:
    if cfg.first_reward_epoch is not None:
        return cfg.first_reward_epoch
    from epochal.store import get_meta

    stored = get_meta(con, "first_reward_epoch")
    if stored is not None:
        return int(stored)
    row = con.execute(
        "SELECT least((SELECT min(occurred_at_us) FROM archive_pings),"
        " (SELECT min(occurred_at_us) FROM archive_events WHERE event_type <> 'ping.batch'))"
    ).fetchone()
    if row[0] is None:
        return None
    return (row[0] - cfg.genesis_us) // cfg.reward_epoch_us


def create_close_tables(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1,
                        only_nodes: str | None = None) -> None:
    """The temp tables a close reads its registrations and benchmarks from, payloads parsed once.

    close_reg    the first `node.registered` per node by (occurred_at, event_id) among those arrived
                 (§10: the first one stands); the close of e uses it when it occurred before end(e),
                 which is exactly the first among those that did
    close_bench  every benchmark arrived, its figures and fingerprints extracted (the close reads the
                 latest before end(e) per node, §8 reads them all)
    slash_bench_fp  (event_id, fingerprint) of close_bench

    They depend on the inputs cutoff only, not on the epoch: a pass of `close_ready_epochs`
    builds them once for all the epochs it closes (`tables_ready`).

    `only_nodes` names a relation with a node_id column: the tables then hold those nodes only
    (the live stream judges the benchmarks of a few nodes with them).
    """
    p = {"cutoff": cutoff_seq}
    nodes = f" AND node_id IN (SELECT node_id FROM {only_nodes})" if only_nodes else ""
    # the first by (occurred_at, event_id), then its row (event ids are unique in the archive)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE close_reg AS
        WITH first AS (
            SELECT node_id, arg_min(event_id, (occurred_at_us, event_id)) AS event_id,
                   min(occurred_at_us) AS registered_at_us
            FROM archive_events WHERE event_type = 'node.registered' AND arrival_seq <= $cutoff{nodes}
            GROUP BY node_id
        )
        SELECT node_id, event_id, arrival_seq, registered_at_us,
               x[1] AS wallet, x[2] AS gpu_model, x[3]::BIGINT AS gpu_count
        FROM (
            SELECT a.node_id, a.event_id, a.arrival_seq, a.occurred_at_us AS registered_at_us,
                   json_extract_string(a.payload, ['$.wallet', '$.gpu_model', '$.gpu_count']) AS x
            FROM first f JOIN archive_events a
              ON a.event_id = f.event_id AND a.node_id = f.node_id AND a.occurred_at_us = f.registered_at_us
            WHERE a.event_type = 'node.registered' AND a.arrival_seq <= $cutoff)
    """, p)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE close_bench AS
        SELECT event_id, node_id, occurred_at_us, arrival_seq,
               x[1]::DOUBLE AS fp32_tflops, x[2]::DOUBLE AS mem_bandwidth_gbps, x[3]::DOUBLE AS vram_gb,
               x[4]::BIGINT AS gpu_count, fps
        FROM (
            SELECT event_id, node_id, occurred_at_us, arrival_seq,
                   json_extract_string(payload, ['$.fp32_tflops', '$.mem_bandwidth_gbps', '$.vram_gb',
                                                 '$.gpu_count']) AS x,
                   json_extract_string(payload, '$.gpu_fingerprints[*]') AS fps
            FROM archive_events WHERE event_type = 'benchmark' AND arrival_seq <= $cutoff{nodes})
    """, p)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE slash_bench_fp AS
        SELECT DISTINCT event_id, unnest(fps) AS fp FROM close_bench
    """)


def get_archive_figures(con, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> tuple[int, int | None]:
    """(late events, watermark) of the archive as it stood at `cutoff_seq`: the same for every
    epoch closed in one pass, so a pass reads them once."""
    late = con.execute("""
        SELECT (SELECT count(*) FROM archive_pings WHERE late AND arrival_seq <= $cutoff)
             + (SELECT count(*) FROM archive_events WHERE late AND arrival_seq <= $cutoff)
    """, {"cutoff": cutoff_seq}).fetchall()[0][0]
    wm = con.execute("SELECT max(occurred_at_us) FROM archive_pings WHERE arrival_seq <= $cutoff",
                     {"cutoff": cutoff_seq}).fetchall()[0][0]
    return int(late), (None if wm is None else wm - cfg.allowed_lateness_s * 1_000_000)


def gather_epoch_inputs(con, e: int, cutoff_seq: int, first_epoch: int,
                        cfg: RulesetConfig = RULESET_V1,
                        archive_figures: tuple[int, int | None] | None = None,
                        tables_ready: bool = False) -> EpochInputs:
    """`tables_ready`: the caller has just built `create_close_tables` for this cutoff."""
    start_us, end_us = get_epoch_start_us(e, cfg), get_epoch_end_us(e, cfg)
    params = {"e": e, "cutoff": cutoff_seq, "end": end_us}
    if not tables_ready:
        create_close_tables(con, e, cutoff_seq, cfg)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE close_nodes AS
        WITH pings AS (
            SELECT node_id,
                   bit_or(CASE WHEN reachable THEN (1::UBIGINT << slot::INTEGER) ELSE 0::UBIGINT END) AS slot_bitmap
            FROM archive_pings WHERE reward_epoch = $e AND arrival_seq <= $cutoff
            GROUP BY node_id
        ), active_events AS (
            SELECT DISTINCT node_id FROM archive_events
            WHERE reward_epoch = $e AND arrival_seq <= $cutoff AND event_type <> 'ping.batch'
        ), reg AS (
            SELECT * FROM close_reg WHERE registered_at_us < $end
        ), latest AS (
            SELECT node_id, arg_max(event_id, (occurred_at_us, event_id)) AS event_id
            FROM close_bench WHERE occurred_at_us < $end
            GROUP BY node_id
        ), bench AS (
            SELECT b.node_id, b.occurred_at_us AS bench_at_us, b.event_id AS bench_event_id, b.fp32_tflops,
                   b.mem_bandwidth_gbps, b.vram_gb, b.gpu_count AS found_gpu_count
            FROM latest JOIN close_bench b USING (node_id, event_id)
        ), first_jobs AS (
            SELECT arg_min(node_id, (occurred_at_us, event_id)) AS node_id,
                   arg_min(payload ->> '$.status', (occurred_at_us, event_id)) AS status
            FROM archive_events
            WHERE event_type = 'job.completed' AND occurred_at_us < $end AND arrival_seq <= $cutoff
            GROUP BY payload ->> '$.job_id'
        ), jobs AS (
            SELECT node_id, count(*) FILTER (status = 'succeeded') AS jobs_succeeded,
                   count(*) FILTER (status = 'failed_node') AS jobs_failed_node
            FROM first_jobs GROUP BY node_id
        ), prev AS (
            SELECT node_id, streak_slots AS prev_streak, streak_prev_up AS prev_up,
                   avail_num AS prev_num, avail_den AS prev_den
            FROM node_epoch_scores WHERE reward_epoch = $e - 1
        ), ids AS (
            SELECT node_id FROM pings UNION SELECT node_id FROM active_events
            UNION SELECT node_id FROM reg
        )
        SELECT ids.node_id,
               coalesce(pings.slot_bitmap, 0::UBIGINT) AS slot_bitmap,
               reg.registered_at_us,
               reg.wallet,
               reg.gpu_model,
               reg.gpu_count AS claimed_gpu_count,
               bench.bench_event_id, bench.bench_at_us,
               bench.fp32_tflops, bench.mem_bandwidth_gbps, bench.vram_gb, bench.found_gpu_count,
               jobs.jobs_succeeded, jobs.jobs_failed_node,
               prev.prev_streak, prev.prev_up, prev.prev_num, prev.prev_den,
               0 AS slash_count, false AS banned
        FROM ids
        LEFT JOIN pings USING (node_id) LEFT JOIN reg USING (node_id) LEFT JOIN bench USING (node_id)
        LEFT JOIN jobs USING (node_id) LEFT JOIN prev USING (node_id)
    """, params)
    # The digest hashes every input event id (tens of millions): DuckDB computes it on a second
    # connection while this one gathers the rest and the Python side computes (mostly one core).
    digest = submit_input_digest(con, e, cutoff_seq, cfg)
    nodes = fetch_polars(con, "SELECT * FROM close_nodes ORDER BY node_id")

    # Availability history for registered nodes with no carried state (first close after
    # their registration): their recorded per-epoch uptime ratios.
    history: dict[str, dict[int, float]] = {}
    rows = con.execute("""
        SELECT s.node_id, s.reward_epoch, s.uptime_ratio
        FROM node_epoch_scores s JOIN close_nodes c USING (node_id)
        WHERE c.registered_at_us IS NOT NULL AND c.prev_den IS NULL
          AND s.reward_epoch < $e
          AND s.reward_epoch >= (c.registered_at_us - $g) // $ep
    """, {"e": e, "g": cfg.genesis_us, "ep": cfg.reward_epoch_us}).fetchall()
    for node_id, k, u in rows:
        history.setdefault(node_id, {})[k] = u

    late, wm = archive_figures if archive_figures is not None else get_archive_figures(con, cutoff_seq, cfg)
    slashing = _gather_slash_inputs(con, e, cutoff_seq, cfg)
    return EpochInputs(
        reward_epoch=e,
        first_reward_epoch=first_epoch,
        input_arrival_seq=cutoff_seq,
        input_event_count=digest,
        input_events_digest=digest,
        watermark_us=wm if wm is not None else 0,
        late_events=int(late),
        nodes=nodes,
        uptime_history=history,
        slashing=slashing,
        stake=get_stake_frame(con, e, cutoff_seq, cfg),
    )


def get_input_digest(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> tuple[int, str]:
    """(count, digest) of the close's inputs: the epoch's pings and every other event before
    end(e), arrived by the cutoff; digest = XOR of md5(event_id) as 32 hex digits."""
    count, digest = con.execute("""
        SELECT count(*), coalesce(bit_xor(md5_number(event_id)), 0::UHUGEINT)::VARCHAR FROM (
            SELECT event_id FROM archive_pings WHERE reward_epoch = $e AND arrival_seq <= $cutoff
            UNION ALL
            SELECT event_id FROM archive_events
            WHERE occurred_at_us < $end AND arrival_seq <= $cutoff AND event_type <> 'ping.batch')
    """, {"e": e, "cutoff": cutoff_seq, "end": get_epoch_end_us(e, cfg)}).fetchall()[0]
    return int(count), f"{int(digest):032x}"


def submit_input_digest(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> Future:
    """`get_input_digest` on its own connection (a cursor of the same database) in a thread."""
    cur = con.cursor()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="close-digest")

    def run():
        try:
            return get_input_digest(cur, e, cutoff_seq, cfg)
        finally:
            cur.close()

    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def get_previous_cutoff(con, e: int) -> int:
    """The arrival cutoff of the close of e − 1 (−1 when e is the first): what is new since."""
    row = con.execute("SELECT input_arrival_seq FROM reward_epochs WHERE reward_epoch = ?", [e - 1]).fetchall()
    return int(row[0][0]) if row else -1


def get_stake_balances(con, e: int) -> dict[str, int]:
    """Each node's stake account balance after the closes before e."""
    rows = con.execute("""
        SELECT account, sum(amount) FROM (
            SELECT credit_account AS account, amount_base_units::HUGEINT AS amount FROM ledger_entries
            WHERE reward_epoch < $e AND credit_account LIKE 'node:%:stake'
            UNION ALL
            SELECT debit_account, -amount_base_units::HUGEINT FROM ledger_entries
            WHERE reward_epoch < $e AND debit_account LIKE 'node:%:stake')
        GROUP BY account
    """, {"e": e}).fetchall()
    return {acct[len("node:"):-len(":stake")]: int(total) for acct, total in rows}


def _decision_from_row(row: dict, e: int) -> Decision:
    """A stored decision as it stood after the close of e − 1."""
    resolved = row["resolved_in_epoch"]
    settled = resolved is not None and resolved < e
    return Decision(
        decision_id=row["decision_id"], rule=row["rule"], node_id=row["node_id"], subject=row["subject"],
        decided_at_us=row["decided_at_us"], evidence=tuple(row["evidence"]),
        amount_base_units=row["amount_base_units"], stake_deposit_base_units=row["stake_deposit_base_units"],
        stake_left_base_units=row["stake_left_base_units"], decided_in_epoch=row["decided_in_epoch"],
        finality_epoch=row["finality_epoch"], detail=row["detail"],
        status=row["status"] if settled else "proposed", resolved_in_epoch=resolved if settled else None,
    )


def get_stake_frame(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> pl.DataFrame:
    """Per node with a stake event or a stake account: the declared deposit at end(e) (the latest
    `node.registered` / `node.stake_changed` by (occurred_at, event_id) with occurred_at < end(e),
    0 when none) and the stake account's balance after the closes before e."""
    end_us = get_epoch_end_us(e, cfg)
    return fetch_polars(con, """
        WITH dep AS (
            SELECT node_id,
                   arg_max((payload ->> '$.stake_base_units')::BIGINT, (occurred_at_us, event_id))
                       FILTER (occurred_at_us < $end) AS deposit
            FROM archive_events
            WHERE event_type IN ('node.registered', 'node.stake_changed') AND arrival_seq <= $cutoff
            GROUP BY node_id
        ), bal AS (
            SELECT substr(account, 6, length(account) - 11) AS node_id, sum(amount)::BIGINT AS balance
            FROM (
                SELECT credit_account AS account, amount_base_units::HUGEINT AS amount FROM ledger_entries
                WHERE reward_epoch < $e AND credit_account LIKE 'node:%:stake'
                UNION ALL
                SELECT debit_account, -amount_base_units::HUGEINT FROM ledger_entries
                WHERE reward_epoch < $e AND debit_account LIKE 'node:%:stake')
            GROUP BY account
        )
        SELECT node_id, coalesce(dep.deposit, 0)::BIGINT AS deposit_base_units,
               coalesce(bal.balance, 0)::BIGINT AS balance_base_units
        FROM dep FULL JOIN bal USING (node_id)
        ORDER BY node_id
    """, {"e": e, "cutoff": cutoff_seq, "end": end_us})


def gather_slash_inputs(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> SlashInputs:
    """What the close of e needs for §8: the decisions made before it, the jobs and benchmarks to
    check now (their check epoch is e, or evidence for them arrived since the previous close),
    and the stake events, appeals and recorded slot bitmaps to decide them with."""
    create_close_tables(con, e, cutoff_seq, cfg)
    return _gather_slash_inputs(con, e, cutoff_seq, cfg)


def _gather_slash_inputs(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> SlashInputs:
    """`gather_slash_inputs` over the tables of `create_close_tables`.

    Of the benchmarks to check, only those that can be fraud are handed to the rules: those
    reporting a fingerprint first reported by another node, or whose ratio to the claimed model's
    spec reaches the impossible bound (less a relative 1e-9, so this is a superset of what the
    scalar rule finds, which then decides each one). A benchmark outside it cannot give a
    decision (`get_fraud_candidates` skips it), so the outcome is the same; the registrations and
    stake events handed over are those of the nodes the rules can decide on."""
    import orjson

    start_us, end_us = get_epoch_start_us(e, cfg), get_epoch_end_us(e, cfg)
    prev = get_previous_cutoff(con, e)
    p = {"e": e, "cutoff": cutoff_seq, "prev": prev, "start": start_us, "end": end_us}
    cur = con.execute("SELECT * FROM slash_decisions WHERE decided_in_epoch < $e ORDER BY decision_id", {"e": e})
    cols = [d[0] for d in cur.description]
    decisions = [_decision_from_row(dict(zip(cols, r)), e) for r in cur.fetchall()]

    # Jobs: the standing job.completed per job_id (first by occurred_at, event_id) among those
    # arrived; those with no decision yet whose check epoch may be e or that are new.
    day_us = 86_400_000_000
    rows = con.execute("""
        WITH jc AS (
            SELECT payload ->> '$.job_id' AS job_id, node_id, event_id, occurred_at_us, arrival_seq, payload
            FROM archive_events WHERE event_type = 'job.completed' AND arrival_seq <= $cutoff
        ), standing AS (
            SELECT job_id, arg_min(event_id, (occurred_at_us, event_id)) AS event_id,
                   max(arrival_seq) AS last_arrival
            FROM jc GROUP BY job_id
        ), approx AS (
            SELECT jc.*, standing.last_arrival,
                   CASE WHEN json_type(payload, '$.ended_at') IN ('UBIGINT', 'BIGINT')
                        THEN (payload ->> '$.ended_at')::HUGEINT * 1000
                        ELSE epoch_us(try_cast(payload ->> '$.ended_at' AS TIMESTAMPTZ)) END AS ended_approx
            FROM standing JOIN jc USING (job_id, event_id)
        )
        SELECT job_id, node_id, event_id, occurred_at_us, payload FROM approx
        WHERE sha256('downtime_during_job|' || job_id) NOT IN
              (SELECT decision_id FROM slash_decisions WHERE decided_in_epoch < $e)
          AND (last_arrival > $prev OR occurred_at_us >= $start OR ended_approx IS NULL
               OR ended_approx >= $start - $day)
        ORDER BY job_id
    """, {**{k: p[k] for k in ("e", "cutoff", "prev", "start")}, "day": day_us}).fetchall()

    jobs = []
    for job_id, node_id, event_id, occurred_at_us, payload in rows:
        pl_ = orjson.loads(payload)
        job = JobFacts(job_id, node_id, event_id, occurred_at_us, time_to_us(pl_["started_at"]),
                       time_to_us(pl_["ended_at"]), time_to_us(pl_["committed_until"]), pl_["status"])
        if compute_job_check_epoch(job, cfg) <= e:
            jobs.append(job)

    # The recorded slot bitmaps of the closed epochs the candidates' windows touch.
    bitmaps: dict[str, dict[int, int]] = {}
    spans = [(j.node_id, *w) for j in jobs if (w := compute_window_epochs(j, cfg)) is not None]
    if spans:
        spans_df = pl.DataFrame(spans, orient="row", schema=[("node_id", pl.String), ("lo", pl.Int64),  # noqa: F841
                                                             ("hi", pl.Int64)])
        for node_id, k, bm in con.execute("""
            SELECT DISTINCT s.node_id, s.reward_epoch, s.slot_bitmap
            FROM node_epoch_scores s JOIN spans_df w
              ON s.node_id = w.node_id AND s.reward_epoch BETWEEN w.lo AND w.hi
            WHERE s.reward_epoch < $e
        """, {"e": e}).fetchall():
            bitmaps.setdefault(node_id, {})[int(k)] = int(bm)

    # Benchmarks with no decision yet, occurred before end(e), with something to decide now.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE slash_bench_cand AS
        WITH old_fp AS (  -- a benchmark arrived since is a candidate anyway: only older ones need this
            SELECT f.event_id, f.fp FROM slash_bench_fp f JOIN close_bench b USING (event_id)
            WHERE b.arrival_seq <= $prev
        ), new_fp AS (
            SELECT DISTINCT f.fp FROM slash_bench_fp f JOIN close_bench b USING (event_id)
            WHERE b.arrival_seq > $prev AND f.fp IN (SELECT fp FROM old_fp)
        )
        SELECT b.event_id FROM close_bench b LEFT JOIN close_reg reg USING (node_id)
        WHERE b.occurred_at_us < $end
          AND sha256('hardware_fraud|' || b.node_id || '|' || b.event_id) NOT IN
              (SELECT decision_id FROM slash_decisions WHERE decided_in_epoch < $e)
          AND (b.occurred_at_us >= $start OR b.arrival_seq > $prev OR coalesce(reg.arrival_seq > $prev, false)
               OR coalesce(reg.registered_at_us >= $start AND reg.registered_at_us < $end, false)
               OR b.event_id IN (SELECT event_id FROM old_fp WHERE fp IN (SELECT fp FROM new_fp)))
    """, {k: p[k] for k in ("e", "prev", "start", "end")})
    # The claimed models of the candidates' nodes, normalised once per distinct claim (§3).
    claims = [r[0] for r in con.execute(
        "SELECT DISTINCT gpu_model FROM close_reg WHERE gpu_model IS NOT NULL").fetchall()]
    specs = [(c, m.spec_fp32_tflops, m.spec_bw_gbps) for c in claims if (m := get_model(c)) is not None]
    claim_spec = pl.DataFrame(specs, orient="row", schema=[  # noqa: F841
        ("claim", pl.String), ("spec_fp32", pl.Float64), ("spec_bw", pl.Float64)])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE slash_bench_sus AS
        WITH cand_fp AS (
            SELECT event_id, fp FROM slash_bench_fp WHERE event_id IN (SELECT event_id FROM slash_bench_cand)
        ), multi AS (  -- reported more than once
            SELECT fp FROM slash_bench_fp WHERE fp IN (SELECT fp FROM cand_fp) GROUP BY fp HAVING count(*) > 1
        ), shared AS (  -- by more than one node: the only ones another node can own
            SELECT f.fp, arg_min(b.node_id, (b.occurred_at_us, b.event_id)) AS owner_node
            FROM slash_bench_fp f JOIN close_bench b USING (event_id)
            WHERE f.fp IN (SELECT fp FROM multi)
            GROUP BY f.fp HAVING min(b.node_id) <> max(b.node_id)
        ), reused AS (
            SELECT DISTINCT cf.event_id FROM cand_fp cf JOIN shared s USING (fp) JOIN close_bench b USING (event_id)
            WHERE s.owner_node <> b.node_id
        )
        SELECT c.event_id FROM slash_bench_cand c JOIN close_bench b USING (event_id)
        LEFT JOIN close_reg reg USING (node_id) LEFT JOIN claim_spec s ON s.claim = reg.gpu_model
        WHERE c.event_id IN (SELECT event_id FROM reused)
           OR coalesce(b.fp32_tflops / s.spec_fp32 >= $lim OR b.mem_bandwidth_gbps / s.spec_bw >= $lim, false)
    """, {"lim": cfg.hw_impossible_ratio * (1 - 1e-9)})

    def bench_facts(sql: str) -> list[BenchmarkFacts]:
        out = []
        for event_id, node_id, at, payload in con.execute(sql, {"cutoff": cutoff_seq}).fetchall():
            b = orjson.loads(payload)
            out.append(BenchmarkFacts(event_id, node_id, at, tuple(b["gpu_fingerprints"]), float(b["fp32_tflops"]),
                                      float(b["mem_bandwidth_gbps"]), float(b["vram_gb"]), int(b["gpu_count"])))
        return out

    benchmarks = bench_facts("""
        SELECT event_id, node_id, occurred_at_us, payload FROM archive_events
        WHERE event_type = 'benchmark' AND arrival_seq <= $cutoff
          AND event_id IN (SELECT event_id FROM slash_bench_sus) ORDER BY event_id""")
    related = bench_facts("""
        SELECT event_id, node_id, occurred_at_us, payload FROM archive_events
        WHERE event_type = 'benchmark' AND arrival_seq <= $cutoff
          AND event_id IN (SELECT event_id FROM slash_bench_fp WHERE fp IN (
            SELECT fp FROM slash_bench_fp WHERE event_id IN (SELECT event_id FROM slash_bench_sus)))
        ORDER BY event_id""") if benchmarks else []

    # Registrations and stake events of the nodes the rules may decide on at this close.
    subjects = sorted({b.node_id for b in benchmarks} | {j.node_id for j in jobs})
    registrations: dict[str, RegistrationFacts] = {}
    stake_events: dict[str, list[tuple[int, str, int]]] = {}
    if subjects:
        subject_nodes = pl.DataFrame({"node_id": subjects}, schema={"node_id": pl.String})  # noqa: F841
        for node_id, event_id, at, model, count in con.execute("""
            SELECT node_id, event_id, registered_at_us, gpu_model, gpu_count FROM close_reg
            WHERE node_id IN (SELECT node_id FROM subject_nodes)
        """).fetchall():
            registrations[node_id] = RegistrationFacts(node_id, event_id, at, model, int(count))
        for node_id, event_id, at, stake in con.execute("""
            SELECT node_id, event_id, occurred_at_us, (payload ->> '$.stake_base_units')::BIGINT
            FROM archive_events
            WHERE event_type IN ('node.registered', 'node.stake_changed') AND arrival_seq <= $cutoff
              AND node_id IN (SELECT node_id FROM subject_nodes)
            ORDER BY node_id, occurred_at_us, event_id
        """, {"cutoff": cutoff_seq}).fetchall():
            stake_events.setdefault(node_id, []).append((at, event_id, int(stake)))

    appeals: dict[str, list[tuple[int, str]]] = {}
    for decision_id, at, event_id in con.execute("""
        SELECT payload ->> '$.decision_id', occurred_at_us, event_id FROM archive_events
        WHERE event_type = 'appeal.upheld' AND arrival_seq <= $cutoff ORDER BY 1, 2, 3
    """, {"cutoff": cutoff_seq}).fetchall():
        appeals.setdefault(decision_id, []).append((at, event_id))

    return SlashInputs(e, decisions, jobs, benchmarks, related, registrations, stake_events, appeals, bitmaps)


def write_epoch(con, result: EpochResult, closed_at: datetime, before_commit=None) -> None:
    """One transaction: scores, rewards, the epoch row, the ledger. Invariants checked on the
    rows before the write and again on what the store reads back inside the transaction.
    `before_commit(reward_epoch)`, when given, is called once every row is written and checked,
    just before COMMIT (the crash tests kill the process there)."""
    e = result.reward_epoch
    row = result.epoch_row
    invariant(row["allocated_base_units"] + row["unallocated_base_units"] == row["emission_base_units"],
              "Σ shares + unallocated == emission before the write")
    invariant(all(r[3] > 0 for r in result.rewards), "reward rows are positive")
    con.execute("BEGIN TRANSACTION")
    try:
        if con.execute("SELECT 1 FROM reward_epochs WHERE reward_epoch = ?", [e]).fetchone():
            con.execute("ROLLBACK")
            return  # closed already: a second close is a no-op
        scores = result.scores  # noqa: F841  (read by DuckDB by name)
        con.execute("INSERT INTO node_epoch_scores BY NAME SELECT * FROM scores")
        if result.rewards:
            cols = list(zip(*result.rewards))
            rewards = pl.DataFrame({  # noqa: F841
                "reward_epoch": pl.Series(cols[0], dtype=pl.Int64), "node_id": pl.Series(cols[1], dtype=pl.String),
                "pool": pl.Series(cols[2], dtype=pl.String), "amount_base_units": pl.Series(cols[3], dtype=pl.Int64),
                "wallet": pl.Series(cols[4], dtype=pl.String),
            }).with_columns(pl.lit(row["ruleset_version"], pl.String).alias("ruleset_version"))
            con.execute("INSERT INTO epoch_rewards BY NAME SELECT * FROM rewards")
        if result.ledger.height:
            # in key order: the primary-key index takes sorted keys faster
            ledger = result.ledger.sort("entry_id")  # noqa: F841
            con.execute("INSERT INTO ledger_entries BY NAME SELECT * FROM ledger")
        if result.slashing is not None:
            write_slash_decisions(con, result.slashing, row["ruleset_version"])
        cols = list(row) + ["closed_at", "engine_version"]
        from epochal import ENGINE_VERSION

        values = list(row.values()) + [closed_at, ENGINE_VERSION]
        con.execute(
            f"INSERT INTO reward_epochs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", values
        )
        back = con.execute(
            "SELECT coalesce(sum(amount_base_units), 0), count(*) FROM epoch_rewards WHERE reward_epoch = ?", [e]
        ).fetchone()
        invariant(int(back[0]) == row["allocated_base_units"], "rewards read back sum to the allocation")
        debit, credit = con.execute(
            "SELECT sum(amount_base_units) FILTER (debit_account = ?),"
            " sum(amount_base_units) FILTER (credit_account LIKE 'node:%:rewards' OR credit_account = ?)"
            " FROM ledger_entries WHERE reward_epoch = ?",
            [ACCOUNT_EMISSION, ACCOUNT_UNALLOCATED, e],
        ).fetchone()
        invariant(int(debit or 0) == row["emission_base_units"] == int(credit or 0),
                  "the ledger moves exactly the emission from treasury to nodes and unallocated")
        negative = con.execute("""
            SELECT count(*) FROM (
                SELECT account, sum(amount) AS balance FROM (
                    SELECT credit_account AS account, amount_base_units::HUGEINT AS amount FROM ledger_entries
                    WHERE credit_account LIKE 'node:%:stake'
                    UNION ALL
                    SELECT debit_account, -amount_base_units::HUGEINT FROM ledger_entries
                    WHERE debit_account LIKE 'node:%:stake')
                GROUP BY account) WHERE balance < 0
        """).fetchall()[0][0]
        invariant(negative == 0, f"no node stake account is below 0 after epoch {e}")
        # The keys of the contract's tables, held here rather than by index (an enforced key
        # on millions of rows per epoch costs more than the whole close): every entry id
        # hashes its epoch, so uniqueness inside the epoch is uniqueness.
        dup_scores, dup_rewards, dup_entries = con.execute("""
            SELECT (SELECT count(*) - count(DISTINCT node_id) FROM node_epoch_scores WHERE reward_epoch = $e),
                   (SELECT count(*) - count(DISTINCT node_id) FROM epoch_rewards WHERE reward_epoch = $e),
                   (SELECT count(*) - count(DISTINCT entry_id) FROM ledger_entries WHERE reward_epoch = $e)
        """, {"e": e}).fetchall()[0]
        invariant(dup_scores == dup_rewards == dup_entries == 0,
                  f"(reward_epoch, node_id) and entry_id are unique in epoch {e}")
        from epochal.store import set_meta

        set_meta(con, "first_reward_epoch", str(inputs_first_epoch(con, e)))
        if before_commit is not None:
            before_commit(e)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


SLASH_DECISION_SCHEMA = [
    ("decision_id", pl.String), ("node_id", pl.String), ("rule", pl.String), ("amount_base_units", pl.Int64),
    ("decided_at", pl.Datetime("us", "UTC")), ("status", pl.String), ("evidence", pl.List(pl.String)),
    ("subject", pl.String), ("decided_at_us", pl.Int64), ("stake_deposit_base_units", pl.Int64),
    ("stake_left_base_units", pl.Int64), ("decided_in_epoch", pl.Int64), ("finality_epoch", pl.Int64),
    ("resolved_in_epoch", pl.Int64), ("detail", pl.String), ("ruleset_version", pl.String),
]


def slash_decision_rows(decisions, ruleset_version: str) -> pl.DataFrame:
    """Decisions as `slash_decisions` rows; decided_at keeps the exact microsecond (UTC)."""
    epoch0 = datetime(1970, 1, 1, tzinfo=timezone.utc)
    from datetime import timedelta

    rows = [(d.decision_id, d.node_id, d.rule, d.amount_base_units,
             epoch0 + timedelta(microseconds=d.decided_at_us), d.status, list(d.evidence), d.subject,
             d.decided_at_us, d.stake_deposit_base_units, d.stake_left_base_units, d.decided_in_epoch,
             d.finality_epoch, d.resolved_in_epoch, d.detail, ruleset_version) for d in decisions]
    return pl.DataFrame(rows, orient="row", schema=SLASH_DECISION_SCHEMA)


def write_slash_decisions(con, outcome: SlashOutcome, ruleset_version: str) -> None:
    """Inside the close's transaction: this close's decisions, then the statuses it settled."""
    if outcome.new_decisions:
        decisions = slash_decision_rows(outcome.new_decisions, ruleset_version)  # noqa: F841
        con.execute("INSERT INTO slash_decisions BY NAME SELECT * FROM decisions")
    for d in outcome.resolved:
        con.execute("UPDATE slash_decisions SET status = ?, resolved_in_epoch = ? WHERE decision_id = ?",
                    [d.status, d.resolved_in_epoch, d.decision_id])
    e = outcome.reward_epoch
    back = con.execute("SELECT count(*) FROM slash_decisions WHERE decided_in_epoch = ? OR resolved_in_epoch = ?",
                       [e, e]).fetchall()[0][0]
    want = len({d.decision_id for d in outcome.new_decisions} | {d.decision_id for d in outcome.resolved})
    invariant(back == want, f"slash decisions of epoch {e} read back as written")


def inputs_first_epoch(con, e: int) -> int:
    row = con.execute("SELECT min(reward_epoch) FROM reward_epochs").fetchone()
    return int(row[0]) if row[0] is not None else e


def close_epoch(con, e: int, first_epoch: int, cfg: RulesetConfig = RULESET_V1,
                cutoff_seq: int | None = None, closed_at: datetime | None = None,
                archive_figures: tuple[int, int | None] | None = None, before_commit=None,
                tables_ready: bool = False) -> EpochResult:
    if cutoff_seq is None:
        from epochal.store import next_arrival_seq

        cutoff_seq = next_arrival_seq(con) - 1
    inputs = gather_epoch_inputs(con, e, cutoff_seq, first_epoch, cfg, archive_figures, tables_ready)
    result = compute_epoch(inputs, cfg)
    # closed_at is the one wall-clock column (§9); the clock is read here, at the edge.
    write_epoch(con, result, closed_at or datetime.now(timezone.utc), before_commit)
    return result


def get_ready_epochs(con, cfg: RulesetConfig = RULESET_V1, watermark_us: int | None = None) -> list[int]:
    """Epochs after the last closed one whose end the watermark has reached, in order.

    `watermark_us` overrides the archive's own (max ping time − lateness): the live stream
    passes its per-partition watermark (§10)."""
    from epochal.store import last_closed_epoch

    first = get_first_reward_epoch(con, cfg)
    wm = get_watermark_us(con, cfg) if watermark_us is None else watermark_us
    if first is None or wm is None:
        return []
    last = last_closed_epoch(con)
    e = first if last is None else last + 1
    ready = []
    while get_epoch_end_us(e, cfg) <= wm:
        ready.append(e)
        e += 1
    return ready


def close_ready_epochs(con, cfg: RulesetConfig = RULESET_V1, *, on_closed=None,
                       watermark_us: int | None = None, before_commit=None) -> list[EpochResult]:
    """Close every ready epoch in order. `on_closed(result)` after each commit and
    `before_commit(reward_epoch)` inside each close's transaction are hooks for the caller (the
    live stream's crash tests); neither takes part in the result."""
    ready = get_ready_epochs(con, cfg, watermark_us)
    if not ready:
        return []
    from epochal.store import next_arrival_seq

    first = get_first_reward_epoch(con, cfg)
    # nothing arrives during a pass: every epoch of it closes with the same inputs cutoff
    cutoff = next_arrival_seq(con) - 1
    figures = get_archive_figures(con, cutoff, cfg)
    create_close_tables(con, ready[0], cutoff, cfg)  # one cutoff: the same tables for every epoch
    results = []
    for e in ready:
        result = close_epoch(con, e, first, cfg, cutoff_seq=cutoff, archive_figures=figures,
                             before_commit=before_commit, tables_ready=True)
        results.append(result)
        if on_closed:
            on_closed(result)
    return results
