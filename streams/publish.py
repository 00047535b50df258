"""`epochal streams publish`: event files → the contract's input topics, with kafka-python.

Each non-blank line is one message, keyed by its envelope `node_id` (a `ping.batch` by its
checker's, the envelope's), on the topic of its `event_type`. A line whose type cannot be read
(not JSON, no known `event_type`) still goes out, so that the worker rejects it with a reason:
on the topic its file name names (`nodes*`, `pings*`, `jobs*`, `benchmarks*`), else on the topic
of the line before it. The producer is idempotent, acks=all, batching (linger).

`time_order=True` publishes every file's lines merged by `occurred_at` (stable: ties, and lines
with no readable time, keep their place after the line before them in their file), as a live
network would have sent them; otherwise files go in the order given, lines in file order.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import orjson

from scoring.events import TOPIC_OF_EVENT_TYPE, time_to_us

FILE_HINTS = {"node": "epochal.nodes", "ping": "epochal.pings", "job": "epochal.jobs", "bench": "epochal.benchmarks"}


@dataclass
class PublishReport:
    messages: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    last_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" → last offset written
    seconds: float = 0.0


def _file_topic(path: Path) -> str | None:
    name = path.name.lower()
    for hint, topic in FILE_HINTS.items():
        if name.startswith(hint):
            return topic
    return None


def route(line: bytes, fallback: str | None) -> tuple[str | None, bytes | None, int | None]:
    """(topic, key, occurred_at µs) of one line; topic None when nothing says."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return fallback, None, None
    if not isinstance(obj, dict):
        return fallback, None, None
    et = obj.get("event_type")
    topic = TOPIC_OF_EVENT_TYPE.get(et) if isinstance(et, str) else None
    node = obj.get("node_id")
    key = node.encode() if isinstance(node, str) else None
    occ = obj.get("occurred_at")
    t = None
    if isinstance(occ, (int, str)) and not isinstance(occ, bool):
        try:
            t = time_to_us(occ)
        except (ValueError, TypeError, OverflowError):
            t = None
    return topic or fallback, key, t


def iter_file(path: Path) -> Iterator[tuple[str, bytes | None, bytes, int | None]]:
    hint = _file_topic(path)
    last_topic = hint
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\n").rstrip(b"\r")
            if not line.strip():
                continue
            topic, key, t = route(line, hint or last_topic)
            topic = topic or "epochal.pings"
            last_topic = topic if hint is None else hint
            yield topic, key, line, t


def iter_messages(paths: list[Path], time_order: bool) -> Iterator[tuple[str, bytes | None, bytes]]:
    if not time_order:
        for p in paths:
            for topic, key, line, _t in iter_file(p):
                yield topic, key, line
        return
    rows = []
    for fi, p in enumerate(paths):
        prev_t = -1
        for li, (topic, key, line, t) in enumerate(iter_file(p)):
            if t is None:
                t = prev_t
            prev_t = t
            rows.append((t, fi, li, topic, key, line))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    for _t, _fi, _li, topic, key, line in rows:
        yield topic, key, line


def _note_offset(last: dict[str, int], md) -> None:
    k = f"{md.topic}/{md.partition}"
    if md.offset > last.get(k, -1):
        last[k] = md.offset


def make_producer(bootstrap: str):
    from kafka import KafkaProducer  # kafka-python takes ~0.3 s to import: only when publishing

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20,
                         batch_size=512 << 10, max_request_size=4 << 20, compression_type=None,
                         client_id="epochal-publish")


def publish(paths: list[Path], bootstrap: str, *, time_order: bool = False, producer=None,
            extra: list[tuple[str, bytes | None, bytes]] | None = None) -> PublishReport:
    """Send every line; returns once the broker has acknowledged all of them."""
    t0 = time.perf_counter()
    own = producer is None
    producer = producer or make_producer(bootstrap)
    rep = PublishReport()
    failures: list[BaseException] = []
    try:
        for topic, key, value in itertools.chain(iter_messages(paths, time_order), extra or []):
            fut = producer.send(topic, key=key, value=value)
            fut.add_callback(_note_offset, rep.last_offsets)
            fut.add_errback(failures.append)
            rep.messages += 1
            rep.by_topic[topic] = rep.by_topic.get(topic, 0) + 1
        producer.flush(300)
        if failures:
            raise RuntimeError(f"{len(failures)} message(s) were not acknowledged: {failures[0]!r}")
    finally:
        if own:
            producer.close(10)
    rep.seconds = time.perf_counter() - t0
    return rep
