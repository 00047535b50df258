"""The ingest edge of the embedded engine: event files → the archive, columnar.

Every non-blank line is one input, and ends as exactly one of: accepted (archived), ignored as
an exact duplicate, or rejected with a reason (`rejected_events`). The counts add up; a test
holds them to it.

Hot path. Millions of pings per hour cannot each take a Python call, so a file is read in
blocks, split into lines with numpy, and handed to DuckDB as Arrow batches of ~2 MiB (scanned
in parallel). Two SQL fast paths type the common forms in bulk, straight into the staging table:
- plain `ping` lines (compact JSON, any key order, no escapes, plain numbers; checked with
  DuckDB's JSON extraction and an exact-length test), and
- `ping.batch` lines in the compact form in contract key order (checked without a JSON parser:
  the line is cut on its fixed separators and every piece must match a regular expression of
  plain JSON tokens, so the pieces spell the line out exactly; see `_batch_fast_path_sql`).
Every other line (other event types, any other form, anything odd or wrong) goes to the
reference parser `scoring.events.parse_line`, which is authoritative for acceptance and for the
reason of a rejection. A fast path only ever says "this is a valid ping with these values" for
lines the reference accepts with the same values; differential tests (hypothesis-generated and
crafted good and bad lines, pings and batches) pin that.

Duplicates and conflicts are decided after every file is staged (ruleset §10 "Replay reads
every given file before it closes anything"): for each `event_id`, the first read (files in
argument order, lines in file order) stands; a later one with the same digest is an exact
duplicate, a different one is `conflicting_duplicate`. Ids already in the archive from an
earlier run count as read first.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from scoring.events import (
    Accepted,
    PingBatch,
    Ping,
    RejectReason,
    Rejection,
    TOPIC_OF_EVENT_TYPE,
    canonical_json,
    future_detail,
    parse_line,
    time_raw_json,
    time_to_us,
)
from store.sources import SourceError, shown_path
from scoring.invariants import invariant
from scoring.registration import first_registration_sql
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.timing import compute_reward_epoch_sql, compute_slot_sql
from store.arrow import to_arrow
from store.db import last_closed_epoch, next_arrival_seq, open_ingest_run, registered, undo_open_ingest_runs

BLOCK_BYTES = 32 << 20
FLUSH_PING_ROWS = 1_000_000  # staged pings are archived in batches of about this many rows
# DuckDB's row group: a batch flushed while files are read archives a whole number of these
# (the rest stay staged for the next), so it leaves no partial row group behind for the
# checkpoint's vacuum to merge again (0.3 s at the end of a 1,000 x 24 h replay).
ROW_GROUP_ROWS = 122_880
ARROW_BATCH_BYTES = 2 << 20  # lines are handed to DuckDB in Arrow batches of about this size
RAW_KEEP_BYTES = 64 << 10  # a rejected line is kept whole up to 64 KiB, then cut (raw_bytes says how long)

PING_KEYS = ["event_id", "event_type", "schema_version", "node_id", "occurred_at", "checker_id", "reachable", "rtt_ms"]

# A time written in the plain forms (epoch milliseconds, or RFC 3339 with Z and up to 9
# fraction digits) → microseconds; NULL for anything else (which then takes the slow path).
TIME_MACRO = r"""
CREATE OR REPLACE TEMP MACRO epochal_time_us(j) AS
    CASE
      -- an extracted JSON integer is bare digits (a float has '.' or an exponent)
      WHEN left(j, 1) BETWEEN '0' AND '9' AND length(j) <= 15
           AND NOT contains(j, '.') AND NOT contains(j, 'e') AND NOT contains(j, 'E')
        THEN CASE WHEN j::BIGINT <= 253402300799999 THEN j::BIGINT * 1000 END
      WHEN regexp_full_match(j, '"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z"')
        THEN epoch_us(try_strptime(substr(j, 2, 19), '%Y-%m-%dT%H:%M:%S'))
             -- the fraction sits at a fixed place: after "YYYY-MM-DDTHH:MM:SS. and before Z"
             + CASE WHEN length(j) = 22 THEN 0
                    ELSE substr(j, 22, least(6, length(j) - 23))::BIGINT
                         * [100000, 10000, 1000, 100, 10, 1][least(6, length(j) - 23)] END
    END;
