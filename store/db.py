"""The DuckDB store: the archive of accepted events, rejections, and the closed epochs.

Table names and the columns named in contract.md are the public contract; extra columns are
extensions. One process owns a store file at a time (DuckDB's own file lock enforces it).

Archive:
- `archive_pings`  one row per accepted ping (a `ping.batch`'s inner pings included), with
  its `arrival_seq` (files in argument order, lines in file order, across runs) and `late`
  (its reward epoch was already closed when it arrived).
- `archive_events` every other accepted event (and each `ping.batch` envelope), payload as
  canonical JSON (sorted keys).
A re-sent id is told apart as an exact duplicate or a conflicting one by its content: an
event's `digest` (md5 of its canonical payload; for a `ping.batch`, of its envelope and its
pings, computed only when its id is contested), a ping's own columns.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from scoring.invariants import invariant

DEFAULT_DB = "epochal.duckdb"

SCHEMA = """
CREATE TABLE IF NOT EXISTS engine_meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS archive_pings (
    arrival_seq BIGINT NOT NULL,
    event_id VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    occurred_at_us BIGINT NOT NULL,
    occurred_at_raw VARCHAR NOT NULL,
    checker_id VARCHAR NOT NULL,
    reachable BOOLEAN NOT NULL,
    rtt_ms DOUBLE,
    batch_event_id VARCHAR,
    reward_epoch BIGINT NOT NULL,
    slot SMALLINT NOT NULL,
    late BOOLEAN NOT NULL,
    digest VARCHAR  -- unused for pings: their content is compared column by column
);

CREATE TABLE IF NOT EXISTS archive_events (
    arrival_seq BIGINT NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    occurred_at_us BIGINT NOT NULL,
    reward_epoch BIGINT NOT NULL,
    late BOOLEAN NOT NULL,
    payload VARCHAR NOT NULL,
    digest VARCHAR  -- NULL for a ping.batch: computed from its archived pings when its id is contested
);

-- Per (ping flush of the ingest, reward epoch): the archived pings' count and the XOR of their
-- md5(event_id), written with the pings in their transaction, so that a close reads its inputs'
-- digest (reward_epochs.input_events_sha256) instead of hashing millions of ids. Every ping of a
-- flush has arrival_seq <= last_arrival_seq, and a close's cutoff always falls between flushes.
CREATE TABLE IF NOT EXISTS archive_ping_digests (
    reward_epoch BIGINT NOT NULL,
    last_arrival_seq BIGINT NOT NULL,
    pings BIGINT NOT NULL,
    digest UHUGEINT NOT NULL
);

