"""The ingest edge of the embedded engine: event files → the archive, columnar.

Every non-blank line is one input, and ends as exactly one of: accepted (archived), ignored as
an exact duplicate, or rejected with a reason (`rejected_events`). The counts add up; a test
holds them to it.

Hot path. Millions of pings per hour cannot each take a Python call, so a file is read in
blocks, split into lines with numpy, and handed to DuckDB as one Arrow column. A SQL fast path
recognises pings written in the plain form (no escapes, Z times, plain numbers, only known
keys) and types them in bulk. Every other line (other event types, `ping.batch`, anything odd
or wrong) goes to the reference parser `scoring.events.parse_line`, which is authoritative for
acceptance and for the reason of a rejection. The fast path only ever says "this is a valid
ping with these values" for lines the reference accepts with the same values; a differential
test (hypothesis-generated good and bad lines) pins that.

Duplicates and conflicts are decided after every file is staged (ruleset §10 "Replay reads
every given file before it closes anything"): for each `event_id`, the first read (files in
argument order, lines in file order) stands; a later one with the same digest is an exact
duplicate, a different one is `conflicting_duplicate`. Ids already in the archive from an
earlier run count as read first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from scoring.events import (
    Accepted,
    PingBatch,
    Ping,
    RejectReason,
    Rejection,
    TOPIC_OF_EVENT_TYPE,
    parse_line,
    time_raw_json,
    time_to_us,
)
from scoring.ruleset import RULESET_V1, RulesetConfig

BLOCK_BYTES = 32 << 20
RAW_KEEP_BYTES = 64 << 10  # a rejected line is kept whole up to 64 KiB, then cut (raw_bytes says how long)

PING_KEYS = ["event_id", "event_type", "schema_version", "node_id", "occurred_at", "checker_id", "reachable", "rtt_ms"]

STAGE_SCHEMA = """
CREATE OR REPLACE TEMP TABLE stage_pings (
    seq BIGINT, event_id VARCHAR, node_id VARCHAR, occurred_at_us BIGINT, occurred_at_raw VARCHAR,
    checker_id VARCHAR, reachable BOOLEAN, rtt_ms DOUBLE, batch_event_id VARCHAR);
CREATE OR REPLACE TEMP TABLE stage_events (
    seq BIGINT, event_id VARCHAR, event_type VARCHAR, node_id VARCHAR, occurred_at_us BIGINT,
    payload VARCHAR);
CREATE OR REPLACE TEMP TABLE stage_rejects (
    seq BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR, raw_bytes BIGINT, event_id VARCHAR,
    event_type VARCHAR, topic VARCHAR, source VARCHAR);
"""

# The digest of a ping: its canonical content. Both the fast and the slow path fill the same
# typed columns, so one SQL expression serves every ping.
PING_DIGEST_SQL = (
    "md5(concat_ws('|', 'ping', node_id, occurred_at_raw, checker_id, reachable::VARCHAR,"
    " coalesce(rtt_ms::VARCHAR, 'null')))"
)


def _fast_path_sql(cfg: RulesetConfig) -> str:
    # A plain string: quoted, no escapes (raw control characters already fail json parsing).
    plain_id = "(left(%s, 1) = '\"' AND NOT contains(%s, '\\') AND length(%s) BETWEEN 3 AND %d)"
    idc = cfg.max_id_chars
    paths = "[" + ",".join(f"'$.{k}'" for k in PING_KEYS) + "]"
    return f"""
