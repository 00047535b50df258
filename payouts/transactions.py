"""The one builder of the treasury's Solana transactions (no I/O: instructions, messages, sizes).

Every transaction is a v0 transaction signed by the treasury alone (fee payer, token owner,
mint and lookup-table authority). The kinds:
- `transfer batch`: a Memo `epochal e=<reward_epoch> b=<batch> m=<manifest_sha256 in base58>`
  then one SPL Token `transfer_checked` (6 decimals) per recipient, from the treasury's token
  account to the recipient's associated token account. The mint, the treasury's token account and
  every recipient's token account are read from address lookup tables, so a transfer costs 18
  bytes (17 of instruction, 1 of table index) and a batch carries ~51 of them within the
  1,232-byte limit (with a 64-byte memo: 305 fixed bytes; a second table costs 34 more).
- `create accounts`: `create_idempotent` associated token accounts for new recipients (the
  treasury pays the rent); plain static keys (74 bytes each; 12 a transaction, as 13 would overflow the runtime's
  64-entry instruction trace): a wallet is used
  once, so putting it in a lookup table would cost more rent than the bytes it saves.
- `lookup table`: create (the address is the PDA of [authority, recent_slot]) and extend, encoded
  by hand (solders has no builders for them; bincode: u32 discriminant, then the fields).
- `mint`: create and initialise the reward mint, the treasury's token account, mint the supply.

`v0_transaction_size` computes a transaction's serialized size from its shape exactly (a unit
test holds it to `len(bytes(tx))` of built transactions), so a batch is cut to size without
compiling a message per candidate; every built transaction is measured again before it is
recorded (`check_size`), since the in-process runtime does not enforce the limit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

import base58
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (create_idempotent_associated_token_account, get_associated_token_address,
                                    initialize_mint2, mint_to_checked, transfer_checked)
from spl.token.models import InitializeMint2Params, MintToCheckedParams, TransferCheckedParams

from scoring.invariants import invariant

REWARD_DECIMALS = 6  # ruleset §6: the reward token has 6 decimals
MAX_TX_BYTES = 1232  # the packet limit of a serialized transaction (1280 − 48 bytes of headers)
MAX_ACCOUNT_LOCKS = 64  # accounts one transaction may reference
LOOKUP_TABLE_PROGRAM_ID = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
LOOKUP_TABLE_MAX_ADDRESSES = 256
LOOKUP_TABLE_HEADER_BYTES = 56  # type u32, deactivation u64, last extended u64, start u8, authority 1+32, pad u16
TABLE_FIXED_ADDRESSES = 2  # every table starts with the mint and the treasury's token account
TOKEN_ACCOUNT_BYTES = 165

_TRANSFER_DATA_BYTES = 10  # transfer_checked: tag u8, amount u64, decimals u8
_TRANSFER_ACCOUNTS = 4  # source, mint, destination, owner
_CREATE_ATA_ACCOUNTS = 6  # payer, account, wallet, mint, system program, token program
_CREATE_ATA_DATA_BYTES = 1  # create_idempotent
# a create is 5 entries of the runtime's instruction trace (itself; its calls to the token program's
# GetAccountDataSize, the system program's CreateAccount, InitializeImmutableOwner and
# InitializeAccount3), and a transaction's trace holds at most 64 (MaxInstructionTraceLengthExceeded)
_CREATE_ATA_TRACE = 5
MAX_INSTRUCTION_TRACE = 64


def compact_len(n: int) -> int:
    """Bytes of Solana's compact-u16 encoding of n."""
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3


def v0_transaction_size(signers: int, static_keys: int, instructions: Iterable[tuple[int, int]],
                        tables: Iterable[tuple[int, int]]) -> int:
    """Serialized bytes of a v0 transaction: instructions as (accounts, data bytes), lookup
    tables as (writable indexes, readonly indexes)."""
    ixs = list(instructions)
    tabs = list(tables)
    size = compact_len(signers) + 64 * signers
    size += 1 + 3  # version prefix, header
    size += compact_len(static_keys) + 32 * static_keys + 32  # keys, recent blockhash
    size += compact_len(len(ixs)) + sum(1 + compact_len(a) + a + compact_len(d) + d for a, d in ixs)
    size += compact_len(len(tabs)) + sum(32 + compact_len(w) + w + compact_len(r) + r for w, r in tabs)
    return size


def check_size(tx: VersionedTransaction) -> int:
    size = len(bytes(tx))
    invariant(size <= MAX_TX_BYTES, f"a transaction of {size} bytes exceeds the {MAX_TX_BYTES}-byte limit")
    return size


