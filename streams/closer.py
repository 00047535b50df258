"""The closer: the one process that owns the store, archives segments and closes epochs.

It adds nothing to the rules. Each step:
1. reads the segments other workers wrote so far (in write order), then its own worker's
   micro-batch (given in memory: see `step`), and drops every message whose
   (topic, partition, offset) it has archived already (a re-delivery after a crash or a
   rebalance), so nothing is counted twice;
2. stages the rest with the engine's own `Ingestor.stage_lines` (the fast path and the
   reference parser; duplicates by `event_id`, conflicts, registrations: the batch rules), adds
   the `from_future` rejections (each message's time against its arrival, judged columnar
   inside the ingest; segments of older workers may carry the verdict already), and commits.
   The Kafka offsets archived are written in the same transaction, as the run's `sources` (`kafka@<topic>#<partition>=<first>-<last>`);
3. feeds each `epochal.pings` partition's highest accepted ping time to the per-partition
   watermark (`streams.watermark`) and calls `payouts.close.close_ready_epochs` with it, the
   very close the batch replay runs;
4. hands each closed epoch to its publish thread, which writes it into the published folder
   (`store.published`) after the store commit, while the next steps archive (an epoch a crash
   left unpublished too); then publishes what changed on Kafka:
   `epochal.rejected` (raw message, topic, reason), `epochal.scores`
   (each closed epoch's node rows) and `epochal.slashes` (decision rows not published yet, or
   whose status changed); and, every `live_every_s` or once no message has come for
   `quiet_s`, but never more than `live_rows_per_s` (node, epoch) rows a second on average
   (a large network gets them less often rather than slow the archive down), the per-node
   slot updates of the pings archived since the last ones on
   `<group>.node-slots` (`streams.live`: the repartition by node that feeds the workers' live
   Table; the first publication after the closer opens republishes the whole open state).

Outputs are published after the store commit (at least once; keyed for idempotent readers).
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

import store.db as store
from store.ingest import RAW_KEEP_BYTES, Ingestor
from payouts.close import close_ready_epochs, get_ready_epochs
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.timing import is_epoch_ready
from streams import live
from streams.segments import Message, list_segments, now_us, read_segment, write_segment
from streams.watermark import PartitionWatermark
from store.published import PublishError, list_epochs, publish_pending, published_root

log = logging.getLogger("epochal.streams")

PINGS_TOPIC = "epochal.pings"
SOURCE_RE = re.compile(r"^kafka@(?P<topic>[^#]+)#(?P<partition>\d+)=(?P<first>\d+)-(?P<last>\d+)$")

STREAM_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_partitions (
    topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL,
    archived_through BIGINT NOT NULL, max_ping_us BIGINT,
    PRIMARY KEY (topic, "partition"));
CREATE TABLE IF NOT EXISTS stream_published_slashes (
    decision_id VARCHAR PRIMARY KEY, status VARCHAR NOT NULL);
"""

SCORE_COLUMNS = ("up_slots", "uptime_ratio", "streak_slots", "hw_verdict", "reputation", "rep_availability",
                 "rep_jobs", "rep_hardware", "rep_tenure", "rep_penalty", "eligible", "ineligible_reason",
                 "weight", "ruleset_version")


@dataclass
class StepReport:
    messages: int = 0  # messages read from segments
    skipped: int = 0  # already archived (re-deliveries)
    inputs: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    pings: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    closed: list[int] = field(default_factory=list)
    seconds: float = 0.0


