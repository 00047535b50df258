"""The output topics (`epochal.scores`, `epochal.slashes`, `epochal.rejected`). Published after
the store commit: at least once, keyed so that a reader can keep the latest per key (node,
decision, rejected message).

A closed epoch publishes one `epochal.scores` message per node (20,000 and more at a time), so
the sink builds record batches itself instead of handing records one by one to a producer:
records are appended to one open batch per output partition (aiokafka's C record builder,
about a microsecond per record), a full batch is handed to an aiokafka producer running on its
own event loop in a background thread, and `flush()` hands over the rest and waits until the
batches are acknowledged (acks=all; the closer lets one step's batches stay in flight while it
goes on, see `flush(wait=False)`). The partition of a keyed record is the Java client's default
(murmur2 of the key), so readers see the same layout as from any other Kafka producer; keyless
records go round-robin. Kafka-python's per-record `send` cost ~50 µs (and contended for its
accumulator lock with the sender thread), which made publishing the scores the worker's
largest cost.

The same sink carries the internal repartition topic `<group>.node-slots` (the closer's
per-node slot updates, one message per partition, see `streams.live`); the live Table's
process has a sink of its own for the live snapshots, used from its event loop, where
`hand_over` never waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading

import orjson

log = logging.getLogger("epochal.streams")

BATCH_BYTES = 512 << 10


def _json(obj) -> bytes:
    return orjson.dumps(obj, default=str)


def default_partition(key: bytes, n: int) -> int:
    """The Java client's (and kafka-python's, aiokafka's) partition of a keyed record."""
    from aiokafka.partitioner import murmur2  # aiokafka loads on first use: the closer's tests run without Kafka

    return (murmur2(key) & 0x7FFFFFFF) % n