def memo_text(reward_epoch: int, batch: int, manifest_sha256: str) -> bytes:
    """What a transfer batch says on chain: its reward epoch, batch and the epoch's manifest hash
    (the 32 bytes of `manifest_sha256` in base58: 44 characters instead of 64 in hex)."""
    digest = base58.b58encode(bytes.fromhex(manifest_sha256)).decode()
    return f"epochal e={int(reward_epoch)} b={int(batch)} m={digest}".encode()


def parse_memo(text: str) -> dict | None:
    """The fields of a `memo_text`, or None when it is not one."""
    parts = text.split()
    if len(parts) != 4 or parts[0] != "epochal":
        return None
    try:
        fields = dict(p.split("=", 1) for p in parts[1:])
        return {"reward_epoch": int(fields["e"]), "batch": int(fields["b"]),
                "manifest_sha256": base58.b58decode(fields["m"]).hex()}
    except (KeyError, ValueError):
        return None


def token_account(wallet: Pubkey, mint: Pubkey) -> Pubkey:
    return get_associated_token_address(wallet, mint)


@dataclass(frozen=True)
class Treasury:
    """The treasury's addresses on one cluster."""
    authority: Pubkey  # the keypair's public key: fee payer, token owner, mint authority
    mint: Pubkey
    token_account: Pubkey  # the treasury's associated token account of the mint


# ----------------------------------------------------------------------------- lookup tables
class LookupDirectory:
    """The treasury's lookup tables, in creation order, and where each address sits.

    Every table starts with the mint and the treasury's token account; recipients' token
    accounts follow. An address found in several tables (an extension repeated after a crash)
    counts in the first, which is also where a compiled message takes it from."""

    def __init__(self, tables: Sequence[tuple[Pubkey, Sequence[Pubkey]]] = ()):
        self.tables: list[tuple[Pubkey, list[Pubkey]]] = []
        self.position: dict[Pubkey, tuple[int, int]] = {}
        for address, addresses in tables:
            self.add_table(address, addresses)

    def add_table(self, address: Pubkey, addresses: Sequence[Pubkey]) -> None:
        self.tables.append((address, []))
        self.extend(len(self.tables) - 1, addresses)

    def extend(self, table: int, addresses: Sequence[Pubkey]) -> None:
        entries = self.tables[table][1]
        for a in addresses:
            self.position.setdefault(a, (table, len(entries)))
            entries.append(a)

    def room(self, table: int) -> int:
        return LOOKUP_TABLE_MAX_ADDRESSES - len(self.tables[table][1])

    def accounts(self, table_indexes: Iterable[int]) -> list[AddressLookupTableAccount]:
        return [AddressLookupTableAccount(self.tables[i][0], list(self.tables[i][1])) for i in sorted(set(table_indexes))]


def lookup_table_address(authority: Pubkey, recent_slot: int) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([bytes(authority), struct.pack("<Q", recent_slot)], LOOKUP_TABLE_PROGRAM_ID)


def create_lookup_table_ix(authority: Pubkey, recent_slot: int) -> tuple[Instruction, Pubkey]:
    table, bump = lookup_table_address(authority, recent_slot)
    data = struct.pack("<IQB", 0, recent_slot, bump)
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, _table_metas(table, authority)), table


def extend_lookup_table_ix(table: Pubkey, authority: Pubkey, addresses: Sequence[Pubkey]) -> Instruction:
    data = struct.pack("<IQ", 2, len(addresses)) + b"".join(bytes(a) for a in addresses)
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, _table_metas(table, authority))


def _table_metas(table: Pubkey, authority: Pubkey) -> list[AccountMeta]:
    return [AccountMeta(table, False, True), AccountMeta(authority, True, False),
            AccountMeta(authority, True, True), AccountMeta(SYSTEM_PROGRAM_ID, False, False)]


def parse_lookup_table(data: bytes) -> list[Pubkey]:
    """The addresses held by a lookup table account's data."""
    body = bytes(data)[LOOKUP_TABLE_HEADER_BYTES:]
    return [Pubkey.from_bytes(body[i:i + 32]) for i in range(0, len(body) - len(body) % 32, 32)]


def extend_fits(n_addresses: int) -> bool:
    """An extension of n addresses: static keys authority, table, system and table programs."""
    size = v0_transaction_size(1, 4, [(4, 12 + 32 * n_addresses)], [])
    return size <= MAX_TX_BYTES


MAX_EXTEND_ADDRESSES = max(n for n in range(1, 64) if extend_fits(n))


# ----------------------------------------------------------------------------- transactions
def compile_tx(payer: Keypair, ixs: Sequence[Instruction], blockhash: Hash,
               tables: Sequence[AddressLookupTableAccount] = (), signers: Sequence[Keypair] = ()) -> VersionedTransaction:
    msg = MessageV0.try_compile(payer.pubkey(), list(ixs), list(tables), blockhash)
    return VersionedTransaction(msg, [payer, *signers])


