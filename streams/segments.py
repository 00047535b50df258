"""Segments: the hand-off between the consuming workers and the one process that owns the store.

A consuming worker turns each micro-batch of Kafka messages into one segment file (Parquet):
for every message its topic, partition, offset, raw value, the wall-clock time it arrived,
and the stream's own edge verdict (`from_future`, ruleset §10 "Ingest bounds", judged here
because only the consumer knows when a message arrived). The file is written to a temporary
name and renamed, so a segment is either whole or absent; only after the rename does the
worker let its Kafka offsets be committed. The closer (the process holding the store's lock)
reads segments in name order (their write time), skips every message whose offset it has
archived already, archives the rest through the engine's ingest, and deletes the files.

The edge check reads only the times of a message (the envelope's `occurred_at` and, for a
`ping.batch`, every inner ping's); everything else about a message is the ingest's to judge.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from scoring.events import RejectReason, time_to_us
from scoring.ruleset import RULESET_V1, RulesetConfig

SCHEMA = pa.schema([
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("value", pa.large_binary()),
    ("received_us", pa.int64()),
    ("reject_reason", pa.string()),
    ("reject_detail", pa.string()),
])

_counter = itertools.count()


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes
    received_us: int
    reject_reason: str | None = None
    reject_detail: str | None = None


def future_check(value: bytes, received_us: int, cfg: RulesetConfig = RULESET_V1) -> str | None:
    """The from_future detail when an event time lies more than the allowed skew after the
    message's arrival; None otherwise (including for anything the ingest will reject anyway)."""
    if b"occurred_at" not in value:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    times = [obj.get("occurred_at")]
    if obj.get("event_type") == "ping.batch" and isinstance(obj.get("pings"), list):
        times.extend(p.get("occurred_at") for p in obj["pings"] if isinstance(p, dict))
    limit = received_us + cfg.max_future_skew_s * 1_000_000
    latest = None
    for t in _candidates(times):
        try:
            us = time_to_us(t)
        except (ValueError, TypeError, OverflowError):
            continue
        if latest is None or us > latest:
            latest = us
    if latest is not None and latest > limit:
        ahead = (latest - received_us) / 1e6
        return f"occurred_at is {ahead:.0f} s after the message arrived (more than {cfg.max_future_skew_s} s)"
    return None


def _candidates(times: list) -> list:
    """The times that can be the latest, without converting every one: the largest integer
    (epoch ms), the lexicographically largest RFC 3339 string among those of one fixed form
    (same length, separator and 'Z'; for them text order is time order), every other string."""
    ints: list[int] = []
    fixed: dict[tuple, str] = {}
    out: list = []
    for t in times:
        tt = type(t)
        if tt is int:
            ints.append(t)
        elif tt is str:
            if len(t) >= 20 and t[-1] == "Z":
                k = (len(t), t[10])
                cur = fixed.get(k)
                if cur is None or t > cur:
                    fixed[k] = t
            else:
                out.append(t)
    if ints:
        out.append(max(ints))
    out.extend(fixed.values())
    return out


def edge_check(msgs: list[Message], cfg: RulesetConfig = RULESET_V1) -> int:
    """Mark the messages the live edge rejects; returns how many."""
    n = 0
    for m in msgs:
        if m.reject_reason is None:
            detail = future_check(m.value, m.received_us, cfg)
            if detail is not None:
                m.reject_reason, m.reject_detail = RejectReason.from_future.value, detail
                n += 1
    return n


def write_segment(seg_dir: Path, worker_id: str, msgs: list[Message]) -> Path:
    """One segment, durable and whole once this returns (tmp file, fsync, rename)."""
    seg_dir.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "topic": [m.topic for m in msgs],
        "partition": pa.array([m.partition for m in msgs], pa.int32()),
        "offset": pa.array([m.offset for m in msgs], pa.int64()),
        "value": pa.array([m.value for m in msgs], pa.large_binary()),
        "received_us": pa.array([m.received_us for m in msgs], pa.int64()),
        "reject_reason": pa.array([m.reject_reason for m in msgs], pa.string()),
        "reject_detail": pa.array([m.reject_detail for m in msgs], pa.string()),
    }, schema=SCHEMA)
    name = f"{time.time_ns():020d}-{next(_counter):08d}-{worker_id}.parquet"
    tmp = seg_dir / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="lz4")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, seg_dir / name)
    return seg_dir / name


def list_segments(seg_dir: Path) -> list[Path]:
    if not seg_dir.is_dir():
        return []
    return sorted(p for p in seg_dir.glob("*.parquet") if not p.name.startswith("."))


def read_segment(path: Path) -> list[Message]:
    t = pq.read_table(path).to_pydict()
    return [Message(*row) for row in zip(t["topic"], t["partition"], t["offset"], t["value"],
                                         t["received_us"], t["reject_reason"], t["reject_detail"])]


def now_us() -> int:
    return time.time_ns() // 1000
