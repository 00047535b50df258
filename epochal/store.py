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
from pathlib import Path

import duckdb

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


class StoreError(Exception):
    """A store that cannot be opened (a user's mistake, reported in one sentence)."""


def resolve_db_path(db: str | os.PathLike | None) -> Path:
    return Path(db or os.environ.get("EPOCHAL_DB") or DEFAULT_DB)


def connect(db: str | os.PathLike | None, *, create: bool = True, read_only: bool = False,
            memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    path = resolve_db_path(db)
    if not create and not path.exists():
        raise StoreError(f"no store at {path} (run `epochal replay` first, or pass --db)")
    if create and not path.parent.exists():
        raise StoreError(f"the folder {path.parent} for the store does not exist")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise StoreError(f"cannot open the store {path}: {str(exc).splitlines()[0]}") from exc
    except duckdb.Error as exc:
        raise StoreError(f"{path} is not an epochal store: {str(exc).splitlines()[0]}") from exc
    # A bounded memory footprint: DuckDB spills to disk beyond this, so peak RSS stays flat.
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = true")
    if not read_only:
        con.execute(SCHEMA)
        con.execute(MIGRATIONS)
    return con


def get_meta(con, key: str, default: str | None = None) -> str | None:
    rows = con.execute("SELECT value FROM engine_meta WHERE key = ?", [key]).fetchall()
    return rows[0][0] if rows else default


def set_meta(con, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO engine_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def last_closed_epoch(con) -> int | None:
    # fetchall, not fetchone: a half-read result blocks DuckDB's register() on this connection
    return con.execute("SELECT max(reward_epoch) FROM reward_epochs").fetchall()[0][0]


def next_arrival_seq(con) -> int:
    row = con.execute(
        "SELECT greatest((SELECT coalesce(max(arrival_seq), -1) FROM archive_pings),"
        " (SELECT coalesce(max(arrival_seq), -1) FROM archive_events),"
        " (SELECT coalesce(max(arrival_seq), -1) FROM rejected_events),"
        " (SELECT coalesce(max(last_arrival_seq), -1) FROM ingest_runs)) + 1"
    ).fetchall()[0]
    return int(row[0])


def fetch_polars(con, sql: str, params=None):
    """A query's result as a polars DataFrame (through Arrow; works across DuckDB versions)."""
    import polars as pl

    import warnings

    cur = con.execute(sql, params) if params is not None else con.execute(sql)
    with warnings.catch_warnings():
        # DuckDB warns that Arrow output of an execute() result copies the rows once; the
        # relational API avoids it but cannot share a connection with pending execute() results.
        warnings.simplefilter("ignore", UserWarning)
        return pl.from_arrow(cur.to_arrow_table())