def transfer_batch_ixs(treasury: Treasury, recipients: Sequence[tuple[Pubkey, int]], memo: bytes) -> list[Instruction]:
    """recipients: (token account, amount in base units)."""
    ixs = [create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=treasury.authority, message=memo))]
    for account, amount in recipients:
        invariant(amount > 0, "a transfer is > 0")
        ixs.append(transfer_checked(TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID, source=treasury.token_account, mint=treasury.mint, dest=account,
            owner=treasury.authority, amount=int(amount), decimals=REWARD_DECIMALS)))
    return ixs


def transfer_batch_size(memo_len: int, per_table: Sequence[int]) -> int:
    """Bytes of a transfer batch whose recipients sit in lookup tables, `per_table[i]` of them in
    the i-th table used (the mint and treasury account are taken from the first)."""
    n = sum(per_table)
    static = 3  # treasury, memo program, token program
    ixs = [(1, memo_len)] + [(_TRANSFER_ACCOUNTS, _TRANSFER_DATA_BYTES)] * n
    tabs = [(k + (1 if i == 0 else 0), 1 if i == 0 else 0) for i, k in enumerate(per_table)]
    return v0_transaction_size(1, static, ixs, tabs)


def transfer_batch_accounts(n: int) -> int:
    return 3 + 2 + n  # static keys, mint and treasury account, recipients


def build_transfer_batch(payer: Keypair, treasury: Treasury, directory: LookupDirectory,
                         recipients: Sequence[tuple[Pubkey, int]], memo: bytes, blockhash: Hash) -> VersionedTransaction:
    tables = [directory.position[a][0] for a, _ in recipients]
    tx = compile_tx(payer, transfer_batch_ixs(treasury, recipients, memo), blockhash, directory.accounts(tables))
    check_size(tx)
    return tx


def create_accounts_ixs(treasury: Treasury, wallets: Sequence[Pubkey]) -> list[Instruction]:
    return [create_idempotent_associated_token_account(treasury.authority, w, treasury.mint) for w in wallets]


def create_accounts_size(n: int) -> int:
    static = 5 + 2 * n  # treasury, mint, the system, token and ATA programs; a wallet and its account each
    return v0_transaction_size(1, static, [(_CREATE_ATA_ACCOUNTS, _CREATE_ATA_DATA_BYTES)] * n, [])


def create_accounts_fit(n: int) -> bool:
    return (create_accounts_size(n) <= MAX_TX_BYTES and 5 + 2 * n <= MAX_ACCOUNT_LOCKS
            and _CREATE_ATA_TRACE * n <= MAX_INSTRUCTION_TRACE)


MAX_CREATE_ACCOUNTS = max(n for n in range(1, 64) if create_accounts_fit(n))


def mint_setup_ixs(authority: Pubkey, mint: Pubkey, rent_lamports: int, supply_base_units: int) -> list[Instruction]:
    """Create and initialise the reward mint (6 decimals, the treasury as mint authority, no freeze
    authority), create the treasury's token account and mint the supply into it."""
    treasury_account = token_account(authority, mint)
    return [
        create_account(CreateAccountParams(from_pubkey=authority, to_pubkey=mint, lamports=rent_lamports,
                                           space=MINT_LEN, owner=TOKEN_PROGRAM_ID)),
        initialize_mint2(InitializeMint2Params(decimals=REWARD_DECIMALS, mint=mint, mint_authority=authority,
                                               freeze_authority=None, program_id=TOKEN_PROGRAM_ID)),
        create_idempotent_associated_token_account(authority, authority, mint),
        mint_to_checked(MintToCheckedParams(program_id=TOKEN_PROGRAM_ID, mint=mint, dest=treasury_account,
                                            mint_authority=authority, amount=int(supply_base_units),
                                            decimals=REWARD_DECIMALS)),
    ]


def token_balance(data: bytes) -> int:
    """The amount field of an SPL Token account's data (offset 64, u64 little-endian)."""
    return struct.unpack_from("<Q", bytes(data), 64)[0]


def token_account_fields(data: bytes) -> tuple[Pubkey, Pubkey, int]:
    """(mint, owner, amount) of an SPL Token account's data."""
    raw = bytes(data)
    return Pubkey.from_bytes(raw[0:32]), Pubkey.from_bytes(raw[32:64]), struct.unpack_from("<Q", raw, 64)[0]


PROGRAM_IDS = (TOKEN_PROGRAM_ID, ASSOCIATED_TOKEN_PROGRAM_ID, MEMO_PROGRAM_ID, SYSTEM_PROGRAM_ID,
               LOOKUP_TABLE_PROGRAM_ID)