class Closer:
    def __init__(self, con, seg_dir: Path, cfg: RulesetConfig = RULESET_V1, outputs=None,
                 live_every_s: float = 10.0, crash_hook=None, quiet_s: float = 2.0,
                 live_updates: bool = True, live_rows_per_s: float = 2000.0, publish_root: Path | None = None) -> None:
        self.con = con
        # the published folder (None: publish nothing); the first step completes what a crash left
        self.publish_root = Path(publish_root) if publish_root is not None else None
        self._publish_due, self._publish_tried = self.publish_root is not None, 0.0
        # (the last epoch published, by this process or before it: status files report it)
        self.published_epochs: list[int] = list_epochs(self.publish_root)[-1:] if self.publish_root else []
        # Publishing (a Parquet file of every input since the last close, the epoch's rows, fsync)
        # runs on a thread of its own, with a connection of its own (reading committed rows only),
        # while the next steps archive: one publication at a time, behind the store commit.
        self._pub_exec = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="epochal-publish")
                          if self.publish_root is not None else None)
        self._pub_con = con.cursor() if self.publish_root is not None else None
        self._pub_job: concurrent.futures.Future | None = None
        self.seg_dir = Path(seg_dir)
        self.cfg = cfg
        self.outputs = outputs
        self.live_every_s = live_every_s
        self.quiet_s = min(quiet_s, live_every_s)
        self.live_updates = live_updates and outputs is not None  # publish node-slots updates
        self.live_rows_per_s = live_rows_per_s
        self._live_gap_s = 0.0  # the last publication's rows / live_rows_per_s
        self.crash_hook = crash_hook or (lambda point: None)
        self.wm = PartitionWatermark(cfg)
        con.execute(STREAM_SCHEMA)
        self.through: dict[tuple[str, int], int] = self._load_through()
        now = time.time()
        for topic, part, mx in con.execute(
                "SELECT topic, \"partition\", max_ping_us FROM stream_partitions").fetchall():
            if topic == PINGS_TOPIC:
                self.wm.restore(part, mx, now)
        self.last_closed = store.last_closed_epoch(con)
        # node-slots updates: the first publication republishes the open state (lo 0, `full`)
        self._live_since_seq, self._live_full, self._live_drop = 0, True, self.last_closed
        self._archived_hi = store.next_arrival_seq(con) - 1
        self._last_live = 0.0 if self._archived_hi >= 0 else time.monotonic()  # a restart republishes at once
        self._last_message = time.monotonic()
        self._partition_of = None
        self.live_published_through = -1
        self.live_rows = 0
        self.live_busy_s = 0.0
        self.totals = StepReport()
        self.bootstrap_started = now
        # Publishing (serialising thousands of score rows, record batches) runs on one thread of
        # its own, in order, while the next step archives: the outputs trail the store by at most
        # one step (they are published after the commit anyway, at least once).
        self._out_exec = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="epochal-outputs")
                          if outputs is not None else None)
        self._out_jobs: list[concurrent.futures.Future] = []
        self._out_prev: list[concurrent.futures.Future] = []  # the previous step's jobs

    @classmethod
    def open(cls, db, seg_dir: Path, publish: Path | None = None, **kw) -> "Closer":
        """Raises `store.StoreBusy` when another process holds the store (another `StoreError`
        when the path is no store). Publishes into `publish` (default `$EPOCHAL_PUBLISH`, else
        `<db>.published`)."""
        return cls(store.connect(db), seg_dir, publish_root=published_root(db, publish), **kw)

    def close(self) -> None:
        try:
            self.drain_outputs()
            if self._out_exec is not None:
                self._out_exec.shutdown(wait=True)
            self._finish_publishing()
        finally:
            try:
                self.con.execute("CHECKPOINT")
            finally:
                self.con.close()

    # -- the outputs thread ------------------------------------------------------------------
    def _out(self, fn, *args) -> None:
        self._out_jobs.append(self._out_exec.submit(fn, *args))

    def _end_step_outputs(self) -> None:
        """This step's batches handed over (the previous step's acknowledged, on the outputs
        thread); wait only for the previous step's outputs work, so one step's overlaps the next
        step's archive. An error there ends the step as it would have without the thread."""
        self._out(self.outputs.flush, None, False)
        prev, self._out_prev, self._out_jobs = self._out_prev, self._out_jobs, []
        for job in prev:
            job.result()

    def drain_outputs(self) -> None:
        """Wait for every output handed to the outputs thread (shutdown, tests)."""
        if self._out_exec is None:
            return
        jobs, self._out_prev, self._out_jobs = self._out_prev + self._out_jobs, [], []
        for job in jobs:
            job.result()

    # -- offsets archived --------------------------------------------------------------------
    def _load_through(self) -> dict[tuple[str, int], int]:
        through: dict[tuple[str, int], int] = {}
        for topic, part, last in self.con.execute(
                "SELECT topic, \"partition\", archived_through FROM stream_partitions").fetchall():
            through[(topic, part)] = last
        # the ingest runs are authoritative (written in the archive's own transaction)
        rows = self.con.execute(
            "SELECT unnest(string_split(sources, ':')) FROM ingest_runs WHERE sources LIKE 'kafka@%'").fetchall()
        for (src,) in rows:
            m = SOURCE_RE.match(src or "")
            if m:
                key = (m["topic"], int(m["partition"]))
                through[key] = max(through.get(key, -1), int(m["last"]))
        return through

    def set_ping_partitions(self, partitions, now_s: float) -> None:
        self.wm.set_partitions(partitions, now_s)

    # -- one step ----------------------------------------------------------------------------
    def step(self, now_s: float | None = None, max_messages: int = 100_000,
             batch: list[Message] | None = None, batch_owner: str = "closer") -> StepReport:
        """Archive the segments waiting in the folder (oldest first, about `max_messages` at a
        time) and then `batch`, this process's own micro-batch, in full: the closer's worker
        writes no segment of its own, because its batch is archived (committed) before faust
        may commit the batch's offsets, so a crash before that re-reads it from Kafka.

        Segments go strictly before the batch: after a rebalance the batch may continue a
        partition whose earlier offsets another worker left in a segment, and archiving the
        batch first would mark those offsets archived. So when older segments remain for a
        later step (a backlog beyond `max_messages`), the batch is written as a segment of
        `batch_owner` behind them instead, as any worker's is (durable before its offsets
        may be committed)."""
        t0 = time.perf_counter()
        rep = StepReport()
        segs, msgs = [], []
        waiting = list_segments(self.seg_dir)
        for s in waiting:
            if len(msgs) >= max_messages:
                break
            msgs.extend(read_segment(s))
            segs.append(s)
        if batch and len(segs) < len(waiting):
            write_segment(self.seg_dir, batch_owner, batch)
        elif batch:
            msgs.extend(batch)
        rep.messages = len(msgs)
        new: list[Message] = []
        seen = dict(self.through)
        for m in msgs:
            key = (m.topic, m.partition)
            if m.offset <= seen.get(key, -1):
                rep.skipped += 1
                continue
            seen[key] = m.offset
            new.append(m)
        maxima: dict[int, int] = {}
        if new:
            maxima = self._archive(new, rep)
        for m in msgs:
            if m.topic == PINGS_TOPIC:
                self.wm.observe(m.partition, m.received_us / 1e6, maxima.pop(m.partition, None))
        self.through = seen
        for s in segs:
            s.unlink(missing_ok=True)
        now_s = time.time() if now_s is None else now_s
        wm = self.wm.current(now_s)
        if self.live_updates and self._archived_hi >= self._live_since_seq:
            mono = time.monotonic()
            if new:
                self._last_message = mono
            since = mono - self._last_live
            if since >= max(self.live_every_s, self._live_gap_s) or (
                    mono - self._last_message >= self.quiet_s and since >= self._live_gap_s):
                self._last_live = mono
                self._live_gap_s = self._publish_node_slots() / self.live_rows_per_s
        results = []
        if wm is not None and self._epoch_ready(wm):
            self.crash_hook("before_close")
            results = close_ready_epochs(self.con, self.cfg, watermark_us=wm,
                                         on_closed=lambda r: self.crash_hook("between_closes"),
                                         before_commit=lambda e: self.crash_hook("before_epoch_commit"))
            if results:
                rep.closed = [r.reward_epoch for r in results]
                self.last_closed = results[-1].reward_epoch
                self._publish_due = self.publish_root is not None
        if self._publish_due or self._pub_job is not None:  # (a tick collects a finished publication too)
            self._publish_folder()
        if results:
            self._publish_closed(results)
            self._publish_slashes()
        if self.outputs is not None and self._out_jobs:
            # (a step that handed nothing over, e.g. a tick's, must not wait for the previous
            # step's outputs: they are meant to overlap the next archive step)
            self._end_step_outputs()
        rep.seconds = time.perf_counter() - t0
        self._add_totals(rep)
        return rep

    def _archive(self, new: list[Message], rep: StepReport) -> dict[int, int]:
        con, cfg = self.con, self.cfg
        valid = [m for m in new if m.reject_reason is None]
        edge = [m for m in new if m.reject_reason is not None]
        ordered = valid + edge  # seq i of this run ↔ ordered[i]
        base = store.next_arrival_seq(con)
        last_closed = store.last_closed_epoch(con)
        ing = Ingestor(con, cfg, base_seq=base, last_closed=last_closed, crash_hook=self.crash_hook)
        ranges: dict[tuple[str, int], list[int]] = {}
        for m in new:
            r = ranges.setdefault((m.topic, m.partition), [m.offset, m.offset])
            r[0], r[1] = min(r[0], m.offset), max(r[1], m.offset)
        ing.sources = [f"kafka@{t}#{p}={lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items())]
        # the live edge's from_future check runs inside the ingest, columnar (`received_us`)
        ing.stage_lines([m.value or b"" for m in valid], "kafka", received_us=[m.received_us for m in valid])
        for m in edge:
            _stage_edge_rejection(ing, m)
        seqmap = pl.DataFrame({
            "seq": pl.Series(range(len(ordered)), dtype=pl.Int64),
            "topic": [m.topic for m in ordered],
            "partition": pl.Series([m.partition for m in ordered], dtype=pl.Int32),
            "offset": pl.Series([m.offset for m in ordered], dtype=pl.Int64),
        })
        with store.registered(con, "stream_seqmap", seqmap):
            # The topic a rejected message came from, and where (rejected_events.source).
            con.execute("""
                UPDATE stage_rejects SET topic = m.topic,
                       source = 'kafka:' || m.topic || '/' || m."partition" || '@' || m."offset"
                FROM stream_seqmap m WHERE stage_rejects.seq = m.seq
            """)
            self.crash_hook("before_archive_commit")
            counts = ing.commit()
            self.crash_hook("after_archive_commit")
            end = base + len(ordered) - 1
            self._archived_hi = max(self._archived_hi, end)
            maxima = dict(con.execute(f"""
                SELECT m."partition", max(a.occurred_at_us) FROM archive_pings a
                JOIN stream_seqmap m ON a.arrival_seq = {base} + m.seq
                WHERE a.arrival_seq BETWEEN {base} AND {end} AND m.topic = '{PINGS_TOPIC}'
                GROUP BY 1""").fetchall())
            rejected = con.execute(f"""
                SELECT arrival_seq - {base}, reason, detail, event_id, event_type FROM rejected_events
                WHERE arrival_seq BETWEEN {base} AND {end} ORDER BY arrival_seq""").fetchall()
        self._save_partitions(ranges, maxima)
        rep.inputs, rep.accepted, rep.duplicates = counts.inputs, counts.accepted, counts.duplicates
        rep.rejected, rep.pings, rep.by_reason = counts.rejected, counts.pings, dict(counts.by_reason)
        if self.outputs is not None and rejected:
            self._out(self._send_rejected, rejected, ordered)
        return {int(p): int(v) for p, v in maxima.items() if v is not None}

    def _send_rejected(self, rejected, ordered) -> None:
        for seq, reason, detail, event_id, event_type in rejected:
            m = ordered[seq] if 0 <= seq < len(ordered) else None
            self.outputs.rejected(m, reason, detail, event_id, event_type)

    def _save_partitions(self, ranges, maxima) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            for (topic, part), (_lo, hi) in ranges.items():
                mx = maxima.get(part) if topic == PINGS_TOPIC else None
                con.execute("""
                    INSERT INTO stream_partitions VALUES (?, ?, ?, ?)
                    ON CONFLICT (topic, "partition") DO UPDATE SET
                      archived_through = greatest(stream_partitions.archived_through, excluded.archived_through),
                      max_ping_us = CASE WHEN excluded.max_ping_us IS NULL THEN stream_partitions.max_ping_us
                                         ELSE greatest(coalesce(stream_partitions.max_ping_us, excluded.max_ping_us),
                                                       excluded.max_ping_us) END
                """, [topic, part, hi, mx])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # -- outputs -----------------------------------------------------------------------------
    def _publish_folder(self) -> None:
        """Every closed epoch not yet in the published folder, after the store commit, on the
        publish thread (one publication at a time: one due meanwhile starts at a later step).
        A folder that cannot be written (full disk, another store's folder) never stops the
        archive: it is logged and tried again every 10 s; the next success completes it. Every
        step, a tick's too, collects a publication that finished (status: the last epoch
        published), and one that failed is tried again without waiting for the next close."""
        job = self._pub_job
        if job is not None:
            if not job.done():
                return
            self._pub_job = None
            self._publication_done(job)
        if not self._publish_due or (self._publish_tried and time.monotonic() - self._publish_tried < 10.0):
            return
        self._publish_due = False
        self._pub_job = self._pub_exec.submit(publish_pending, self._pub_con, self.publish_root)

    def _publication_done(self, job: concurrent.futures.Future) -> None:
        try:
            self.published_epochs += job.result()
            self._publish_tried = 0.0
        except (OSError, PublishError) as exc:
            self._publish_due, self._publish_tried = True, time.monotonic()
            log.warning("closed epochs not published into %s (tried again later): %s", self.publish_root, exc)

    def _finish_publishing(self) -> None:
        """At shutdown: the publication under way, then whatever closed since (on this thread)."""
        if self._pub_exec is None:
            return
        if self._pub_job is not None:
            job, self._pub_job = self._pub_job, None
            concurrent.futures.wait([job])
            self._publication_done(job)
        self._pub_exec.shutdown(wait=True)
        try:
            self.published_epochs += publish_pending(self._pub_con, self.publish_root)
        except (OSError, PublishError) as exc:
            log.warning("closed epochs not published into %s (the next closer will): %s", self.publish_root, exc)

    def _publish_closed(self, results) -> None:
        """One `epochal.scores` message per node of each closed epoch, the node's score row plus
        what it was paid. Built columnar: the JSON lines come from polars in one call (the same
        JSON as a dict per row through orjson), keyed by node."""
        if self.outputs is not None:
            self._out(self._send_closed, results)

    def _send_closed(self, results) -> None:
        for r in results:
            cols = [c for c in SCORE_COLUMNS if c in r.scores.columns]
            # a node paid from several pools keeps the last row's amount (as a dict would)
            paid = r.rewards.select("node_id", "amount_base_units").unique(subset="node_id", keep="last",
                                                                           maintain_order=True)
            frame = (r.scores.select(["node_id", *cols])
                     .join(paid, on="node_id", how="left", maintain_order="left")
                     .select(pl.lit("epoch_closed").alias("kind"), pl.lit(r.reward_epoch).alias("reward_epoch"),
                             "node_id", *cols, pl.col("amount_base_units").fill_null(0),
                             pl.lit(r.epoch_row["manifest_sha256"]).alias("manifest_sha256")))
            self._send_frame("scores", frame)

    def _send_frame(self, kind: str, frame: pl.DataFrame) -> None:
        """Each row of `frame` as one JSON message keyed by its node_id."""
        if frame.height == 0:
            return
        lines = frame.write_ndjson().encode().splitlines()
        keys = [k.encode() for k in frame.get_column("node_id").to_list()]
        self.outputs.send_keyed(kind, keys, lines)

    def _publish_slashes(self) -> None:
        if self.outputs is None:
            return
        rows = self.con.execute("""
            SELECT d.decision_id, d.node_id, d.rule, d.amount_base_units, d.decided_at, d.status, d.evidence
            FROM slash_decisions d LEFT JOIN stream_published_slashes p USING (decision_id)
            WHERE p.decision_id IS NULL OR p.status <> d.status ORDER BY d.decided_at, d.decision_id
        """).fetchall()
        for did, node, rule, amount, decided_at, status, evidence in rows:
            self._out(self.outputs.slash, node, {"decision_id": did, "node_id": node, "rule": rule,
                                                 "amount_base_units": amount, "decided_at": decided_at.isoformat(),
                                                 "status": status, "evidence": list(evidence or [])})
        if rows:
            published = pl.DataFrame({"decision_id": [r[0] for r in rows], "status": [r[5] for r in rows]},
                                     schema={"decision_id": pl.String, "status": pl.String})
            with store.registered(self.con, "stream_slashes_sent", published):
                self.con.execute("INSERT INTO stream_published_slashes SELECT decision_id, status"
                                 " FROM stream_slashes_sent ON CONFLICT (decision_id)"
                                 " DO UPDATE SET status = excluded.status")

    def _epoch_ready(self, wm: int) -> bool:
        """Will `close_ready_epochs(watermark_us=wm)` close an epoch? (Arithmetic once an
        epoch has closed; before that the store says where the first epoch is.)"""
        if self.last_closed is not None:
            return is_epoch_ready(self.last_closed + 1, wm, self.cfg)
        return bool(get_ready_epochs(self.con, self.cfg, wm))

    def _publish_node_slots(self) -> int:
        """The per-node slot updates of the pings archived since the last publication (all of
        the open epochs' on the first), to `<group>.node-slots` by node (`streams.live`).
        Epochs closed before the last publication are settled (`drop`): their last rows went
        then, so an epoch's rows are complete whenever its close comes. Returns the rows."""
        t0 = time.perf_counter()
        lo, hi, full, drop = self._live_since_seq, self._archived_hi, self._live_full, self._live_drop
        try:
            if self._partition_of is None:
                self._partition_of = live.partition_of_node(self.outputs)
            slots = live.get_slot_updates(self.con, lo, hi, drop)
            hw = live.get_hw_updates(self.con, lo, hi, self.cfg)
        except LookupError as exc:  # no node-slots topic: live state off, archiving goes on
            log.warning("no live node state: %s", exc)
            self.live_updates = False
            return 0
        except Exception as exc:  # noqa: BLE001 - a cache's feed: never stop archiving for it (retried)
            log.warning("node-slots updates not published (retried later): %r", exc)
            return 0
        if slots.height or hw:  # encoded and sent on the outputs thread, off the archive's path
            self._out(self._send_node_slots, lo, hi, full, drop, self.last_closed, slots, hw)
        self.live_rows += slots.height
        self.live_busy_s += time.perf_counter() - t0
        log.debug("node-slots: %d (node, epoch) rows read in %.3f s", slots.height, time.perf_counter() - t0)
        self._live_since_seq, self._live_full, self._live_drop = hi + 1, False, self.last_closed
        self.live_published_through = hi
        return slots.height

    def _send_node_slots(self, lo, hi, full, drop, closed, slots, hw) -> None:
        try:
            msgs = live.encode_updates(lo, hi, full, drop, closed, slots, hw, self._partition_of)
        except Exception as exc:  # noqa: BLE001 - a cache's feed: never stop archiving for it
            log.warning("node-slots updates %d-%d not encoded: %r", lo, hi, exc)
            return
        for part, value in msgs:
            self.outputs.send_to("node-slots", part, value)

    def _add_totals(self, rep: StepReport) -> None:
        t = self.totals
        for f in ("messages", "skipped", "inputs", "accepted", "duplicates", "rejected", "pings"):
            setattr(t, f, getattr(t, f) + getattr(rep, f))
        for k, v in rep.by_reason.items():
            t.by_reason[k] = t.by_reason.get(k, 0) + v
        t.closed.extend(rep.closed)
        t.seconds += rep.seconds

    def status(self, now_s: float) -> dict:
        t = self.totals
        return {"last_closed_epoch": self.last_closed, "archived_messages": t.messages - t.skipped,
                "skipped_redeliveries": t.skipped, "inputs": t.inputs, "accepted": t.accepted,
                "duplicates": t.duplicates, "rejected": t.rejected, "rejected_by_reason": t.by_reason,
                "pings_archived": t.pings, "closed_this_run": t.closed, "busy_s": round(t.seconds, 3),
                "archived_through": {f"{tp}/{p}": o for (tp, p), o in sorted(self.through.items())},
                "archived_through_seq": self._archived_hi,
                "live_published_through_seq": self.live_published_through,
                "live_rows_published": self.live_rows, "live_busy_s": round(self.live_busy_s, 3),
                "publish_root": str(self.publish_root) if self.publish_root is not None else None,
                "last_published_epoch": self.published_epochs[-1] if self.published_epochs else None,
                **self.wm.snapshot(now_s)}


# ----------------------------------------------------------------------------------------
# the edge's own rejections, and the warm-up
# ----------------------------------------------------------------------------------------

def _stage_edge_rejection(ing: Ingestor, m: Message) -> None:
    """A message the live edge rejected (from_future) as one input of the run, rejected with its
    reason, so that the run's counts still add up. Uses the Ingestor's reject staging."""
    event_id = event_type = None
    try:
        obj = orjson.loads(m.value)
        if isinstance(obj, dict):
            event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
            event_type = obj.get("event_type") if isinstance(obj.get("event_type"), str) else None
    except orjson.JSONDecodeError:
        pass
    seq = ing.seq
    ing.seq += 1
    ing.counts.inputs += 1
    raw = (m.value or b"")[:RAW_KEEP_BYTES].decode("utf-8", "replace")
    ing._rejects.append((seq, m.reject_reason, m.reject_detail, raw, len(m.value or b""), event_id,
                         event_type, m.topic, "kafka"))
    ing._flush_slow()


def warm_up(cfg: RulesetConfig = RULESET_V1) -> float:
    """Run one small step, with an epoch close, on a throwaway store in a temporary folder, so
    that the first real micro-batch does not pay the first use of the ingest and close code
    (imports, query planning, polars and Arrow paths): about 0.3 s, once, at start-up while
    the consumer group is still forming. Returns the seconds it took."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="epochal-warm-up-") as tmp:
        closer = Closer.open(Path(tmp) / "warm.duckdb", Path(tmp) / "segments", cfg=cfg)
        try:
            closer.set_ping_partitions([0], time.time())
            g_ms, e_ms = cfg.genesis_us // 1000, cfg.reward_epoch_us // 1000
            received = now_us()
            msgs = []
            for i, at in enumerate((g_ms + 1000, g_ms + 2 * e_ms + 1000)):
                pings = [{"node_id": f"warm-{n}", "occurred_at": at + n, "reachable": True, "rtt_ms": 20.0}
                         for n in range(4)]
                ev = {"event_id": f"warm-{i}", "event_type": "ping.batch", "schema_version": 1,
                      "node_id": "warm-checker", "occurred_at": at, "checker_id": "warm-checker", "pings": pings}
                msgs.append(Message(PINGS_TOPIC, 0, i, orjson.dumps(ev), received))
            closer.step(batch=msgs)
        finally:
            closer.close()
    return time.perf_counter() - t0