CREATE OR REPLACE TEMP MACRO epochal_plain_str(j, max_chars) AS
    left(j, 1) = '"' AND NOT contains(j, '\') AND length(j) BETWEEN 3 AND max_chars + 2;
CREATE OR REPLACE TEMP MACRO epochal_unquote(j) AS substr(j, 2, length(j) - 2);
-- a non-negative finite number as extracted (shortest form, never an exponent here)
CREATE OR REPLACE TEMP MACRO epochal_plain_measure(j) AS
    left(j, 1) BETWEEN '0' AND '9' AND NOT contains(j, 'e') AND NOT contains(j, 'E') AND length(j) <= 33;
"""

STAGE_SCHEMA = """
CREATE OR REPLACE TEMP TABLE stage_pings (
    seq BIGINT, event_id VARCHAR, node_id VARCHAR, occurred_at_us BIGINT, occurred_at_raw VARCHAR,
    checker_id VARCHAR, reachable BOOLEAN, rtt_ms DOUBLE, batch_event_id VARCHAR,
    batch_ok BOOLEAN);  -- a fast-path batch's inner ping: did it pass (the batch stands only if all did)
CREATE OR REPLACE TEMP TABLE stage_verdicts (seq BIGINT, event_id VARCHAR, verdict VARCHAR);
CREATE OR REPLACE TEMP TABLE contested_rows (seq BIGINT, event_id VARCHAR);
CREATE OR REPLACE TEMP TABLE stage_events (
    seq BIGINT, event_id VARCHAR, event_type VARCHAR, node_id VARCHAR, occurred_at_us BIGINT,
    payload VARCHAR);
CREATE OR REPLACE TEMP TABLE stage_rejects (
    seq BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR, raw_bytes BIGINT, event_id VARCHAR,
    event_type VARCHAR, topic VARCHAR, source VARCHAR);
"""

# The content of a ping, as one comparable string: two pings with one id are exact duplicates
# iff these are equal. Both the fast and the slow path fill the same typed columns, so one SQL
# expression serves every ping. It is computed only for contested ids (a ping's id seen twice),
# never per ping on the hot path; archive_pings keeps no digest of its own.
PING_KEY_SQL = (
    "concat_ws('|', 'ping', node_id, occurred_at_raw, checker_id, reachable::VARCHAR,"
    " coalesce(rtt_ms::VARCHAR, 'null'))"
)


def _fast_path_sql(cfg: RulesetConfig, exclude_batches: bool = True) -> str:
    # A plain string: quoted, no escapes (raw control characters already fail json parsing).
    plain_id = "(left(%s, 1) = '\"' AND NOT contains(%s, '\\') AND length(%s) BETWEEN 3 AND %d)"
    idc = cfg.max_id_chars
    paths = "[" + ",".join(f"'$.{k}'" for k in PING_KEYS) + "]"
    cols = ["j_id", "j_type", "j_sv", "j_node", "j_occ", "j_chk", "j_r", "j_rtt"]
    # per present key: "key": value  →  len(key) + 2 quotes + 1 colon + len(value); commas between
    n_keys_sql = " + ".join(f"({c} IS NOT NULL)::INT" for c in cols)
    key_len_sql = ("(2 + " + " + ".join(f"coalesce({len(k) + 3} + strlen({c}), 0)" for k, c in zip(PING_KEYS, cols))
                   + f" + ({n_keys_sql}) - 1)")
    # Straight into stage_pings: the extracted values are not materialised (the lines that
    # are not staged here are found from the seqs that were). Each level of the nesting is one
    # projection, computed once per line; the statement runs with DuckDB's filter pushdown off
    # (`_stage_block`), which would otherwise copy the conditions down onto the JSON
    # extraction and parse every line two or three times.
    excl = """ AND NOT contains(line, '"event_type":"ping.batch"')""" if exclude_batches else ""
    return f"""
INSERT INTO stage_pings BY NAME
SELECT seq, epochal_unquote(j_id) AS event_id, epochal_unquote(j_node) AS node_id, occ_us AS occurred_at_us,
       j_occ AS occurred_at_raw, epochal_unquote(j_chk) AS checker_id, j_r = 'true' AS reachable,
       CASE WHEN j_rtt IS NULL OR j_rtt = 'null' THEN NULL ELSE j_rtt::DOUBLE END AS rtt_ms,
       NULL::VARCHAR AS batch_event_id
FROM (
    SELECT *, epochal_time_us(j_occ) AS occ_us, {key_len_sql} AS compact_len
    FROM (
        SELECT seq, n, v[1] AS j_id, v[2] AS j_type, v[3] AS j_sv, v[4] AS j_node, v[5] AS j_occ,
               v[6] AS j_chk, v[7] AS j_r, v[8] AS j_rtt,
               -- rtt_ms must appear in the line as extracted (see below)
               v[8] IS NULL OR v[8] = 'null' OR contains(line, '"rtt_ms":' || v[8]) AS rtt_in_line
        FROM (
            SELECT seq, n, line, try(json_extract(line, {paths})) AS v
            FROM chunk_df
            -- ping.batch lines have their own fast path (and JSON-parsing a whole batch here is
            -- costly); a block without any leaves this test out
            WHERE line IS NOT NULL AND n <= {cfg.max_line_bytes}{excl}
        )
    )
)
WHERE (j_type = '"ping"'
        AND j_sv = '1'
        AND {plain_id % ('j_id', 'j_id', 'j_id', idc + 2)}
        AND {plain_id % ('j_node', 'j_node', 'j_node', idc + 2)}
        AND {plain_id % ('j_chk', 'j_chk', 'j_chk', idc + 2)}
        AND j_r IN ('true', 'false')
        AND (j_rtt IS NULL OR j_rtt = 'null' OR epochal_plain_measure(j_rtt))
        AND occ_us IS NOT NULL AND occ_us >= {cfg.genesis_us}
        -- Only the known keys, each once, in compact JSON: the line is exactly as long as those
        -- keys and values, so another key, a repeated key, whitespace or an escape makes it
        -- longer (then: slow path). Extracted values are never longer than what was written,
        -- except a number written with an exponent: rtt_ms must appear in the line as extracted.
        AND n = compact_len
        AND rtt_in_line
       )
"""


# A JSON string in the plain form (no escape, no control character), as written with its quotes.
_PLAIN_STR_RE = r'"[^"\\\x00-\x1f]+"'
# A time as a JSON token: epoch milliseconds (a JSON integer: no leading zero) or a plain string
# (epochal_time_us then decides whether it is an RFC 3339 time of the accepted form).
_TIME_RE = r'(0|[1-9][0-9]{0,14}|' + _PLAIN_STR_RE + ')'
# A ping.batch line in the compact form, up to its pings, in contract key order.
_BATCH_HEAD_RE = (r'^\{"event_id":(' + _PLAIN_STR_RE + r'),"event_type":"ping\.batch","schema_version":1,'
                  r'"node_id":(' + _PLAIN_STR_RE + r'),"occurred_at":' + _TIME_RE
                  + r',"checker_id":(' + _PLAIN_STR_RE + r')$')
# One inner ping, between its braces; rtt_ms may be absent, null or a plain non-negative JSON number.
_BATCH_ITEM_RE = (r'^"node_id":(' + _PLAIN_STR_RE + r'),"occurred_at":' + _TIME_RE
                  + r',"reachable":(true|false)(?:,"rtt_ms":(null|(?:0|[1-9][0-9]*)(?:\.[0-9]+)?))?$')
_PINGS_MARK = ',"pings":[{'


def _batch_fast_path_sql(cfg: RulesetConfig) -> str:
    """`ping.batch` lines in the compact form, without a JSON parser.

    A candidate line (one containing `"event_type":"ping.batch"`) is cut into its head (up to
    `,"pings":[{`), its inner pings (split on `},{`) and its tail (`}]}`), and the head and every
    inner ping must match, in full, a regular expression of the compact form in contract key
    order whose every value is a plain JSON token (strings without escapes or control characters,
    integers without leading zeros, numbers without exponents). Such a cut, if every piece
    matches, spells the line out exactly: the line is then a JSON object with exactly these keys
    and values, so nothing else can hide in it (another key, a repeated key, whitespace, an
    escape). Any line that fails, or any id with `,` or `},{` in it, takes the slow path (the
    reference parser), which is authoritative. Values are then bounded and typed with the same
    macros as the plain ping's fast path."""
    idc, g = cfg.max_id_chars, cfg.genesis_us
    head = _BATCH_HEAD_RE.replace("'", "''")
    item = _BATCH_ITEM_RE.replace("'", "''")
    mark = _PINGS_MARK
    return f"""
-- a view: the statements below read the lines' Arrow batches in parallel (a table of a few
-- hundred rows would be one task)
CREATE OR REPLACE TEMP VIEW chunk_bv AS
WITH cand AS (
    -- (the line may end in its newline: no rtrim, which costs a pass over a large line)
    SELECT seq, line AS l, length(line) - ends_with(line, chr(10))::INT AS len, position('{mark}' IN line) AS p
    FROM chunk_df
    WHERE line IS NOT NULL AND n <= {cfg.max_line_bytes} AND contains(line, '"event_type":"ping.batch"')
), cut AS (
    SELECT seq, regexp_extract(left(l, p - 1), '{head}', ['id', 'node', 'occ', 'chk']) AS h,
           CASE WHEN p > 0 AND substr(l, len - 2, 3) = '}}]}}'
                THEN string_split(substr(l, p + {len(mark)}, len - p - {len(mark) + 2}), '}},{{') END AS items
    FROM cand
)
SELECT seq, h.id AS j_id, h.node AS j_node, h.occ AS j_occ, h.chk AS j_chk, epochal_time_us(h.occ) AS occ_us,
       coalesce(h.id <> '' AND epochal_plain_str(h.id, {idc}) AND epochal_plain_str(h.node, {idc})
                AND epochal_plain_str(h.chk, {idc}) AND epochal_time_us(h.occ) >= {g}
                AND len(items) BETWEEN 1 AND {cfg.max_batch_pings}, false) AS head_ok,
       items
FROM cut;

CREATE OR REPLACE TEMP TABLE chunk_bh AS
SELECT seq, j_id, j_node, j_occ, j_chk, occ_us, head_ok, len(items) AS n_items FROM chunk_bv;

-- Every inner ping of a batch whose head is good is staged at once, typed, with its own
-- verdict (batch_ok). A batch with any bad inner ping is taken out again (rare: see
-- Ingestor._stage_block), so a batch's pings are staged whole or not at all.
INSERT INTO stage_pings BY NAME
WITH u AS (
    SELECT seq, epochal_unquote(j_id) AS bid, epochal_unquote(j_chk) AS chk,
           generate_subscripts(items, 1) - 1 AS idx, unnest(items) AS it
    FROM chunk_bv WHERE head_ok
), m AS (
    SELECT seq, bid, chk, idx, w, epochal_time_us(w.occ) AS k_us
    FROM (SELECT seq, bid, chk, idx, regexp_extract(it, '{item}', ['node', 'occ', 'r', 'rtt']) AS w FROM u)
)
SELECT seq, bid || ':' || idx AS event_id, epochal_unquote(w.node) AS node_id, k_us AS occurred_at_us,
       w.occ AS occurred_at_raw, chk AS checker_id, w.r = 'true' AS reachable,
       CASE WHEN w.rtt IN ('', 'null') THEN NULL ELSE TRY_CAST(w.rtt AS DOUBLE) END AS rtt_ms,
       bid AS batch_event_id,
       coalesce(w.node <> '' AND epochal_plain_str(w.node, {idc}) AND k_us >= {g}
                AND (w.rtt IN ('', 'null') OR epochal_plain_measure(w.rtt)), false) AS batch_ok
FROM m;
"""


@dataclass
class IngestCounts:
    inputs: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    late: int = 0
    blank_lines: int = 0
    pings: int = 0  # accepted pings, a batch's inner pings included
    by_reason: dict[str, int] = field(default_factory=dict)
    first_arrival_seq: int = 0
    last_arrival_seq: int = -1

    def adds_up(self) -> bool:
        return self.accepted + self.duplicates + self.rejected == self.inputs


def iter_line_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """Blocks of whole lines: an Arrow binary array over the block's own buffer (zero copy;
    each value keeps its trailing newline, which JSON reads as whitespace) and the lengths
    of the lines without it."""
    carry = b""
    with open(path, "rb") as fh:
        while True:
            blk = fh.read(block_bytes)
            buf = carry + blk if carry else blk
            if not buf:
                return
            nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
            if blk:
                if len(nl) == 0:
                    carry = buf  # one line longer than a block: keep reading
                    continue
                end = int(nl[-1]) + 1
                carry = buf[end:]
                bounds = nl + 1
            else:
                end = len(buf)
                carry = b""
                bounds = nl + 1 if len(nl) and int(nl[-1]) == end - 1 else np.append(nl + 1, end)
            offsets = np.empty(len(bounds) + 1, dtype=np.int64)
            offsets[0] = 0
            offsets[1:] = bounds
            lengths = np.diff(offsets)
            lengths[: len(nl)] -= 1  # every line but an unterminated last one ends in a newline
            data = pa.py_buffer(buf if end == len(buf) else memoryview(buf)[:end])
            arr = pa.Array.from_buffers(pa.large_binary(), len(bounds), [None, pa.py_buffer(offsets), data])
            yield arr, lengths
            if not blk:
                return


def _prefetched(blocks: Iterator, depth: int = 2) -> Iterator:
    """Read and split the next blocks in a thread while DuckDB works on the current one
    (file reads and numpy release the GIL, and so does DuckDB)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in blocks:
                q.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)
        q.put(done)

    threading.Thread(target=produce, daemon=True, name="epochal-read").start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _utf8_or_null(binary: pa.Array) -> pa.Array:
    """Lines as text; a line that is not UTF-8 becomes null (and goes to the slow path)."""
    if binary.null_count == 0:
        # ASCII is UTF-8: a block without a byte >= 0x80 (the usual one) is viewed as text as
        # it is, without the cast's validation pass (one SIMD max over the block's bytes)
        _, offsets, data = binary.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64)[binary.offset:binary.offset + len(binary) + 1]
        if len(bounds) and np.frombuffer(data, dtype=np.uint8)[bounds[0]:bounds[-1]].max(initial=0) < 0x80:
            return binary.view(pa.large_string())
    try:
        return binary.cast(pa.large_string())  # validates UTF-8, shares the buffers
    except (pa.ArrowInvalid, pa.ArrowException):
        # Rare (a damaged file): find the bad lines one by one, in this block only.
        def ok(b: bytes | None) -> bool:
            try:
                b.decode("utf-8")
                return True
            except (UnicodeDecodeError, AttributeError):
                return False

        return pa.array([b.decode("utf-8") if ok(b) else None for b in binary.to_pylist()], type=pa.large_string())


def _raw_text(line: bytes) -> tuple[str, int]:
    return line[:RAW_KEEP_BYTES].decode("utf-8", "replace"), len(line)


class Ingestor:
    """Stages files into temp tables, then classifies and archives them in one pass."""

    def __init__(self, con, cfg: RulesetConfig = RULESET_V1, *, progress: Callable[[int], None] | None = None,
                 base_seq: int | None = None, last_closed: int | None = None,
                 arrived_at_us: int | None = None, crash_hook: Callable[[str], None] | None = None):
        self.con = con
        self.cfg = cfg
        self.progress = progress
        self.counts = IngestCounts()
        self.seq = 0  # local arrival order inside this run
        # The arrival time of every line staged from a file (a replay's start, or its
        # --arrived-at): lines dated more than 5 min after it are `from_future` (§10). None: no
        # such check (the live stream passes each message's own arrival to stage_lines).
        self.arrived_at_us = arrived_at_us
        self.crash_hook = crash_hook or (lambda point: None)
        self._skip_blank = True
        self._verdict_details: dict[int, str] = {}  # seq → a conflict's detail, when not its own id's
        con.execute(TIME_MACRO)
        con.execute(STAGE_SCHEMA)
        self._fast_sql = {has: _fast_path_sql(cfg, exclude_batches=has) for has in (False, True)}
        self._batch_sql = _batch_fast_path_sql(cfg)
        self._slow_pings: list[tuple] = []
        self._slow_events: list[tuple] = []
        self._rejects: list[tuple] = []
        self.sources: list[str] = []
        self.fast_lines = 0  # lines typed by the SQL fast path (the rest went to parse_line)
        self._staged_pings = 0
        # Arrival order continues the store's; epochs closed before this run make its events late.
        self._base_seq = next_arrival_seq(con) if base_seq is None else base_seq
        last = last_closed_epoch(con) if last_closed is None else last_closed
        self._closed = -1 if last is None else last
        # A run is all or nothing. Its pings are committed in bounded batches while files are read
        # (one transaction for a whole run held every batch until its end: 2.2x the memory at
        # 96 h, bench/bench_replay.py), so the run is marked open first (`ingest_open`, committed)
        # and its last transaction, which writes the other events, the rejections and the
        # ingest_runs row, also removes the mark. A run that never got there (killed, or given up
        # on an error) is undone (`store.undo_open_ingest_runs`) by `abort` or by the next
        # process that opens the store for writing, before anything else, so no close ever reads
        # half a run and a rerun starts from the store as it was before it.
        open_ingest_run(con, self._base_seq)
        self._open = True
        self.crash_hook("after_ingest_open")  # (the mark committed, nothing of the run yet)

    def abort(self) -> None:
        """Give the run up: nothing of it stays in the store."""
        if self._open:
            self._open = False
            try:
                self.con.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - no transaction was open (or a failed COMMIT ended it)
                pass
            undo_open_ingest_runs(self.con)

    # -- staging ---------------------------------------------------------------------------
    def stage_file(self, path: Path) -> None:
        """Stage every line of one file. A file that cannot be read raises `SourceError`
        (the caller gives the run up: nothing of it is stored)."""
        self._file_first_seq = self.seq
        name = shown_path(path)
        try:
            for arr, lengths in _prefetched(iter_line_blocks(path)):
                self._stage_block(arr, lengths, name)
                if self.progress:
                    self.progress(len(arr))
        except OSError as exc:
            raise SourceError(f"cannot read {name}: {exc.strerror or exc}") from exc

    def stage_lines(self, lines: list[bytes], source: str, received_us: list[int] | None = None) -> None:
        """Stage raw lines held in memory (e.g. a micro-batch of Kafka message values).

        `received_us` (the live stream: each message's arrival wall clock, µs) turns on the
        live edge's check: an event accepted here whose time, or any of whose inner pings'
        times, lies more than `max_future_skew_s` after its arrival is rejected as
        `from_future` instead (`_reject_from_future`). A line the parser rejects keeps the
        parser's reason."""
        self._file_first_seq = self.seq
        if lines:
            received = None if received_us is None else np.asarray(received_us, dtype=np.int64)
            # A message is one input whatever it holds: an empty one is rejected, not skipped
            # (a file's blank line is layout; a Kafka message is something that arrived).
            self._stage_block(pa.array(lines, type=pa.large_binary()),
                              np.fromiter((len(x) for x in lines), dtype=np.int64, count=len(lines)), source,
                              received, skip_blank=received is None)

    def _stage_block(self, arr: pa.Array, lengths: np.ndarray, source: str,
                     received: np.ndarray | None = None, skip_blank: bool = True) -> None:
        # Arrow all the way to DuckDB (no copy of the lines). A blank line (every byte
        # whitespace) is skipped and counted apart: the short ones are found here, a longer one
        # fails the fast path and is found on the slow path (`_stage_slow_line`).
        n_all = len(arr)
        seqs = np.arange(self.seq, self.seq + n_all, dtype=np.int64)
        self.seq += n_all
        self._skip_blank = skip_blank
        blank = (lengths == 0) & skip_blank
        short = np.flatnonzero((lengths > 0) & (lengths <= 64)) if skip_blank else []
        if len(short):
            for i, value in zip(short, arr.take(to_arrow(short)).to_pylist()):
                blank[i] = not value.strip()
        keep = ~blank
        n_blank = int(blank.sum())
        self.counts.blank_lines += n_blank
        if n_blank:
            arr, lengths, seqs = arr.filter(to_arrow(keep)), lengths[keep], seqs[keep]
            received = received[keep] if received is not None else None
        self.counts.inputs += len(arr)
        # in record batches of about ARROW_BATCH_BYTES: DuckDB scans an Arrow table's batches in
        # parallel, and one large batch would be one task
        chunk_df = pa.Table.from_arrays([to_arrow(seqs), _utf8_or_null(arr), to_arrow(lengths)],
                                        names=["seq", "line", "n"])
        rows_per_batch = max(1, int(len(arr) * ARROW_BATCH_BYTES / max(1, int(lengths.sum()))))
        chunk_df = pa.Table.from_batches(chunk_df.to_batches(max_chunksize=rows_per_batch))
        con = self.con
        lo, hi = self.seq - n_all, self.seq - 1  # this block's seqs
        with registered(con, "chunk_df", chunk_df):
            # A cheap superset of the batch lines (a short needle is compared a word at a time; a
            # needle that opens with '"' stops at every quote): a block without any needs neither
            # the batch path nor the exclusion below. A false "yes" costs time only.
            has_batches = con.execute(
                """SELECT count(*) FROM chunk_df WHERE contains(line, '.batch"')""").fetchall()[0][0]
            # (see _fast_path_sql: filter pushdown would parse each line more than once)
            con.execute("SET disabled_optimizers = 'filter_pushdown'")
            try:
                con.execute(self._fast_sql[bool(has_batches)])
            finally:
                con.execute("RESET disabled_optimizers")
            if has_batches:
                con.execute(self._batch_sql)
            else:
                con.execute("CREATE OR REPLACE TEMP TABLE chunk_bh (seq BIGINT, j_id VARCHAR, j_node VARCHAR,"
                            " j_occ VARCHAR, j_chk VARCHAR, occ_us BIGINT, head_ok BOOLEAN, n_items BIGINT)")
        bad = con.execute("SELECT DISTINCT seq FROM stage_pings WHERE batch_ok = false").fetchall()
        bad_seqs = ",".join(str(r[0]) for r in bad)
        if bad:  # a batch with a bad inner ping: all its pings go (the reference parser has it next)
            con.execute(f"DELETE FROM stage_pings WHERE seq IN ({bad_seqs})")
        # the envelope, canonical (sorted keys) without its pings: the same text parse_line's
        # path writes (`_batch_envelope_payload`)
        batch_fast_where = f"head_ok AND seq NOT IN ({bad_seqs})" if bad else "head_ok"
        con.execute(
            "INSERT INTO stage_events SELECT seq, epochal_unquote(j_id), 'ping.batch', epochal_unquote(j_node), occ_us,"
            " '{\"checker_id\":' || j_chk || ',\"event_id\":' || j_id || ',\"event_type\":\"ping.batch\",\"node_id\":'"
            f" || j_node || ',\"occurred_at\":' || j_occ || ',\"schema_version\":1}}' FROM chunk_bh WHERE {batch_fast_where}"
            " ORDER BY seq"
        )
        batch_fast, n_inner = con.execute(
            f"SELECT list(seq), coalesce(sum(n_items), 0) FROM chunk_bh WHERE {batch_fast_where}").fetchall()[0]
        batch_fast = np.array(batch_fast or [], dtype=np.int64)
        self._staged_pings += int(n_inner)
        ping_fast = con.execute(
            f"SELECT seq FROM stage_pings WHERE seq BETWEEN {lo} AND {hi} AND batch_event_id IS NULL"
        ).fetchnumpy()["seq"]
        self._staged_pings += len(ping_fast)
        fast_seqs = np.concatenate([ping_fast, batch_fast])
        self.fast_lines += len(fast_seqs)
        slow_idx = np.flatnonzero(~np.isin(seqs, fast_seqs))
        slow_raw = arr.take(to_arrow(slow_idx)).to_pylist() if len(slow_idx) else []
        for seq, raw in zip(seqs[slow_idx].tolist(), slow_raw):
            self._stage_slow_line(seq, raw.rstrip(b"\n").rstrip(b"\r"), f"{source}:{seq - self._file_first_seq + 1}")
        self._flush_slow()
        if received is not None or self.arrived_at_us is not None:
            self._reject_from_future(seqs, received, arr, source)
        if self._staged_pings >= FLUSH_PING_ROWS:
            self._flush_pings(everything=False)

    def _reject_from_future(self, seqs: np.ndarray, received: np.ndarray | None, arr: pa.Array,
                            source: str) -> None:
        """The from_future check (§10), columnar over what this block staged: per line, the latest
        event time staged (its own, a batch's envelope and inner pings) against its arrival
        (`received`, per line, in the live stream; else the run's `arrived_at_us`). Those too far
        ahead are taken out of the staging tables and rejected as from_future. The columnar twin
        of `scoring.events.is_from_future` (the reference parser's last check, so a line the
        parser rejects keeps the parser's reason); a differential test holds them together."""
        if len(seqs) == 0:
            return
        con, skew_us = self.con, self.cfg.max_future_skew_s * 1_000_000
        lo, hi = int(seqs[0]), int(seqs[-1])
        staged = f"""
            SELECT seq, occurred_at_us, event_id, 'ping' AS event_type FROM stage_pings
            WHERE seq BETWEEN {lo} AND {hi}
            UNION ALL
            SELECT seq, occurred_at_us, event_id, event_type FROM stage_events
            WHERE seq BETWEEN {lo} AND {hi}"""
        # Nearly always nothing is ahead: one aggregate says so without grouping by line.
        earliest = int(received.min()) if received is not None else int(self.arrived_at_us)
        latest = con.execute(f"SELECT max(occurred_at_us) FROM ({staged})").fetchall()[0][0]
        if latest is None or latest <= earliest + skew_us:
            return
        if received is None:
            received = np.full(len(seqs), int(self.arrived_at_us), dtype=np.int64)
        block = pa.Table.from_arrays([to_arrow(seqs), to_arrow(received)], names=["seq", "received_us"])
        with registered(con, "block_received", block):
            rows = con.execute(f"""
                WITH t AS ({staged})
                SELECT t.seq, max(t.occurred_at_us), any_value(r.received_us),
                       -- a batch's own id and type (its inner pings are ids of the form <id>:<i>)
                       arg_min(t.event_id, length(t.event_id)), arg_min(t.event_type, length(t.event_id))
                FROM t JOIN block_received r USING (seq)
                GROUP BY t.seq HAVING max(t.occurred_at_us) > any_value(r.received_us) + {skew_us}
                ORDER BY t.seq
            """).fetchall()
        if not rows:
            return
        future = ",".join(str(r[0]) for r in rows)
        self._staged_pings -= con.execute(f"SELECT count(*) FROM stage_pings WHERE seq IN ({future})").fetchall()[0][0]
        con.execute(f"DELETE FROM stage_pings WHERE seq IN ({future})")
        con.execute(f"DELETE FROM stage_events WHERE seq IN ({future})")
        pos = {int(s): i for i, s in enumerate(seqs.tolist())}
        for seq, latest_us, arrived_us, event_id, event_type in rows:
            raw, raw_bytes = _raw_text(arr[pos[seq]].as_py().rstrip(b"\n").rstrip(b"\r"))
            self._rejects.append((seq, RejectReason.from_future.value, future_detail(latest_us, arrived_us, self.cfg),
                                  raw, raw_bytes, event_id, event_type, TOPIC_OF_EVENT_TYPE.get(event_type),
                                  f"{source}:{seq - self._file_first_seq + 1}"))
        self._flush_slow()

    def _stage_slow_line(self, seq: int, line: bytes, source: str) -> None:
        if self._skip_blank and not line.strip():  # a blank line too long for _stage_block's look
            self.counts.inputs -= 1
            self.counts.blank_lines += 1
            return
        result = parse_line(line, self.cfg)
        if isinstance(result, Rejection):
            raw, raw_bytes = _raw_text(line)
            topic = TOPIC_OF_EVENT_TYPE.get(result.event_type or "")
            self._rejects.append((seq, result.reason.value, result.detail, raw, raw_bytes,
                                  result.event_id, result.event_type, topic, source))
            return
        self.stage_accepted(seq, result)

    def stage_accepted(self, seq: int, accepted: Accepted) -> None:
        ev = accepted.event
        if isinstance(ev, Ping):
            self._slow_pings.append(_ping_row(seq, ev, None))
            return
        if isinstance(ev, PingBatch):
            for i, p in enumerate(ev.pings):
                self._slow_pings.append((
                    seq, f"{ev.event_id}:{i}", p.node_id, time_to_us(p.occurred_at),
                    time_raw_json(p.occurred_at), ev.checker_id, p.reachable, p.rtt_ms, ev.event_id,
                ))
        payload = _batch_envelope_payload(ev) if isinstance(ev, PingBatch) else accepted.canonical.decode()
        self._slow_events.append((seq, ev.event_id, ev.event_type, ev.node_id, ev.occurred_at_us, payload))

    def _flush_slow(self) -> None:
        con = self.con
        if self._slow_pings:
            self._staged_pings += len(self._slow_pings)
            df = pl.DataFrame(self._slow_pings, orient="row", schema=[
                ("seq", pl.Int64), ("event_id", pl.String), ("node_id", pl.String),
                ("occurred_at_us", pl.Int64), ("occurred_at_raw", pl.String), ("checker_id", pl.String),
                ("reachable", pl.Boolean), ("rtt_ms", pl.Float64), ("batch_event_id", pl.String)])
            with registered(con, "slow_rows", df):
                con.execute("INSERT INTO stage_pings BY NAME SELECT * FROM slow_rows")
            self._slow_pings = []
        if self._slow_events:
            df = pl.DataFrame(self._slow_events, orient="row", schema=[
                ("seq", pl.Int64), ("event_id", pl.String), ("event_type", pl.String), ("node_id", pl.String),
                ("occurred_at_us", pl.Int64), ("payload", pl.String)])
            with registered(con, "slow_rows", df):
                con.execute("INSERT INTO stage_events SELECT * FROM slow_rows")
            self._slow_events = []
        if self._rejects:
            df = pl.DataFrame(self._rejects, orient="row", schema=[
                ("seq", pl.Int64), ("reason", pl.String), ("detail", pl.String), ("raw", pl.String),
                ("raw_bytes", pl.Int64), ("event_id", pl.String), ("event_type", pl.String),
                ("topic", pl.String), ("source", pl.String)])
            with registered(con, "slow_rows", df):
                con.execute("INSERT INTO stage_rejects SELECT * FROM slow_rows")
            self._rejects = []

    # -- classification and archive -------------------------------------------------------
    #
    # Pings are flushed to the archive in bounded batches while files are still being read,
    # so memory stays flat however long the input; every other event waits for the final
    # commit, because "the first node.registered by occurred_at stands" needs all of them.
    # A flushed ping's id is checked against the archive and against the events staged so
    # far (read before it), so "first read stands" holds across flushes. A batch flushed while
    # files are read takes the pings read first, a whole number of row groups of them; the
    # later ones wait for the next batch, as if not read yet (the run's last takes them all).

    def _flush_pings(self, everything: bool = True) -> None:
        con = self.con
        flushed = "true"  # which staged pings (and batch envelopes) go, by seq
        if not everything:
            seqs = con.execute("SELECT seq FROM stage_pings").fetchnumpy()["seq"]
            unit = min(ROW_GROUP_ROWS, FLUSH_PING_ROWS)
            n = len(seqs) - len(seqs) % unit
            if n < len(seqs):  # the pings before the n-th in arrival order (a batch's share its seq)
                flushed = f"seq < {int(np.partition(seqs, n)[n])}"
        con.execute("BEGIN TRANSACTION")
        try:
            # plain pings and ping.batch envelopes (a batch's inner pings share its seq)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE ping_inputs AS
                SELECT seq, event_id FROM stage_pings WHERE batch_event_id IS NULL AND {flushed}
                UNION ALL
                SELECT seq, event_id FROM stage_events WHERE event_type = 'ping.batch' AND {flushed}
            """)
            # a batch's content is compared only when its id is contested (then: its digest)
            self._classify("ping_inputs", include_staged_events=True, digests=f"""
                SELECT seq, {PING_KEY_SQL} AS digest FROM stage_pings
                WHERE batch_event_id IS NULL AND seq IN (SELECT seq FROM contested_rows)
                UNION ALL
                {_batch_digest_sql("stage_events", "seq", "stage_pings", "seq",
                                   "e.seq IN (SELECT seq FROM contested_rows)")}""")
            self._classify_inner_ids(flushed)
            self._archive_pings(flushed)
            self._archive_events(f"event_type = 'ping.batch' AND {flushed}")
            self._record_verdicts()
            con.execute(f"DELETE FROM stage_pings WHERE {flushed}")
            con.execute(f"DELETE FROM stage_events WHERE event_type = 'ping.batch' AND {flushed}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._staged_pings = con.execute("SELECT count(*) FROM stage_pings").fetchall()[0][0]
        self.crash_hook("after_ping_flush")  # (a batch of the run committed, the run still open)

    def _classify_inner_ids(self, flushed: str) -> None:
        """A batch's inner ping ids share one namespace with every other event id (contract):
        `B:1` of batch B against a plain ping, an event or a batch envelope with that very id,
        whichever way round they were read. The first read stands; a later plain ping or event
        with that id is an exact duplicate (the same ping) or a conflict; a later batch whose
        inner ping repeats an earlier ping exactly keeps its other pings (that one is not
        archived twice), and one whose inner ping conflicts is rejected whole
        (`conflicting_duplicate`, as one invalid inner ping rejects it).

        `_classify` already judges plain pings, envelopes and events against every archived id
        (inner ones included). What is left, the staged inner pings against the other ids, is
        found in one pass over the ids that can collide (an inner id only ever equals an id of
        another kind); the few collisions are then settled in arrival order. Staged events that
        are not pings wait for the run's end (`commit`), where an inner ping archived before
        them makes them a duplicate or a conflict; read before a batch, they stand. Only the
        staged rows `flushed` selects are judged (the others wait for a later flush).

        One corner depends on where a run's ping batches (and its runs) fall: when the first
        read of an id is a line rejected here (a batch, for one of its inner ids), a later read
        of that id in the same batch of pings was already judged against it by `_classify`,
        while one in a later batch or run is judged against the archive only (the rejected
        line is not in it). tests/property/test_ingest_flush_batches.py holds every other
        collision to "the same whatever the batches"."""
        con = self.con
        if not con.execute("SELECT count(*) FROM (SELECT 1 FROM stage_pings WHERE batch_event_id IS NOT NULL"
                           " LIMIT 1)").fetchall()[0][0]:
            return
        # ids of a staged inner ping that are also the id of something else, staged or archived
        # (an inner id has a ':' in it: the other side is filtered by that first)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE inner_contested AS
            WITH inner_ids AS (SELECT event_id FROM stage_pings WHERE batch_event_id IS NOT NULL)
            SELECT event_id FROM stage_pings WHERE batch_event_id IS NULL AND contains(event_id, ':')
                   AND event_id IN (SELECT event_id FROM inner_ids)
            UNION SELECT event_id FROM stage_events WHERE contains(event_id, ':')
                   AND event_id IN (SELECT event_id FROM inner_ids)
            UNION SELECT event_id FROM archive_pings WHERE batch_event_id IS NULL AND contains(event_id, ':')
                   AND event_id IN (SELECT event_id FROM inner_ids)
            UNION SELECT event_id FROM archive_events WHERE contains(event_id, ':')
                   AND event_id IN (SELECT event_id FROM inner_ids)
        """)
        if not con.execute("SELECT count(*) FROM inner_contested").fetchall()[0][0]:
            return
        base = self._base_seq
        # every occurrence of those ids, in arrival order (a batch's envelope before its pings)
        rows = con.execute(f"""
            SELECT ord, staged, seq, kind, event_id, digest FROM (
                SELECT {base} + seq AS ord, true AS staged, seq,
                       CASE WHEN batch_event_id IS NULL THEN 'ping' ELSE 'inner' END AS kind,
                       event_id, {PING_KEY_SQL} AS digest
                FROM stage_pings WHERE event_id IN (SELECT event_id FROM inner_contested) AND {flushed}
                UNION ALL
                SELECT {base} + seq, true, seq, CASE WHEN event_type = 'ping.batch' THEN 'batch' ELSE 'event' END,
                       event_id, CASE WHEN event_type = 'ping.batch' THEN 'batch ' || seq ELSE md5(payload) END
                FROM stage_events WHERE event_id IN (SELECT event_id FROM inner_contested) AND {flushed}
                UNION ALL
                SELECT arrival_seq, false, NULL, 'archived', event_id, {PING_KEY_SQL}
                FROM archive_pings WHERE event_id IN (SELECT event_id FROM inner_contested)
                UNION ALL
                SELECT arrival_seq, false, NULL, 'archived', event_id, coalesce(digest, 'batch ' || arrival_seq)
                FROM archive_events WHERE event_id IN (SELECT event_id FROM inner_contested))
            ORDER BY ord, kind <> 'batch', event_id
        """).fetchall()
        out = {r[0] for r in con.execute("SELECT seq FROM stage_verdicts").fetchall()}
        holders: dict[str, str] = {}  # id → the digest of the occurrence that stands
        verdicts: list[tuple[int, str, str]] = []
        repeated_inner: list[tuple[int, str]] = []
        groups: dict[int, list[tuple]] = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row)
        for _ord, group in groups.items():
            staged, seq = group[0][1], group[0][2]
            if not staged:  # archived: it stands
                for r in group:
                    holders.setdefault(r[4], r[5])
                continue
            if seq in out:  # already a duplicate or a conflict by its own id
                continue
            kinds = {r[3] for r in group}
            if not kinds & {"inner", "batch"}:  # a plain ping or another event
                _o, _s, _q, kind, event_id, digest = group[0]
                held = holders.get(event_id)
                if held is None:
                    holders[event_id] = digest
                elif kind == "ping":
                    verdicts.append((seq, event_id, "duplicate" if held == digest else "conflicting_duplicate"))
                    out.add(seq)
                # (an event read after the inner ping is judged at the run's end, against the archive)
                continue
            conflict, repeats = False, []
            for _o, _s, _q, kind, event_id, digest in group:
                held = holders.get(event_id)
                if held is None:
                    continue
                if kind == "inner" and held == digest:
                    repeats.append(event_id)
                else:
                    conflict = True
            if conflict:
                envelope = con.execute("SELECT event_id FROM stage_events WHERE seq = ?", [seq]).fetchall()[0][0]
                verdicts.append((seq, envelope, "conflicting_duplicate"))
                clash = next(r[4] for r in group if r[4] in holders and not (r[3] == "inner" and holders[r[4]] == r[5]))
                self._verdict_details[seq] = f"event_id {clash} (of this batch) was seen before with a different payload"
                out.add(seq)
                continue
            for _o, _s, _q, kind, event_id, digest in group:
                holders.setdefault(event_id, digest)
            repeated_inner += [(seq, event_id) for event_id in repeats]
        if verdicts:
            con.executemany("INSERT INTO stage_verdicts VALUES (?, ?, ?)", verdicts)
        if repeated_inner:
            con.executemany("DELETE FROM stage_pings WHERE seq = ? AND event_id = ?", repeated_inner)

    def _archive_events(self, where: str) -> None:
        cfg, base, closed = self.cfg, self._base_seq, self._closed
        epoch = compute_reward_epoch_sql("e.occurred_at_us", cfg)
        self.con.execute(f"""
            INSERT INTO archive_events
            SELECT {base} + e.seq, e.event_id, e.event_type, e.node_id, e.occurred_at_us,
                   {epoch},
                   {epoch} <= {closed},
                   e.payload,
                   -- a batch's digest covers its inner pings: computed only if its id is ever
                   -- contested (_classify), from the archive; never on the hot path
                   CASE WHEN e.event_type <> 'ping.batch' THEN md5(e.payload) END
            FROM stage_events e
            WHERE e.seq NOT IN (SELECT seq FROM stage_verdicts) AND {where}
            ORDER BY e.seq
        """)

    def _classify(self, inputs: str, include_staged_events: bool, digests: str) -> None:
        """stage_verdicts ← the inputs that are not simply accepted: duplicates and conflicts.

        `inputs` holds (seq, event_id); `digests` is a query giving (seq, digest) for the rows
        of `contested_rows`. Ids seen once in this batch and never before are accepted without
        further work (the common case); only contested ids have their content compared."""
        con = self.con
        staged = ("UNION ALL SELECT event_id, md5(payload), seq FROM stage_events"
                  f" WHERE event_type <> 'ping.batch' AND event_id IN (SELECT event_id FROM {inputs})"
                  if include_staged_events else "")
        # Archived batches keep no digest (see _archive_events): the contested ones get theirs
        # from the archive here, the same expression as for staged ones.
        arch_batches = con.execute(
            f"SELECT count(*) FROM archive_events WHERE digest IS NULL AND event_id IN (SELECT event_id FROM {inputs})"
        ).fetchall()[0][0]
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE archived_batch_digests AS
            {_batch_digest_sql("archive_events", "event_id", "archive_pings", "batch_event_id",
                               f"e.digest IS NULL AND e.event_id IN (SELECT event_id FROM {inputs})")
             if arch_batches else "SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS digest LIMIT 0"}
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE known_ids AS
            SELECT event_id, arg_min(digest, seq) AS digest, min(seq) AS seq FROM (
                SELECT event_id, {PING_KEY_SQL} AS digest, -1 AS seq FROM archive_pings
                WHERE event_id IN (SELECT event_id FROM {inputs})  -- a batch's inner pings too: one namespace
                UNION ALL
                SELECT a.event_id, coalesce(a.digest, b.digest), -1 FROM archive_events a
                LEFT JOIN archived_batch_digests b USING (event_id)
                WHERE a.event_id IN (SELECT event_id FROM {inputs})
                {staged})
            GROUP BY event_id
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE contested_rows AS
            SELECT seq, event_id FROM {inputs}
            WHERE event_id IN (SELECT event_id FROM {inputs} GROUP BY event_id HAVING count(*) > 1)
               OR event_id IN (SELECT event_id FROM known_ids)
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE stage_verdicts AS
            WITH rows AS (
                SELECT c.seq, c.event_id, d.digest FROM contested_rows c JOIN ({digests}) d USING (seq)
            ), groups AS (
                SELECT event_id, min(seq) AS first_seq, arg_min(digest, seq) AS first_digest
                FROM rows GROUP BY event_id
            ), contested AS (
                -- what was read before the group's first read stands; a staged event read
                -- after it does not (it is judged at the run's end, against the archive), so
                -- an exact repeat of the first read is a duplicate whatever came between
                SELECT r.seq, r.event_id, r.digest, g.first_seq, g.first_digest,
                       CASE WHEN k.seq < g.first_seq THEN k.digest END AS known_digest
                FROM rows r JOIN groups g USING (event_id) LEFT JOIN known_ids k USING (event_id)
            )
            SELECT seq, event_id,
                CASE
                  WHEN known_digest IS NOT NULL AND known_digest = digest THEN 'duplicate'
                  WHEN known_digest IS NOT NULL THEN 'conflicting_duplicate'
                  WHEN seq = first_seq THEN 'accepted'
                  WHEN digest = first_digest THEN 'duplicate'
                  ELSE 'conflicting_duplicate'
                END AS verdict
            FROM contested
        """)
        con.execute("DELETE FROM stage_verdicts WHERE verdict = 'accepted'")

    def _archive_pings(self, flushed: str) -> None:
        cfg, base, closed = self.cfg, self._base_seq, self._closed
        epoch = compute_reward_epoch_sql("p.occurred_at_us", cfg)
        # A batch's inner pings share its seq, so they follow its envelope's verdict; plain
        # pings follow their own.
        self.con.execute(f"""
            INSERT INTO archive_pings
            SELECT {base} + p.seq, p.event_id, p.node_id, p.occurred_at_us, p.occurred_at_raw,
                   p.checker_id, p.reachable, p.rtt_ms, p.batch_event_id,
                   {epoch} AS reward_epoch,
                   {compute_slot_sql("p.occurred_at_us", cfg)} AS slot,
                   {epoch} <= {closed} AS late,
                   NULL
            FROM stage_pings p
            WHERE p.seq NOT IN (SELECT seq FROM stage_verdicts) AND {flushed}
        """)  # stage_pings is in arrival order already (preserve_insertion_order)
        self.con.execute(f"""
            INSERT INTO archive_ping_digests
            SELECT {epoch}, {base} + max(p.seq), count(*), bit_xor(md5_number(p.event_id))
            FROM stage_pings p
            WHERE p.seq NOT IN (SELECT seq FROM stage_verdicts) AND {flushed}
            GROUP BY ALL
        """)

    def _record_verdicts(self) -> None:
        """Counts, and rejected rows for conflicts and refused registrations."""
        con, c = self.con, self.counts
        rows = dict(con.execute("SELECT verdict, count(*) FROM stage_verdicts GROUP BY 1").fetchall())
        c.duplicates += rows.get("duplicate", 0)
        # the raw text of a refused line: its canonical form (a plain ping's rebuilt from its columns)
        con.execute("""
            INSERT INTO stage_rejects
            SELECT v.seq, v.verdict,
                   CASE v.verdict WHEN 'already_registered'
                        THEN 'the node is already registered (the first registration stands)'
                        ELSE 'event_id ' || v.event_id || ' was seen before with a different payload' END,
                   coalesce(e.payload, '{"checker_id":' || to_json(p.checker_id) || ',"event_id":' || to_json(p.event_id)
                       || ',"event_type":"ping","node_id":' || to_json(p.node_id) || ',"occurred_at":' || p.occurred_at_raw
                       || ',"reachable":' || p.reachable::VARCHAR || ',"rtt_ms":' || coalesce(p.rtt_ms::VARCHAR, 'null')
                       || ',"schema_version":1}'),
                   NULL, v.event_id, coalesce(e.event_type, 'ping'), NULL, NULL
            FROM stage_verdicts v
            LEFT JOIN stage_events e ON e.seq = v.seq
            LEFT JOIN stage_pings p ON p.seq = v.seq AND p.batch_event_id IS NULL
            WHERE v.verdict IN ('conflicting_duplicate', 'already_registered')
        """)
        if self._verdict_details:
            con.executemany("UPDATE stage_rejects SET detail = ? WHERE seq = ?",
                            [(d, seq) for seq, d in self._verdict_details.items()])
            self._verdict_details = {}

    def commit(self) -> IngestCounts:
        """Flush the last pings, then, in one transaction: decide the other events, write them
        and the rejections, record the run and remove its open mark. On any error the run is
        undone whole (`abort`)."""
        invariant(self._open, "an ingest run is committed once")
        con, base = self.con, self._base_seq
        try:
            self._flush_pings()
            con.execute("BEGIN TRANSACTION")
            con.execute("""
                CREATE OR REPLACE TEMP TABLE event_inputs AS SELECT seq, event_id FROM stage_events
            """)
            self._classify("event_inputs", include_staged_events=False, digests="""
                SELECT seq, md5(payload) AS digest FROM stage_events
                WHERE seq IN (SELECT seq FROM contested_rows)""")
            # §10 Registration: the first node.registered of a node (by occurred_at, then
            # event_id) stands; any other is rejected. One archived by an earlier run stands.
            con.execute(f"""
                INSERT INTO stage_verdicts
                WITH regs AS (
                    SELECT seq, event_id, node_id, occurred_at_us FROM stage_events
                    WHERE event_type = 'node.registered' AND seq NOT IN (SELECT seq FROM stage_verdicts)
                ), first AS ({first_registration_sql("regs")})
                SELECT r.seq, r.event_id, 'already_registered' FROM regs r LEFT JOIN first f USING (node_id)
                WHERE r.event_id <> f.event_id
                   OR r.node_id IN (SELECT node_id FROM archive_events WHERE event_type = 'node.registered')
            """)
            self._archive_events("true")
            self._record_verdicts()
            c = self.counts
            c.rejected = con.execute("SELECT count(*) FROM stage_rejects").fetchone()[0]
            c.accepted = c.inputs - c.duplicates - c.rejected
            c.by_reason = dict(con.execute(
                "SELECT reason, count(*) FROM stage_rejects GROUP BY 1 ORDER BY 1").fetchall())
            self._write_rejections()
            c.late = con.execute(
                f"SELECT (SELECT count(*) FROM archive_pings WHERE arrival_seq >= {base} AND late)"
                f" + (SELECT count(*) FROM archive_events WHERE arrival_seq >= {base} AND late)"
            ).fetchone()[0]
            c.pings = con.execute(
                f"SELECT count(*) FROM archive_pings WHERE arrival_seq >= {base}").fetchone()[0]
            c.first_arrival_seq = base
            c.last_arrival_seq = base + self.seq - 1
            archived = con.execute(
                f"SELECT (SELECT count(*) FROM archive_pings WHERE arrival_seq >= {base} AND batch_event_id IS NULL)"
                f" + (SELECT count(*) FROM archive_events WHERE arrival_seq >= {base})").fetchone()[0]
            invariant(archived == c.accepted, f"archived inputs {archived} == accepted {c.accepted}")
            invariant(c.adds_up(), f"inputs {c.inputs} != accepted {c.accepted} + duplicates "
                                   f"{c.duplicates} + rejected {c.rejected}")
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ingest_runs").fetchone()[0]
            con.execute(
                "INSERT INTO ingest_runs (run_id, first_arrival_seq, last_arrival_seq, inputs, accepted, duplicates,"
                " rejected, late, blank_lines, sources, received_at, arrived_at_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
                [run_id, c.first_arrival_seq, c.last_arrival_seq, c.inputs, c.accepted, c.duplicates,
                 c.rejected, c.late, c.blank_lines, os.pathsep.join(self.sources), self.arrived_at_us],
            )
            con.execute("DELETE FROM ingest_open")  # the run is whole: its mark goes with this commit
            self.crash_hook("before_ingest_commit")
            con.execute("COMMIT")
            self._open = False
        except BaseException:
            self.abort()
            raise
        return self.counts

    def _write_rejections(self) -> None:
        topics = " ".join(f"WHEN '{t}' THEN '{tp}'" for t, tp in TOPIC_OF_EVENT_TYPE.items())
        self.con.execute(f"""
            INSERT INTO rejected_events
            SELECT {self._base_seq} + seq, coalesce(topic, CASE event_type {topics} END),
                   raw, coalesce(raw_bytes, strlen(raw)), reason, detail, event_id, event_type, source, now()
            FROM stage_rejects ORDER BY seq
        """)
        self.con.execute("DELETE FROM stage_rejects")


def _batch_digest_sql(events: str, event_key: str, pings: str, ping_key: str, where: str) -> str:
    """(key, digest) of the `ping.batch` envelopes of `events` selected by `where`: the md5 of
    the envelope's payload and of its inner pings' contents in event_id order. `ping_key` is the
    column of `pings` that names the envelope's `event_key` (staged: the shared seq; archived:
    batch_event_id). Staged and archived batches use this one expression, so a re-sent batch
    compares equal to the archived one exactly when their contents are equal."""
    return f"""
        SELECT e.{event_key} AS {event_key}, md5(e.payload || '|' || coalesce(p.inner_digest, '')) AS digest
        FROM {events} e LEFT JOIN (
            SELECT {ping_key} AS k, md5(string_agg({PING_KEY_SQL}, ',' ORDER BY event_id)) AS inner_digest
            FROM {pings} WHERE {ping_key} IN (SELECT e.{event_key} FROM {events} e
                                                WHERE e.event_type = 'ping.batch' AND {where})
            GROUP BY 1) p ON p.k = e.{event_key}
        WHERE e.event_type = 'ping.batch' AND {where}"""


def _batch_envelope_payload(batch: PingBatch) -> str:
    """A batch's archived payload: its envelope without the pings (they are archived as pings;
    the batch's digest covers them through theirs)."""
    return canonical_json(batch.model_dump(mode="json", exclude={"pings"})).decode()


def _ping_row(seq: int, ev: Ping, batch_event_id: str | None) -> tuple:
    return (seq, ev.event_id, ev.node_id, ev.occurred_at_us, time_raw_json(ev.occurred_at), ev.checker_id,
            ev.reachable, ev.rtt_ms, batch_event_id)


def ingest_files(con, paths: list[Path], cfg: RulesetConfig = RULESET_V1, *,
                 progress: Callable[[int], None] | None = None, arrived_at_us: int | None = None,
                 crash_hook: Callable[[str], None] | None = None) -> IngestCounts:
    """Archive these files as one run: all of it, or, on any error (a file that cannot be read
    raises `SourceError`), nothing."""
    ing = Ingestor(con, cfg, progress=progress, arrived_at_us=arrived_at_us, crash_hook=crash_hook)
    try:
        ing.sources = [shown_path(p) for p in paths]
        for p in paths:
            ing.stage_file(p)
    except BaseException:
        ing.abort()
        raise
    return ing.commit()

