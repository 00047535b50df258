"""The treasury's work on published epochs: validate (and record why), settle, status, reconcile.

Reads the published folder (store/published.py) and the treasury's own file only: it works
while a stream worker holds the store.

Validation is recorded with a digest of the files' bytes it read. Settling an epoch reuses a
passing validation only while the files are byte for byte those (their sha256s are recomputed,
which is cheap); any change runs the whole suite again, which then fails on the changed file.
A failing validation marks the epoch `blocked` with the failed checks, and nothing of it is paid.

Reconcile (exit 1 on any difference): every recipient's on-chain token balance against the sum of
its settled rewards (and of the ledger's moves to it); every confirmed batch's transaction, as
the cluster returns it, against its rows (memo: epoch, batch and manifest hash; each transfer's
destination and amount); the treasury's balance against the supply minus every move.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Callable

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID

from payouts import transactions as txb
from payouts.treasury import SUPPLY_BASE_UNITS, EpochRewards, SettleReport, Treasury, now
from payouts.treasury_db import get_meta
from payouts.validation import Validation, read_validated_rewards, validate_epoch
from store.published import list_epochs

STATUS_BLOCKED = "blocked"
STATUS_VALIDATED = "validated"


def record_validation(con, v: Validation) -> None:
    """Record a validation run; an epoch not yet being paid becomes `validated` or `blocked`."""
    failed = [c for c in v.checks if not c.success]
    con.execute("INSERT INTO validations VALUES (?, ?, ?, ?, ?, ?, ?)",
                [v.reward_epoch, now(), v.success, v.files_sha256, v.manifest_sha256,
                 ",".join(c.name for c in failed) or None,
                 json.dumps([{"name": c.name, "success": c.success, "detail": c.detail} for c in v.checks])])
    row = con.execute("SELECT status FROM treasury_epochs WHERE reward_epoch = ?", [v.reward_epoch]).fetchall()
    status = row[0][0] if row else None
    reason = None if v.success else "validation failed: " + "; ".join(f"{c.name} ({c.detail})" for c in failed)[:2000]
    if status in (None, STATUS_VALIDATED, STATUS_BLOCKED):
        con.execute("INSERT INTO treasury_epochs (reward_epoch, status, reason, manifest_sha256, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (reward_epoch) DO UPDATE SET status = excluded.status,"
                    " reason = excluded.reason, manifest_sha256 = excluded.manifest_sha256, updated_at = excluded.updated_at",
                    [v.reward_epoch, STATUS_VALIDATED if v.success else STATUS_BLOCKED, reason, v.manifest_sha256, now()])
    elif not v.success:  # being paid or paid: keep the status, say what is wrong now
        con.execute("UPDATE treasury_epochs SET reason = ?, updated_at = ? WHERE reward_epoch = ?",
                    [reason, now(), v.reward_epoch])


def last_passing_validation(con, n: int) -> str | None:
    rows = con.execute("SELECT files_sha256 FROM validations WHERE reward_epoch = ? AND success"
                       " ORDER BY validated_at DESC LIMIT 1", [n]).fetchall()
    return rows[0][0] if rows else None


def validated_epoch(con, root, n: int) -> tuple[EpochRewards | None, Validation | None]:
    """The epoch's rewards if it validates: a recorded pass over the same bytes, else a new run
    (recorded). (None, validation) when it fails."""
    digest = last_passing_validation(con, n)
    if digest is not None:
        rewards = read_validated_rewards(root, n, digest)
        if rewards is not None:
            return rewards, None
    v = validate_epoch(root, n)
    record_validation(con, v)
    return v.rewards, v


@dataclass
class EpochOutcome:
    reward_epoch: int
    action: str  # settled | already_settled | blocked
    report: SettleReport | None = None
    validation: Validation | None = None
    reason: str | None = None


def settle_published(treasury: Treasury, root, n: int) -> EpochOutcome:
    """Validate (or reuse a validation of the same bytes) and settle published epoch n."""
    con = treasury.con
    if treasury.epoch_status(n) == "settled":
        return EpochOutcome(n, "already_settled", SettleReport(n, already_settled=True))
    rewards, v = validated_epoch(con, root, n)
    if v is not None:  # said before anything of the epoch is paid (a reused validation is not run again)
        treasury.log(f"epoch {n} validated: " + ("passed" if v.success else "FAILED " + ", ".join(c.name for c in v.failed))
                     + f" ({len(v.checks)} expectations)")
    if rewards is None:
        reason = con.execute("SELECT reason FROM treasury_epochs WHERE reward_epoch = ?", [n]).fetchall()[0][0]
        return EpochOutcome(n, "blocked", validation=v, reason=reason)
    return EpochOutcome(n, "settled", treasury.settle(rewards), validation=v)


def pending_epochs(con, root) -> list[int]:
    """Published epochs not settled yet, ascending; an epoch left half paid comes first."""
    settled = {e for (e,) in con.execute("SELECT reward_epoch FROM treasury_epochs WHERE status = 'settled'").fetchall()}
    settling = [e for (e,) in con.execute("SELECT reward_epoch FROM treasury_epochs WHERE status = 'settling'"
                                          " ORDER BY reward_epoch").fetchall()]
    rest = [e for e in list_epochs(root) if e not in settled and e not in settling]
    return settling + rest


# ----------------------------------------------------------------------------- status
@dataclass
class EpochStatus:
    reward_epoch: int
    closed: bool | None  # None: the store could not be read (another process holds it)
    published: bool
    validated: str  # passed | failed | -
    status: str  # published | validated | blocked | settling | settled
    batches: str
    amount_base_units: int | None
    reason: str | None


def treasury_status(con, root, closed: list[int] | None = ()) -> list[EpochStatus]:
    """Every epoch the store closed (`closed`; None when it could not be read), the folder
    published or the treasury knows, with where it stands."""
    published = set(list_epochs(root))
    closed_set = set(closed or ())
    rows = {}
    if con is not None:
        for e, status, reason, allocated in con.execute(
                "SELECT reward_epoch, status, reason, allocated_base_units FROM treasury_epochs").fetchall():
            rows[e] = (status, reason, allocated)
        validations = {e: ok for e, ok in con.execute(
            "SELECT reward_epoch, arg_max(success, validated_at) FROM validations GROUP BY 1").fetchall()}
        batches = {e: (int(c), int(n)) for e, c, n in con.execute(
            "SELECT reward_epoch, count(*) FILTER (WHERE status = 'confirmed'), count(*) FROM settlements GROUP BY 1").fetchall()}
    else:
        validations, batches = {}, {}
    out = []
    for e in sorted(published | set(rows) | closed_set):
        status, reason, allocated = rows.get(e, ("published" if e in published else "closed", None, None))
        v = validations.get(e)
        c, n = batches.get(e, (0, 0))
        is_closed = None if closed is None else (e in closed_set or e in published)  # published ⇒ closed
        out.append(EpochStatus(e, is_closed, e in published, "-" if v is None else ("passed" if v else "failed"),
                               status, f"{c}/{n}" if n else "-", allocated, reason))
    return out


# ----------------------------------------------------------------------------- reconcile
@dataclass
class Reconciliation:
    recipients: int = 0
    batches: int = 0
    transfers: int = 0
    differences: list[str] = field(default_factory=list)


def _loaded_keys(tx: VersionedTransaction, chain) -> list[Pubkey]:
    """A v0 transaction's account keys in order: static, then loaded writable, then loaded readonly."""
    msg = tx.message
    keys = list(msg.account_keys)
    lookups = list(getattr(msg, "address_table_lookups", []) or [])
    tables = chain.accounts([lk.account_key for lk in lookups]) if lookups else []
    writable, readonly = [], []
    for lk, acc in zip(lookups, tables):
        addresses = txb.parse_lookup_table(acc.data) if acc is not None else []
        writable += [addresses[i] for i in list(lk.writable_indexes)]
        readonly += [addresses[i] for i in list(lk.readonly_indexes)]
    return keys + writable + readonly


