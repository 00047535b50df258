"""The treasury's own DuckDB file (default `<db>.treasury.duckdb`, `--treasury FILE`).

The treasury never writes the store: it reads the published folder and keeps here everything
it decides and everything it sent, so that it works while a stream worker holds the store.

- `settlements` (the contract's table, key `(reward_epoch, batch)`): `signature`, `status`,
  `recipients`, `amount_base_units`, and the blockhash the signature was made with. Status:
  `planned` (recorded, not signed), `signed` (its signature recorded before it is sent; it may or
  may not have reached the cluster), `confirmed` (landed without error), `rejected` / `failed`
  (refused by the cluster / landed with an error: moved nothing). A batch is only ever re-signed (a new signature, the attempt count
  up) once its recorded signature cannot land any more.
- `settlement_transfers`: each batch's transfers (wallet, token account, amount), one row per
  (reward_epoch, wallet): a wallet is paid once per epoch.
- `settlement_transactions`: every signed transaction's bytes by signature (the memo is not in a
  transaction's status, and reconcile reads it back from here or from the cluster).
- `treasury_ledger`: the settlement's double entry, written in the same transaction as the
  batch's `confirmed`: `treasury:reward_pool` → `wallet:<wallet>` per transfer.
- `treasury_epochs`: where each epoch stands (`validated`, `blocked` and why, `settling`,
  `settled`); `validations`: every validation run with each expectation's result.
- `treasury_entitlements`: per (epoch, wallet) the rewards the plan of that epoch counted.
- `recipient_accounts`: the token account opened for each wallet and the rent it cost;
  `lookup_tables`: the treasury's address lookup tables; `chain_operations`: every other
  transaction the treasury sent (mint, accounts, tables) with its fee and lamports spent.
- `litesvm_*`: the in-process chain itself (payouts/chain.py), when it is the cluster.

One treasury process at a time: `treasury_lock` takes an exclusive lock on `<treasury>.lock`
for the whole run; readers (`treasury status`, `reconcile`) open the file read-only.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import duckdb
import pyarrow as pa

SCHEMA = """
CREATE TABLE IF NOT EXISTS treasury_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);