class OutputSink:
    def __init__(self, bootstrap: str, prefix: str = "", batch_bytes: int = BATCH_BYTES,
                 timeout_s: float = 60.0, node_slots_topic: str = "epochal.node-slots") -> None:
        self.topics = {k: prefix + f"epochal.{k}" for k in ("scores", "slashes", "rejected")}
        self.topics["node-slots"] = prefix + node_slots_topic  # the consumer group's own
        self.sent = {k: 0 for k in self.topics}
        self.batch_bytes = batch_bytes
        self.timeout_s = timeout_s
        self.errors = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="epochal-outputs", daemon=True)
        self._thread.start()
        self._partitions: dict[str, int] = {}
        self._part_of: dict[int, dict[bytes, int]] = {}  # partition count -> key -> partition
        self._rr = itertools.count()
        self._open: dict[tuple[str, int], object] = {}  # (topic, partition) -> BatchBuilder
        self._pending: list[concurrent.futures.Future] = []  # handed over since the last flush
        self._in_flight: list[concurrent.futures.Future] = []  # handed over by the last flush(wait=False)
        try:
            self.producer = self._call(self._start(bootstrap))
        except BaseException:
            self._stop_loop()
            raise

    # -- the producer's loop -----------------------------------------------------------------
    def _call(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout or self.timeout_s)

    async def _start(self, bootstrap: str):
        from aiokafka import AIOKafkaProducer  # (see default_partition)

        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                             max_batch_size=self.batch_bytes, max_request_size=8 << 20,
                             client_id="epochal-worker-outputs", request_timeout_ms=int(self.timeout_s * 1000))
        await p.start()
        return p

    async def _deliver(self, batch, topic: str, partition: int) -> None:
        fut = await self.producer.send_batch(batch, topic, partition=partition)
        await fut

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- records -----------------------------------------------------------------------------
    def _n_partitions(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            parts = self._call(self.producer.partitions_for(topic))
            if not parts:
                raise LookupError(f"the topic {topic} has no partitions (does it exist?)")
            n = self._partitions[topic] = len(parts)
        return n

    def n_partitions(self, kind: str) -> int:
        return self._n_partitions(self.topics[kind])

    def _partition(self, topic: str, key: bytes | None) -> int:
        n = self._n_partitions(topic)
        if key is None:
            return next(self._rr) % n
        return self._partitions_of(n, [key])[0]

    def _partitions_of(self, n: int, keys: list[bytes]) -> list[int]:
        """Each key's partition among `n` (cached: a node's key comes back every epoch)."""
        cache = self._part_of.setdefault(n, {})
        if len(cache) > 1_000_000:
            cache.clear()
        get = cache.get
        parts = [get(k) for k in keys]
        if None in parts:
            for i, p in enumerate(parts):
                if p is None:
                    parts[i] = cache[keys[i]] = default_partition(keys[i], n)
        return parts

    def _submit(self, topic: str, partition: int, batch) -> None:
        self._pending.append(asyncio.run_coroutine_threadsafe(self._deliver(batch, topic, partition), self._loop))

    def _append(self, topic: str, key: bytes | None, value: bytes, part: int | None = None) -> None:
        if part is None:
            part = self._partition(topic, key)
        tp = (topic, part)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self.producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it, start another
            self._submit(topic, part, batch)
            batch = self._open[tp] = self.producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")

    def send_keyed(self, kind: str, keys: list[bytes], values: list[bytes]) -> int:
        """Many keyed records already serialised (a closed epoch's 20,000 score rows): the
        partitions looked up at once, then each partition's records appended in one tight loop,
        in their order (per key the order is kept, as Kafka promises it per partition)."""
        topic = self.topics[kind]
        parts = self._partitions_of(self._n_partitions(topic), keys)
        by_part: dict[int, list[int]] = {}
        for i, p in enumerate(parts):
            idx = by_part.get(p)
            if idx is None:
                idx = by_part[p] = []
            idx.append(i)
        for p, idx in by_part.items():
            tp = (topic, p)
            batch = self._open.get(tp) or self.producer.create_batch()
            append = batch.append
            for i in idx:
                if append(timestamp=None, key=keys[i], value=values[i]) is None:  # full: send it
                    self._submit(topic, p, batch)
                    batch = self.producer.create_batch()
                    append = batch.append
                    if append(timestamp=None, key=keys[i], value=values[i]) is None:
                        raise ValueError(f"a record of {len(values[i])} bytes does not fit in a batch")
            self._open[tp] = batch
        self.sent[kind] += len(keys)
        return len(keys)

    def send_to(self, kind: str, partition: int, value: bytes, key: bytes | None = None) -> None:
        """One record already serialised, to a partition chosen by the caller."""
        self._append(self.topics[kind], key, value, partition)
        self.sent[kind] += 1

    def _send(self, kind: str, key: str | None, value: dict) -> None:
        self._append(self.topics[kind], key.encode() if key else None, _json(value))
        self.sent[kind] += 1

    def rejected(self, msg, reason: str, detail: str | None, event_id: str | None, event_type: str | None) -> None:
        value = {"reason": reason, "detail": detail, "event_id": event_id, "event_type": event_type,
                 "topic": msg.topic if msg else None, "partition": msg.partition if msg else None,
                 "offset": msg.offset if msg else None,
                 "raw": (msg.value or b"").decode("utf-8", "replace") if msg else None}
        key = f"{msg.topic}/{msg.partition}@{msg.offset}" if msg else event_id
        self._send("rejected", key, value)

    def score(self, node_id: str, snapshot: dict) -> None:
        self._send("scores", node_id, snapshot)

    def slash(self, node_id: str, decision: dict) -> None:
        self._send("slashes", node_id, decision)

    # -- delivery ----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None, wait: bool = True) -> None:
        """Hand over every open batch. With `wait`, wait until every batch handed over so far is
        acknowledged; without, wait only for those handed over before the previous flush (the
        caller goes on while the latest are in flight; at most one round is ever pending). A
        batch the broker did not take is logged (the outputs are at least once from the store,
        not a reason to stop archiving)."""
        for (topic, part), batch in self._open.items():
            self._submit(topic, part, batch)
        self._open.clear()
        if wait:
            pending, self._in_flight, self._pending = self._in_flight + self._pending, [], []
        else:
            pending, self._in_flight, self._pending = self._in_flight, self._pending, []
        if not pending:
            return
        timeout = timeout or self.timeout_s
        done, not_done = concurrent.futures.wait(pending, timeout)
        for f in done:
            exc = f.exception()
            if exc is not None:
                self.errors += 1
                log.warning("an output batch was not delivered: %r", exc)
        if not_done:
            self.errors += len(not_done)
            log.warning("%d output batch(es) not acknowledged within %.0f s", len(not_done), timeout)

    def hand_over(self) -> None:
        """Hand over every open batch and return at once (for a caller on an event loop);
        batches acknowledged since are dropped from the list, a failed one is logged."""
        for (topic, part), batch in self._open.items():
            self._submit(topic, part, batch)
        self._open.clear()
        still = []
        for f in self._pending:
            if not f.done():
                still.append(f)
            elif f.exception() is not None:
                self.errors += 1
                log.warning("an output batch was not delivered: %r", f.exception())
        self._pending = still

    def close(self) -> None:
        try:
            self.flush(10)
        finally:
            try:
                self._call(self.producer.stop(), 15)
            except Exception as exc:  # noqa: BLE001
                log.warning("closing the output producer: %r", exc)
            self._stop_loop()