CREATE OR REPLACE TEMP TABLE chunk_t AS
WITH x AS (
    SELECT seq,
           try(json_extract(line, {paths})) AS v,
           try(json_keys(line)) AS k
    FROM chunk_df
    WHERE line IS NOT NULL AND strlen(line) <= {cfg.max_line_bytes}
), t AS (
    SELECT seq, v[1] AS j_id, v[2] AS j_type, v[3] AS j_sv, v[4] AS j_node, v[5] AS j_occ,
           v[6] AS j_chk, v[7] AS j_r, v[8] AS j_rtt, k
    FROM x WHERE v IS NOT NULL
), typed AS (
    SELECT *,
        CASE
          WHEN regexp_full_match(j_occ, '[0-9]{{1,15}}')
            THEN CASE WHEN j_occ::BIGINT <= 253402300799999 THEN j_occ::BIGINT * 1000 END
          WHEN regexp_full_match(j_occ, '"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\\.[0-9]{{1,9}})?Z"')
            THEN epoch_us(try_strptime(substr(j_occ, 2, 19), '%Y-%m-%dT%H:%M:%S'))
                 + coalesce(rpad(substr(regexp_extract(j_occ, '\\.([0-9]+)', 1), 1, 6), 6, '0')::BIGINT, 0)
        END AS occ_us
    FROM t
)
SELECT seq,
       (j_type = '"ping"'
        AND j_sv = '1'
        AND {plain_id % ('j_id', 'j_id', 'j_id', idc + 2)}
        AND {plain_id % ('j_node', 'j_node', 'j_node', idc + 2)}
        AND {plain_id % ('j_chk', 'j_chk', 'j_chk', idc + 2)}
        AND j_r IN ('true', 'false')
        AND (j_rtt IS NULL OR j_rtt = 'null'
             OR regexp_full_match(j_rtt, '(0|[1-9][0-9]{{0,14}})(\\.[0-9]{{1,17}})?'))
        AND occ_us IS NOT NULL AND occ_us >= {cfg.genesis_us}
        -- only known keys, each once: every key of the object is one of the present ones
        AND len(k) = (j_id IS NOT NULL)::INT + (j_type IS NOT NULL)::INT + (j_sv IS NOT NULL)::INT
                     + (j_node IS NOT NULL)::INT + (j_occ IS NOT NULL)::INT + (j_chk IS NOT NULL)::INT
                     + (j_r IS NOT NULL)::INT + (j_rtt IS NOT NULL)::INT
       ) AS fast,
       j_id, j_node, j_occ, j_chk, j_r, j_rtt, occ_us
FROM typed
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


def iter_line_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Array]:
    """Blocks of whole lines as Arrow binary arrays (newline excluded from each line)."""
    carry = b""
    with open(path, "rb") as fh:
        while True:
            blk = fh.read(block_bytes)
            buf = carry + blk if carry else blk
            if not buf:
                return
            arr = np.frombuffer(buf, dtype=np.uint8)
            nl = np.flatnonzero(arr == 10)
            if blk:
                if len(nl) == 0:
                    carry = buf  # one line longer than a block: keep reading
                    continue
                end = int(nl[-1]) + 1
                carry = buf[end:]
            else:
                end = len(buf)
                carry = b""
                if len(nl) == 0 or int(nl[-1]) != end - 1:
                    nl = np.append(nl, end)  # last line without a newline
            starts = np.concatenate(([0], nl[:-1] + 1)).astype(np.int64)
            stops = nl.astype(np.int64)
            yield _lines_array(buf[:end], starts, stops)
            if not blk:
                return


def _lines_array(buf: bytes, starts: np.ndarray, stops: np.ndarray) -> pa.Array:
    # Lines are contiguous but each is followed by a newline byte that must not be part of it:
    # a large_binary array over the whole buffer with offsets at line starts, then sliced
    # values would copy; instead build (start, stop) pairs as a binary view via take on
    # a list of offsets: cheapest correct form is a BinaryArray whose offsets skip the '\n'
    # by pointing each value at [start, stop) of a buffer with newlines removed.
    lengths = stops - starts
    keep = np.ones(len(buf), dtype=bool)
    nl_positions = stops[stops < len(buf)]
    keep[nl_positions] = False
    data = np.frombuffer(buf, dtype=np.uint8)[keep]
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_binary(), len(starts), [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes())]
    )


def _utf8_or_null(binary: pl.Series) -> pl.Series:
    """Lines as text; a line that is not UTF-8 becomes null (and goes to the slow path)."""
    try:
        return binary.cast(pl.String)
    except pl.exceptions.ComputeError:
        # Rare (a damaged file): find the bad lines one by one, in this block only.
        def ok(b: bytes | None) -> bool:
            try:
                b.decode("utf-8")
                return True
            except (UnicodeDecodeError, AttributeError):
                return False

        mask = pl.Series([ok(b) for b in binary.to_list()], dtype=pl.Boolean)
        return pl.select(pl.when(mask).then(binary.set(~mask, b"")).otherwise(None).cast(pl.String)).to_series()


def _raw_text(line: bytes) -> tuple[str, int]:
    return line[:RAW_KEEP_BYTES].decode("utf-8", "replace"), len(line)


