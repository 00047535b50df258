"""`epochal epoch verify N`: recompute a closed epoch from the archive alone and compare.

The recomputation reads exactly the epoch's inputs: the archived events with
`arrival_seq <= input_arrival_seq` recorded at its close, and the figures recorded for the
epoch before it (ruleset §9): its scores, the slashing decisions made by earlier closes (with
the status they had then) and the stake ledger before it. The slashing decisions this close
made and the statuses it settled are compared too. Every column but the wall-clock `closed_at` must be identical,
floats bit for bit.
"""

from __future__ import annotations

import polars as pl

from payouts.compute import compute_epoch
from payouts.gather import gather_epoch_inputs
from payouts.write import SLASH_DECISION_SCHEMA, ledger_frame_sql, slash_decision_rows
from scoring.ruleset import RULESET_V1, RulesetConfig
from store.db import fetch_polars, registered

WALL_CLOCK_COLUMNS = {"closed_at"}


def verify_epoch(con, reward_epoch: int, cfg: RulesetConfig = RULESET_V1) -> list[str]:
    row = con.execute("SELECT * FROM reward_epochs WHERE reward_epoch = ?", [reward_epoch]).fetchone()
    if row is None:
        raise LookupError(f"epoch {reward_epoch} is not closed in this store")
    stored = dict(zip([d[0] for d in con.description], row))
    # from the archive alone, never from the state the closes carried forward
    inputs = gather_epoch_inputs(con, reward_epoch, stored["input_arrival_seq"], cfg, from_scratch=True)
    result = compute_epoch(inputs, cfg)
    diffs: list[str] = []
    for k, v in result.epoch_row.items():
        if stored.get(k) != v:
            diffs.append(f"reward_epochs.{k}: stored {stored.get(k)!r}, recomputed {v!r}")

    scores = fetch_polars(
        con, "SELECT * FROM node_epoch_scores WHERE reward_epoch = ? ORDER BY node_id", [reward_epoch])
    diffs += compare_frames("node_epoch_scores", scores, result.scores.select(scores.columns).sort("node_id"))

    rewards = fetch_polars(con, "SELECT reward_epoch, node_id, pool, amount_base_units, wallet FROM epoch_rewards"
                                " WHERE reward_epoch = ? ORDER BY node_id", [reward_epoch])
    if not rewards.equals(result.rewards.select(rewards.columns).cast(rewards.schema)):
        diffs.append(f"epoch_rewards: {rewards.height} stored rows differ from {result.rewards.height} recomputed")
    ledger = fetch_polars(
        con, "SELECT entry_id, debit_account, credit_account, amount_base_units, reward_epoch, ref FROM ledger_entries"
             " WHERE reward_epoch = ? ORDER BY entry_id", [reward_epoch])
    with registered(con, "verify_ledger", result.ledger):
        recomputed = fetch_polars(con, ledger_frame_sql("verify_ledger"))
    if not ledger.equals(recomputed.select(ledger.columns)):
        diffs.append("ledger_entries differ from the recomputation")
    diffs += compare_slash_decisions(con, reward_epoch, result)
    return diffs


def compare_slash_decisions(con, reward_epoch: int, result) -> list[str]:
    """The decisions this close made (every column but the later status) and the statuses it set."""
    cols = [c for c, _ in SLASH_DECISION_SCHEMA if c not in ("status", "resolved_in_epoch")]
    outcome = result.slashing
    made = slash_decision_rows(outcome.new_decisions if outcome else [], "")
    stored = fetch_polars(con, f"SELECT {', '.join(cols)} FROM slash_decisions WHERE decided_in_epoch = ?"
                               " ORDER BY decision_id", [reward_epoch])
    recomputed = made.with_columns(pl.lit(result.epoch_row["ruleset_version"]).alias("ruleset_version"))
    recomputed = recomputed.select(cols).sort("decision_id")
    diffs = []
    if stored["decision_id"].to_list() != recomputed["decision_id"].to_list():
        diffs.append(f"slash_decisions: {stored.height} stored decisions made at this close,"
                     f" {recomputed.height} recomputed")
    else:
        for col in cols:
            a, b = stored[col].to_list(), recomputed[col].to_list()
            for i, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    diffs.append(f"slash_decisions.{col} of {a and stored['decision_id'][i]}: stored {x!r},"
                                 f" recomputed {y!r}")
                    break
    settled = {d.decision_id: d.status for d in (outcome.decisions if outcome else [])
               if d.resolved_in_epoch == reward_epoch}
    stored_settled = dict(con.execute("SELECT decision_id, status FROM slash_decisions WHERE resolved_in_epoch = ?",
                                      [reward_epoch]).fetchall())
    if stored_settled != settled:
        diffs.append(f"slash_decisions: the statuses set at this close differ ({len(stored_settled)} stored,"
                     f" {len(settled)} recomputed)")
    return diffs


def compare_frames(name: str, stored: pl.DataFrame, recomputed: pl.DataFrame) -> list[str]:
    if stored.height != recomputed.height:
        return [f"{name}: {stored.height} stored rows, {recomputed.height} recomputed"]
    diffs = []
    if stored["node_id"].to_list() != recomputed["node_id"].to_list():
        return [f"{name}: the set of nodes differs"]
    for col in stored.columns:
        a, b = stored[col], recomputed[col].cast(stored[col].dtype)
        same = (a == b) | (a.is_null() & b.is_null())
        bad = (~same.fill_null(False))
        if bad.any():
            i = int(bad.arg_max())
            diffs.append(f"{name}.{col} for node {stored['node_id'][i]}: stored {a[i]!r}, recomputed {b[i]!r}")
    return diffs
