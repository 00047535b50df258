"""Writing a closed epoch (ruleset §9 "Closing writes, in one transaction"): store I/O only.

One transaction: the node-epoch scores, the rewards, the ledger (its entry ids hashed by the
store, `payouts.ledger.entry_id_sql`), the slashing decisions and the statuses this close set,
the epoch row. The money invariants are checked on the rows before the write and again on what
the store reads back inside the transaction, before COMMIT; a second close of the same epoch is
a no-op.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from payouts import ENGINE_VERSION, carry as carried
from payouts.carry import CarryStep
from payouts.epoch import EpochResult
from payouts.ledger import ACCOUNT_EMISSION, ACCOUNT_UNALLOCATED, entry_id_sql
from scoring.invariants import invariant
from scoring.slashing import SlashOutcome
from store.db import registered

SLASH_DECISION_SCHEMA = [
    ("decision_id", pl.String), ("node_id", pl.String), ("rule", pl.String), ("amount_base_units", pl.Int64),
    ("decided_at", pl.Datetime("us", "UTC")), ("status", pl.String), ("evidence", pl.List(pl.String)),
    ("subject", pl.String), ("decided_at_us", pl.Int64), ("stake_deposit_base_units", pl.Int64),
    ("stake_left_base_units", pl.Int64), ("decided_in_epoch", pl.Int64), ("finality_epoch", pl.Int64),
    ("resolved_in_epoch", pl.Int64), ("detail", pl.String), ("ruleset_version", pl.String),
]
# The ledger rows as the store keeps them (`ledger_frame_sql` over EpochResult.ledger).
LEDGER_COLUMNS = ("entry_id", "debit_account", "credit_account", "amount_base_units", "reward_epoch", "ref")


def ledger_frame_sql(relation: str, in_key_order: bool = True) -> str:
    """The ledger_entries rows of a relation holding an `EpochResult.ledger`, keys hashed (in key
    order, or in the ledger's own order: the close writes them so, a sort of a million keys
    saved; every reader orders them)."""
    return (f"SELECT {entry_id_sql('reward_epoch', 'kind', 'subject')} AS entry_id, debit_account, credit_account,"
            f" amount_base_units, reward_epoch, ref FROM {relation}" + (" ORDER BY entry_id" if in_key_order else ""))


def check_result(result: EpochResult) -> None:
    """The money invariants on the rows, before anything is written (§7)."""
    row = result.epoch_row
    invariant(row["allocated_base_units"] + row["unallocated_base_units"] == row["emission_base_units"],
              "Σ shares + unallocated == emission before the write")
    amounts = result.rewards["amount_base_units"]
    invariant(bool((amounts > 0).all()), "reward rows are positive")
    invariant(int(amounts.sum()) == row["allocated_base_units"], "reward rows sum to the allocation")


def check_written(con, e: int, row: dict, decisions: int | None = None) -> str | None:
    """The same invariants on what the store reads back, inside the transaction (one query);
    `decisions`: how many slashing decisions this close made or settled (None: no slashing
    outcome, not read back). Returns the stored first_reward_epoch, read in the same query."""
    # The keys of the contract's tables are held here rather than by index (an enforced key on
    # millions of rows per epoch costs more than the whole close): every entry id hashes its
    # epoch, so uniqueness inside the epoch is uniqueness. Each table is scanned once, the
    # figures as rows of one UNION ALL (cheaper to plan than a product of subqueries).
    slash = ("UNION ALL SELECT 'decisions', count(*), NULL, NULL, NULL FROM slash_decisions"
             " WHERE decided_in_epoch = $e OR resolved_in_epoch = $e" if decisions is not None else "")
    got = {tag: rest for tag, *rest in con.execute(f"""
        SELECT 'ledger', sum(amount_base_units) FILTER (debit_account = $emission),
               sum(amount_base_units) FILTER (credit_account LIKE 'node:%:rewards' OR credit_account = $unallocated),
               count(*) - count(DISTINCT entry_id), NULL
        FROM ledger_entries WHERE reward_epoch = $e
        UNION ALL SELECT 'rewards', coalesce(sum(amount_base_units), 0), NULL, count(*) - count(DISTINCT node_id), NULL
        FROM epoch_rewards WHERE reward_epoch = $e
        UNION ALL SELECT 'scores', NULL, NULL, count(*) - count(DISTINCT node_id), NULL
        FROM node_epoch_scores WHERE reward_epoch = $e
        UNION ALL SELECT 'meta', NULL, NULL, NULL, value FROM engine_meta WHERE key = 'first_reward_epoch'
        {slash}
    """, {"e": e, "emission": ACCOUNT_EMISSION, "unallocated": ACCOUNT_UNALLOCATED}).fetchall()}
    debit, credit, dup_entries, _ = got["ledger"]
    rewards, _, dup_rewards, _ = got["rewards"]
    dup_scores = got["scores"][2]
    invariant(int(rewards) == row["allocated_base_units"], "rewards read back sum to the allocation")
    invariant(int(debit or 0) == row["emission_base_units"] == int(credit or 0),
              "the ledger moves exactly the emission from treasury to nodes and unallocated")
    invariant(dup_scores == dup_rewards == dup_entries == 0,
              f"(reward_epoch, node_id) and entry_id are unique in epoch {e}")
    if decisions is not None:
        invariant(got["decisions"][0] == decisions, f"slash decisions of epoch {e} read back as written")
    return got["meta"][3] if "meta" in got else None


def write_epoch(con, result: EpochResult, closed_at: datetime, before_commit=None,
                carry: CarryStep | None = None) -> bool:
    """One transaction: scores, rewards, ledger, slashing decisions, the epoch row, and the state
    carried forward (`carry`, from the gather on this connection); invariants checked before and
    on what is read back. `before_commit(reward_epoch)`, when given, is called once every row is
    written and checked, just before COMMIT (the crash tests kill the process there). Returns
    whether it wrote (False: the epoch was closed already)."""
    e, row = result.reward_epoch, result.epoch_row
    check_result(result)
    cols = list(row) + ["closed_at", "engine_version"]
    con.execute("BEGIN TRANSACTION")
    try:
        # the epoch row first: none is written when the epoch is closed already (its key), and
        # then the close is a no-op
        # (a NOT EXISTS costs less than an ON CONFLICT on the key, or a query of its own)
        if not con.execute(f"INSERT INTO reward_epochs ({', '.join(cols)}) SELECT {', '.join('?' for _ in cols)}"
                           " WHERE NOT EXISTS (SELECT 1 FROM reward_epochs WHERE reward_epoch = ?)",
                           list(row.values()) + [closed_at, ENGINE_VERSION, e]).fetchall()[0][0]:
            con.execute("ROLLBACK")
            return False  # closed already: a second close is a no-op
        # (the frames as Arrow: registering a polars frame converts it on every use)
        with registered(con, "close_scores", result.scores.to_arrow()):
            con.execute("INSERT INTO node_epoch_scores BY NAME SELECT * FROM close_scores")
        if result.rewards.height:
            with registered(con, "close_rewards", result.rewards.to_arrow()):
                con.execute("INSERT INTO epoch_rewards BY NAME SELECT *, $v::VARCHAR AS ruleset_version"
                            " FROM close_rewards", {"v": row["ruleset_version"]})
        if result.ledger.height:
            with registered(con, "close_ledger", result.ledger.to_arrow()):
                con.execute(f"INSERT INTO ledger_entries BY NAME {ledger_frame_sql('close_ledger', False)}")
        decisions = None
        if result.slashing is not None:
            decisions = write_slash_decisions(con, result.slashing, row["ruleset_version"])
        first = check_written(con, e, row, decisions)
        if carry is not None:  # (and checks that no stake account it moved is below 0)
            carried.advance(con, e, carry, stake_moved=moves_stake(result.ledger))
        if first is None or e < int(first):  # (it is the least closed epoch: it moves only then)
            con.execute("""
                INSERT INTO engine_meta SELECT 'first_reward_epoch', min(reward_epoch)::VARCHAR FROM reward_epochs
                ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """)
        if before_commit is not None:
            before_commit(e)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def moves_stake(ledger: pl.DataFrame) -> bool:
    """Whether a close's ledger rows move a node's stake account (a superset of the store's
    LIKE 'node:%:stake'). The reward rows, nearly all of them, credit `node:<id>:rewards` from a
    pool: only the few others are looked at, in Python."""
    if not ledger.height:
        return False
    others = ledger.filter(pl.col("kind") != "reward").select("debit_account", "credit_account").rows()
    return any(a.startswith("node:") and a.endswith(":stake") for row in others for a in row)


def slash_decision_rows(decisions, ruleset_version: str) -> pl.DataFrame:
    """Decisions as `slash_decisions` rows; decided_at keeps the exact microsecond (UTC)."""
    epoch0 = datetime(1970, 1, 1, tzinfo=timezone.utc)
    rows = [(d.decision_id, d.node_id, d.rule, d.amount_base_units,
             epoch0 + timedelta(microseconds=d.decided_at_us), d.status, list(d.evidence), d.subject,
             d.decided_at_us, d.stake_deposit_base_units, d.stake_left_base_units, d.decided_in_epoch,
             d.finality_epoch, d.resolved_in_epoch, d.detail, ruleset_version) for d in decisions]
    return pl.DataFrame(rows, orient="row", schema=SLASH_DECISION_SCHEMA)


def write_slash_decisions(con, outcome: SlashOutcome, ruleset_version: str) -> int:
    """Inside the close's transaction: this close's decisions, then the statuses it settled.
    Returns how many decisions of the epoch the store must read back (`check_written`)."""
    if outcome.new_decisions:
        with registered(con, "close_decisions", slash_decision_rows(outcome.new_decisions, ruleset_version)):
            con.execute("INSERT INTO slash_decisions BY NAME SELECT * FROM close_decisions")
    for d in outcome.resolved:
        con.execute("UPDATE slash_decisions SET status = ?, resolved_in_epoch = ? WHERE decision_id = ?",
                    [d.status, d.resolved_in_epoch, d.decision_id])
    return len({d.decision_id for d in outcome.new_decisions} | {d.decision_id for d in outcome.resolved})