class Ingestor:
    """Stages files into temp tables, then classifies and archives them in one pass."""

    def __init__(self, con, cfg: RulesetConfig = RULESET_V1, *, progress: Callable[[int], None] | None = None):
        self.con = con
        self.cfg = cfg
        self.progress = progress
        self.counts = IngestCounts()
        self.seq = 0  # local arrival order inside this run
        con.execute(STAGE_SCHEMA)
        self._fast_sql = _fast_path_sql(cfg)
        self._slow_pings: list[tuple] = []
        self._slow_events: list[tuple] = []
        self._rejects: list[tuple] = []
        self.sources: list[str] = []
        self.fast_lines = 0  # lines typed by the SQL fast path (the rest went to parse_line)

    # -- staging ---------------------------------------------------------------------------
    def stage_file(self, path: Path) -> None:
        self._file_first_seq = self.seq
        for arr in iter_line_blocks(path):
            self._stage_block(arr, str(path))
            if self.progress:
                self.progress(len(arr))

    def stage_lines(self, lines: list[bytes], source: str) -> None:
        """Stage raw lines held in memory (e.g. a micro-batch of Kafka message values)."""
        self._file_first_seq = self.seq
        if lines:
            self._stage_block(pa.array(lines, type=pa.large_binary()), source)

    def _stage_block(self, arr: pa.Array, source: str) -> None:
        binary = pl.from_arrow(arr).alias("bin")
        text = _utf8_or_null(binary).str.strip_chars_end("\r").alias("line")
        blank = text.str.strip_chars().str.len_bytes().eq(0).fill_null(False)
        n_blank = int(blank.sum())
        self.counts.blank_lines += n_blank
        frame = pl.DataFrame([binary, text]).with_columns(
            seq=pl.int_range(0, len(binary), dtype=pl.Int64) + self.seq
        ).filter(~blank)
        self.seq += len(binary)
        self.counts.inputs += frame.height
        chunk_df = frame.select("seq", "line")  # noqa: F841  (read by DuckDB by name)
        con = self.con
        con.register("chunk_df", chunk_df)
        try:
            con.execute(self._fast_sql)
        finally:
            con.unregister("chunk_df")
        con.execute(
            "INSERT INTO stage_pings SELECT seq, substr(j_id, 2, length(j_id) - 2),"
            " substr(j_node, 2, length(j_node) - 2), occ_us, j_occ, substr(j_chk, 2, length(j_chk) - 2),"
            " j_r = 'true', CASE WHEN j_rtt IS NULL OR j_rtt = 'null' THEN NULL ELSE j_rtt::DOUBLE END,"
            " NULL FROM chunk_t WHERE fast"
        )
        fast_seqs = con.execute("SELECT seq FROM chunk_t WHERE fast").fetchnumpy()["seq"]
        self.fast_lines += len(fast_seqs)
        slow = frame.filter(pl.Series(~np.isin(frame["seq"].to_numpy(), fast_seqs)))
        for seq, raw in zip(slow["seq"].to_list(), slow["bin"].to_list()):
            self._stage_slow_line(seq, raw.rstrip(b"\r"), f"{source}:{seq - self._file_first_seq + 1}")
        self._flush_slow()

    def _stage_slow_line(self, seq: int, line: bytes, source: str) -> None:
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
        self._slow_events.append(
            (seq, ev.event_id, ev.event_type, ev.node_id, ev.occurred_at_us, accepted.canonical.decode())
        )

    def _flush_slow(self) -> None:
        con = self.con
        if self._slow_pings:
            df = pl.DataFrame(self._slow_pings, orient="row", schema=[
                ("seq", pl.Int64), ("event_id", pl.String), ("node_id", pl.String),
                ("occurred_at_us", pl.Int64), ("occurred_at_raw", pl.String), ("checker_id", pl.String),
                ("reachable", pl.Boolean), ("rtt_ms", pl.Float64), ("batch_event_id", pl.String)])
            con.execute("INSERT INTO stage_pings SELECT * FROM df")
            self._slow_pings = []
        if self._slow_events:
            df = pl.DataFrame(self._slow_events, orient="row", schema=[
                ("seq", pl.Int64), ("event_id", pl.String), ("event_type", pl.String), ("node_id", pl.String),
                ("occurred_at_us", pl.Int64), ("payload", pl.String)])
            con.execute("INSERT INTO stage_events SELECT * FROM df")
            self._slow_events = []
        if self._rejects:
            df = pl.DataFrame(self._rejects, orient="row", schema=[
                ("seq", pl.Int64), ("reason", pl.String), ("detail", pl.String), ("raw", pl.String),
                ("raw_bytes", pl.Int64), ("event_id", pl.String), ("event_type", pl.String),
                ("topic", pl.String), ("source", pl.String)])
            con.execute("INSERT INTO stage_rejects SELECT * FROM df")
            self._rejects = []

    # -- classification and archive -------------------------------------------------------
    def commit(self, base_seq: int, last_closed: int | None) -> IngestCounts:
        """Decide duplicates, conflicts and registrations; write the archive. One transaction."""
        con, cfg = self.con, self.cfg
        closed = -1 if last_closed is None else last_closed
        ep = cfg.reward_epoch_us
        g = cfg.genesis_us
        con.execute("BEGIN TRANSACTION")
        try:
            # One row per input that carries an id: a plain ping, or any other accepted event
            # (a batch counts once, by its envelope).
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE stage_inputs AS
                SELECT seq, event_id, 'ping' AS event_type, node_id, {PING_DIGEST_SQL} AS digest
                FROM stage_pings WHERE batch_event_id IS NULL
                UNION ALL
                SELECT seq, event_id, event_type, node_id, md5(payload) AS digest FROM stage_events
            """)
            con.execute("""
                CREATE OR REPLACE TEMP TABLE known_ids AS
                SELECT event_id, any_value(digest) AS digest FROM (
                    SELECT event_id, digest FROM archive_pings WHERE batch_event_id IS NULL
                    UNION ALL SELECT event_id, digest FROM archive_events)
                WHERE event_id IN (SELECT event_id FROM stage_inputs)
                GROUP BY event_id
            """)
            con.execute("""
                CREATE OR REPLACE TEMP TABLE stage_verdicts AS
                WITH ranked AS (
                    SELECT s.*, first_value(s.digest) OVER w AS first_digest,
                           row_number() OVER w AS rn, k.digest AS known_digest
                    FROM stage_inputs s LEFT JOIN known_ids k USING (event_id)
                    WINDOW w AS (PARTITION BY s.event_id ORDER BY s.seq)
                )
                SELECT seq, event_id, event_type, node_id,
                    CASE
                      WHEN known_digest IS NOT NULL AND known_digest = digest THEN 'duplicate'
                      WHEN known_digest IS NOT NULL THEN 'conflicting_duplicate'
                      WHEN rn = 1 THEN 'accepted'
                      WHEN digest = first_digest THEN 'duplicate'
                      ELSE 'conflicting_duplicate'
                    END AS verdict
                FROM ranked
            """)
            # §10 Registration: the first node.registered of a node (by occurred_at, then
            # event_id) stands; any other is rejected. One already archived stands over new ones.
            con.execute("""
                UPDATE stage_verdicts SET verdict = 'already_registered'
                WHERE verdict = 'accepted' AND event_type = 'node.registered' AND seq IN (
                    SELECT seq FROM (
                        SELECT e.seq, row_number() OVER (
                                 PARTITION BY e.node_id ORDER BY e.occurred_at_us, e.event_id) AS rn,
                               e.node_id IN (SELECT node_id FROM archive_events
                                             WHERE event_type = 'node.registered') AS has_old
                        FROM stage_events e JOIN stage_verdicts v USING (seq)
                        WHERE v.verdict = 'accepted' AND e.event_type = 'node.registered')
                    WHERE rn > 1 OR has_old)
            """)
            con.execute(f"""
                INSERT INTO archive_pings
                SELECT {base_seq} + p.seq, p.event_id, p.node_id, p.occurred_at_us, p.occurred_at_raw,
                       p.checker_id, p.reachable, p.rtt_ms, p.batch_event_id,
                       (p.occurred_at_us - {g}) // {ep} AS reward_epoch,
                       ((p.occurred_at_us - {g}) % {ep}) // {cfg.slot_us} AS slot,
                       (p.occurred_at_us - {g}) // {ep} <= {closed} AS late,
                       {PING_DIGEST_SQL}
                FROM (SELECT sp.* FROM stage_pings sp JOIN stage_verdicts v ON v.seq = sp.seq
                      WHERE v.verdict = 'accepted') p
                ORDER BY p.seq, p.event_id
            """)
            con.execute(f"""
                INSERT INTO archive_events
                SELECT {base_seq} + e.seq, e.event_id, e.event_type, e.node_id, e.occurred_at_us,
                       (e.occurred_at_us - {g}) // {ep},
                       (e.occurred_at_us - {g}) // {ep} <= {closed},
                       e.payload, md5(e.payload)
                FROM stage_events e JOIN stage_verdicts v USING (seq)
                WHERE v.verdict = 'accepted'
                ORDER BY e.seq
            """)
            con.execute(f"""
                INSERT INTO stage_rejects
                SELECT v.seq, v.verdict,
                       CASE v.verdict WHEN 'already_registered'
                            THEN 'node ' || v.node_id || ' is already registered'
                            ELSE 'event_id ' || v.event_id || ' was seen with a different payload' END,
                       NULL, NULL, v.event_id, v.event_type, NULL, NULL
                FROM stage_verdicts v WHERE v.verdict IN ('conflicting_duplicate', 'already_registered')
            """)
            con.execute(f"""
                INSERT INTO rejected_events
                SELECT {base_seq} + seq, coalesce(topic, CASE event_type
                    {" ".join(f"WHEN '{t}' THEN '{tp}'" for t, tp in TOPIC_OF_EVENT_TYPE.items())} END),
                    raw, raw_bytes, reason, detail, event_id, event_type, source, now()
                FROM stage_rejects ORDER BY seq
            """)
            # Raw text of a conflicting or re-registering line, for whoever reads the rejection.
            self._fill_raw_of_rejected(base_seq)
            c = self.counts
            rows = dict(con.execute("SELECT verdict, count(*) FROM stage_verdicts GROUP BY 1").fetchall())
            c.accepted = rows.get("accepted", 0)
            c.duplicates = rows.get("duplicate", 0)
            c.rejected = con.execute("SELECT count(*) FROM stage_rejects").fetchone()[0]
            c.by_reason = dict(con.execute(
                "SELECT reason, count(*) FROM stage_rejects GROUP BY 1 ORDER BY 1").fetchall())
            c.late = con.execute(
                f"SELECT (SELECT count(*) FROM archive_pings WHERE arrival_seq >= {base_seq} AND late)"
                f" + (SELECT count(*) FROM archive_events WHERE arrival_seq >= {base_seq} AND late)"
            ).fetchone()[0]
            c.pings = con.execute(
                f"SELECT count(*) FROM archive_pings WHERE arrival_seq >= {base_seq}").fetchone()[0]
            c.first_arrival_seq = base_seq
            c.last_arrival_seq = base_seq + self.seq - 1
            from scoring.invariants import invariant

            invariant(c.adds_up(), f"inputs {c.inputs} != accepted {c.accepted} + duplicates "
                                   f"{c.duplicates} + rejected {c.rejected}")
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ingest_runs").fetchone()[0]
            con.execute(
                "INSERT INTO ingest_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                [run_id, c.first_arrival_seq, c.last_arrival_seq, c.inputs, c.accepted, c.duplicates,
                 c.rejected, c.late, c.blank_lines, os.pathsep.join(self.sources)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return self.counts



    def _fill_raw_of_rejected(self, base_seq: int) -> None:
        self.con.execute(f"""
            UPDATE rejected_events r SET raw = src.payload, raw_bytes = strlen(src.payload)
            FROM (SELECT {base_seq} + seq AS aseq, payload FROM stage_events
                  UNION ALL
                  SELECT {base_seq} + seq, '{{"event_id":' || to_json(event_id) || ',"event_type":"ping","schema_version":1,'
                         || '"node_id":' || to_json(node_id) || ',"occurred_at":' || occurred_at_raw
                         || ',"checker_id":' || to_json(checker_id) || ',"reachable":' || reachable::VARCHAR
                         || ',"rtt_ms":' || coalesce(rtt_ms::VARCHAR, 'null') || '}}'
                  FROM stage_pings WHERE batch_event_id IS NULL) src
            WHERE r.arrival_seq = src.aseq AND r.raw IS NULL
        """)


def _ping_row(seq: int, ev: Ping, batch_event_id: str | None) -> tuple:
    return (seq, ev.event_id, ev.node_id, ev.occurred_at_us, time_raw_json(ev.occurred_at), ev.checker_id,
            ev.reachable, ev.rtt_ms, batch_event_id)


def ingest_files(con, paths: list[Path], cfg: RulesetConfig = RULESET_V1, *,
                 progress: Callable[[int], None] | None = None) -> IngestCounts:
    from epochal.store import last_closed_epoch, next_arrival_seq

    ing = Ingestor(con, cfg, progress=progress)
    ing.sources = [str(p) for p in paths]
    for p in paths:
        ing.stage_file(p)
    return ing.commit(next_arrival_seq(con), last_closed_epoch(con))