CREATE TABLE IF NOT EXISTS rejected_events (
    arrival_seq BIGINT,
    topic VARCHAR,
    raw VARCHAR,
    raw_bytes BIGINT,
    reason VARCHAR NOT NULL,
    detail VARCHAR,
    event_id VARCHAR,
    event_type VARCHAR,
    source VARCHAR,
    received_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS ingest_runs (
    run_id BIGINT PRIMARY KEY,
    first_arrival_seq BIGINT,
    last_arrival_seq BIGINT,
    inputs BIGINT,
    accepted BIGINT,
    duplicates BIGINT,
    rejected BIGINT,
    late BIGINT,
    blank_lines BIGINT,
    sources VARCHAR,
    received_at TIMESTAMPTZ
);
-- extension: the arrival time a replay judged from_future against (its start, or --arrived-at),
-- so that what a run accepted never depends on reading a clock again
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS arrived_at_us BIGINT;

-- An ingest run in progress (written when it starts, removed by its last commit): rows from
-- first_arrival_seq on belong to it until then. Found by a later writer, the run was killed or
-- given up, and is undone (`undo_open_ingest_runs`).
CREATE TABLE IF NOT EXISTS ingest_open (
    first_arrival_seq BIGINT NOT NULL,
    started_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS node_epoch_scores (
    reward_epoch BIGINT NOT NULL,
    node_id VARCHAR NOT NULL,
    up_slots INTEGER NOT NULL,
    uptime_ratio DOUBLE NOT NULL,
    streak_slots BIGINT NOT NULL,
    hw_verdict VARCHAR NOT NULL,
    reputation INTEGER,
    rep_availability DOUBLE,
    rep_jobs DOUBLE,
    rep_hardware DOUBLE,
    rep_tenure DOUBLE,
    rep_penalty DOUBLE,
    eligible BOOLEAN NOT NULL,
    ineligible_reason VARCHAR,
    weight BIGINT NOT NULL,
    ruleset_version VARCHAR NOT NULL,
    -- extensions: what a buyer or auditor needs to see why, and the state carried forward
    slot_bitmap UBIGINT NOT NULL,
    streak_prev_up BOOLEAN NOT NULL,
    avail_num DOUBLE,
    avail_den DOUBLE,
    registered_at_us BIGINT,
    gpu_model_claimed VARCHAR,
    gpu_model_key VARCHAR,
    gpu_count INTEGER,
    pool VARCHAR,
    multiplier_milli INTEGER,
    wallet VARCHAR,
    hw_ratio DOUBLE,
    benchmark_event_id VARCHAR,
    jobs_succeeded BIGINT,
    jobs_failed_node BIGINT,
    slash_count INTEGER,
    banned BOOLEAN
    -- key (reward_epoch, node_id): checked by the close's write, not by an index
);

CREATE TABLE IF NOT EXISTS epoch_rewards (
    reward_epoch BIGINT NOT NULL,
    node_id VARCHAR NOT NULL,
    pool VARCHAR NOT NULL,
    amount_base_units BIGINT NOT NULL,
    wallet VARCHAR NOT NULL,
    ruleset_version VARCHAR NOT NULL
    -- key (reward_epoch, node_id): checked by the close's write, not by an index
);

CREATE TABLE IF NOT EXISTS reward_epochs (
    reward_epoch BIGINT PRIMARY KEY,
    emission_base_units BIGINT NOT NULL,
    enterprise_pool BIGINT NOT NULL,
    community_pool BIGINT NOT NULL,
    allocated_base_units BIGINT NOT NULL,
    unallocated_base_units BIGINT NOT NULL,
    eligible_nodes BIGINT NOT NULL,
    manifest_sha256 VARCHAR NOT NULL,
    closed_at TIMESTAMPTZ NOT NULL,
    ruleset_version VARCHAR NOT NULL,
    -- extensions: the inputs the epoch was closed with, so it can be re-derived bit for bit
    enterprise_unallocated BIGINT NOT NULL,
    community_unallocated BIGINT NOT NULL,
    scored_nodes BIGINT NOT NULL,
    params_sha256 VARCHAR NOT NULL,
    engine_version VARCHAR NOT NULL,
    input_arrival_seq BIGINT NOT NULL,
    input_event_count BIGINT NOT NULL,
    input_events_sha256 VARCHAR NOT NULL,
    watermark_us BIGINT NOT NULL,
    late_events BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS ledger_entries (
    entry_id VARCHAR NOT NULL,  -- the key: checked by the close's write, not by an index
    debit_account VARCHAR NOT NULL,
    credit_account VARCHAR NOT NULL,
    amount_base_units BIGINT NOT NULL,
    reward_epoch BIGINT NOT NULL,
    ref VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS slash_decisions (
    decision_id VARCHAR PRIMARY KEY,
    node_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    amount_base_units BIGINT NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL,
    evidence VARCHAR[] NOT NULL
);
-- extensions: the subject, the exact time, the stake the amount was capped by, and the closes
-- that made and settled each decision (so `epoch verify` can recompute both)
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS subject VARCHAR;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS decided_at_us BIGINT;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS stake_deposit_base_units BIGINT;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS stake_left_base_units BIGINT;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS decided_in_epoch BIGINT;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS finality_epoch BIGINT;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS resolved_in_epoch BIGINT;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS detail VARCHAR;
ALTER TABLE slash_decisions ADD COLUMN IF NOT EXISTS ruleset_version VARCHAR;

CREATE TABLE IF NOT EXISTS settlements (
    reward_epoch BIGINT NOT NULL,
    batch INTEGER NOT NULL,
    signature VARCHAR,
    status VARCHAR NOT NULL,
    recipients INTEGER NOT NULL,
    amount_base_units BIGINT NOT NULL,
    PRIMARY KEY (reward_epoch, batch)
);
"""


# Stores written by earlier versions of this schema.
MIGRATIONS = """
ALTER TABLE archive_pings ALTER COLUMN digest DROP NOT NULL;
ALTER TABLE archive_events ALTER COLUMN digest DROP NOT NULL;
"""


PING_DIGESTS_SINCE = "ping_digests_since"  # engine_meta: the first arrival_seq archive_ping_digests covers


class StoreError(Exception):
    """A store that cannot be opened (a user's mistake, reported in one sentence)."""


class StoreBusy(StoreError):
    """Another process holds the store (DuckDB's file lock): a second stream worker expects it."""


# The store's own mark (engine_meta), written when a store is created: a DuckDB file without it
# (and without the tables of a store made before the mark) belongs to another program.
STORE_MARK = ("store_format", "epochal-1")
# The tables every epochal store has had since its first version (a store made before the mark).
CORE_TABLES = ("engine_meta", "archive_pings", "archive_events", "rejected_events", "ingest_runs", "reward_epochs")
DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def resolve_db_path(db: str | os.PathLike | None) -> Path:
    return Path(db or os.environ.get("EPOCHAL_DB") or DEFAULT_DB)


def is_duckdb_file(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(12)[8:12] == DUCKDB_MAGIC


def check_store_path(path: Path, *, create: bool = True) -> None:
    """What can be told of a store path without opening it: a new path (when `create`), or an
    existing DuckDB file. Anything else raises `StoreError` in one sentence."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:  # (DuckDB fails on it with a C++ std::bad_cast)
        shown = os.fsencode(path).decode("utf-8", "replace")
        raise StoreError(f"the store's name {shown} is not UTF-8 text: name it in UTF-8") from None
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a store (pass --db FILE)")
    if not path.exists():
        if not create:
            raise StoreError(f"no store at {path} (run `epochal replay` first, or pass --db)")
        if not path.parent.exists():
            raise StoreError(f"the folder {path.parent} for the store does not exist")
        return
    try:
        duck = is_duckdb_file(path)
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from exc
    if not duck:
        raise StoreError(f"{path} is not an epochal store (not a DuckDB file): name a new file or a store")


def connect(db: str | os.PathLike | None, *, create: bool = True, read_only: bool = False,
            memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """Open the store. `create`: a new path becomes a new store. Anything else that is not an
    epochal store (a folder, an event file, another program's DuckDB file) is refused with a
    `StoreError`, before DuckDB touches it: DuckDB opens some files it cannot write to (a
    `.jsonl`, `.json` or `.csv`) as an empty in-memory database, and a replay into one would
    store nothing and say nothing."""
    path = resolve_db_path(db)
    check_store_path(path, create=create)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        first = str(exc).splitlines()[0]
        if "lock" in first.lower():
            raise StoreBusy(f"cannot open the store {path}: another process holds it ({first})") from exc
        raise StoreError(f"cannot open the store {path}: {first}") from exc
    except duckdb.Error as exc:
        raise StoreError(f"{path} is not an epochal store: {str(exc).splitlines()[0]}") from exc
    try:
        _check_is_store(con, path, must_exist=not create)
        # A bounded memory footprint: DuckDB spills to disk beyond this, so peak RSS stays flat.
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET preserve_insertion_order = true")
        # Queries name every frame they read (`registered`): a Python local is never read by its
        # variable name, so renaming one cannot silently break a query.
        con.execute("SET python_enable_replacements = false")
        if not read_only:
            con.execute(SCHEMA)
            con.execute(MIGRATIONS)
            if get_meta(con, STORE_MARK[0]) != STORE_MARK[1]:
                set_meta(con, *STORE_MARK)
            if get_meta(con, PING_DIGESTS_SINCE) is None:  # the digests cover the pings archived from here on
                set_meta(con, PING_DIGESTS_SINCE, str(next_arrival_seq(con)))
            undo_open_ingest_runs(con)  # the writer before this one may have died inside a run
    except BaseException:
        con.close()
        raise
    return con


def _check_is_store(con, path: Path, must_exist: bool) -> None:
    """A DuckDB file is an epochal store when it bears the mark, or (made before the mark)
    has every core table; an empty one may become a store when the caller creates one."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        " AND table_schema = 'main'").fetchall()}
    if not tables and not must_exist:
        return
    if "engine_meta" in tables:
        try:
            if get_meta(con, STORE_MARK[0]) == STORE_MARK[1]:
                return
        except duckdb.Error:
            pass  # an engine_meta of another shape: not ours
    if not tables:
        raise StoreError(f"{path} is an empty DuckDB file, not an epochal store (run `epochal replay` first)")
    if set(CORE_TABLES) <= tables and _has_columns(con, "archive_pings", ("arrival_seq", "occurred_at_us")) \
            and _has_columns(con, "reward_epochs", ("reward_epoch", "manifest_sha256")):
        return
    raise StoreError(f"{path} is a DuckDB file of another program, not an epochal store")


def _has_columns(con, table: str, columns: tuple[str, ...]) -> bool:
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database()"
        " AND table_schema = 'main' AND table_name = ?", [table]).fetchall()}
    return set(columns) <= have


def open_ingest_run(con, first_arrival_seq: int) -> None:
    """Mark an ingest run open (committed at once): its rows are the ones from first_arrival_seq on."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO ingest_open VALUES (?, now())", [first_arrival_seq])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def undo_open_ingest_runs(con) -> int:
    """Undo every ingest run that was opened and never completed: delete the rows it archived or
    rejected (every row from its first arrival_seq on; one writer at a time, so they are all its
    own) and its mark, in one transaction. Returns how many rows went. No epoch can have been
    closed past an open run (a close follows a completed ingest), and that is checked."""
    rows = con.execute("SELECT min(first_arrival_seq) FROM ingest_open").fetchall()
    first = rows[0][0] if rows else None
    if first is None:
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        closed_past = con.execute("SELECT count(*) FROM reward_epochs WHERE input_arrival_seq >= ?",
                                  [first]).fetchall()[0][0]
        invariant(closed_past == 0, f"no epoch was closed past the open ingest run from arrival_seq {first}")
        gone = 0
        for table in ("archive_pings", "archive_events", "rejected_events"):
            gone += con.execute(f"DELETE FROM {table} WHERE arrival_seq >= ?", [first]).fetchall()[0][0]
        con.execute("DELETE FROM archive_ping_digests WHERE last_arrival_seq >= ?", [first])  # with their pings
        con.execute("DELETE FROM ingest_runs WHERE last_arrival_seq >= ?", [first])
        con.execute("DELETE FROM ingest_open")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return gone


def get_meta(con, key: str, default: str | None = None) -> str | None:
    rows = con.execute("SELECT value FROM engine_meta WHERE key = ?", [key]).fetchall()
    return rows[0][0] if rows else default


def set_meta(con, key: str, value: str) -> None:
    # an UPDATE of the key's row, else an INSERT (an upsert costs ~3 times an UPDATE: every close
    # sets its carried state here)
    if not con.execute("UPDATE engine_meta SET value = ? WHERE key = ?", [value, key]).fetchall()[0][0]:
        con.execute("INSERT INTO engine_meta VALUES (?, ?)", [key, value])


def last_closed_epoch(con) -> int | None:
    # fetchall, not fetchone: a half-read result blocks DuckDB's register() on this connection
    return con.execute("SELECT max(reward_epoch) FROM reward_epochs").fetchall()[0][0]


def get_most_epoch_pings(con) -> int:
    """The most pings archived in one reward epoch (0: none), from the per-epoch digests
    (a few rows a flush), not from the pings."""
    return int(con.execute("SELECT coalesce(max(n), 0) FROM (SELECT sum(pings) AS n FROM archive_ping_digests"
                           " GROUP BY reward_epoch)").fetchall()[0][0])


def next_arrival_seq(con) -> int:
    row = con.execute(
        "SELECT greatest((SELECT coalesce(max(arrival_seq), -1) FROM archive_pings),"
        " (SELECT coalesce(max(arrival_seq), -1) FROM archive_events),"
        " (SELECT coalesce(max(arrival_seq), -1) FROM rejected_events),"
        " (SELECT coalesce(max(last_arrival_seq), -1) FROM ingest_runs)) + 1"
    ).fetchall()[0]
    return int(row[0])


def fetch_polars(con, sql: str, params=None) -> pl.DataFrame:
    """A query's result as a polars DataFrame (through Arrow; works across DuckDB versions)."""
    cur = con.execute(sql, params) if params is not None else con.execute(sql)
    with warnings.catch_warnings():
        # DuckDB warns that Arrow output of an execute() result copies the rows once; the
        # relational API avoids it but cannot share a connection with pending execute() results.
        warnings.simplefilter("ignore", UserWarning)
        return pl.from_arrow(cur.to_arrow_table())


@contextmanager
def registered(con, name: str, frame) -> Iterator[str]:
    """`frame` (polars, Arrow) visible to the connection's queries as the view `name` while the
    block runs: queries name it explicitly, never a Python local by its variable name."""
    con.register(name, frame)
    try:
        yield name
    finally:
        con.unregister(name)
