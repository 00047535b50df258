"""Settle a validated epoch on Solana exactly once (the treasury's shell around the pure plan).

One epoch's settlement, in order; every step records what it will do before it does it, so a
crash anywhere resumes without paying anyone twice:

1. `setup`: the treasury file belongs to one cluster and one signer; on first use the treasury
   is funded (LiteSVM: an airdrop) and the reward mint created (6 decimals, the treasury its mint
   authority, no freeze authority), the whole supply (500,000,000 tokens, ruleset §6's emission
   base) minted into the treasury's token account, in one transaction.
2. Resume: every chain operation or batch left `signed`/`sent` by a crash is looked up on the
   cluster first (landed? expired?).
3. Plan (payouts/settlement.py): owed = cumulative entitlement − confirmed paid, per wallet;
   checked: Σ planned == the epoch's allocated total, nothing negative, each wallet once.
4. Accounts: the recipients' associated token accounts that do not exist are created
   (`create_idempotent`, the treasury pays the rent, recorded per recipient), then every
   recipient's token account is put in one of the treasury's address lookup tables.
5. Batches: the plan, ordered by lookup-table position, is cut greedily into transactions of at
   most 1,232 bytes and 64 accounts (~51 transfers), and ALL batches are recorded in one DuckDB
   transaction (recipients, amounts, memo; status `planned`) with the epoch's entitlements.
6. Each batch: signed with a fresh blockhash, and (signature, blockhash, last valid height,
   bytes) recorded (`signed`) BEFORE it is sent; sent; its landing awaited; then
   `confirmed`, with its ledger entries (`treasury:reward_pool` → `wallet:<w>`), in one DuckDB
   transaction. On a restart a recorded signature is looked up first: landed → confirmed;
   not landed while its blockhash is still valid → the same signed bytes are broadcast again
   (one signature lands at most once); not landed and expired → re-signed (attempt + 1). A batch
   is never signed anew while an earlier signature of it could still land.
7. Read back: the treasury's token balance equals the minted supply minus every confirmed
   transfer; on a closed-world chain (LiteSVM: nobody else holds keys) every recipient's balance
   equals the sum of its confirmed transfers. Then the epoch is `settled`; `settle` on it again
   does nothing and says so.

Crash injection for the tests: `EPOCHAL_TREASURY_CRASH=<point>:<n>` SIGKILLs the process the
n-th time it reaches <point> (`CRASH_POINTS`), or a `crash` callable passed in does what it likes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.constants import MINT_LEN

from payouts import transactions as txb
from payouts.chain import LITESVM, Chain, Landed, TransactionRejected, is_already_processed
from payouts.settlement import SettlementPlan, Transfer, compute_entitlements, plan_settlement, split_batches
from payouts.treasury_db import TreasuryError, get_meta, insert_rows, set_meta
from scoring.invariants import invariant
from scoring.ruleset import RULESET_V1

# ruleset §6: the 500,000,000 tokens the emission formula is based on, all minted to the treasury
SUPPLY_BASE_UNITS = RULESET_V1.total_supply_tokens * 10**RULESET_V1.token_decimals
LITESVM_FUND_LAMPORTS = 100_000 * 10**9  # the in-process treasury's SOL (fees and rent), airdropped
LITESVM_LOW_LAMPORTS = 1_000 * 10**9  # topped up below this
ACCOUNT_POOL = "treasury:reward_pool"
ACCOUNT_WALLET = "wallet:{wallet}"
MAX_ATTEMPTS_PER_RUN = 5  # re-signings of one batch in one run (each after an expiry) before giving up

RECIPIENT_COLUMNS = ["wallet", "token_account", "rent_lamports", "opened_for_epoch", "signature", "recorded_at"]
SETTLEMENT_COLUMNS = ["reward_epoch", "batch", "signature", "status", "recipients", "amount_base_units", "blockhash",
                      "last_valid_block_height", "attempts", "memo", "tx_bytes", "error", "slot", "recorded_at",
                      "confirmed_at"]
LEDGER_COLUMNS = ["entry_id", "debit_account", "credit_account", "amount_base_units", "reward_epoch", "ref",
                  "signature", "recorded_at"]

CRASH_POINTS = (
    "after_plan",        # the batches recorded, none signed
    "after_record",      # a batch signed and recorded, not sent
    "after_send",        # a batch sent (landed on LiteSVM), its status not recorded
    "before_status",     # its landing known, `confirmed` not written
    "inside_ledger",     # inside the DuckDB transaction that writes `confirmed` and the ledger
    "between_batches",   # a batch confirmed, the next not started
    "after_operation",   # a chain operation (mint, accounts, table) sent, its outcome not recorded
)


class SettlementStopped(Exception):
    """The cluster refused or failed a batch (it moved nothing); the epoch stays `settling` with
    the reason, and the next run resumes it."""


class CrashHook:
    def __init__(self, spec: str | None):
        self.point, self.n, self.hits = None, 0, 0
        if spec:
            self.point, _, n = spec.partition(":")
            self.n = int(n or 1)

    def __call__(self, point: str) -> None:
        if point == self.point:
            self.hits += 1
            if self.hits >= self.n:
                os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class EpochRewards:
    """One validated epoch as the treasury pays it: (node_id, wallet, amount_base_units) rows."""
    reward_epoch: int
    manifest_sha256: str
    rewards: tuple[tuple[str, str, int], ...]

    @property
    def allocated_base_units(self) -> int:
        return sum(int(r[2]) for r in self.rewards)

    def entitlements(self) -> dict[str, int]:
        return compute_entitlements((w, a) for _, w, a in self.rewards)


@dataclass
class SettleReport:
    reward_epoch: int
    already_settled: bool = False
    recipients: int = 0
    total_base_units: int = 0
    batches: int = 0
    confirmed_now: int = 0
    resigned: int = 0
    new_accounts: int = 0
    rent_lamports: int = 0
    signatures: list[str] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    tx_bytes: list[int] = field(default_factory=list)


def now() -> datetime:
    return datetime.now(timezone.utc)


class Treasury:
    def __init__(self, con, chain: Chain, signer: Keypair, *, crash: Callable[[str], None] | None = None,
                 log: Callable[[str], None] | None = None):
        self.con = con
        self.chain = chain
        self.signer = signer
        self.crash = crash or CrashHook(os.environ.get("EPOCHAL_TREASURY_CRASH"))
        self.log = log or (lambda msg: None)
        self.accounts: txb.Treasury | None = None

    # ------------------------------------------------------------------ setup
    def setup(self) -> txb.Treasury:
        """The treasury's addresses on its cluster, created on first use."""
        cluster = get_meta(self.con, "cluster")
        authority = str(self.signer.pubkey())
        if cluster is not None and cluster != self.chain.name:
            raise TreasuryError(f"this treasury file settles on {cluster}, not {self.chain.name}"
                                " (use another --treasury file for another cluster)")
        owner = get_meta(self.con, "authority")
        if owner is not None and owner != authority:
            raise TreasuryError(f"this treasury file belongs to the signer {owner}, not to the given keypair")
        if cluster is None:
            set_meta(self.con, "cluster", self.chain.name)
            set_meta(self.con, "authority", authority)
        self.resume_operations()
        self._ensure_sol()
        mint = get_meta(self.con, "mint")
        if mint is not None and self.chain.accounts([Pubkey.from_string(mint)])[0] is None:
            mint = None  # its creation never landed: make another
        if mint is None:
            mint = self._create_mint()
        mint_pk = Pubkey.from_string(mint)
        self.accounts = txb.Treasury(self.signer.pubkey(), mint_pk, txb.token_account(self.signer.pubkey(), mint_pk))
        return self.accounts

    def _ensure_sol(self) -> None:
        pk = self.signer.pubkey()
        if self.chain.name == LITESVM and self.chain.lamports(pk) < LITESVM_LOW_LAMPORTS:
            self.chain.fund(pk, LITESVM_FUND_LAMPORTS)
            self.log(f"funded the treasury {pk} with {LITESVM_FUND_LAMPORTS / 1e9:,.0f} SOL (in-process chain)")
        elif self.chain.name != LITESVM and self.chain.lamports(pk) == 0:
            try:  # works on a test validator or devnet; a mainnet signer comes funded
                self.chain.fund(pk, 10 * 10**9)
            except TransactionRejected as exc:
                raise TreasuryError(f"the treasury {pk} holds no SOL on {self.chain.name} and the airdrop was refused"
                                    f" ({exc}); fund it") from exc
            self.log(f"requested an airdrop of 10 SOL to the treasury {pk}")

    def _create_mint(self) -> str:
        mint = Keypair()
        rent = self.chain.rent_exempt_minimum(MINT_LEN)
        blockhash, lvh = self.chain.latest_blockhash()
        tx = txb.compile_tx(self.signer, txb.mint_setup_ixs(self.signer.pubkey(), mint.pubkey(), rent, SUPPLY_BASE_UNITS),
                            blockhash, signers=[mint])
        set_meta(self.con, "mint", str(mint.pubkey()))
        set_meta(self.con, "supply_base_units", str(SUPPLY_BASE_UNITS))
        landed = self._operation("mint", tx, lvh, None, {"mint": str(mint.pubkey()), "supply": SUPPLY_BASE_UNITS})
        invariant(landed is not None and landed.err is None, "the mint transaction landed")
        self.log(f"created the reward mint {mint.pubkey()} and minted {SUPPLY_BASE_UNITS:,} base units to the treasury")
        return str(mint.pubkey())

    # ------------------------------------------------------------------ chain operations
    def _operation(self, kind: str, tx: VersionedTransaction, lvh: int, reward_epoch: int | None,
                   detail, extra_sql: Iterable[tuple[str, list]] = ()) -> Landed | None:
        """Record a (non-payment) transaction, send it, wait for it, record its outcome."""
        txb.check_size(tx)
        sig = str(tx.signatures[0])
        self.con.execute("BEGIN TRANSACTION")
        self.con.execute("INSERT INTO chain_operations VALUES (?, ?, ?, ?, ?, ?, 'signed', NULL, NULL, ?)",
                         [sig, kind, reward_epoch, json.dumps(detail), lvh, bytes(tx), now()])
        for sql, params in extra_sql:
            self.con.execute(sql, params)
        self.con.execute("COMMIT")
        before = self.chain.lamports(self.signer.pubkey())
        try:
            self.chain.send(tx)
        except TransactionRejected as exc:
            self.con.execute("UPDATE chain_operations SET status = 'rejected', error = ? WHERE signature = ?",
                             [str(exc), sig])
            raise SettlementStopped(f"the cluster refused the treasury's {kind} transaction: {exc}") from exc
        self.crash("after_operation")
        landed = self.chain.wait_landed(tx.signatures[0], lvh)
        spent = before - self.chain.lamports(self.signer.pubkey())
        self._operation_outcome(sig, landed, spent)
        return landed

    def _operation_until_landed(self, kind: str, ixs, reward_epoch: int, detail, what: str) -> Landed:
        """A chain operation whose instructions may be sent again once an attempt expired
        unlanded (idempotent ones only): signed anew with a fresh blockhash each time."""
        for _ in range(MAX_ATTEMPTS_PER_RUN):
            blockhash, lvh = self.chain.latest_blockhash()
            landed = self._operation(kind, txb.compile_tx(self.signer, ixs(), blockhash), lvh, reward_epoch, detail)
            if landed is not None and landed.err is None:
                return landed
            if landed is not None:
                raise SettlementStopped(f"{what} failed: {landed.err}")
        raise SettlementStopped(f"{what} did not land in {MAX_ATTEMPTS_PER_RUN} attempts")

    def _operation_outcome(self, sig: str, landed: Landed | None, spent: int | None) -> None:
        status = "expired" if landed is None else ("failed" if landed.err else "landed")
        self.con.execute("UPDATE chain_operations SET status = ?, error = ?, lamports_spent = ? WHERE signature = ?",
                         [status, None if landed is None else landed.err, spent, sig])
        kind, detail = self.con.execute("SELECT kind, detail FROM chain_operations WHERE signature = ?", [sig]).fetchall()[0]
        if status == "landed" and kind == "accounts":
            self._record_new_accounts(json.loads(detail), sig)

    def resume_operations(self) -> None:
        """Chain operations a crash left unresolved: landed, expired, or still able to land."""
        for sig, lvh in self.con.execute(
                "SELECT signature, last_valid_block_height FROM chain_operations WHERE status = 'signed'"
                " ORDER BY recorded_at").fetchall():
            landed = self.chain.statuses([Signature.from_string(sig)])[0]
            if landed is None and self.chain.may_still_land(Signature.from_string(sig), lvh):
                landed = self.chain.wait_landed(Signature.from_string(sig), lvh)
            self._operation_outcome(sig, landed, None)
        # a table whose creation never landed is forgotten (a new one is made at another slot)
        self.con.execute("DELETE FROM lookup_tables WHERE address IN (SELECT json_extract_string(detail, '$.table')"
                         " FROM chain_operations WHERE kind = 'table_create' AND status IN ('expired', 'failed', 'rejected'))")

    # ------------------------------------------------------------------ recipients' accounts
    def _record_new_accounts(self, detail: dict, sig: str) -> None:
        wallets = [Pubkey.from_string(w) for w in detail["wallets"]]
        mint = Pubkey.from_string(detail["mint"])
        atas = [txb.token_account(w, mint) for w in wallets]
        accs = self.chain.accounts(atas)
        rows = [(str(w), str(a), acc.lamports, detail.get("reward_epoch"), sig, now())
                for w, a, acc in zip(wallets, atas, accs) if acc is not None]
        insert_rows(self.con, "recipient_accounts", RECIPIENT_COLUMNS, rows, verb="INSERT OR IGNORE")

    def open_accounts(self, wallets: Sequence[str], reward_epoch: int) -> tuple[int, int]:
        """Create the token accounts the wallets lack; (accounts created, rent paid in lamports)."""
        t = self.accounts
        known = {w for (w,) in self.con.execute("SELECT wallet FROM recipient_accounts").fetchall()}
        todo = [w for w in wallets if w not in known]
        if not todo:
            return 0, 0
        pks = [Pubkey.from_string(w) for w in todo]
        existing = self.chain.accounts([txb.token_account(w, t.mint) for w in pks])
        rows = [(str(w), str(txb.token_account(w, t.mint)), None, reward_epoch, None, now())
                for w, acc in zip(pks, existing) if acc is not None]
        if rows:  # opened by someone else (or by us before a lost record): no rent of ours to count
            insert_rows(self.con, "recipient_accounts", RECIPIENT_COLUMNS, rows, verb="INSERT OR IGNORE")
        missing = [w for w, acc in zip(pks, existing) if acc is None]
        created = rent = 0
        for i in range(0, len(missing), txb.MAX_CREATE_ACCOUNTS):
            chunk = missing[i:i + txb.MAX_CREATE_ACCOUNTS]
            detail = {"wallets": [str(w) for w in chunk], "mint": str(t.mint), "reward_epoch": reward_epoch}
            # create_idempotent: sent again after an expiry, it cannot open an account twice
            self._operation_until_landed("accounts", lambda: txb.create_accounts_ixs(t, chunk), reward_epoch, detail,
                                         f"creating {len(chunk)} token accounts")
            created += len(chunk)
        if created:
            rent = self.con.execute("SELECT coalesce(sum(rent_lamports), 0) FROM recipient_accounts"
                                    " WHERE opened_for_epoch = ? AND rent_lamports IS NOT NULL", [reward_epoch]).fetchall()[0][0]
            self.log(f"opened {created:,} token accounts for new recipients ({int(rent):,} lamports of rent)")
        return created, int(rent)

    # ------------------------------------------------------------------ lookup tables
    def directory(self) -> txb.LookupDirectory:
        rows = self.con.execute("SELECT address FROM lookup_tables ORDER BY seq").fetchall()
        keys = [Pubkey.from_string(a) for (a,) in rows]
        accs = self.chain.accounts(keys) if keys else []
        d = txb.LookupDirectory()
        for k, acc in zip(keys, accs):
            if acc is not None:
                d.add_table(k, txb.parse_lookup_table(acc.data))
        return d

    def index_accounts(self, accounts: Sequence[Pubkey], reward_epoch: int) -> txb.LookupDirectory:
        """Put every account in a lookup table (appending to the last one, creating new ones)."""
        t = self.accounts
        d = self.directory()
        missing = [a for a in dict.fromkeys(accounts) if a not in d.position]
        changed = False
        failed_creations = 0
        while missing:
            if not d.tables or d.room(len(d.tables) - 1) == 0:
                if not self._create_table(reward_epoch):
                    failed_creations += 1
                    if failed_creations >= MAX_ATTEMPTS_PER_RUN:
                        raise SettlementStopped(f"creating a lookup table did not land in {failed_creations} attempts")
                d = self.directory()
                changed = True
                continue
            ti = len(d.tables) - 1
            chunk = missing[:min(d.room(ti), txb.MAX_EXTEND_ADDRESSES)]
            table = d.tables[ti][0]
            self._operation_until_landed("table_extend", lambda: [txb.extend_lookup_table_ix(table, t.authority, chunk)],
                                         reward_epoch, {"table": str(table), "addresses": len(chunk)},
                                         f"extending the lookup table {table}")
            d.extend(ti, chunk)
            missing = missing[len(chunk):]
            changed = True
        if changed:
            self.chain.let_slot_pass()  # a table's new entries are usable from the next slot
            d = self.directory()
        invariant(all(a in d.position for a in accounts), "every recipient account sits in a lookup table")
        return d

    def _create_table(self, reward_epoch: int) -> bool:
        """A new lookup table holding the mint and the treasury's account; False when it did not land."""
        t = self.accounts
        recent = self.chain.recent_slot()
        ix, table = txb.create_lookup_table_ix(t.authority, recent)
        if self.chain.accounts([table])[0] is not None:  # a table made at this slot already: wait for another
            self.chain.let_slot_pass()
            return True
        extend = txb.extend_lookup_table_ix(table, t.authority, [t.mint, t.token_account])
        blockhash, lvh = self.chain.latest_blockhash()
        tx = txb.compile_tx(self.signer, [ix, extend], blockhash)
        seq = self.con.execute("SELECT coalesce(max(seq), -1) + 1 FROM lookup_tables").fetchall()[0][0]
        landed = self._operation("table_create", tx, lvh, reward_epoch, {"table": str(table), "recent_slot": recent},
                                 [("INSERT INTO lookup_tables VALUES (?, ?, ?, ?)", [seq, str(table), recent, now()])])
        if landed is None:  # expired: it can never land; the next one is made at another slot
            self.con.execute("DELETE FROM lookup_tables WHERE address = ?", [str(table)])
            self.chain.let_slot_pass()
            return False
        if landed.err:
            self.con.execute("DELETE FROM lookup_tables WHERE address = ?", [str(table)])
            raise SettlementStopped(f"creating a lookup table failed: {landed.err}")
        self.log(f"created the lookup table {table}")
        return True

    # ------------------------------------------------------------------ the plan
    def paid(self) -> dict[str, int]:
        """Confirmed paid per wallet: Σ of the ledger's moves to it."""
        rows = self.con.execute("SELECT substr(credit_account, 8), sum(amount_base_units) FROM treasury_ledger"
                                " WHERE debit_account = ? GROUP BY 1", [ACCOUNT_POOL]).fetchall()
        return {w: int(a) for w, a in rows}

    def entitlements_before(self, reward_epoch: int) -> dict[str, int]:
        """Σ per wallet of the entitlements of the settled epochs (other than this one)."""
        rows = self.con.execute(
            "SELECT wallet, sum(amount_base_units) FROM treasury_entitlements"
            " WHERE reward_epoch <> ? AND reward_epoch IN (SELECT reward_epoch FROM treasury_epochs WHERE status = 'settled')"
            " GROUP BY 1", [reward_epoch]).fetchall()
        return {w: int(a) for w, a in rows}

    def plan(self, epoch: EpochRewards) -> SettlementPlan:
        """What is owed now: cumulative entitlement (settled epochs + this one) − confirmed paid."""
        cumulative = self.entitlements_before(epoch.reward_epoch)
        for w, a in epoch.entitlements().items():
            cumulative[w] = cumulative.get(w, 0) + a
        plan = plan_settlement(epoch.reward_epoch, cumulative, self.paid())
        invariant(plan.total_base_units == epoch.allocated_base_units,
                  f"epoch {epoch.reward_epoch}: Σ planned {plan.total_base_units} == allocated {epoch.allocated_base_units}"
                  " (every earlier settled epoch is paid in full)")
        return plan

    def cut_batches(self, epoch: EpochRewards, plan: SettlementPlan, directory: txb.LookupDirectory,
                    mint: Pubkey) -> list[tuple[Transfer, ...]]:
        """The plan in lookup-table order, cut to the transaction limits."""
        memo_len = len(txb.memo_text(epoch.reward_epoch, 10**6, epoch.manifest_sha256))  # the longest batch number

        accounts = {tr.wallet: txb.token_account(Pubkey.from_string(tr.wallet), mint) for tr in plan.transfers}

        def position(tr: Transfer):
            return directory.position.get(accounts[tr.wallet], (1 << 30, 0))

        ordered = sorted(plan.transfers, key=position)

        def fits(batch: Sequence[Transfer]) -> bool:
            per_table: dict[int, int] = {}
            for tr in batch:
                ti = position(tr)[0]
                per_table[ti] = per_table.get(ti, 0) + 1
            counts = [per_table[k] for k in sorted(per_table)]
            return (txb.transfer_batch_size(memo_len, counts) <= txb.MAX_TX_BYTES
                    and txb.transfer_batch_accounts(len(batch)) <= txb.MAX_ACCOUNT_LOCKS)

        return split_batches(ordered, fits)

    def dry_run(self, epoch: EpochRewards) -> tuple[SettlementPlan, list[tuple[Transfer, ...]], int]:
        """(plan, batches, token accounts to open) as `settle` would make them now; writes and
        sends nothing. An epoch already planned shows its recorded batches."""
        e = epoch.reward_epoch
        rows = self.con.execute("SELECT batch, wallet, amount_base_units FROM settlement_transfers WHERE reward_epoch = ?"
                                " ORDER BY batch, position", [e]).fetchall()
        if rows:
            batches: dict[int, list[Transfer]] = {}
            for b, w, a in rows:
                batches.setdefault(b, []).append(Transfer(w, int(a)))
            transfers = tuple(t for b in sorted(batches) for t in batches[b])
            plan = SettlementPlan(e, transfers, sum(t.amount_base_units for t in transfers), 0)
            return plan, [tuple(batches[b]) for b in sorted(batches)], 0
        plan = self.plan(epoch)
        mint_text = get_meta(self.con, "mint")
        mint = Pubkey.from_string(mint_text) if mint_text else Keypair().pubkey()  # a first run: any mint has the same shape
        authority = self.signer.pubkey()
        treasury_account = txb.token_account(authority, mint)
        directory = self.directory() if mint_text else txb.LookupDirectory()
        atas = [txb.token_account(Pubkey.from_string(t.wallet), mint) for t in plan.transfers]
        existing = self.chain.accounts(atas) if mint_text else [None] * len(atas)
        new_accounts = sum(1 for a in existing if a is None)
        missing = [a for a in atas if a not in directory.position]
        while missing:  # the tables the settlement would extend or create
            if not directory.tables or directory.room(len(directory.tables) - 1) == 0:
                directory.add_table(Keypair().pubkey(), [mint, treasury_account])
            ti = len(directory.tables) - 1
            take = directory.room(ti)
            directory.extend(ti, missing[:take])
            missing = missing[take:]
        return plan, self.cut_batches(epoch, plan, directory, mint), new_accounts

    # ------------------------------------------------------------------ settle
    def epoch_status(self, reward_epoch: int) -> str | None:
        rows = self.con.execute("SELECT status FROM treasury_epochs WHERE reward_epoch = ?", [reward_epoch]).fetchall()
        return rows[0][0] if rows else None

    def set_epoch_status(self, reward_epoch: int, status: str, reason: str | None = None, **cols) -> None:
        self.con.execute(
            "INSERT INTO treasury_epochs (reward_epoch, status, reason, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (reward_epoch) DO UPDATE SET status = excluded.status, reason = excluded.reason,"
            " updated_at = excluded.updated_at", [reward_epoch, status, reason, now()])
        for k, v in cols.items():
            self.con.execute(f"UPDATE treasury_epochs SET {k} = ? WHERE reward_epoch = ?", [v, reward_epoch])

    def settle(self, epoch: EpochRewards) -> SettleReport:
        e = epoch.reward_epoch
        report = SettleReport(e)
        if self.epoch_status(e) == "settled":
            report.already_settled = True
            return report
        unfinished = [r[0] for r in self.con.execute(
            "SELECT DISTINCT reward_epoch FROM settlements WHERE reward_epoch <> ? AND status <> 'confirmed'", [e]).fetchall()]
        if unfinished:
            raise TreasuryError(f"epoch {unfinished[0]} has unfinished batches; settle it first")
        t = self.accounts or self.setup()
        planned = self.con.execute("SELECT count(*) FROM settlements WHERE reward_epoch = ?", [e]).fetchall()[0][0]
        if not planned:
            plan = self.plan(epoch)
            wallets = [tr.wallet for tr in plan.transfers]
            report.new_accounts, report.rent_lamports = self.open_accounts(wallets, e)
            atas = [txb.token_account(Pubkey.from_string(w), t.mint) for w in wallets]
            directory = self.index_accounts(atas, e)
            batches = self.cut_batches(epoch, plan, directory, t.mint)
            self._record_plan(epoch, plan, batches, t.mint)
            self.log(f"epoch {e}: planned {len(batches)} batch(es) paying {len(plan.transfers):,} wallets"
                     f" {plan.total_base_units:,} base units")
            self.crash("after_plan")
        self._check_recorded_plan(epoch)
        directory = self.directory()
        for (batch,) in self.con.execute("SELECT batch FROM settlements WHERE reward_epoch = ? AND status <> 'confirmed'"
                                         " ORDER BY batch", [e]).fetchall():
            self._settle_batch(epoch, batch, directory, report)
            self.crash("between_batches")
        self._read_back(epoch)
        n, total, nb = self.con.execute("SELECT coalesce(sum(recipients), 0), coalesce(sum(amount_base_units), 0), count(*)"
                                        " FROM settlements WHERE reward_epoch = ?", [e]).fetchall()[0]
        self.set_epoch_status(e, "settled", None, settled_at=now(), recipients=int(n), batches=int(nb),
                              allocated_base_units=epoch.allocated_base_units, manifest_sha256=epoch.manifest_sha256)
        report.recipients, report.total_base_units, report.batches = int(n), int(total), int(nb)
        for size, nbytes in self.con.execute("SELECT recipients, tx_bytes FROM settlements WHERE reward_epoch = ?"
                                             " ORDER BY batch", [e]).fetchall():
            report.batch_sizes.append(int(size))
            report.tx_bytes.append(int(nbytes or 0))
        self.log(f"epoch {e}: settled, {report.total_base_units:,} base units to {report.recipients:,} wallets"
                 f" in {report.batches} transaction(s)")
        return report

    def _record_plan(self, epoch: EpochRewards, plan: SettlementPlan, batches, mint: Pubkey) -> None:
        e = epoch.reward_epoch
        invariant(sum(tr.amount_base_units for b in batches for tr in b) == epoch.allocated_base_units,
                  "Σ batches == the epoch's allocated total")
        nodes: dict[str, int] = {}
        for _, w, _a in epoch.rewards:
            nodes[w] = nodes.get(w, 0) + 1
        ent = epoch.entitlements()
        self.con.execute("BEGIN TRANSACTION")
        try:
            insert_rows(self.con, "treasury_entitlements", ["reward_epoch", "wallet", "amount_base_units", "nodes"],
                        [(e, w, a, nodes[w]) for w, a in sorted(ent.items())])
            rows, transfers = [], []
            for b, batch in enumerate(batches):
                memo = txb.memo_text(e, b, epoch.manifest_sha256).decode()
                rows.append((e, b, None, "planned", len(batch), sum(tr.amount_base_units for tr in batch), None, None, 0,
                             memo, None, None, None, now(), None))
                for pos, tr in enumerate(batch):
                    transfers.append((e, b, pos, tr.wallet, str(txb.token_account(Pubkey.from_string(tr.wallet), mint)),
                                      tr.amount_base_units))
            insert_rows(self.con, "settlements", SETTLEMENT_COLUMNS, rows)
            insert_rows(self.con, "settlement_transfers", ["reward_epoch", "batch", "position", "wallet", "token_account",
                                                           "amount_base_units"], transfers)
            self.set_epoch_status(e, "settling", None, manifest_sha256=epoch.manifest_sha256,
                                  allocated_base_units=epoch.allocated_base_units, batches=len(batches),
                                  recipients=len(plan.transfers))
            self._check_recorded_plan(epoch)  # what was written, read back inside the transaction
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _check_recorded_plan(self, epoch: EpochRewards) -> None:
        e = epoch.reward_epoch
        total, n, distinct = self.con.execute(
            "SELECT coalesce(sum(amount_base_units), 0), count(*), count(DISTINCT wallet) FROM settlement_transfers"
            " WHERE reward_epoch = ?", [e]).fetchall()[0]
        invariant(int(total) == epoch.allocated_base_units,
                  f"epoch {e}: the recorded transfers sum to {total}, the epoch allocated {epoch.allocated_base_units}")
        invariant(n == distinct, f"epoch {e}: each wallet once in the recorded plan")
        bad = self.con.execute(
            "SELECT count(*) FROM settlements s LEFT JOIN (SELECT batch, count(*) n, sum(amount_base_units) a"
            " FROM settlement_transfers WHERE reward_epoch = ? GROUP BY batch) t USING (batch)"
            " WHERE s.reward_epoch = ? AND (t.n IS DISTINCT FROM s.recipients OR t.a IS DISTINCT FROM s.amount_base_units)",
            [e, e]).fetchall()[0][0]
        invariant(bad == 0, f"epoch {e}: every batch's row agrees with its transfers")
        invariant(self.con.execute("SELECT count(*) FROM settlement_transfers WHERE reward_epoch = ?"
                                   " AND amount_base_units <= 0", [e]).fetchall()[0][0] == 0, "every recorded transfer is > 0")

    def _batch_transfers(self, e: int, batch: int) -> list[tuple[str, Pubkey, int]]:
        return [(w, Pubkey.from_string(a), int(x)) for w, a, x in self.con.execute(
            "SELECT wallet, token_account, amount_base_units FROM settlement_transfers WHERE reward_epoch = ? AND batch = ?"
            " ORDER BY position", [e, batch]).fetchall()]

    def _settle_batch(self, epoch: EpochRewards, batch: int, directory: txb.LookupDirectory, report: SettleReport) -> None:
        e = epoch.reward_epoch
        for _ in range(MAX_ATTEMPTS_PER_RUN):
            status, sig, lvh = self.con.execute(
                "SELECT status, signature, last_valid_block_height FROM settlements WHERE reward_epoch = ? AND batch = ?",
                [e, batch]).fetchall()[0]
            if status == "confirmed":
                return
            if sig is not None:
                landed = self.chain.statuses([Signature.from_string(sig)])[0]
                if landed is None and self.chain.may_still_land(Signature.from_string(sig), lvh):
                    # recorded and maybe never sent (or sent and not yet seen): broadcast the same
                    # signed bytes; a signature lands at most once, so this can pay nobody twice
                    raw = self.con.execute("SELECT tx FROM settlement_transactions WHERE signature = ?", [sig]).fetchall()[0][0]
                    try:
                        self.chain.send(VersionedTransaction.from_bytes(bytes(raw)))
                    except TransactionRejected as exc:
                        if not is_already_processed(exc):
                            self._batch_refused(e, batch, sig, "rejected", str(exc))
                    landed = self.chain.wait_landed(Signature.from_string(sig), lvh)
                if landed is not None and landed.err is None:
                    self.crash("before_status")
                    self._confirm(e, batch, sig, landed)
                    report.confirmed_now += 1
                    return
                if landed is not None:
                    if status != "failed":  # stop and say why; the next run signs it anew
                        self._batch_refused(e, batch, sig, "failed", landed.err)
                    # it landed with an error earlier, which moved nothing: sign it anew
                else:  # expired without landing: it never can any more; sign it anew
                    self.con.execute("UPDATE settlement_transactions SET outcome = 'expired' WHERE signature = ?", [sig])
                report.resigned += 1
            self._sign_and_send(epoch, batch, directory)
        raise SettlementStopped(f"batch {batch} of epoch {e} did not land after {MAX_ATTEMPTS_PER_RUN} attempts")

    def _batch_refused(self, e: int, batch: int, sig: str, status: str, why: str) -> None:
        self.con.execute("UPDATE settlements SET status = ?, error = ? WHERE reward_epoch = ? AND batch = ?",
                         [status, why, e, batch])
        self.con.execute("UPDATE settlement_transactions SET outcome = ? WHERE signature = ?", [status, sig])
        reason = f"batch {batch} {status}: {why}"
        self.set_epoch_status(e, "settling", reason)
        raise SettlementStopped(f"epoch {e}: {reason}")

    def _sign_and_send(self, epoch: EpochRewards, batch: int, directory: txb.LookupDirectory) -> None:
        e = epoch.reward_epoch
        t = self.accounts
        transfers = self._batch_transfers(e, batch)
        memo = txb.memo_text(e, batch, epoch.manifest_sha256)
        blockhash, lvh = self.chain.latest_blockhash()
        tx = txb.build_transfer_batch(self.signer, t, directory, [(a, x) for _, a, x in transfers], memo, blockhash)
        size = txb.check_size(tx)
        sig = str(tx.signatures[0])
        self.con.execute("BEGIN TRANSACTION")
        try:
            attempt = self.con.execute("SELECT attempts + 1 FROM settlements WHERE reward_epoch = ? AND batch = ?",
                                       [e, batch]).fetchall()[0][0]
            self.con.execute("INSERT INTO settlement_transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                             [sig, e, batch, attempt, str(blockhash), lvh, bytes(tx), now()])
            self.con.execute("UPDATE settlements SET signature = ?, status = 'signed', blockhash = ?, last_valid_block_height = ?,"
                             " attempts = ?, tx_bytes = ?, error = NULL WHERE reward_epoch = ? AND batch = ?",
                             [sig, str(blockhash), lvh, attempt, size, e, batch])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.crash("after_record")
        try:
            self.chain.send(tx)
        except TransactionRejected as exc:
            self._batch_refused(e, batch, sig, "rejected", str(exc))
        self.crash("after_send")
        # no `sent` status is written (a commit per batch for nothing a restart could use: whether
        # it was sent or not, a `signed` batch is looked up by its signature first); the loop in
        # _settle_batch looks the signature up next: landed → confirmed

    def _confirm(self, e: int, batch: int, sig: str, landed: Landed) -> None:
        transfers = self._batch_transfers(e, batch)
        at = now()
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("UPDATE settlements SET status = 'confirmed', slot = ?, confirmed_at = ?, error = NULL"
                             " WHERE reward_epoch = ? AND batch = ?", [landed.slot, at, e, batch])
            self.con.execute("UPDATE settlement_transactions SET outcome = 'confirmed' WHERE signature = ?", [sig])
            entries = [(hashlib.sha256(f"settle|{e}|{w}".encode()).hexdigest(), ACCOUNT_POOL,
                        ACCOUNT_WALLET.format(wallet=w), x, e, f"reward_epoch:{e}:batch:{batch}:{w}", sig, at)
                       for w, _a, x in transfers]
            half = len(entries) // 2
            insert_rows(self.con, "treasury_ledger", LEDGER_COLUMNS, entries[:half])
            self.crash("inside_ledger")
            insert_rows(self.con, "treasury_ledger", LEDGER_COLUMNS, entries[half:])
            written = self.con.execute("SELECT count(*), coalesce(sum(amount_base_units), 0) FROM treasury_ledger"
                                       " WHERE signature = ?", [sig]).fetchall()[0]
            invariant(written == (len(transfers), sum(x for _, _, x in transfers)),
                      f"batch {batch} of epoch {e}: the ledger holds its transfers exactly")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.log(f"epoch {e} batch {batch}: confirmed {len(transfers)} transfers in slot {landed.slot} ({sig[:16]}…)")

    # ------------------------------------------------------------------ read back
    def _read_back(self, epoch: EpochRewards) -> None:
        t = self.accounts
        supply = int(get_meta(self.con, "supply_base_units", str(SUPPLY_BASE_UNITS)))
        paid_total = self.con.execute("SELECT coalesce(sum(amount_base_units), 0) FROM treasury_ledger").fetchall()[0][0]
        acc = self.chain.accounts([t.token_account])[0]
        invariant(acc is not None, "the treasury's token account exists")
        balance = txb.token_balance(acc.data)
        invariant(balance == supply - int(paid_total),
                  f"the treasury holds {balance} base units = minted {supply} − confirmed transfers {paid_total}")
        if self.chain.name == LITESVM:
            # nobody else holds a key on the in-process chain: every balance is exactly what the treasury sent
            rows = self.con.execute(
                "SELECT t.wallet, t.token_account, p.paid FROM settlement_transfers t JOIN"
                " (SELECT substr(credit_account, 8) AS wallet, sum(amount_base_units) AS paid FROM treasury_ledger"
                "  GROUP BY 1) p USING (wallet) WHERE t.reward_epoch = ?", [epoch.reward_epoch]).fetchall()
            accs = self.chain.accounts([Pubkey.from_string(a) for _, a, _ in rows])
            for (w, _a, paid), acc in zip(rows, accs):
                invariant(acc is not None and txb.token_balance(acc.data) == int(paid),
                          f"wallet {w} holds {None if acc is None else txb.token_balance(acc.data)} = paid {paid}")
