"""The treasury's two transports to a Solana cluster, behind one interface (`Chain`).

- `LiteSVMChain` (the default): the in-process runtime `solders.litesvm.LiteSVM`, with the real
  SPL Token, Associated Token Account, Memo and Address Lookup Table programs. It PERSISTS in the
  treasury's file, so that separate `settle` runs see one chain: every account a transaction
  could have written (its keys and the lookup-table addresses it loaded) and the transaction
  itself (bytes, slot, error, fee) are saved by signature in one DuckDB transaction right after
  the runtime executed it. A crash before that commit is, for this chain, a transaction that never
  landed, as a dropped packet is on a real cluster. Loading restores every account with
  `set_account`. A cluster's status cache is emulated from the saved transactions: a signature
  it has seen is `AlreadyProcessed`, never executed again (a fresh LiteSVM would run it twice).
  Blockhashes: LiteSVM accepts only its latest blockhash, which changes on `expire_blockhash()`
  (a deterministic sequence); each load of the chain expires one more, as if time had passed,
  so a transaction signed by an earlier process can no longer land and the "block height" is
  the number of expirations (`last_valid_block_height` = the height when it was handed out).
- `RpcChain` (`--cluster URL`): the `solana` client's JSON-RPC (`AsyncClient`, run on a private
  event loop), commitment `confirmed`, preflight on. Its code path is tested against LiteSVM
  served over JSON-RPC (tests/chainkit.py), so only the transport differs.

Errors: `ChainUnavailable` (the cluster did not answer: retry later, with backoff) and
`TransactionRejected` (the cluster refused the transaction before executing it: it moved nothing).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Sequence

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.account import Account
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from payouts.transactions import parse_lookup_table
from payouts.treasury_db import insert_rows

SYSVAR_OWNER = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")
LITESVM = "litesvm"


class ChainUnavailable(Exception):
    """The cluster could not be reached or did not answer; nothing is known to have changed."""


class TransactionRejected(Exception):
    """The cluster refused a transaction before executing it (preflight, blockhash, duplicate)."""


@dataclass(frozen=True)
class Landed:
    """A transaction the cluster executed: its slot, and its error if it failed (moving nothing)."""
    slot: int
    err: str | None


class Chain:
    """What the treasury needs of a cluster."""
    name: str

    def latest_blockhash(self) -> tuple[Hash, int]:  # (blockhash, last valid block height)
        raise NotImplementedError

    def blockhash_expired(self, last_valid_block_height: int) -> bool:
        raise NotImplementedError

    def send(self, tx: VersionedTransaction) -> None:
        raise NotImplementedError

    def statuses(self, signatures: Sequence[Signature]) -> list[Landed | None]:
        raise NotImplementedError

    def may_still_land(self, signature: Signature, last_valid_block_height: int) -> bool:
        """False only when the transaction can never land: its blockhash expired and the cluster
        has not seen it at any commitment."""
        return not self.blockhash_expired(last_valid_block_height)

    def wait_landed(self, signature: Signature, last_valid_block_height: int) -> Landed | None:
        """The transaction's status once it landed, or None once it can never land."""
        raise NotImplementedError

    def accounts(self, keys: Sequence[Pubkey]) -> list[Account | None]:
        raise NotImplementedError

    def lamports(self, key: Pubkey) -> int:
        acc = self.accounts([key])[0]
        return 0 if acc is None else acc.lamports

    def rent_exempt_minimum(self, size: int) -> int:
        raise NotImplementedError

    def fund(self, key: Pubkey, lamports: int) -> None:
        raise NotImplementedError

    def recent_slot(self) -> int:
        """A slot in the SlotHashes sysvar, to derive a new lookup table's address from."""
        raise NotImplementedError

    def let_slot_pass(self) -> None:
        """Wait until a new slot, so that a lookup table just created or extended can be used."""
        raise NotImplementedError

    def transaction_bytes(self, signature: Signature) -> bytes | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- LiteSVM
