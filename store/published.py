"""The published folder: every closed epoch as immutable Parquet files, `manifest.json` last.

DuckDB lets one process open a store file for writing and no other process open it at all,
so while the stream worker's closer holds the store nobody else can read it. Readers (the
treasury, the buyer API, the investigation, analysts, auditors) read this folder instead: the
writer publishes each epoch right after its store commit, and a reader sees an epoch only
once its manifest exists. Nothing in a published epoch ever changes. The folder holds the
*inputs* of every epoch too, so it alone re-derives any epoch bit for bit
(`epochal epoch verify N --published DIR`, `epochal/verify_published.py`).

Where: `published_root(db, publish)`: `--publish DIR`, else `$EPOCHAL_PUBLISH`, else
`<db>.published/`. One folder per closed epoch, hive style:

    <root>/reward_epoch=<N>/inputs.parquet            rejected_events.parquet
                            node_epoch_scores.parquet epoch_rewards.parquet
                            ledger_entries.parquet    slash_decisions.parquet
                            nodes.parquet             reward_epochs.parquet
                            manifest.json             (written last)

Writing (`publish_pending`, called by every close: `epochal replay`, `epochal epoch close`,
the stream closer, and by `epochal epoch publish`): every closed epoch of the store whose
manifest is missing, in ascending order. Each file is written under a hidden temporary name
(`.<name>.parquet.tmp`), fsynced and renamed into place; then each manifest the
same way, in epoch order, and the folders fsynced (the fsyncs of a batch run together on a
thread pool: one at a time they cost ~5 ms each here). A crash anywhere leaves an epoch
without a manifest, which readers do not see and the next close rewrites in full. An epoch
with a manifest is left alone (idempotent); one whose manifest disagrees with the store (a
folder of another store) stops publishing with a `PublishError`. Several epochs are written
together (`Publisher`): each one's inputs by its own streamed query, the seven other files by one
query per file over the batch, cut into the epochs (their fixed costs are most of a small
epoch's); the bytes are those of each epoch's own query.

Deterministic bytes: the files depend only on what the store holds. Every query has a total
ORDER BY, except the inputs' pings, which keep the archive's own order (a function of the
ingest's input; sorting millions of rows would cost more than all the rest). The rows go from
DuckDB to pyarrow's Parquet writer (zstd, V2 data pages, delta encodings for the inputs'
sequence numbers, times and ids: a ping takes about 0.7 byte; min/max statistics on every
column but the inputs' free strings) in row groups of exactly 122,880 rows, each from one
contiguous chunk, with timestamps in UTC; the same rows give the
same bytes with one pyarrow version (it names itself in the footer). (DuckDB's own COPY does
not: its bytes vary with how its storage holds the rows; its row groups are not exact, and it
spent more CPU on the 1,000 × 24 h inputs than pyarrow, 0.77 s against ~0.5 s, for 1.5× the bytes.)
So a crash followed by the next
run's completion gives the same files as a clean run.
Files that carry a wall-clock column (`reward_epochs.closed_at`, `rejected_events.received_at`)
differ between two separate runs only in that column.

Arrival range: the inputs of epoch N are the archived events with
`after < arrival_seq <= through`, `after` the `input_arrival_seq` of the close of N − 1 (−1 for
the first closed epoch) and `through` the close of N's own; over all published epochs they are
exactly the archive the closes read. A replay archives every file before its first close, so
its first epoch holds all of its inputs and the others none; a stream spreads them.

Files and columns (DuckDB types; Parquet maps BIGINT to INT64, UBIGINT to UINT64, SMALLINT to
INT16, TIMESTAMP WITH TIME ZONE to an INT64 UTC timestamp in µs, VARCHAR[] to a list):

inputs.parquet: every archived event of the arrival range, pings and the other events in one
table: first the pings, in the archive's own order (arrival order, except that the ingest
archives some stretches later, e.g. the pings of lines the reference parser decided: sort by
arrival_seq for strict arrival order), then the other events by (arrival_seq, event_id):
    arrival_seq BIGINT        the order the engine received it in (files, lines, messages)
    event_id VARCHAR          a ping.batch's inner pings are `<batch event_id>:<index>`
    event_type VARCHAR        `ping` for every ping (plain or inside a batch), else the contract's type
    node_id VARCHAR
    occurred_at_us BIGINT     event time, µs since 1970 UTC
    reward_epoch BIGINT       the epoch the event time falls in (not the publishing epoch)
    late BOOLEAN              its epoch was closed already when it arrived (no close counts it)
    occurred_at_raw VARCHAR   pings: the time as written (JSON text); NULL for other events
    checker_id VARCHAR        pings
    reachable BOOLEAN         pings
    rtt_ms DOUBLE             pings
    batch_event_id VARCHAR    pings inside a ping.batch: the batch's event_id
    slot SMALLINT             pings: slot of the epoch (0..59)
    payload VARCHAR           other events: the payload as canonical JSON (sorted keys); a
                              ping.batch keeps its envelope without the pings
    digest VARCHAR            other events: md5 of the payload (NULL for pings and ping.batch)
rejected_events.parquet: the rejections of the arrival range, ordered by arrival_seq:
    arrival_seq BIGINT, topic VARCHAR, raw VARCHAR (at most the engine's kept prefix),
    raw_bytes BIGINT, reason VARCHAR, detail VARCHAR, event_id VARCHAR, event_type VARCHAR,
    source VARCHAR (file path or kafka:<topic>/<partition>@<offset>),
    received_at TIMESTAMP WITH TIME ZONE (wall clock)
node_epoch_scores.parquet: the store's rows of the epoch, by node_id (contract.md columns):
    reward_epoch BIGINT, node_id VARCHAR, up_slots INTEGER, uptime_ratio DOUBLE,
    streak_slots BIGINT, hw_verdict VARCHAR, reputation INTEGER, rep_availability DOUBLE,
    rep_jobs DOUBLE, rep_hardware DOUBLE, rep_tenure DOUBLE, rep_penalty DOUBLE,
    eligible BOOLEAN, ineligible_reason VARCHAR, weight BIGINT, ruleset_version VARCHAR,
    slot_bitmap UBIGINT, streak_prev_up BOOLEAN, avail_num DOUBLE, avail_den DOUBLE,
    registered_at_us BIGINT, gpu_model_claimed VARCHAR, gpu_model_key VARCHAR,
    gpu_count INTEGER, pool VARCHAR, multiplier_milli INTEGER, wallet VARCHAR,
    hw_ratio DOUBLE, benchmark_event_id VARCHAR, jobs_succeeded BIGINT,
    jobs_failed_node BIGINT, slash_count INTEGER, banned BOOLEAN
epoch_rewards.parquet: the epoch's rewards, by node_id:
    reward_epoch BIGINT, node_id VARCHAR, pool VARCHAR, amount_base_units BIGINT,
    wallet VARCHAR, ruleset_version VARCHAR
ledger_entries.parquet: the epoch's double-entry rows, by entry_id:
    entry_id VARCHAR, debit_account VARCHAR, credit_account VARCHAR,
    amount_base_units BIGINT, reward_epoch BIGINT, ref VARCHAR
slash_decisions.parquet: every decision made up to this close, as this close left it (a status
settled by a later close still reads `proposed` here, its resolved_in_epoch NULL), by decision_id:
    decision_id VARCHAR, node_id VARCHAR, rule VARCHAR, amount_base_units BIGINT,
    decided_at TIMESTAMP WITH TIME ZONE (event time), status VARCHAR, evidence VARCHAR[],
    subject VARCHAR, decided_at_us BIGINT, stake_deposit_base_units BIGINT,
    stake_left_base_units BIGINT, decided_in_epoch BIGINT, finality_epoch BIGINT,
    resolved_in_epoch BIGINT, detail VARCHAR, ruleset_version VARCHAR
nodes.parquet: the registry as of this close, one row per node registered by the end of the
epoch (the registration that stands, §10), by node_id. Wallet, claim, model key, class and
count are the close's own (its node_epoch_scores row); region and operator from the
registration; stake is the node's stake account in the ledger after this close:
    node_id VARCHAR, wallet VARCHAR, gpu_model_claimed VARCHAR, gpu_model_key VARCHAR,
    gpu_class VARCHAR, gpu_count INTEGER, region VARCHAR, operator_id VARCHAR,
    registered_at_us BIGINT, registration_event_id VARCHAR, stake_base_units BIGINT
reward_epochs.parquet: the epoch's row of the store (one row): reward_epoch BIGINT,
    emission_base_units BIGINT, enterprise_pool BIGINT, community_pool BIGINT,
    allocated_base_units BIGINT, unallocated_base_units BIGINT, eligible_nodes BIGINT,
    manifest_sha256 VARCHAR, closed_at TIMESTAMP WITH TIME ZONE (wall clock),
    ruleset_version VARCHAR, enterprise_unallocated BIGINT, community_unallocated BIGINT,
    scored_nodes BIGINT, params_sha256 VARCHAR, engine_version VARCHAR,
    input_arrival_seq BIGINT, input_event_count BIGINT, input_events_sha256 VARCHAR,
    watermark_us BIGINT (how far the archive or stream had read), late_events BIGINT
manifest.json (UTF-8 JSON, keys in this order):
    format "epochal-published-epoch/1", reward_epoch, ruleset_version, params_sha256,
    engine_version, manifest_sha256 (the store's, over the rewards), arrival_range
    {"after", "through"}, input_event_count, input_events_sha256,
    previous_manifest_sha256 (sha256 of the bytes of epoch N − 1's manifest.json, null for
    the first: a hash chain), files [{"name", "rows", "bytes", "sha256"}] in the order above.

A `reward_epoch=<N>` folder name and a file's `reward_epoch` column agree where both exist;
`inputs.reward_epoch` is the event's own epoch.

Reading (names fixed for the other modules; every reader sees manifested epochs only):
    published_root(db, publish=None) -> Path
    list_epochs(root) -> list[int]
    read_manifest(root, n) -> dict
    epoch_files(root, n) -> dict[str, Path]      "epoch_rewards" -> .../epoch_rewards.parquet
    scan(root, name, epochs=None) -> polars.LazyFrame   one file over the epochs, with
        `published_epoch` (the folder) and `reward_epoch` (the folder's where the file has none)
    attach(con, root, epochs=None) -> None       DuckDB views named like the store's tables
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from store.arrow import empty_table, int64s
from store.db import SCHEMA, StoreError, resolve_db_path
from scoring.invariants import invariant
from scoring.slashing import STATUS_PROPOSED

FORMAT = "epochal-published-epoch/1"
MANIFEST = "manifest.json"
EPOCH_DIR_RE = re.compile(r"^reward_epoch=(-?\d+)$")
# One writer for every file (pyarrow's): zstd, V2 data pages, row groups of exactly this many
# rows, each written from one contiguous chunk, so that the bytes depend only on the rows (DuckDB's
# own COPY writes different bytes for the same rows depending on how its storage holds them).
ROW_GROUP_ROWS = 122_880
# inputs: sequence numbers and times by delta (a ping ~0.1 byte each), ids by shared prefix;
# dictionaries for the rest
DELTA_COLUMNS = {"arrival_seq": "DELTA_BINARY_PACKED", "occurred_at_us": "DELTA_BINARY_PACKED",
                 "event_id": "DELTA_BYTE_ARRAY", "occurred_at_raw": "DELTA_BYTE_ARRAY"}
# Epochs written together (`Publisher`): at most this many, and this many scored nodes in all
# (the rows of a batch's queries are held in memory at once)
BATCH_EPOCHS = 4
BATCH_NODE_ROWS = 200_000
# The stake accounts of the ledger (payouts.ledger.ACCOUNT_STAKE: node:<node_id>:stake).
STAKE_ACCOUNT_PREFIX, STAKE_ACCOUNT_SUFFIX = "node:", ":stake"

FILE_NAMES = ("inputs", "rejected_events", "node_epoch_scores", "epoch_rewards", "ledger_entries",
              "slash_decisions", "nodes", "reward_epochs")
# Files that hold a snapshot as of the close rather than rows of their own epoch: a view of
# several epochs shows the latest one.
SNAPSHOT_FILES = ("slash_decisions", "nodes")


class PublishError(StoreError):
    """The folder cannot take this store's epochs (one sentence for the user)."""