def decode_batch(tx: VersionedTransaction, chain) -> tuple[str | None, list[tuple[str, int]]]:
    """(memo text, [(destination token account, amount)]) of a transfer batch."""
    keys = _loaded_keys(tx, chain)
    memo, transfers = None, []
    for ix in tx.message.instructions:
        program = keys[ix.program_id_index]
        data = bytes(ix.data)
        if program == MEMO_PROGRAM_ID:
            memo = data.decode(errors="replace")
        elif program == TOKEN_PROGRAM_ID and data[:1] == b"\x0c":  # transfer_checked
            accounts = list(bytes(ix.accounts))
            transfers.append((str(keys[accounts[2]]), struct.unpack_from("<Q", data, 1)[0]))
    return memo, transfers


def reconcile(con, chain, reward_epoch: int | None = None, progress: Callable[[int], None] | None = None) -> Reconciliation:
    out = Reconciliation()
    diff = out.differences.append
    mint = get_meta(con, "mint")
    if mint is None:
        return out
    mint_pk = Pubkey.from_string(mint)
    where = "" if reward_epoch is None else f" WHERE reward_epoch = {int(reward_epoch)}"
    # 1. balances: every recipient (of the epoch, or all) against Σ settled rewards and Σ moves to it
    wallets = [w for (w,) in con.execute(f"SELECT DISTINCT wallet FROM settlement_transfers{where} ORDER BY 1").fetchall()]
    settled = dict(con.execute(
        "SELECT wallet, sum(amount_base_units) FROM treasury_entitlements WHERE reward_epoch IN"
        " (SELECT reward_epoch FROM treasury_epochs WHERE status = 'settled') GROUP BY 1").fetchall())
    moved = dict(con.execute("SELECT substr(credit_account, 8), sum(amount_base_units) FROM treasury_ledger GROUP BY 1").fetchall())
    accounts = chain.accounts([txb.token_account(Pubkey.from_string(w), mint_pk) for w in wallets])
    for w, acc in zip(wallets, accounts):
        on_chain = None if acc is None else txb.token_balance(acc.data)
        want = int(settled.get(w, 0))
        if on_chain != want:
            diff(f"wallet {w}: on-chain balance {on_chain} ≠ settled rewards {want}")
        if int(moved.get(w, 0)) != want:
            diff(f"wallet {w}: ledger moves {int(moved.get(w, 0))} ≠ settled rewards {want}")
    out.recipients = len(wallets)
    # 2. every confirmed batch as the cluster has it, against its rows
    manifests = dict(con.execute("SELECT reward_epoch, manifest_sha256 FROM treasury_epochs").fetchall())
    batches = con.execute(f"SELECT reward_epoch, batch, signature, status FROM settlements{where}"
                          " ORDER BY reward_epoch, batch").fetchall()
    for i, (e, b, sig, status) in enumerate(batches):
        if status != "confirmed":
            diff(f"epoch {e} batch {b}: {status}, not confirmed")
            continue
        landed = chain.statuses([Signature.from_string(sig)])[0]
        raw = chain.transaction_bytes(Signature.from_string(sig))
        if landed is None or landed.err is not None or raw is None:
            diff(f"epoch {e} batch {b}: transaction {sig} is not on the cluster as landed")
            continue
        memo, transfers = decode_batch(VersionedTransaction.from_bytes(raw), chain)
        fields = txb.parse_memo(memo or "")
        if fields != {"reward_epoch": e, "batch": b, "manifest_sha256": manifests.get(e)}:
            diff(f"epoch {e} batch {b}: memo {memo!r} does not name this batch and manifest")
        rows = [(a, int(x)) for a, x in con.execute(
            "SELECT token_account, amount_base_units FROM settlement_transfers WHERE reward_epoch = ? AND batch = ?"
            " ORDER BY position", [e, b]).fetchall()]
        if transfers != rows:
            diff(f"epoch {e} batch {b}: the transaction's {len(transfers)} transfers differ from its {len(rows)} rows")
        out.transfers += len(rows)
        if progress:
            progress(i + 1)
    out.batches = len(batches)
    # 3. the treasury: the supply less every move
    acc = chain.accounts([txb.token_account(chain_authority(con), mint_pk)])[0]
    supply = int(get_meta(con, "supply_base_units", str(SUPPLY_BASE_UNITS)))
    total_moved = int(con.execute("SELECT coalesce(sum(amount_base_units), 0) FROM treasury_ledger").fetchall()[0][0])
    balance = None if acc is None else txb.token_balance(acc.data)
    if balance != supply - total_moved:
        diff(f"treasury: balance {balance} ≠ supply {supply} − moved {total_moved}")
    return out


def chain_authority(con) -> Pubkey:
    return Pubkey.from_string(get_meta(con, "authority"))
