"""`epochal streams worker`: the faust app.

One agent (concurrency 1) consumes the four input topics in micro-batches
(`streams.take.take_batches`: faust's `take_events`, except that the next batch fills while
one is handled). For each micro-batch it
- if this process owns the store (the closer), archives it and closes what the watermark
  allows right away (`streams.closer.Closer.step`: the engine's own ingest, which also judges
  `from_future` from each message's arrival wall clock, columnar, and the close), together
  with any segments other workers left in the folder. The archive commit comes before faust
  may commit the batch's offsets, so the closer needs no segment of its own (writing one cost
  a fifth of its time);
- otherwise writes the batch as one segment file (durable, whole or absent;
  `streams.segments`) with each message's arrival wall clock, for the closer to archive.
The batch is handled on one pipeline thread (`Pipeline.run`) while the agent waits for it, so
the event loop keeps fetching the next messages meanwhile; faust acknowledges the events only
when the agent lets go of the batch, after all of that (a cancelled agent still waits for the
batch to finish first), so faust commits an offset only once its message is durably in a
segment (at least once). The periodic tick (closer retries, status) runs on the same thread,
so the store is only ever used by one thread.
Anything unexpected while handling a batch ends the process at once (exit 70) rather than let
faust acknowledge a batch that was not handled; a restart re-reads from the committed offsets
and the closer drops what it has archived already.

Several workers in one consumer group split the partitions; each writes segments into the
shared segment folder, and the one holding the DuckDB file's lock is the closer (the others
retry the lock every few seconds, so a closer that dies is replaced). Started alone, a worker
is the whole pipeline.

Per-node live state is a faust Table (`node-live`, keyed by node_id, changelog-backed) fed by
a second agent (concurrency 1) on `<group>.node-slots` (`epochal.node-slots` for the default
group): the closer's per-node slot updates, repartitioned by node (`ping.batch` messages are
keyed by their checker). Every `live_every_s` the agent's `streams.live.LiveCache` publishes
the changed nodes' snapshots (kind "live") on `epochal.scores`, computed by the rules of
scoring/. The Table is a cache: epochs close from the archive, never from it, because on Tansu
a Table's changelog recovery cannot be trusted (its ListOffsets answer is wrong) and faust
delivers at least once; its merge is idempotent, and a worker that becomes the closer first
republishes the open state from the archive. The Table and its agent run in their own faust
app (group `<group>-live`) in a child process (`streams.live_worker`): inside this app, the
Table's recovery on rebalances made the ingest agent lose messages in the crash test. With
`topic_allow_declare=False` faust creates no topic, so `run_worker` creates `<group>.node-slots`
and the changelog topic (`<group>-live-node-live-changelog`, compacted, as many partitions as
`<group>.node-slots`) itself, on Tansu or any Kafka given its bootstrap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import store.db as store
from scoring.ruleset import RULESET_V1
from streams.broker import INPUT_TOPICS, faust_app_settings, node_slots_topic
from streams.closer import PINGS_TOPIC, Closer, warm_up
from streams.crash import CrashHook
from streams.live_worker import LiveConfig, prepare_live_topics, start_live_process, stop_live_process
from streams.logs import log, setup_logging
from streams.outputs import OutputSink
from streams.segments import Message, now_us, write_segment
from streams.take import take_batches



@dataclass
class WorkerConfig:
    bootstrap: str
    db: Path
    seg_dir: Path
    group: str = "epochal"
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    batch_max: int = 4000
    within_s: float = 0.5
    status_every_s: float = 10.0
    closer_retry_s: float = 5.0
    session_timeout_s: float = 10.0
    # node-slots updates and live snapshots at most this often ($EPOCHAL_STREAMS_LIVE_EVERY_S, 10 s)
    live_every_s: float = field(default_factory=lambda: float(os.environ.get("EPOCHAL_STREAMS_LIVE_EVERY_S") or 10.0))
    live_rows_per_s: float = 2000.0  # ... and, on average, at most this many (node, epoch) rows a second
    live_table: bool = True  # the per-node live Table and its agent (off when its topics cannot be made)
    warm_up: bool = True  # a closer primes the ingest and close code on a throwaway store at start-up
    fetch_bytes_per_partition: int = 16 << 20  # ping.batch messages are large: fetch many per request
    # The pipeline thread makes hundreds of short DuckDB calls a step, each letting go of the GIL
    # and taking it back; with Python's default 5 ms switch interval each take-back could wait
    # up to 5 ms behind faust's and the outputs' threads. Measured: a step beside a busy Python
    # thread took 17.9 s at 5 ms, 3.0 s at 0.2 ms (1.7 s alone); bench_stream +3-4 %.
    gil_switch_interval_s: float = 0.0002
    publish: Path | None = None  # the published folder (None: $EPOCHAL_PUBLISH, else <db>.published)


def default_segments_dir(db: Path) -> Path:
    return Path(str(db) + ".segments")


class Pipeline:
    def __init__(self, cfg: WorkerConfig, outputs=None, live_updates: bool = False) -> None:
        self.cfg = cfg
        self.outputs = outputs
        self.live_updates = live_updates  # a closer publishes node-slots updates (a live Table reads them)
        self.crash = CrashHook(os.environ.get("EPOCHAL_STREAMS_CRASH"))
        self.closer: Closer | None = None
        self._closer_tried = 0.0
        self._warmed = False
        self.started = time.time()
        self.consumed = 0
        self.consumed_by_topic: dict[str, int] = {t: 0 for t in INPUT_TOPICS}
        self.segments = 0
        self.last_offset: dict[tuple[str, int], int] = {}
        self.lag: dict[str, int | None] = {}
        self._last_status = 0.0
        self._last_counts = (time.monotonic(), 0, 0)
        self.rates = {"messages_per_s": 0.0, "pings_per_s": 0.0}
        self.ping_partitions: list[int] = []
        self._partitions_at = 0.0
        self.runner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="epochal-pipeline")
        self.first_batch_at: float | None = None  # wall clock when the first batch arrived
        self.first_message_at: float | None = None  # ... and when its first message reached the agent
        self.cpu_s_at: dict[str, float] = {}  # process CPU seconds at those moments (benchmarks)
        self.last_batch_done_at: float | None = None  # ... and when the latest was fully handled
        self._prev_done = None

    # -- the pipeline thread -----------------------------------------------------------------
    async def run(self, fn, *args):
        """Run `fn(*args)` on the pipeline thread (one thread: batches, ticks and status run one
        at a time, in order) and wait for it. The event loop stays free meanwhile, so faust
        keeps fetching the next messages while a batch is archived. A cancelled caller (faust
        stopping the agent) still waits for `fn` to finish before the cancellation goes on:
        faust acknowledges a batch's events when the agent lets go of it, cancelled or not, and
        that must never happen before the batch is durable. Anything `fn` raises ends the
        process (see `_die`)."""
        cf = self.runner.submit(_guarded, fn, *args)
        try:
            return await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            concurrent.futures.wait([cf])
            raise

    # -- the closer role ---------------------------------------------------------------------
    def try_become_closer(self) -> None:
        if self.closer is not None or time.monotonic() - self._closer_tried < self.cfg.closer_retry_s:
            return
        self._closer_tried = time.monotonic()
        try:
            self.closer = Closer.open(self.cfg.db, self.cfg.seg_dir, cfg=RULESET_V1, outputs=self.outputs,
                                      live_every_s=self.cfg.live_every_s, crash_hook=self.crash,
                                      live_updates=self.live_updates,
                                      live_rows_per_s=self.cfg.live_rows_per_s, publish=self.cfg.publish)
        except store.StoreBusy as exc:
            log.info("not the closer (%s); writing segments only", exc)
            return
        log.info("closer: this worker owns %s", self.cfg.db)
        self._refresh_partitions(force=True)
        if self.cfg.warm_up and not self._warmed:
            self._warmed = True
            self.runner.submit(self._warm_up)

    def _warm_up(self) -> None:
        try:
            log.info("closer: warmed up the ingest and close code in %.2f s", warm_up(RULESET_V1))
        except Exception as exc:  # noqa: BLE001 - only a head start; the real batches decide
            log.warning("closer: warm-up failed (%r); going on without it", exc)

    def _refresh_partitions(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._partitions_at < 60:
            return
        self._partitions_at = time.monotonic()
        try:
            from kafka import KafkaConsumer  # kafka-python: only for the partition metadata, once a minute

            c = KafkaConsumer(bootstrap_servers=self.cfg.bootstrap, client_id="epochal-meta",
                              request_timeout_ms=10000)
            try:
                parts = c.partitions_for_topic(PINGS_TOPIC) or set()
            finally:
                c.close()
            self.ping_partitions = sorted(parts)
        except Exception as exc:  # noqa: BLE001 - metadata is best effort; segments still say
            log.warning("cannot read the partitions of %s: %s", PINGS_TOPIC, exc)
        if self.closer is not None and self.ping_partitions:
            self.closer.set_ping_partitions(self.ping_partitions, time.time())

    # -- a micro-batch -----------------------------------------------------------------------
    def handle(self, events, received: int | None = None) -> None:
        """One micro-batch; `received` is when it was taken from the stream (µs)."""
        received = now_us() if received is None else received
        if self.first_batch_at is None:
            self.first_batch_at = received / 1e6
        msgs = []
        for ev in events:
            m = ev.message
            msgs.append(Message(m.topic, m.partition, m.offset, m.value or b"", received))
            self.last_offset[(m.topic, m.partition)] = m.offset
            self.consumed_by_topic[m.topic] = self.consumed_by_topic.get(m.topic, 0) + 1
        self.consumed += len(msgs)
        self.crash("after_consume")
        if self.closer is not None:
            # archived right here, before faust may commit these offsets: no segment needed
            self._step(msgs)
        else:
            write_segment(self.cfg.seg_dir, self.cfg.worker_id, msgs)
            self.segments += 1
            self.crash("after_segment")
        self.last_batch_done_at = time.time()
        self.cpu_s_at["last_batch_done"] = time.process_time()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch of %d messages: waited %.3f s for it, handled in %.3f s", len(msgs),
                      received / 1e6 - (self._prev_done or received / 1e6), self.last_batch_done_at - received / 1e6)
        self._prev_done = self.last_batch_done_at

    def _step(self, batch: list[Message] | None = None) -> None:
        rep = self.closer.step(batch=batch, batch_owner=self.cfg.worker_id)
        if rep.closed:
            log.info("closed epoch(s) %s (watermark %s)", rep.closed, self.closer.wm.current(time.time()))

    def tick(self) -> None:
        self.try_become_closer()
        if self.closer is not None:
            self._refresh_partitions()
            self._step()

    # -- visibility --------------------------------------------------------------------------
    def status(self) -> dict:
        now = time.time()
        t, msgs, pings = self._last_counts
        cur_pings = self.closer.totals.pings if self.closer else 0
        dt = time.monotonic() - t
        if dt >= 1.0:
            self.rates = {"messages_per_s": round((self.consumed - msgs) / dt, 1),
                          "pings_per_s": round((cur_pings - pings) / dt, 1)}
            self._last_counts = (time.monotonic(), self.consumed, cur_pings)
        st = {"worker_id": self.cfg.worker_id, "pid": os.getpid(), "group": self.cfg.group,
              "bootstrap": self.cfg.bootstrap, "db": str(self.cfg.db), "updated_at": now,
              "uptime_s": round(now - self.started, 1), "closer": self.closer is not None,
              "consumed": self.consumed, "consumed_by_topic": self.consumed_by_topic,
              "edge_rejected_from_future": (self.closer.totals.by_reason.get("from_future", 0)
                                            if self.closer is not None else 0), "segments_written": self.segments,
              "first_message_at": self.first_message_at, "cpu_s_at": self.cpu_s_at,
              "first_batch_at": self.first_batch_at, "last_batch_done_at": self.last_batch_done_at,
              "lag": self.lag, "lag_total": sum(v for v in self.lag.values() if v is not None),
              **self.rates}
        if self.closer is not None:
            st["store"] = self.closer.status(now)
        return st

    def write_status(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_status < self.cfg.status_every_s:
            return
        self._last_status = time.monotonic()
        st = self.status()
        self.cfg.seg_dir.mkdir(parents=True, exist_ok=True)
        path = self.cfg.seg_dir / f"status-{self.cfg.worker_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, default=str, indent=1))
        os.replace(tmp, path)
        s = st.get("store", {})
        log.info("consumed %d msgs (%.0f msg/s, %.0f pings/s archived), lag %s, rejected %s%s, last closed %s,"
                 " watermark %s", st["consumed"], st["messages_per_s"], st["pings_per_s"], st["lag_total"],
                 s.get("rejected", "-"), f" {s.get('rejected_by_reason')}" if s.get("rejected_by_reason") else "",
                 s.get("last_closed_epoch", "-"), s.get("watermark_us", "-"))

    def shutdown(self) -> None:
        """Each step logged with its time, so that a stop that hangs says where."""
        t0 = time.monotonic()
        self.runner.shutdown(wait=True)  # a batch being handled finishes first
        try:
            self.write_status(force=True)
        except Exception:  # noqa: BLE001
            pass
        log.info("stopping: the pipeline's last batch done (%.1f s)", time.monotonic() - t0)
        if self.closer is not None:
            t0 = time.monotonic()
            self.closer.close()
            self.closer = None
            log.info("stopping: the closer's outputs and publications done, the store closed (%.1f s)",
                     time.monotonic() - t0)
        if self.outputs is not None:
            t0 = time.monotonic()
            self.outputs.close()
            log.info("stopping: the output producer closed (%.1f s)", time.monotonic() - t0)


def _die(exc: BaseException) -> None:
    log.critical("a batch could not be handled; exiting so that it is not acknowledged: %r", exc, exc_info=exc)
    logging.shutdown()
    os._exit(70)


def _guarded(fn, *args):
    try:
        return fn(*args)
    except BaseException as exc:  # noqa: BLE001
        _die(exc)


def _first_message_sensor():
    from faust.sensors import Sensor  # faust is imported by the worker process only (see run_worker)

    class FirstMessage(Sensor):
        """Notes when the first message reached the ingest stream (the throughput figures
        count from there, a micro-batch's wait for its own messages included; one
        comparison a message, never a call per ping)."""

        def __init__(self, pipeline: "Pipeline") -> None:
            super().__init__()
            self.pipeline = pipeline

        def on_message_in(self, tp, offset, message) -> None:
            if self.pipeline.first_message_at is None:
                self.pipeline.first_message_at = time.time()
                self.pipeline.cpu_s_at["first_message"] = time.process_time()

    return FirstMessage


def build_app(cfg: WorkerConfig, pipeline: Pipeline):
    """The faust app: the ingest agent and the tick (no Table: see the module's docstring)."""
    import faust  # imported by the worker process only (see run_worker)

    app = faust.App(cfg.group, **faust_app_settings(cfg.bootstrap, cfg.session_timeout_s),
                    consumer_max_fetch_size=cfg.fetch_bytes_per_partition)
    topic = app.topic(*INPUT_TOPICS, value_serializer="raw", key_serializer="raw")
    app.sensors.add(_first_message_sensor()(pipeline))

    @app.agent(topic, concurrency=1, name="epochal-ingest")
    async def ingest(stream):
        async for events in take_batches(stream, cfg.batch_max, cfg.within_s):
            await pipeline.run(pipeline.handle, events, now_us())

    @app.timer(1.0)
    async def tick():
        await pipeline.run(pipeline.tick)
        try:
            lag = {}
            for tp in app.consumer.assignment():
                hw = app.consumer.highwater(tp)
                pos = pipeline.last_offset.get((tp.topic, tp.partition))
                known = hw is not None and pos is not None
                lag[f"{tp.topic}/{tp.partition}"] = max(0, hw - (pos + 1)) if known else None
            pipeline.lag = lag
        except Exception:  # noqa: BLE001 - lag is for people; never let it stop the worker
            pass
        await pipeline.run(pipeline.write_status)

    return app


def run_worker(cfg: WorkerConfig, faust_loglevel: str = "warning") -> int:
    from faust import Worker  # faust costs ~1 s to import: only the worker process itself needs it

    setup_logging()
    if cfg.gil_switch_interval_s:
        sys.setswitchinterval(cfg.gil_switch_interval_s)
    cfg.seg_dir.mkdir(parents=True, exist_ok=True)
    outputs = OutputSink(cfg.bootstrap, node_slots_topic=node_slots_topic(cfg.group))
    live_partitions = prepare_live_topics(cfg.bootstrap, cfg.group) if cfg.live_table else None
    live_proc = None
    if live_partitions:
        live_proc = start_live_process(LiveConfig(
            cfg.bootstrap, cfg.group, cfg.worker_id, str(cfg.seg_dir), live_partitions, cfg.live_every_s,
            cfg.status_every_s, cfg.session_timeout_s, os.getpid()))
    pipeline = Pipeline(cfg, outputs, live_updates=live_partitions is not None)
    pipeline.try_become_closer()
    app = build_app(cfg, pipeline)
    log.info("worker %s: group %s on %s, store %s, segments %s", cfg.worker_id, cfg.group, cfg.bootstrap,
             cfg.db, cfg.seg_dir)
    worker = Worker(app, loglevel=faust_loglevel, quiet=True, override_logging=False,
                    loop=asyncio.new_event_loop())
    stopping_at: list[float] = []

    @app.on_before_shutdown.connect
    async def consumer_stopped(app, **kwargs) -> None:  # faust: after its consumer, before its producer
        stopping_at.append(time.monotonic())
        log.info("stopping: faust's consumer stopped; its producer next")

    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        since = f" ({time.monotonic() - stopping_at[0]:.1f} s after its consumer)" if stopping_at else ""
        log.info("stopping: faust stopped%s", since)
        pipeline.shutdown()
        t0 = time.monotonic()
        stop_live_process(live_proc)
        if live_proc is not None:
            log.info("stopping: the live Table's process stopped (%.1f s)", time.monotonic() - t0)
        log.info("worker %s stopped", cfg.worker_id)
    return 0