class LiteSVMChain(Chain):
    name = LITESVM

    def __init__(self, con=None, *, read_only: bool = False):
        """con: the treasury's DuckDB connection (its `litesvm_*` tables hold the chain); None: a
        chain in memory only. read_only: load it to look at it (dry runs, status), send nothing."""
        self.con = con
        self.persist = con is not None and not read_only
        self.read_only = read_only
        self.svm = LiteSVM()
        meta = dict(con.execute("SELECT key, value FROM litesvm_meta").fetchall()) if con is not None else {}
        self.height = int(meta.get("height", "0")) + 1  # every load expires the blockhashes of earlier ones
        for _ in range(self.height):
            self.svm.expire_blockhash()
        slot = int(meta.get("slot", str(self.svm.get_clock().slot)))
        if con is not None:
            for pubkey, lamports, data, owner, executable, rent_epoch in con.execute(
                    "SELECT pubkey, lamports, data, owner, executable, rent_epoch FROM litesvm_accounts").fetchall():
                self.svm.set_account(Pubkey.from_string(pubkey), Account(
                    int(lamports), bytes(data), Pubkey.from_string(owner), bool(executable), int(rent_epoch)))
        self._set_slot(slot + 1)
        self._save_meta()

    # -- persistence
    def _set_slot(self, slot: int) -> None:
        self.svm.warp_to_slot(slot)
        # warp_to_slot leaves SlotHashes alone: a lookup table needs its recent slot listed there
        hashes = [(slot, self.svm.latest_blockhash())] + [h for h in self.svm.get_slot_hashes() if h[0] < slot][:511]
        self.svm.set_slot_hashes(hashes)
        self.slot = slot

    def _save_meta(self) -> None:
        if not self.persist:
            return
        self.con.execute("INSERT OR REPLACE INTO litesvm_meta VALUES ('height', ?), ('slot', ?)",
                         [str(self.height), str(self.slot)])

    def _touched(self, tx: VersionedTransaction) -> list[Pubkey]:
        msg = tx.message
        keys = list(msg.account_keys)
        for lookup in getattr(msg, "address_table_lookups", []) or []:
            table = self.svm.get_account(lookup.account_key)
            if table is None:
                continue
            addresses = parse_lookup_table(table.data)
            keys += [addresses[i] for i in list(lookup.writable_indexes) if i < len(addresses)]
        return keys

    def _save(self, keys: Sequence[Pubkey], tx_row: tuple | None) -> None:
        if not self.persist:
            return
        rows = []
        seen = set()
        for k in keys:
            if k in seen:
                continue
            seen.add(k)
            acc = self.svm.get_account(k)
            if acc is None or acc.executable or acc.owner == SYSVAR_OWNER:
                continue
            rows.append((str(k), acc.lamports, bytes(acc.data), str(acc.owner), acc.executable, acc.rent_epoch))
        self.con.execute("BEGIN TRANSACTION")
        try:
            if rows:
                insert_rows(self.con, "litesvm_accounts", ["pubkey", "lamports", "data", "owner", "executable", "rent_epoch"],
                            rows, verb="INSERT OR REPLACE")
            if tx_row is not None:
                self.con.execute("INSERT INTO litesvm_transactions VALUES (?, ?, ?, ?, ?, ?)", list(tx_row))
            self._save_meta()
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # -- the interface
    def latest_blockhash(self) -> tuple[Hash, int]:
        return self.svm.latest_blockhash(), self.height

    def blockhash_expired(self, last_valid_block_height: int) -> bool:
        return self.height > last_valid_block_height

    def expire_blockhash(self) -> None:
        """Let time pass: every blockhash handed out so far expires."""
        self.height += 1
        self.svm.expire_blockhash()
        self._save_meta()

    def send(self, tx: VersionedTransaction) -> None:
        if self.read_only:
            raise TransactionRejected("this chain was opened read-only")
        sig = tx.signatures[0]
        if self._recorded(sig) is not None:
            raise TransactionRejected("AlreadyProcessed")
        res = self.svm.send_transaction(tx)
        err = res.err() if hasattr(res, "err") else None
        if err is not None and res.meta().fee() == 0:
            raise TransactionRejected(str(err))
        meta = res.meta() if err is not None else res
        self._save(self._touched(tx), (str(sig), self.slot, None if err is None else str(err), meta.fee(),
                                       bytes(tx), "\n".join(meta.logs())))

    def _recorded(self, sig: Signature):
        if self.con is None:
            got = self.svm.get_transaction(sig)
            if got is None:
                return None
            return (self.slot, str(got.err()) if hasattr(got, "err") else None)
        rows = self.con.execute("SELECT slot, err FROM litesvm_transactions WHERE signature = ?", [str(sig)]).fetchall()
        return rows[0] if rows else None

    def statuses(self, signatures: Sequence[Signature]) -> list[Landed | None]:
        out = []
        for sig in signatures:
            row = self._recorded(sig)
            out.append(None if row is None else Landed(int(row[0]), row[1]))
        return out

    def wait_landed(self, signature: Signature, last_valid_block_height: int) -> Landed | None:
        return self.statuses([signature])[0]  # the runtime executes a transaction as it is sent

    def accounts(self, keys: Sequence[Pubkey]) -> list[Account | None]:
        return [self.svm.get_account(k) for k in keys]

    def rent_exempt_minimum(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    def fund(self, key: Pubkey, lamports: int) -> None:
        res = self.svm.airdrop(key, lamports)
        if hasattr(res, "err"):
            raise TransactionRejected(f"airdrop failed: {res.err()}")
        self._save([key], None)

    def recent_slot(self) -> int:
        return self.slot

    def let_slot_pass(self) -> None:
        self._set_slot(self.slot + 1)
        self._save_meta()

    def transaction_bytes(self, signature: Signature) -> bytes | None:
        if self.con is None:
            return None
        rows = self.con.execute("SELECT tx FROM litesvm_transactions WHERE signature = ?", [str(signature)]).fetchall()
        return bytes(rows[0][0]) if rows else None


# ----------------------------------------------------------------------------- JSON-RPC
class RpcChain(Chain):
    """A real cluster through the `solana` client's JSON-RPC."""

    POLL_S = 0.4

    def __init__(self, url: str, *, timeout_s: float = 30.0):
        self.name = url
        self.commitment = Confirmed
        self.loop = asyncio.new_event_loop()
        self.client = AsyncClient(url, commitment=Confirmed, timeout=timeout_s)

    def _run(self, coro):
        try:
            return self.loop.run_until_complete(coro)
        except SolanaRpcException as exc:
            raise ChainUnavailable(f"the cluster {self.name} did not answer ({exc.__cause__ or exc})") from exc
        except RPCException as exc:
            raise TransactionRejected(_rpc_error_text(exc)) from exc
        except (OSError, asyncio.TimeoutError) as exc:
            raise ChainUnavailable(f"the cluster {self.name} did not answer ({exc})") from exc

    def latest_blockhash(self) -> tuple[Hash, int]:
        v = self._run(self.client.get_latest_blockhash(self.commitment)).value
        return v.blockhash, v.last_valid_block_height

    def blockhash_expired(self, last_valid_block_height: int) -> bool:
        return self._run(self.client.get_block_height(self.commitment)).value > last_valid_block_height

    def send(self, tx: VersionedTransaction) -> None:
        self._run(self.client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=False,
                                                                      preflight_commitment=self.commitment)))

    def _raw_statuses(self, signatures: Sequence[Signature]) -> list:
        out = []
        for i in range(0, len(signatures), 256):  # the method takes at most 256 signatures
            out += list(self._run(self.client.get_signature_statuses(list(signatures[i:i + 256]),
                                                                     search_transaction_history=True)).value)
        return out

    @staticmethod
    def _confirmed(st) -> bool:
        return st is not None and st.confirmation_status is not None and not str(st.confirmation_status).endswith("Processed")

    def statuses(self, signatures: Sequence[Signature]) -> list[Landed | None]:
        """Landed at `confirmed` or better; a transaction only `processed` is not landed yet."""
        return [Landed(st.slot, None if st.err is None else str(st.err)) if self._confirmed(st) else None
                for st in self._raw_statuses(signatures)]

    def may_still_land(self, signature: Signature, last_valid_block_height: int) -> bool:
        if not self.blockhash_expired(last_valid_block_height):
            return True
        # expired: it may still be confirmed only if a block already holds it (seen as processed)
        return self._raw_statuses([signature])[0] is not None

    def wait_landed(self, signature: Signature, last_valid_block_height: int) -> Landed | None:
        while True:
            landed = self.statuses([signature])[0]
            if landed is not None:
                return landed
            if not self.may_still_land(signature, last_valid_block_height):
                # checked once more: a transaction confirmed just before shows now
                return self.statuses([signature])[0]
            time.sleep(self.POLL_S)

    def accounts(self, keys: Sequence[Pubkey]) -> list[Account | None]:
        out: list[Account | None] = []
        for i in range(0, len(keys), 100):  # getMultipleAccounts takes at most 100 keys
            out += list(self._run(self.client.get_multiple_accounts(list(keys[i:i + 100]), self.commitment)).value)
        return out

    def rent_exempt_minimum(self, size: int) -> int:
        return self._run(self.client.get_minimum_balance_for_rent_exemption(size)).value

    def fund(self, key: Pubkey, lamports: int) -> None:
        sig = self._run(self.client.request_airdrop(key, lamports, self.commitment)).value
        _, height = self.latest_blockhash()
        if self.wait_landed(sig, height + 150) is None:
            raise ChainUnavailable(f"the airdrop to {key} did not land on {self.name}")

    def recent_slot(self) -> int:
        return self._run(self.client.get_slot(Finalized)).value

    def let_slot_pass(self) -> None:
        start = self._run(self.client.get_slot(self.commitment)).value
        while self._run(self.client.get_slot(self.commitment)).value <= start:
            time.sleep(self.POLL_S)

    def transaction_bytes(self, signature: Signature) -> bytes | None:
        resp = self._run(self.client.get_transaction(signature, encoding="base64", commitment=self.commitment,
                                                     max_supported_transaction_version=0))
        if resp.value is None:
            return None
        return bytes(resp.value.transaction.transaction)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.client.close())
        finally:
            self.loop.close()


def _rpc_error_text(exc) -> str:
    """The RPC error's message, with the transaction error it carries (e.g. AlreadyProcessed)."""
    arg = exc.args[0] if exc.args else exc
    text = str(getattr(arg, "message", arg)).splitlines()[0][:300]
    err = getattr(getattr(arg, "data", None), "err", None)
    return f"{text} ({err})" if err is not None else text


def is_already_processed(exc: TransactionRejected) -> bool:
    text = str(exc)
    return "AlreadyProcessed" in text or "already been processed" in text
