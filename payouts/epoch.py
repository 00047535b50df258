"""What an epoch close reads, what it is made of while it runs, and what it returns.

    EpochInputs   what the store gathered for the close of epoch e (payouts/gather.py)
    EpochState    one array per quantity of the ruleset, one entry per scored node (in node_id
                  byte order), filled in by the `process_*` steps (payouts/steps/) in ruleset order
    EpochResult   the rows the close writes (payouts/write.py)

No rules here: the steps call the rules of scoring/ (or their named vectorised twins).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from payouts.carry import CarryStep
from scoring.hardware import get_model
from scoring.ruleset import RulesetConfig
from scoring.slashing import SlashInputs, SlashOutcome
from scoring.timing import get_epoch_end_us, get_epoch_start_us


@dataclass
class EpochInputs:
    """Everything a close reads, per node, as one frame (one row per scored node)."""

    reward_epoch: int
    input_arrival_seq: int
    input_event_count: int
    input_events_digest: str
    watermark_us: int
    late_events: int
    # columns: node_id, slot_bitmap (u64), registered_at_us, wallet, gpu_model,
    # claimed_gpu_count, bench_event_id, bench_at_us, fp32_tflops, mem_bandwidth_gbps, vram_gb,
    # found_gpu_count, jobs_succeeded, jobs_failed_node, prev_streak, prev_up, prev_num, prev_den
    nodes: pl.DataFrame
    # for nodes registered before this epoch with no availability state yet: node_id → {epoch: u}
    uptime_history: dict[str, dict[int, float]] = field(default_factory=dict)
    # §8: candidates and state for slashing
    slashing: SlashInputs | None = None
    # the stake ledger before this close, per node with a stake event or a stake account:
    # node_id, deposit_base_units (declared at end(e)), balance_base_units
    stake: pl.DataFrame | None = None
    # the state the close carries forward (payouts/carry.py): not read by the rules
    carry: CarryStep | None = None


REWARD_SCHEMA = {"reward_epoch": pl.Int64, "node_id": pl.String, "pool": pl.String, "amount_base_units": pl.Int64,
                 "wallet": pl.String}


@dataclass
class EpochResult:
    reward_epoch: int
    scores: pl.DataFrame
    rewards: pl.DataFrame  # REWARD_SCHEMA, one row per paid node, node_id byte order
    epoch_row: dict
    # ledger_entries rows but their entry_id (hashed by the store as it writes them, see
    # payouts/ledger.py): kind, subject, debit_account, credit_account, amount_base_units,
    # reward_epoch, ref
    ledger: pl.DataFrame
    slashing: SlashOutcome | None = None


@dataclass
class EpochState:
    """The close of one epoch while it runs. Arrays have one entry per scored node, in node_id
    byte order; each `process_*` step reads what the earlier ones set and sets its own."""

    inputs: EpochInputs
    cfg: RulesetConfig
    reward_epoch: int
    start_us: int
    end_us: int
    frame: pl.DataFrame  # the gathered nodes, sorted by node_id
    node_id: pl.Series
    # §10 registration (the first one stands): the claim, the wallet
    registered: np.ndarray
    registered_at_us: np.ndarray  # 0 where not registered
    gpu_model_claimed: pl.Series
    gpu_model_key: pl.Series  # Appendix A's key of the claim (null: unknown model, or none)
    model_keys: list  # the distinct keys (None: no model) ...
    model_code: np.ndarray  # ... and each node's index among them
    gpu_count: np.ndarray
    wallet: pl.Series
    # §2 uptime
    slot_bitmap: np.ndarray | None = None
    up_slots: np.ndarray | None = None
    uptime_ratio: np.ndarray | None = None
    streak_slots: np.ndarray | None = None
    streak_prev_up: np.ndarray | None = None
    # §3 hardware
    hw_verdict: np.ndarray | None = None  # the score row's column as codes of scoring.hardware.VERDICT_CODES
    hw_ratio: np.ndarray | None = None  # of the latest benchmark, NaN unless it is verified
    hw_verified: np.ndarray | None = None
    # §8 slashing
    slashing: SlashOutcome | None = None
    slash_count: np.ndarray | None = None
    banned: np.ndarray | None = None
    # §4 reputation
    avail_num: np.ndarray | None = None
    avail_den: np.ndarray | None = None
    rep_availability: np.ndarray | None = None
    jobs_succeeded: np.ndarray | None = None
    jobs_failed_node: np.ndarray | None = None
    rep_jobs: np.ndarray | None = None
    rep_hardware: np.ndarray | None = None
    rep_tenure: np.ndarray | None = None
    rep_penalty: np.ndarray | None = None
    reputation: np.ndarray | None = None
    # §5 eligibility
    ineligible_reason: np.ndarray | None = None
    eligible: np.ndarray | None = None
    # §6 emission and pools
    emission: int | None = None
    pools: dict[str, int] | None = None
    # §7 allocation
    pool_code: np.ndarray | None = None  # each node's pool as its index in `pool_names` (−1: none)
    pool_names: list | None = None
    pool_column: pl.Series | None = None  # the pools' names, per node (`get_pool_column`)
    multiplier_milli: np.ndarray | None = None
    weight: np.ndarray | None = None
    unallocated_by_pool: dict[str, int] | None = None
    amounts: np.ndarray | None = None
    rewards: pl.DataFrame | None = None
    allocated: int | None = None
    unallocated: int | None = None
    # §9 the records
    ledger: pl.DataFrame | None = None
    manifest_sha256: str | None = None

    @property
    def n(self) -> int:
        return len(self.node_id)

    def position(self, node_id: str) -> int | None:
        """The index of a node (the arrays' order), None when it is not scored."""
        i = int(self.node_id.search_sorted(node_id))
        return i if i < self.n and self.node_id[i] == node_id else None

    def positions(self, node_ids: list[str]) -> np.ndarray:
        """`position` of each of `node_ids` in one search (−1 where a node is not scored): a
        close looks up every node with a slashing decision, a number that grows with history."""
        if not node_ids or not self.n:
            return np.full(len(node_ids), -1, dtype=np.int64)
        ids = pl.Series(node_ids, dtype=pl.String)
        i = np.minimum(self.node_id.search_sorted(ids).to_numpy().astype(np.int64), self.n - 1)
        found = (self.node_id.gather(i) == ids).to_numpy()
        return np.where(found, i, -1)

    @classmethod
    def start(cls, inputs: EpochInputs, cfg: RulesetConfig) -> "EpochState":
        """The state before the first step: the nodes in byte order, their first registration.
        Strings stay polars columns (a million nodes' ids as Python objects cost a second);
        each distinct claim is normalised once (`get_model`)."""
        e = inputs.reward_epoch
        df = inputs.nodes
        if not df["node_id"].is_sorted():
            df = df.sort("node_id")  # polars sorts strings by their UTF-8 bytes
        registered = ~df["registered_at_us"].is_null().to_numpy()
        claimed = df["gpu_model"]
        distinct = claimed.drop_nulls().unique().sort()
        claims = distinct.to_list()
        key_of = {c: (m.model_key if (m := get_model(c)) is not None else None) for c in claims}
        model_keys = [None, *sorted({k for k in key_of.values() if k is not None})]
        code_of_key = {k: i for i, k in enumerate(model_keys)}
        # each node's claim as its index among the distinct claims (len(claims): none), so that
        # the per-claim key and code spread over the nodes by one gather each
        at = np.where(claimed.is_null().to_numpy(), len(claims), distinct.search_sorted(claimed).to_numpy())
        return cls(
            inputs=inputs, cfg=cfg, reward_epoch=e, start_us=get_epoch_start_us(e, cfg),
            end_us=get_epoch_end_us(e, cfg), frame=df, node_id=df["node_id"],
            registered=registered,
            registered_at_us=np.where(registered, df["registered_at_us"].fill_null(0).to_numpy(), 0).astype(np.int64),
            gpu_model_claimed=claimed,
            gpu_model_key=pl.Series(claimed.name, [key_of[c] for c in claims] + [None], dtype=pl.String).gather(at),
            model_keys=model_keys,
            model_code=np.array([code_of_key[key_of[c]] for c in claims] + [0], dtype=np.int64)[at],
            gpu_count=df["claimed_gpu_count"].fill_null(0).to_numpy().astype(np.int64),
            wallet=df["wallet"],
        )

    def column(self, name: str, fill, dtype) -> np.ndarray:
        """A gathered column as an array, nulls filled."""
        series = self.frame[name]
        return (series.fill_null(fill) if series.null_count() else series).to_numpy().astype(dtype)