# ----------------------------------------------------------------------------------------
# where
# ----------------------------------------------------------------------------------------

def published_root(db=None, publish=None) -> Path:
    """`publish` (`--publish DIR`), else `$EPOCHAL_PUBLISH`, else `<db>.published` beside the store."""
    if publish:
        return Path(publish)
    env = os.environ.get("EPOCHAL_PUBLISH")
    if env:
        return Path(env)
    return Path(str(resolve_db_path(db)) + ".published")


def check_root(root) -> Path:
    """What can be told of a published folder before anything is closed: an existing folder, or
    a new path whose nearest existing ancestor is a folder (it is created at the first
    publication). Anything else (a file, a path through a file) raises `PublishError` in one
    sentence, so that a command refuses it before it ingests or closes anything."""
    root = Path(root)
    if os.path.lexists(root):
        if not root.is_dir():
            raise PublishError(f"the published folder {root} exists and is not a folder: pass another --publish folder")
        if not os.access(root, os.W_OK | os.X_OK):
            raise PublishError(f"the published folder {root} is not writable: pass another --publish folder")
        return root
    up = root.parent
    while not os.path.lexists(up) and up != up.parent:
        up = up.parent
    if not up.is_dir():
        raise PublishError(f"the published folder {root} cannot be made: {up} is not a folder")
    if not os.access(up, os.W_OK | os.X_OK):
        raise PublishError(f"the published folder {root} cannot be made: {up} is not writable")
    return root