CREATE TABLE IF NOT EXISTS treasury_epochs (
    reward_epoch BIGINT PRIMARY KEY,
    status VARCHAR NOT NULL,          -- validated | blocked | settling | settled
    reason VARCHAR,                   -- why blocked
    manifest_sha256 VARCHAR,
    allocated_base_units BIGINT,
    recipients INTEGER,
    batches INTEGER,
    updated_at TIMESTAMPTZ NOT NULL,
    settled_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS validations (
    reward_epoch BIGINT NOT NULL,
    validated_at TIMESTAMPTZ NOT NULL,
    success BOOLEAN NOT NULL,
    files_sha256 VARCHAR NOT NULL,    -- sha256 over the epoch's files as validated (name, sha256 lines)
    manifest_sha256 VARCHAR,
    failed VARCHAR,                   -- the failing expectations' names, comma-separated
    results VARCHAR NOT NULL          -- JSON: [{name, success, detail}]
);

CREATE TABLE IF NOT EXISTS settlements (
    reward_epoch BIGINT NOT NULL,
    batch INTEGER NOT NULL,
    signature VARCHAR,
    status VARCHAR NOT NULL,
    recipients INTEGER NOT NULL,
    amount_base_units BIGINT NOT NULL,
    -- extensions
    blockhash VARCHAR,
    last_valid_block_height BIGINT,
    attempts INTEGER NOT NULL,
    memo VARCHAR NOT NULL,
    tx_bytes INTEGER,
    error VARCHAR,
    slot BIGINT,
    recorded_at TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ,
    PRIMARY KEY (reward_epoch, batch)
);

CREATE TABLE IF NOT EXISTS settlement_transfers (
    reward_epoch BIGINT NOT NULL,
    batch INTEGER NOT NULL,
    position INTEGER NOT NULL,
    wallet VARCHAR NOT NULL,
    token_account VARCHAR NOT NULL,
    amount_base_units BIGINT NOT NULL,
    PRIMARY KEY (reward_epoch, wallet)
);

CREATE TABLE IF NOT EXISTS settlement_transactions (
    signature VARCHAR PRIMARY KEY,
    reward_epoch BIGINT NOT NULL,
    batch INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    blockhash VARCHAR NOT NULL,
    last_valid_block_height BIGINT,
    tx BLOB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    outcome VARCHAR                   -- NULL while it may land; confirmed | failed | rejected | expired
);

CREATE TABLE IF NOT EXISTS treasury_ledger (
    entry_id VARCHAR PRIMARY KEY,
    debit_account VARCHAR NOT NULL,
    credit_account VARCHAR NOT NULL,
    amount_base_units BIGINT NOT NULL,
    reward_epoch BIGINT NOT NULL,
    ref VARCHAR NOT NULL,
    signature VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS recipient_accounts (
    wallet VARCHAR PRIMARY KEY,
    token_account VARCHAR NOT NULL,
    rent_lamports BIGINT,             -- NULL: it existed before the treasury paid anyone there
    opened_for_epoch BIGINT,
    signature VARCHAR,
    recorded_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS lookup_tables (
    seq INTEGER PRIMARY KEY,
    address VARCHAR NOT NULL,
    recent_slot BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS chain_operations (
    signature VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,            -- mint | accounts | table_create | table_extend
    reward_epoch BIGINT,
    detail VARCHAR,                   -- JSON: the wallets, table or addresses it is for
    last_valid_block_height BIGINT NOT NULL,
    tx BLOB NOT NULL,
    status VARCHAR NOT NULL,          -- signed | landed | failed | rejected | expired
    error VARCHAR,
    lamports_spent BIGINT,            -- the treasury's SOL balance before − after (fee and rent)
    recorded_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS treasury_entitlements (
    reward_epoch BIGINT NOT NULL,
    wallet VARCHAR NOT NULL,
    amount_base_units BIGINT NOT NULL,  -- Σ of the epoch's rewards of the wallet's nodes
    nodes INTEGER NOT NULL,
    PRIMARY KEY (reward_epoch, wallet)
);

CREATE TABLE IF NOT EXISTS litesvm_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS litesvm_accounts (
    pubkey VARCHAR PRIMARY KEY,
    lamports UBIGINT NOT NULL,
    data BLOB NOT NULL,
    owner VARCHAR NOT NULL,
    executable BOOLEAN NOT NULL,
    rent_epoch UBIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS litesvm_transactions (
    signature VARCHAR PRIMARY KEY,
    slot BIGINT NOT NULL,
    err VARCHAR,
    fee_lamports BIGINT NOT NULL,
    tx BLOB NOT NULL,
    logs VARCHAR NOT NULL
);
"""


class TreasuryError(Exception):
    """A treasury file or lock that cannot be used (a user's mistake, one sentence)."""


def connect(path: Path, *, read_only: bool = False, wait_s: float = 10.0) -> duckdb.DuckDBPyConnection:
    """Open the treasury file; a reader waits up to `wait_s` while the treasury holds it."""
    if read_only and not path.exists():
        raise TreasuryError(f"no treasury at {path} (nothing was validated or settled yet)")
    if not path.parent.exists():
        raise TreasuryError(f"the folder {path.parent} for the treasury does not exist")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if time.monotonic() >= deadline:
                raise TreasuryError(f"cannot open the treasury {path}: {str(exc).splitlines()[0]}") from exc
            time.sleep(0.2)
        except duckdb.Error as exc:
            raise TreasuryError(f"{path} is not a treasury file: {str(exc).splitlines()[0]}") from exc
    if not read_only:
        con.execute(SCHEMA)
    return con


def insert_rows(con, table: str, columns: list[str], rows: list[tuple], *, verb: str = "INSERT") -> None:
    """Insert many rows in one statement through Arrow (DuckDB's executemany costs ~1 ms a row)."""
    if not rows:
        return
    data = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    name = f"_rows_{table}"
    con.register(name, data)
    try:
        con.execute(f"{verb} INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {name}")
    finally:
        con.unregister(name)


def get_meta(con, key: str, default: str | None = None) -> str | None:
    rows = con.execute("SELECT value FROM treasury_meta WHERE key = ?", [key]).fetchall()
    return rows[0][0] if rows else default


def set_meta(con, key: str, value: str) -> None:
    con.execute("INSERT INTO treasury_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value])


class TreasuryLock:
    """An exclusive lock on `<treasury>.lock` held for a whole run: one treasury process per file."""

    def __init__(self, treasury_path: Path):
        self.path = Path(str(treasury_path) + ".lock")
        self.fd: int | None = None

    def __enter__(self) -> "TreasuryLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TreasuryError(f"another treasury process (pid {holder}) is using {self.path.with_suffix('')}"
                                " (one treasury per file)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None
