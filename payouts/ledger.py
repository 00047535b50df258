"""The double-entry ledger of a close (ruleset §8 stake, §9 "Closing writes ... ledger entries").

Reward ledger: emission funds the two pools, each pool pays its rewards and the rest goes to
the unallocated account, so every pool account nets to zero per epoch.

Stake ledger (§8, "only final slashes move stake"): each node's stake account is brought to
its target at end(e),
    target = max(0, deposit(end(e)) − Σ final slash amounts)
by one deposit (from `external:stake_deposits`) or withdrawal entry, then each slash that became
final at this close moves its amount from the node's stake to `treasury:slashed`. The deposit
entry is sized so that the account holds target + the slashes of this close before they leave
it: no stake account is ever below 0, between or after the entries.

Every entry is (kind, subject, debit, credit, amount) with
    entry_id = sha256("<e>|<kind>|<subject>") in lower-case hex
    ref      = "reward_epoch:<e>:<kind>:<subject>"
Order: fund per pool, reward per paid node (node_id byte order), unallocated per pool, then
stake deposits / withdrawals (node_id byte order) and slashes (decision_id order).

`compute_ledger_entries` and `compute_stake_ledger_entries` (tuples, Python) are the
references; `compute_ledger_parts` and `compute_stake_ledger_parts` their columnar twins, which
the close uses; `compute_entry_id` is the reference of the key and `entry_id_sql` its twin (the
store hashes the keys as it writes the rows: hashing 10⁶ keys in Python costs a second).
tests/property/test_close_vectorised.py holds each twin to its reference.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from scoring.hardware import POOL_COMMUNITY, POOL_ENTERPRISE
from scoring.invariants import invariant
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.slashing import STATUS_FINAL, SlashInputs, SlashOutcome, compute_stake_deposit
from scoring.timing import get_epoch_end_us

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

LEDGER_PARTS_SCHEMA = {"kind": pl.String, "subject": pl.String, "debit_account": pl.String,
                       "credit_account": pl.String, "amount_base_units": pl.Int64}


# ----------------------------------------------------------------------------------------
# the key and the reference of an entry
# ----------------------------------------------------------------------------------------

def compute_entry_id(e: int, kind: str, subject: str) -> str:
    return hashlib.sha256(f"{e}|{kind}|{subject}".encode()).hexdigest()


def entry_id_sql(e: str = "reward_epoch", kind: str = "kind", subject: str = "subject") -> str:
    """`compute_entry_id` of SQL expressions (a BIGINT epoch, VARCHAR kind and subject)."""
    return f"sha256(CAST({e} AS VARCHAR) || '|' || {kind} || '|' || {subject})"


def compute_entry_ref(e: int, kind: str, subject: str) -> str:
    return f"reward_epoch:{e}:{kind}:{subject}"


# ----------------------------------------------------------------------------------------
# references: entries as tuples (entry_id, debit, credit, amount, reward_epoch, ref)
# ----------------------------------------------------------------------------------------

def _entry(e: int, kind: str, subject: str, debit: str, credit: str, amount: int) -> tuple:
    return (compute_entry_id(e, kind, subject), debit, credit, int(amount), e, compute_entry_ref(e, kind, subject))


def compute_ledger_entries(e: int, enterprise_pool: int, community_pool: int, rewards,
                           unallocated: dict[str, int]) -> list[tuple]:
    """rewards: (reward_epoch, node_id, pool, amount, wallet) in node_id byte order; unallocated:
    pool → its unallocated base units."""
    entries = []
    for pool_name, amount in ((POOL_ENTERPRISE, enterprise_pool), (POOL_COMMUNITY, community_pool)):
        entries.append(_entry(e, "fund", pool_name, ACCOUNT_EMISSION, ACCOUNT_POOL.format(pool=pool_name), amount))
    for _, node_id, pool_name, amount, _ in rewards:
        entries.append(_entry(e, "reward", node_id, ACCOUNT_POOL.format(pool=pool_name),
                              ACCOUNT_REWARDS.format(node_id=node_id), amount))
    for pool_name, amount in unallocated.items():
        if amount:
            entries.append(_entry(e, "unallocated", pool_name, ACCOUNT_POOL.format(pool=pool_name),
                                  ACCOUNT_UNALLOCATED, amount))
    return entries


def compute_stake_deposit_before(stake_events, end_us: int) -> int:
    """The declared deposit at end(e): the latest stake event with occurred_at < end(e)."""
    return compute_stake_deposit(stake_events, end_us - 1)


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


def compute_stake_ledger_entries(e: int, slashing: SlashInputs, outcome: SlashOutcome,
                                 balances: dict[str, int], cfg: RulesetConfig = RULESET_V1) -> list[tuple]:
    """The stake entries of the close of e from the stake events and the balances before it."""
    end_us = get_epoch_end_us(e, cfg)
    final_total, finalized, slashed_now = _slash_totals(outcome)
    entries = []
    for node_id in sorted(set(slashing.stake_events) | set(balances) | set(final_total), key=str.encode):
        deposit = compute_stake_deposit_before(slashing.stake_events.get(node_id, ()), end_us)
        target = max(0, deposit - final_total.get(node_id, 0))
        before = balances.get(node_id, 0)
        now = slashed_now.get(node_id, 0)
        delta = target + now - before
        account = ACCOUNT_STAKE.format(node_id=node_id)
        if delta > 0:
            entries.append(_entry(e, "stake_deposit", node_id, ACCOUNT_STAKE_EXTERNAL, account, delta))
        elif delta < 0:
            entries.append(_entry(e, "stake_withdrawal", node_id, account, ACCOUNT_STAKE_EXTERNAL, -delta))
        invariant(before + delta - now == target >= 0, f"stake of {node_id} stays >= 0 in epoch {e}")
    for d in finalized:
        if d.amount_base_units > 0:
            entries.append(_entry(e, "slash", d.decision_id, ACCOUNT_STAKE.format(node_id=d.node_id),
                                  ACCOUNT_SLASHED, d.amount_base_units))
    return entries


# ----------------------------------------------------------------------------------------
# the columnar twins: (kind, subject, debit, credit, amount) parts, then the frame
# ----------------------------------------------------------------------------------------

def compute_ledger_parts(pools: dict[str, int], node_ids: pl.Series, pool_of: pl.Series, amounts: np.ndarray,
                         unallocated: dict[str, int]) -> pl.DataFrame:
    """`compute_ledger_entries` as columns: fund per pool, reward per paid node (node_ids are in
    byte order; pool_of, amounts: per node), unallocated per pool."""
    fund = [("fund", name, ACCOUNT_EMISSION, ACCOUNT_POOL.format(pool=name), amount) for name, amount in pools.items()]
    unalloc = [("unallocated", name, ACCOUNT_POOL.format(pool=name), ACCOUNT_UNALLOCATED, a)
               for name, a in unallocated.items() if a]
    paid = np.flatnonzero(amounts > 0)
    subject = pl.Series(node_ids, dtype=pl.String).gather(paid)
    reward = pl.DataFrame({
        "kind": pl.Series(["reward"] * len(paid), dtype=pl.String),
        "subject": subject,
        "debit_account": "pool:" + pl.Series(pool_of, dtype=pl.String).gather(paid),
        "credit_account": "node:" + subject + ":rewards",
        "amount_base_units": pl.Series(amounts[paid], dtype=pl.Int64),
    })
    return pl.concat([pl.DataFrame(fund, orient="row", schema=LEDGER_PARTS_SCHEMA), reward,
                      pl.DataFrame(unalloc, orient="row", schema=LEDGER_PARTS_SCHEMA)])


def compute_stake_ledger_parts(e: int, stake: pl.DataFrame, outcome: SlashOutcome) -> pl.DataFrame:
    """`compute_stake_ledger_entries` over columns: `stake` holds per node the declared deposit at
    end(e) and the balance before this close; the decisions are few and stay in Python. Same
    entries, same order. (Over numpy arrays: a polars pipeline over every staked node costs more
    than the rest of the ledger, and most closes move no stake at all.)"""
    final_total, finalized, slashed_now = _slash_totals(outcome)
    ids = stake["node_id"]
    deposit = stake["deposit_base_units"].fill_null(0).to_numpy().astype(np.int64)
    balance = stake["balance_base_units"].fill_null(0).to_numpy().astype(np.int64)
    final = np.zeros(len(ids), dtype=np.int64)
    now = np.zeros(len(ids), dtype=np.int64)
    keys = sorted(set(final_total) | set(slashed_now))
    if keys:  # the nodes with a final slash: on their row, or on a row of their own (no stake row)
        at = {node_id: i for i, node_id in enumerate(ids.to_list())}
        extra = [k for k in keys if k not in at]
        if extra:
            at.update({k: len(ids) + i for i, k in enumerate(extra)})
            ids = pl.concat([ids, pl.Series(ids.name, extra, dtype=pl.String)])
            deposit, balance, final, now = (np.concatenate([a, np.zeros(len(extra), dtype=np.int64)])
                                            for a in (deposit, balance, final, now))
        for k in keys:
            final[at[k]] = final_total.get(k, 0)
            now[at[k]] = slashed_now.get(k, 0)
    target = np.maximum(0, deposit - final)
    delta = target + now - balance
    bad = np.flatnonzero((balance + delta - now != target) | (target < 0))
    invariant(not len(bad), f"stake of {ids[int(bad[0])] if len(bad) else ''} stays >= 0 in epoch {e}")
    moved = np.flatnonzero(delta != 0)
    rows = sorted(zip(ids.gather(moved).to_list(), delta[moved].tolist()), key=lambda r: r[0].encode()) \
        if len(moved) else []
    return pl.DataFrame(
        [("stake_deposit", n, ACCOUNT_STAKE_EXTERNAL, ACCOUNT_STAKE.format(node_id=n), d) if d > 0 else
         ("stake_withdrawal", n, ACCOUNT_STAKE.format(node_id=n), ACCOUNT_STAKE_EXTERNAL, -d) for n, d in rows]
        + [("slash", d.decision_id, ACCOUNT_STAKE.format(node_id=d.node_id), ACCOUNT_SLASHED, d.amount_base_units)
           for d in finalized if d.amount_base_units > 0], orient="row", schema=LEDGER_PARTS_SCHEMA)


def compute_ledger_frame(e: int, parts: pl.DataFrame) -> pl.DataFrame:
    """The parts, in their order, with their epoch and `compute_entry_ref` (the entry ids are
    hashed by the store: `entry_id_sql`)."""
    return parts.with_columns(
        pl.lit(e, pl.Int64).alias("reward_epoch"),
        (pl.lit(f"reward_epoch:{e}:") + pl.col("kind") + ":" + pl.col("subject")).alias("ref"))