def _cannot_publish(root: Path, exc: OSError) -> PublishError:
    """A folder that fails while epochs are written (after their store commit): one sentence."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return PublishError(f"cannot publish into {root}: {exc.strerror or exc}{where}; the epochs are closed in the"
                        " store, and `epochal epoch publish` publishes them once the folder can take them")


def epoch_dir(root, n: int) -> Path:
    return Path(root) / f"reward_epoch={int(n)}"


# ----------------------------------------------------------------------------------------
# the files of one epoch: one query each over the store
# ----------------------------------------------------------------------------------------

def file_queries(e: int, after: int, through: int) -> list[tuple[str, str | tuple[str, ...]]]:
    """(name, SELECT) of every file of epoch `e` whose inputs are after < arrival_seq <= through,
    in manifest order; the inputs file's rows come from two SELECTs, one after the other. Each
    gives its rows in the same order every time."""
    e, after, through = int(e), int(after), int(through)
    rng = f"arrival_seq > {after} AND arrival_seq <= {through}"
    stake = (f"'{STAKE_ACCOUNT_PREFIX}' || s.node_id || '{STAKE_ACCOUNT_SUFFIX}'")
    return [
        # the pings in the archive's own order (a sort of millions of rows would cost more
        # than the rest of the publication; the order is the ingest's, a function of the
        # input), then the other events in arrival order
        ("inputs", (f"""
            SELECT arrival_seq, event_id, 'ping' AS event_type, node_id, occurred_at_us, reward_epoch, late,
                   occurred_at_raw, checker_id, reachable, rtt_ms, batch_event_id, slot,
                   NULL::VARCHAR AS payload, digest
            FROM archive_pings WHERE {rng}""", f"""
            SELECT arrival_seq, event_id, event_type, node_id, occurred_at_us, reward_epoch, late,
                   NULL::VARCHAR AS occurred_at_raw, NULL::VARCHAR AS checker_id, NULL::BOOLEAN AS reachable,
                   NULL::DOUBLE AS rtt_ms, NULL::VARCHAR AS batch_event_id, NULL::SMALLINT AS slot, payload, digest
            FROM archive_events WHERE {rng}
            ORDER BY arrival_seq, event_id""")),
        ("rejected_events", f"""
            SELECT * FROM rejected_events WHERE {rng}
            ORDER BY arrival_seq, event_id NULLS FIRST, reason, raw"""),
        ("node_epoch_scores", f"SELECT * FROM node_epoch_scores WHERE reward_epoch = {e} ORDER BY node_id"),
        ("epoch_rewards", f"SELECT * FROM epoch_rewards WHERE reward_epoch = {e} ORDER BY node_id, pool"),
        ("ledger_entries", f"SELECT * FROM ledger_entries WHERE reward_epoch = {e} ORDER BY entry_id"),
        # as this close left them: a status settled later reads as it stood then (a decision's
        # status moves once, from proposed, at the close recorded in resolved_in_epoch)
        ("slash_decisions", f"""
            SELECT * REPLACE (
                CASE WHEN resolved_in_epoch <= {e} THEN status ELSE '{STATUS_PROPOSED}' END AS status,
                CASE WHEN resolved_in_epoch <= {e} THEN resolved_in_epoch END AS resolved_in_epoch)
            FROM slash_decisions WHERE decided_in_epoch <= {e}
            ORDER BY decision_id"""),
        # the registry: the close's own view of each registered node (it scored every node
        # registered by end(e)), its registration (one per node in the archive: the ingest
        # rejects every other, §10) and its stake account after this close
        ("nodes", f"""
            WITH s AS (
                SELECT node_id, wallet, gpu_model_claimed, gpu_model_key, pool AS gpu_class, gpu_count,
                       registered_at_us
                FROM node_epoch_scores WHERE reward_epoch = {e} AND registered_at_us IS NOT NULL
            ), reg AS (
                SELECT a.node_id, arg_min(a.event_id, a.event_id) AS event_id,
                       arg_min(a.payload, a.event_id) AS payload
                FROM archive_events a JOIN s ON a.node_id = s.node_id AND a.occurred_at_us = s.registered_at_us
                WHERE a.event_type = 'node.registered' AND a.arrival_seq <= {through}
                GROUP BY a.node_id
            ), stake AS (
                SELECT account, sum(amount)::BIGINT AS balance FROM (
                    SELECT credit_account AS account, amount_base_units::HUGEINT AS amount FROM ledger_entries
                    WHERE reward_epoch <= {e} AND credit_account LIKE '{STAKE_ACCOUNT_PREFIX}%{STAKE_ACCOUNT_SUFFIX}'
                    UNION ALL
                    SELECT debit_account, -amount_base_units::HUGEINT FROM ledger_entries
                    WHERE reward_epoch <= {e} AND debit_account LIKE '{STAKE_ACCOUNT_PREFIX}%{STAKE_ACCOUNT_SUFFIX}')
                GROUP BY account
            )
            SELECT s.node_id, s.wallet, s.gpu_model_claimed, s.gpu_model_key, s.gpu_class, s.gpu_count,
                   reg.payload ->> '$.region' AS region, reg.payload ->> '$.operator_id' AS operator_id,
                   s.registered_at_us, reg.event_id AS registration_event_id,
                   coalesce(stake.balance, 0)::BIGINT AS stake_base_units
            FROM s LEFT JOIN reg USING (node_id) LEFT JOIN stake ON stake.account = {stake}
            ORDER BY s.node_id"""),
        ("reward_epochs", f"SELECT * FROM reward_epochs WHERE reward_epoch = {e}"),
    ]


# Files whose rows belong to one epoch each: over several epochs one query, ordered by the key
# first, then split. (name, key column): `reward_epoch`, the file's own column; `arrival_seq`,
# split by the epochs' arrival ranges; `__published_epoch`, a column of the query's own that the
# split drops (the snapshot files: one copy of the rows per epoch).
BATCH_KEYS = {"rejected_events": "arrival_seq", "node_epoch_scores": "reward_epoch", "epoch_rewards": "reward_epoch",
              "ledger_entries": "reward_epoch", "slash_decisions": "__published_epoch", "nodes": "__published_epoch",
              "reward_epochs": "reward_epoch"}
EPOCH_KEY = "__published_epoch"


def batch_queries(spans: list[tuple[int, int, int]]) -> dict[str, str]:
    """name → SELECT of every file but the inputs over the epochs of `spans` ((e, after, through),
    ascending, arrival ranges disjoint): each epoch's rows in the order `file_queries` gives them,
    the epochs one after the other (ordered by the file's key, `BATCH_KEYS`), so that cutting the
    rows at the key's changes gives each epoch exactly the rows of its own query."""
    spans = [(int(e), int(a), int(t)) for e, a, t in spans]
    es = ", ".join(str(e) for e, _, _ in spans)
    ep = "(VALUES " + ", ".join(f"({e}::BIGINT, {t}::BIGINT)" for e, _, t in spans) + f") ep({EPOCH_KEY}, through)"
    rng = " OR ".join(f"(arrival_seq > {a} AND arrival_seq <= {t})" for _, a, t in spans if t > a) or "false"
    stake = f"'{STAKE_ACCOUNT_PREFIX}' || s.node_id || '{STAKE_ACCOUNT_SUFFIX}'"
    return {
        # (the ranges are disjoint and ascending: arrival order is epoch order)
        "rejected_events": f"""
            SELECT * FROM rejected_events WHERE {rng}
            ORDER BY arrival_seq, event_id NULLS FIRST, reason, raw""",
        "node_epoch_scores": f"SELECT * FROM node_epoch_scores WHERE reward_epoch IN ({es}) ORDER BY reward_epoch, node_id",
        "epoch_rewards": f"SELECT * FROM epoch_rewards WHERE reward_epoch IN ({es}) ORDER BY reward_epoch, node_id, pool",
        "ledger_entries": f"SELECT * FROM ledger_entries WHERE reward_epoch IN ({es}) ORDER BY reward_epoch, entry_id",
        "slash_decisions": f"""
            SELECT d.* REPLACE (
                CASE WHEN d.resolved_in_epoch <= ep.{EPOCH_KEY} THEN d.status ELSE '{STATUS_PROPOSED}' END AS status,
                CASE WHEN d.resolved_in_epoch <= ep.{EPOCH_KEY} THEN d.resolved_in_epoch END AS resolved_in_epoch),
                ep.{EPOCH_KEY}
            FROM slash_decisions d JOIN {ep} ON d.decided_in_epoch <= ep.{EPOCH_KEY}
            ORDER BY ep.{EPOCH_KEY}, d.decision_id""",
        "nodes": f"""
            WITH ep AS (SELECT * FROM {ep}), s AS (
                SELECT s.reward_epoch AS {EPOCH_KEY}, ep.through, s.node_id, s.wallet, s.gpu_model_claimed,
                       s.gpu_model_key, s.pool AS gpu_class, s.gpu_count, s.registered_at_us
                FROM node_epoch_scores s JOIN ep ON s.reward_epoch = ep.{EPOCH_KEY}
                WHERE s.registered_at_us IS NOT NULL
            ), reg AS (
                SELECT s.{EPOCH_KEY}, a.node_id, arg_min(a.event_id, a.event_id) AS event_id,
                       arg_min(a.payload, a.event_id) AS payload
                FROM archive_events a JOIN s ON a.node_id = s.node_id AND a.occurred_at_us = s.registered_at_us
                WHERE a.event_type = 'node.registered' AND a.arrival_seq <= s.through
                GROUP BY s.{EPOCH_KEY}, a.node_id
            ), moves AS (
                SELECT credit_account AS account, amount_base_units::HUGEINT AS amount, reward_epoch FROM ledger_entries
                WHERE reward_epoch <= {spans[-1][0]} AND credit_account LIKE '{STAKE_ACCOUNT_PREFIX}%{STAKE_ACCOUNT_SUFFIX}'
                UNION ALL
                SELECT debit_account, -amount_base_units::HUGEINT, reward_epoch FROM ledger_entries
                WHERE reward_epoch <= {spans[-1][0]} AND debit_account LIKE '{STAKE_ACCOUNT_PREFIX}%{STAKE_ACCOUNT_SUFFIX}'
            ), stake AS (
                SELECT ep.{EPOCH_KEY}, m.account, sum(m.amount)::BIGINT AS balance
                FROM moves m JOIN ep ON m.reward_epoch <= ep.{EPOCH_KEY}
                GROUP BY ep.{EPOCH_KEY}, m.account
            )
            SELECT s.node_id, s.wallet, s.gpu_model_claimed, s.gpu_model_key, s.gpu_class, s.gpu_count,
                   reg.payload ->> '$.region' AS region, reg.payload ->> '$.operator_id' AS operator_id,
                   s.registered_at_us, reg.event_id AS registration_event_id,
                   coalesce(stake.balance, 0)::BIGINT AS stake_base_units, s.{EPOCH_KEY}
            FROM s LEFT JOIN reg ON reg.{EPOCH_KEY} = s.{EPOCH_KEY} AND reg.node_id = s.node_id
            LEFT JOIN stake ON stake.{EPOCH_KEY} = s.{EPOCH_KEY} AND stake.account = {stake}
            ORDER BY s.{EPOCH_KEY}, s.node_id""",
        "reward_epochs": f"SELECT * FROM reward_epochs WHERE reward_epoch IN ({es}) ORDER BY reward_epoch",
    }


def split_batch(table: pa.Table, name: str, spans: list[tuple[int, int, int]]) -> dict[int, pa.Table]:
    """The rows of `batch_queries(spans)[name]` cut into each epoch's (without the split's own column)."""
    key = BATCH_KEYS[name]
    col = int64s(table.column(key))
    if key == "arrival_seq":  # each epoch's range: after < arrival_seq <= through
        bounds = [(np.searchsorted(col, a, "right"), np.searchsorted(col, t, "right")) for _, a, t in spans]
    else:
        bounds = [(np.searchsorted(col, e, "left"), np.searchsorted(col, e, "right")) for e, _, _ in spans]
    if key == EPOCH_KEY:
        table = table.drop_columns([EPOCH_KEY])
    return {e: table.slice(int(lo), int(hi - lo)) for (e, _, _), (lo, hi) in zip(spans, bounds)}


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------

class _CrashHook:
    """Fault injection for the crash tests, as the streams' `EPOCHAL_STREAMS_CRASH`:
    `EPOCHAL_PUBLISH_CRASH=<point>:<n>` kills this process with SIGKILL the n-th time it
    reaches <point>: `after_file` (a Parquet file renamed into place) or `before_manifest`
    (every file of the epoch durable, its manifest not renamed yet)."""

    def __init__(self) -> None:
        spec = os.environ.get("EPOCHAL_PUBLISH_CRASH") or ""
        self.point, _, n = spec.partition(":")
        self.n, self.hits = int(n or 1), 0

    def __call__(self, point: str) -> None:
        if self.point and point == self.point:
            self.hits += 1
            if self.hits >= self.n:
                os.kill(os.getpid(), signal.SIGKILL)


_CRASH: list[_CrashHook] = []


def _crash(point: str) -> None:
    if not _CRASH:
        _CRASH.append(_CrashHook())
    _CRASH[0](point)


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def _fsync_all(paths, dirs: bool = False) -> None:
    """fsync every path, on a pool: the filesystem's journal then commits them together."""
    def one(p):
        fd = os.open(p, os.O_RDONLY | (os.O_DIRECTORY if dirs else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    paths = list(paths)
    if len(paths) <= 1:
        for p in paths:
            one(p)
        return
    with ThreadPoolExecutor(max_workers=min(16, len(paths)), thread_name_prefix="publish-fsync") as ex:
        list(ex.map(one, paths))


def write_parquet(cur, sql: str | tuple[str, ...], path: Path, encodings: dict[str, str],
                  statistics: bool | list[str] = True) -> int:
    """The rows of `sql` (or of several SELECTs of one schema, one after the other) into the
    Parquet file `path` (replaced), in row groups of exactly ROW_GROUP_ROWS rows, each from one
    contiguous chunk, with min/max statistics on every column (or those named in `statistics`).
    Streams: memory holds about one row group."""
    sqls = (sql,) if isinstance(sql, str) else sql
    first = cur.sql(sqls[0]).to_arrow_reader(ROW_GROUP_ROWS)
    schema = first.schema

    def batches():  # one part after the other (a cursor holds one open result at a time)
        yield from first
        for q in sqls[1:]:
            reader = cur.sql(q).to_arrow_reader(ROW_GROUP_ROWS)
            invariant(reader.schema.equals(schema), f"the parts of {path.name} have one schema")
            yield from reader

    return _write_groups(batches(), schema, str(path), encodings, statistics)


def write_table(table: pa.Table, path: Path, encodings: dict[str, str],
                statistics: bool | list[str] = True) -> tuple[int, int, str]:
    """`table`'s rows into the Parquet file `path` (replaced), the same bytes as `write_parquet`
    gives for the same rows read from the store; (rows, bytes, sha256). For small tables: the
    file is made in memory and written in one go (a writer opening a path costs more here)."""
    buf = pa.BufferOutputStream()
    rows = _write_groups(table.to_batches(), table.schema, buf, encodings, statistics)
    data = buf.getvalue()
    with open(path, "wb") as fh:
        fh.write(data)
    return rows, data.size, hashlib.sha256(data).hexdigest()


def input_statistics(schema: pa.Schema) -> list[str]:
    """The inputs' columns with min/max statistics: every one but the free strings (ids, raw
    times, payloads: in arrival order their ranges span every row group, and computing them is
    an eighth of the file's cost); `event_type` keeps them (the pings' row groups come first)."""
    return [f.name for f in schema if f.name == "event_type" or not pa.types.is_string(f.type)]


def _write_groups(batches, schema: pa.Schema, sink, encodings: dict[str, str], statistics) -> int:
    names = set(schema.names)
    enc = {c: v for c, v in encodings.items() if c in names}
    writer = pq.ParquetWriter(sink, schema, compression="zstd", data_page_version="2.0",
                              use_dictionary=[c for c in schema.names if c not in enc],
                              column_encoding=enc or None, write_statistics=statistics)
    rows, pending, held = 0, [], 0
    try:
        for batch in batches:
            pending.append(batch)
            held += batch.num_rows
            while held >= ROW_GROUP_ROWS:
                table = pa.Table.from_batches(pending, schema)
                group, rest = table.slice(0, ROW_GROUP_ROWS), table.slice(ROW_GROUP_ROWS)
                writer.write_table(group.combine_chunks(), row_group_size=ROW_GROUP_ROWS)
                rows += ROW_GROUP_ROWS
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            writer.write_table(pa.Table.from_batches(pending, schema).combine_chunks(), row_group_size=ROW_GROUP_ROWS)
            rows += held
    finally:
        writer.close()
    return rows


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def _closed_epochs(con, lo: int | None = None, hi: int | None = None) -> list[tuple]:
    """(reward_epoch, input_arrival_seq, manifest_sha256, ruleset_version, params_sha256,
    engine_version, input_event_count, input_events_sha256, scored_nodes) of the closed epochs
    (those from lo to hi)."""
    where = "" if lo is None else f"WHERE reward_epoch BETWEEN {int(lo)} AND {int(hi)}"
    return con.execute(f"""
        SELECT reward_epoch, input_arrival_seq, manifest_sha256, ruleset_version, params_sha256, engine_version,
               input_event_count, input_events_sha256, scored_nodes
        FROM reward_epochs {where} ORDER BY reward_epoch""").fetchall()


def publish_pending(con, root) -> list[int]:
    """Publish every closed epoch of the store (`con`) that has no manifest in `root`, in
    ascending order; returns them. Raises `PublishError` when the folder holds epochs of
    another store."""
    pub = Publisher(con, root, background=False)
    try:
        pub.start()
        return pub.finish()
    finally:
        pub.close()


class Publisher:
    """Publishes the epochs of one close pass. `start()` takes on the closed epochs not yet
    published (a crash's leftovers, a store closed before publishing existed); `closed(e)`
    after each store commit adds epoch e; `finish()` makes every file durable, then writes the
    manifests in epoch order, and returns the epochs published.

    With `background` (the default) the Parquet files are written on a thread of its own with
    a cursor of the store's database while the caller goes on closing the next epochs: the
    close is mostly fixed per-statement costs that leave a core idle, the inputs file is the
    one large write. Only committed rows are read, so what is written does not depend on when.

    Epochs are written in batches (`_batches`): each epoch's inputs by its own query (streamed),
    its seven other files by one query per file over the batch, cut into the epochs (a file's
    fixed costs, the statement's and the writer's, are most of a small epoch's). The background
    thread takes the first epoch at once (in a replay it holds every input), then the epochs
    closed meanwhile once `BATCH_EPOCHS` wait or at `finish()`; without it, every epoch at
    `finish()`. The bytes do not depend on the batches: each file is the rows of its epoch's
    own query (`file_queries`), in its order."""

    def __init__(self, con, root, background: bool = True) -> None:
        self.root = Path(root)
        self.cur = con.cursor()
        # timestamps leave DuckDB in UTC whatever the machine's zone (the zone is in the file)
        self.cur.execute("SET TimeZone = 'UTC'")
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="publish") if background else None
        self.jobs: list = []
        self.epochs: list[int] = []
        self.queue: list[int] = []  # epochs added, not yet handed to a writer
        self._inputs_schema: pa.Schema | None = None  # (the Arrow schema of the inputs' query)
        self.rows: dict[int, tuple] = {}
        self.written: dict[int, list[dict]] = {}
        self._started = False

    def start(self) -> None:
        check_root(self.root)
        try:
            self._start()
        except OSError as exc:
            raise _cannot_publish(self.root, exc) from exc

    def _start(self) -> None:
        self._started = True
        closed = _closed_epochs(self.cur)
        published = set(list_epochs(self.root))
        by_epoch = {row[0]: row for row in closed}
        common = sorted(published & set(by_epoch))
        if common:
            _check_same_store(self.root, by_epoch[common[-1]])
        self.rows.update(by_epoch)
        for row in closed:
            if row[0] not in published:
                self._add(row[0])

    def closed(self, e: int) -> None:
        """Epoch e is committed in the store: write its files (it must follow the others)."""
        if not self._started:
            self.start()
        elif e not in self.epochs:
            self._add(e)

    def _add(self, e: int) -> None:
        if self.epochs:
            invariant(e > self.epochs[-1], f"epochs are published in order ({e} after {self.epochs[-1]})")
        self.epochs.append(e)
        self.queue.append(e)
        if self.pool is not None and all(j.done() for j in self.jobs) and (
                len(self.queue) >= BATCH_EPOCHS or self.queue[0] == self.epochs[0]):
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand every queued epoch to the writer (the background thread, else this one)."""
        queue, self.queue = self.queue, []
        if queue:
            if self.pool is None:
                self._write(queue)
            else:
                self.jobs.append(self.pool.submit(self._write, queue))

    def _write(self, epochs: list[int]) -> None:
        try:
            for row in _closed_epochs(self.cur, epochs[0] - 1, epochs[-1]):
                self.rows[row[0]] = row
            for batch in self._batches(epochs):
                self._write_files(batch)
                # durable now, off the caller's path (`finish` renames them)
                _fsync_all(f["tmp"] for e in batch for f in self.written[e])
                for e in batch:
                    for f in self.written[e]:
                        f["synced"] = True
        except OSError as exc:
            raise _cannot_publish(self.root, exc) from exc

    def _batches(self, epochs: list[int]) -> list[list[int]]:
        """Consecutive runs of `epochs`, each at most BATCH_EPOCHS epochs and BATCH_NODE_ROWS
        scored nodes (one epoch at least): what a batch's queries hold in memory at once."""
        out: list[list[int]] = []
        rows = 0
        for e in epochs:
            invariant(e in self.rows, f"epoch {e} is closed in the store before it is published")
            n = int(self.rows[e][8] or 0)
            if out and len(out[-1]) < BATCH_EPOCHS and rows + n <= BATCH_NODE_ROWS:
                out[-1].append(e)
                rows += n
            else:
                out.append([e])
                rows = n
        return out

    def _write_files(self, epochs: list[int]) -> None:
        spans = []
        for e in epochs:
            prev = self.rows.get(e - 1)
            spans.append((e, prev[1] if prev is not None else -1, self.rows[e][1]))
        entries: dict[int, list[dict]] = {}
        for e, after, through in spans:
            d = epoch_dir(self.root, e)
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / ".inputs.parquet.tmp"
            if through <= after and self._inputs_schema is not None:  # no arrival range: no rows
                rows, size, sha = write_table(empty_table(self._inputs_schema), tmp, DELTA_COLUMNS,
                                              input_statistics(self._inputs_schema))
                entries[e] = [{"name": "inputs.parquet", "rows": rows, "tmp": tmp, "bytes": size, "sha256": sha}]
                continue
            sqls = dict(file_queries(e, after, through))["inputs"]
            if self._inputs_schema is None:
                self._inputs_schema = self.cur.sql(f"SELECT * FROM ({sqls[0]}) LIMIT 0").to_arrow_table().schema
            rows = write_parquet(self.cur, sqls, tmp, DELTA_COLUMNS, input_statistics(self._inputs_schema))
            entries[e] = [{"name": "inputs.parquet", "rows": rows, "tmp": tmp}]
        for name, sql in batch_queries(spans).items():
            parts = split_batch(self.cur.sql(sql).to_arrow_table(), name, spans)
            for e, _, _ in spans:
                tmp = epoch_dir(self.root, e) / f".{name}.parquet.tmp"
                rows, size, sha = write_table(parts[e], tmp, {})
                entries[e].append({"name": f"{name}.parquet", "rows": rows, "tmp": tmp, "bytes": size, "sha256": sha})
        for e, _, _ in spans:
            invariant([f["name"] for f in entries[e]] == [f"{n}.parquet" for n in FILE_NAMES],
                      f"epoch {e}'s files in the manifest's order")
            self.written[e] = entries[e]

    def _wait(self) -> None:
        jobs, self.jobs = self.jobs, []
        for j in jobs:
            j.result()

    def finish(self) -> list[int]:
        """Every file durable and in place, then the manifests, in epoch order."""
        if not self._started:
            self.start()
        self._wait()
        if self.pool is not None:
            self._dispatch()
            self._wait()
        else:
            self._dispatch()
        try:
            return self._finish()
        except OSError as exc:
            raise _cannot_publish(self.root, exc) from exc

    def _finish(self) -> list[int]:
        if not self.epochs:
            return []
        root, epochs = self.root, self.epochs
        # every file durable before any is renamed into place, the renames before any manifest
        _fsync_all(f["tmp"] for e in epochs for f in self.written[e] if not f.get("synced"))
        for e in epochs:
            for f in self.written[e]:
                if "sha256" not in f:  # (the files written from memory know theirs)
                    f["bytes"] = f["tmp"].stat().st_size
                    f["sha256"] = _sha256(f["tmp"])
        for e in epochs:
            for f in self.written[e]:
                os.replace(f["tmp"], epoch_dir(root, e) / f["name"])
                _crash("after_file")
        _fsync_all([root, *(epoch_dir(root, e) for e in epochs)], dirs=True)

        previous = None
        if epochs[0] - 1 in self.rows:
            previous = _sha256(epoch_dir(root, epochs[0] - 1) / MANIFEST)
        manifests: list[tuple[Path, Path]] = []
        for e in epochs:
            _e, through, manifest_sha, ruleset, params, engine, count, digest, _scored = self.rows[e]
            prev = self.rows.get(e - 1)
            body = manifest_bytes({
                "format": FORMAT,
                "reward_epoch": e,
                "ruleset_version": ruleset,
                "params_sha256": params,
                "engine_version": engine,
                "manifest_sha256": manifest_sha,
                "arrival_range": {"after": prev[1] if prev is not None else -1, "through": through},
                "input_event_count": count,
                "input_events_sha256": digest,
                "previous_manifest_sha256": previous,
                "files": [{k: f[k] for k in ("name", "rows", "bytes", "sha256")} for f in self.written[e]],
            })
            previous = hashlib.sha256(body).hexdigest()
            d = epoch_dir(root, e)
            tmp = d / f".{MANIFEST}.tmp"
            tmp.write_bytes(body)
            manifests.append((tmp, d / MANIFEST))
        _fsync_all(t for t, _ in manifests)
        for tmp, final in manifests:  # in epoch order: readers see the epochs appear in order
            _crash("before_manifest")
            os.replace(tmp, final)
        _fsync_all([epoch_dir(root, e) for e in epochs], dirs=True)
        self.epochs, self.written = [], {}
        return epochs

    def close(self) -> None:
        """Wait for the file writer (its files stay temporary without `finish`) and let go."""
        try:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
        finally:
            self.cur.close()


def _check_same_store(root: Path, row) -> None:
    e, through, manifest_sha = row[0], row[1], row[2]
    try:
        m = read_manifest(root, e)
    except (OSError, ValueError) as exc:
        raise PublishError(f"the manifest of epoch {e} in {root} cannot be read ({exc})") from exc
    if m.get("manifest_sha256") != manifest_sha or (m.get("arrival_range") or {}).get("through") != through:
        raise PublishError(
            f"the published folder {root} holds an epoch {e} that this store did not close the same way "
            "(another store's folder?): move it away or pass another --publish folder")


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------

def list_epochs(root) -> list[int]:
    """The published epochs (those whose manifest.json exists), ascending."""
    root = Path(root)
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for ent in entries:
        m = EPOCH_DIR_RE.match(ent.name)
        if m and ent.is_dir() and os.path.isfile(os.path.join(ent.path, MANIFEST)):
            out.append(int(m.group(1)))
    return sorted(out)


def read_manifest(root, n: int) -> dict:
    """Epoch n's manifest; LookupError when n is not published (no manifest)."""
    path = epoch_dir(root, n) / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LookupError(f"epoch {n} is not published in {root}") from None
    return json.loads(data)


def epoch_files(root, n: int) -> dict[str, Path]:
    """name → path of epoch n's files, as its manifest lists them ("epoch_rewards" → …/epoch_rewards.parquet)."""
    d = epoch_dir(root, n)
    return {f["name"].removesuffix(".parquet"): d / f["name"] for f in read_manifest(root, n)["files"]}


def _select_epochs(root, epochs) -> list[int]:
    have = list_epochs(root)
    if epochs is None:
        return have
    want = {int(e) for e in epochs}
    return [e for e in have if e in want]


_EPOCH_OF_PATH = r"reward_epoch=(-?\d+)[/\\][^/\\]*$"


def _schema_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(SCHEMA)
    return con


@functools.lru_cache(maxsize=None)
def file_columns(name: str) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a published file, as the writer's query gives them."""
    q = dict(file_queries(0, -1, -1))[name]
    con = _schema_db()
    try:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {q if isinstance(q, str) else q[0]}").fetchall()]
    finally:
        con.close()


def scan(root, name: str, epochs=None) -> pl.LazyFrame:
    """One published file over the manifested epochs (all, or those in `epochs`) as one lazy
    frame, with `published_epoch` (the epoch folder it came from) and, for the files that have
    none, `reward_epoch` (the same). Snapshot files (nodes, slash_decisions) give every epoch's
    snapshot: filter on published_epoch for one."""
    if name not in FILE_NAMES:
        raise ValueError(f"no published file named {name!r} (one of {', '.join(FILE_NAMES)})")
    chosen = _select_epochs(root, epochs)
    has_epoch = any(c == "reward_epoch" for c, _ in file_columns(name))
    if not chosen:
        con = _schema_db()
        try:
            q = dict(file_queries(0, -1, -1))[name]
            q = q if isinstance(q, str) else q[0]
            empty = pl.from_arrow(con.sql(f"SELECT * FROM ({q}) LIMIT 0").to_arrow_table())
        finally:
            con.close()
        lf = empty.lazy().with_columns(pl.lit(None, pl.Int64).alias("published_epoch"))
        return lf if has_epoch else lf.with_columns(pl.lit(None, pl.Int64).alias("reward_epoch"))
    paths = [str(epoch_files(root, e)[name]) for e in chosen]
    lf = pl.scan_parquet(paths, hive_partitioning=False, include_file_paths="__published_path")
    lf = lf.with_columns(pl.col("__published_path").str.extract(_EPOCH_OF_PATH, 1).cast(pl.Int64)
                         .alias("published_epoch")).drop("__published_path")
    return lf if has_epoch else lf.with_columns(pl.col("published_epoch").alias("reward_epoch"))


def _empty_select(name: str) -> str:
    cols = ", ".join(f'NULL::{t} AS "{c}"' for c, t in file_columns(name))
    return f"SELECT {cols} WHERE false"


def attach(con, root, epochs=None) -> None:
    """DuckDB views over the published folder in `con`, named like the store's tables:
    `inputs`, `rejected_events`, `node_epoch_scores`, `epoch_rewards`, `ledger_entries`,
    `reward_epochs` over the chosen manifested epochs; `slash_decisions` and `nodes` as the
    latest of them left them; `manifests`, one row per chosen epoch. Each view has
    `published_epoch`, and `reward_epoch` where its file has none. The views name the files of
    the epochs manifested now: attach again to see epochs published since."""
    chosen = _select_epochs(root, epochs)
    for name in FILE_NAMES:
        has_epoch = any(c == "reward_epoch" for c, _ in file_columns(name))
        if not chosen:
            body = f"SELECT *, NULL::BIGINT AS published_epoch{'' if has_epoch else ', NULL::BIGINT AS reward_epoch'}" \
                   f" FROM ({_empty_select(name)})"
        else:
            eps = chosen[-1:] if name in SNAPSHOT_FILES else chosen
            files = ", ".join(_sql_path(epoch_files(root, e)[name].resolve()) for e in eps)
            epoch = f"regexp_extract(filename, '{_EPOCH_OF_PATH}', 1)::BIGINT"
            body = (f"SELECT * EXCLUDE (filename), {epoch} AS published_epoch"
                    f"{'' if has_epoch else f', {epoch} AS reward_epoch'}"
                    f" FROM read_parquet([{files}], filename = true, hive_partitioning = false)")
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {body}')
    con.execute(f"CREATE OR REPLACE VIEW manifests AS {_manifests_select(root, chosen)}")


def _manifests_select(root, chosen: list[int]) -> str:
    cols = ("reward_epoch BIGINT, ruleset_version VARCHAR, params_sha256 VARCHAR, engine_version VARCHAR, "
            "manifest_sha256 VARCHAR, arrival_after BIGINT, arrival_through BIGINT, input_event_count BIGINT, "
            "input_events_sha256 VARCHAR, previous_manifest_sha256 VARCHAR, files VARCHAR, path VARCHAR")
    rows = []
    for e in chosen:
        m = read_manifest(root, e)
        r = m.get("arrival_range") or {}
        vals = [m.get("reward_epoch"), m.get("ruleset_version"), m.get("params_sha256"), m.get("engine_version"),
                m.get("manifest_sha256"), r.get("after"), r.get("through"), m.get("input_event_count"),
                m.get("input_events_sha256"), m.get("previous_manifest_sha256"),
                json.dumps(m.get("files", [])), str((epoch_dir(root, e) / MANIFEST).resolve())]
        rows.append("(" + ", ".join(_sql_value(v) for v in vals) + ")")
    names = [c.split()[0] for c in cols.split(", ")]
    types = [c.split()[1] for c in cols.split(", ")]
    if not rows:
        return "SELECT " + ", ".join(f"NULL::{t} AS {n}" for n, t in zip(names, types)) + " WHERE false"
    casts = ", ".join(f"CAST(col{i} AS {t}) AS {n}" for i, (n, t) in enumerate(zip(names, types)))
    return f"SELECT {casts} FROM (VALUES {', '.join(rows)}) AS m({', '.join(f'col{i}' for i in range(len(names)))})"


def _sql_value(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


# ----------------------------------------------------------------------------------------
# the folder back into a store (for `epochal epoch verify N --published DIR`)
# ----------------------------------------------------------------------------------------

def load_store(con, root, through_epoch: int) -> None:
    """Fill an empty store (`con`, with the store's schema) from the published epochs up to
    `through_epoch`: the archive from their inputs, the rejections, and the rows of their
    closes (slash decisions as the close of `through_epoch` left them). What the close of
    `through_epoch` reads, and what it wrote, are then where the store keeps them."""
    eps = [e for e in list_epochs(root) if e <= through_epoch]
    files = {e: epoch_files(root, e) for e in eps}

    def paths(name, which=eps):
        return "[" + ", ".join(_sql_path(files[e][name]) for e in which) + "]"

    def cols(table: str) -> str:
        return ", ".join(f'"{r[0]}"' for r in con.execute(f"DESCRIBE {table}").fetchall())

    if not eps:
        return
    ping_cols = cols("archive_pings")
    event_cols = cols("archive_events")
    # (hive_partitioning off: the folder's reward_epoch=<N> must not stand in for the inputs' own column)
    inputs = f"read_parquet({paths('inputs')}, hive_partitioning = false)"
    con.execute(f"INSERT INTO archive_pings ({ping_cols}) SELECT {ping_cols} FROM {inputs}"
                f" WHERE event_type = 'ping' ORDER BY arrival_seq, event_id")
    con.execute(f"INSERT INTO archive_events ({event_cols}) SELECT {event_cols} FROM {inputs}"
                f" WHERE event_type <> 'ping' ORDER BY arrival_seq, event_id")
    for table in ("rejected_events", "node_epoch_scores", "epoch_rewards", "ledger_entries", "reward_epochs"):
        c = cols(table)
        con.execute(f"INSERT INTO {table} ({c}) SELECT {c} FROM read_parquet({paths(table)}, hive_partitioning = false)")
    load_slash_decisions(con, root, eps[-1])


def load_slash_decisions(con, root, n: int) -> None:
    """Replace the store's `slash_decisions` (in `con`) by epoch n's published file: every
    decision as the close of n left them."""
    c = ", ".join(f'"{r[0]}"' for r in con.execute("DESCRIBE slash_decisions").fetchall())
    con.execute("DELETE FROM slash_decisions")
    con.execute(f"INSERT INTO slash_decisions ({c}) SELECT {c}"
                f" FROM read_parquet({_sql_path(epoch_files(root, n)['slash_decisions'])}, hive_partitioning = false)")
