"""The event contract (contract.md "Events") as strict pydantic v2 models, and the reference
line parser that turns one raw line into an accepted event or a rejection with a reason.

These models are the reference: the columnar fast path of the ingest edge
(`store.ingest`) must accept exactly what `parse_line` accepts, with the same values, and
hands everything it is unsure of to `parse_line`; a differential test holds it to that.

Times: `occurred_at` (and the job times) are an RFC 3339 string with an offset, or an integer
of epoch milliseconds. They are kept as integers of microseconds (`*_us`); RFC 3339 digits
beyond the microsecond are truncated (ruleset §10). The written form is kept too
(`occurred_at_raw`) because two events that differ only in how they wrote the time are two
different JSON values, hence conflicting duplicates, not exact ones.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import re
from calendar import timegm
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import base58
import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from scoring.ruleset import RULESET_V1, RulesetConfig


class RejectReason(str, enum.Enum):
    """Why an input was not accepted. Bad input is data with a reason, never an exception."""

    invalid_json = "invalid_json"  # not parseable as JSON (or not UTF-8)
    too_large = "too_large"  # a line over 1 MiB
    unknown_event_type = "unknown_event_type"  # event_type is a string we do not know
    schema = "schema"  # wrong shape, type, bound, or unknown field
    conflicting_duplicate = "conflicting_duplicate"  # seen event_id, different payload
    already_registered = "already_registered"  # a later node.registered of a registered node
    before_genesis = "before_genesis"  # occurred_at (or a job's started_at) before genesis
    from_future = "from_future"  # occurred_at > 5 min after the event's arrival time (§10)
    invalid_window = "invalid_window"  # a job.completed whose ended_at is before its started_at


EVENT_TYPES = (
    "node.registered",
    "node.stake_changed",
    "ping",
    "ping.batch",
    "job.completed",
    "appeal.upheld",
    "benchmark",
)

# Which contract topic each event type belongs to.
TOPIC_OF_EVENT_TYPE = {
    "node.registered": "epochal.nodes",
    "node.stake_changed": "epochal.nodes",
    "ping": "epochal.pings",
    "ping.batch": "epochal.pings",
    "job.completed": "epochal.jobs",
    "appeal.upheld": "epochal.jobs",
    "benchmark": "epochal.benchmarks",
}

JOB_STATUSES = ("succeeded", "failed_node", "failed_user", "cancelled")

# RFC 3339 date-time with a mandatory offset. Leap second 60 is not representable: rejected.
# ASCII digits only ([0-9], never \d, which takes any Unicode digit); matched whole (fullmatch),
# so a trailing newline is not a time.
RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Epoch milliseconds must lie in years 1970..9999 to be a time at all.
MAX_EPOCH_MS = 253402300799999


def parse_rfc3339_us(text: str) -> int:
    """RFC 3339 → microseconds since the Unix epoch (digits past the microsecond truncated)."""
    m = RFC3339_RE.fullmatch(text)
    if m is None:
        raise ValueError("occurred_at must be RFC 3339 with an offset, or epoch milliseconds")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, offset = m.group(7), m.group(8)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        raise ValueError("occurred_at has no such date")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("occurred_at has no such time of day")
    if offset in ("Z", "z"):
        offset_s = 0
    else:
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise ValueError("occurred_at has an invalid offset")
        offset_s = (oh * 3600 + om * 60) * (1 if offset[0] == "+" else -1)
    micros = int((frac or "").ljust(6, "0")[:6])
    seconds = timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset_s
    return seconds * 1_000_000 + micros


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def time_to_us(value: Any) -> int:
    """Either contract form of a time → microseconds; raises ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError("a time must be an RFC 3339 string or integer epoch milliseconds")
    if isinstance(value, int):
        if not (0 <= value <= MAX_EPOCH_MS):
            raise ValueError("epoch milliseconds out of range")
        return value * 1_000
    if isinstance(value, str):
        return parse_rfc3339_us(value)
    raise ValueError("a time must be an RFC 3339 string or integer epoch milliseconds")


Id = Annotated[StrictStr, Field(min_length=1, max_length=RULESET_V1.max_id_chars)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=256)]
BaseUnits = Annotated[StrictInt, Field(ge=0, le=RULESET_V1.max_base_units)]
GpuCount = Annotated[StrictInt, Field(ge=1, le=RULESET_V1.max_gpu_count)]
# Strict floats still take JSON integers (JSON has one number type); never NaN or infinity.
def _finite_float(v: float | int) -> float:
    try:
        f = float(v)  # an integer beyond binary64 overflows: not a measure either
    except OverflowError as exc:
        raise ValueError("must be a finite number") from exc
    if not math.isfinite(f):
        raise ValueError("must be a finite number")
    return f


Measure = Annotated[Union[StrictFloat, StrictInt], Field(ge=0), AfterValidator(_finite_float)]
def _check_time(value: Any) -> Any:
    time_to_us(value)
    return value


# Either contract form of a time, kept as written (see the module docstring), checked once here.
TimeValue = Annotated[Union[StrictStr, StrictInt], AfterValidator(_check_time)]


def _check_wallet(value: str) -> str:
    try:
        raw = base58.b58decode(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("wallet is not base58") from exc
    if len(raw) != 32:
        raise ValueError("wallet must decode to 32 bytes")
    return value


def _check_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValueError("ip is not an IPv4 or IPv6 address") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Envelope(_Strict):
    event_id: Id
    schema_version: StrictInt
    node_id: Id
    occurred_at: TimeValue

    @field_validator("schema_version")
    @classmethod
    def _v1(cls, v: int) -> int:
        if v != 1:
            raise ValueError("schema_version must be 1")
        return v

    @property
    def occurred_at_us(self) -> int:
        return time_to_us(self.occurred_at)


class NodeRegistered(Envelope):
    event_type: Literal["node.registered"]
    wallet: Annotated[StrictStr, Field(min_length=32, max_length=44)]
    gpu_model: Text
    gpu_count: GpuCount
    region: Annotated[StrictStr, Field(max_length=128)]
    ip: Annotated[StrictStr, Field(max_length=64)]
    stake_base_units: BaseUnits
    operator_id: Id | None = None

    _w = field_validator("wallet")(classmethod(lambda cls, v: _check_wallet(v)))
    _i = field_validator("ip")(classmethod(lambda cls, v: _check_ip(v)))


class NodeStakeChanged(Envelope):
    event_type: Literal["node.stake_changed"]
    stake_base_units: BaseUnits


class Ping(Envelope):
    event_type: Literal["ping"]
    checker_id: Id
    reachable: StrictBool
    rtt_ms: Measure | None = None


class InnerPing(_Strict):
    node_id: Id
    occurred_at: TimeValue
    reachable: StrictBool
    rtt_ms: Measure | None = None


class PingBatch(Envelope):
    event_type: Literal["ping.batch"]
    checker_id: Id
    pings: Annotated[list[InnerPing], Field(min_length=1, max_length=RULESET_V1.max_batch_pings)]


class JobCompleted(Envelope):
    event_type: Literal["job.completed"]
    job_id: Id
    buyer_id: Id
    started_at: TimeValue
    ended_at: TimeValue
    committed_until: TimeValue
    status: Literal["succeeded", "failed_node", "failed_user", "cancelled"]
    gpu_hours: Measure
    fee_base_units: BaseUnits


class AppealUpheld(Envelope):
    event_type: Literal["appeal.upheld"]
    decision_id: Id


class Benchmark(Envelope):
    event_type: Literal["benchmark"]
    gpu_model: Text
    gpu_count: GpuCount
    fp32_tflops: Measure
    mem_bandwidth_gbps: Measure
    vram_gb: Measure
    gpu_fingerprints: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=256)]],
        Field(max_length=RULESET_V1.max_gpu_count),
    ]
    download_mbps: Measure
    upload_mbps: Measure
    ip: Annotated[StrictStr, Field(max_length=64)]

    _i = field_validator("ip")(classmethod(lambda cls, v: _check_ip(v)))


Event = Annotated[
    Union[NodeRegistered, NodeStakeChanged, Ping, PingBatch, JobCompleted, AppealUpheld, Benchmark],
    Field(discriminator="event_type"),
]
EVENT_ADAPTER: TypeAdapter = TypeAdapter(Event)


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str
    event_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class Accepted:
    event: Any  # one of the models above
    canonical: bytes  # the event as a sorted-key JSON value: equal bytes ⇔ exact duplicate


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace; numbers by value (the models already made floats floats)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        # orjson stops at 64-bit integers; the standard module reads any size, and the schema
        # then rejects the out-of-range value. NaN/Infinity are not JSON: refuse them.
        def _no_constants(name: str) -> Any:
            raise ValueError(name)

        obj = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
        # The standard module also takes a lone surrogate escape ("\ud800"), which is no
        # character at all (orjson refuses it): such a string could not be stored or printed.
        if _has_lone_surrogate(obj):
            raise ValueError("a string holds a lone surrogate escape (not Unicode text)")
        return obj


def _has_lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if _SURROGATE_RE.search(x):
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def get_latest_time_us(event: Any) -> int:
    """The latest event time an accepted line carries: its `occurred_at`, and for a
    `ping.batch` every inner ping's (each is a ping event of its own, §10)."""
    t = event.occurred_at_us
    if isinstance(event, PingBatch):
        t = max([t, *(time_to_us(p.occurred_at) for p in event.pings)])
    return t


def is_from_future(latest_time_us: int, arrived_at_us: int, cfg: RulesetConfig = RULESET_V1) -> bool:
    """§10 Ingest bounds: an event more than `max_future_skew_s` later than its arrival time.
    (The ingest's columnar twin: `store.ingest.Ingestor._reject_from_future`.)"""
    return latest_time_us > arrived_at_us + cfg.max_future_skew_s * 1_000_000


def parse_line(line: bytes, cfg: RulesetConfig = RULESET_V1, arrived_at_us: int | None = None) -> Accepted | Rejection:
    """One raw line → the accepted event, or a rejection with the first reason that applies.

    Order of checks: size, JSON, shape and type (event_type first), then the ingest bounds of
    §10: before genesis (`occurred_at`, a batch's inner pings, a job's `started_at`), a job's
    window (`ended_at` before `started_at`: `invalid_window`), and, when `arrived_at_us` is
    given, `from_future` (the latest event time more than 5 min after the arrival time; the
    arrival time is the edge's to know: a message's receipt in the stream, the start of a
    replay or its `--arrived-at`).
    """
    if len(line) > cfg.max_line_bytes:
        return Rejection(RejectReason.too_large, f"line of {len(line)} bytes is over 1 MiB")
    try:
        obj = _loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection(RejectReason.invalid_json, f"not JSON: {str(exc)[:120]}")
    except RecursionError:
        return Rejection(RejectReason.invalid_json, "not JSON this engine reads: nested too deeply")
    if not isinstance(obj, dict):
        return Rejection(RejectReason.schema, "an event must be a JSON object")
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    event_type = obj.get("event_type")
    if not isinstance(event_type, str):
        return Rejection(RejectReason.schema, "event_type must be a string", event_id)
    if event_type not in EVENT_TYPES:
        return Rejection(
            RejectReason.unknown_event_type, f"unknown event_type {event_type[:64]!r}", event_id
        )
    try:
        event = EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"][1:]) or "event"
        return Rejection(RejectReason.schema, f"{where}: {err['msg']}", event_id, event_type)
    if event.occurred_at_us < cfg.genesis_us or (
        isinstance(event, PingBatch)
        and any(time_to_us(p.occurred_at) < cfg.genesis_us for p in event.pings)
    ):
        return Rejection(RejectReason.before_genesis, "occurred_at is before genesis", event_id, event_type)
    if isinstance(event, JobCompleted):
        started_us, ended_us = time_to_us(event.started_at), time_to_us(event.ended_at)
        if started_us < cfg.genesis_us:
            return Rejection(RejectReason.before_genesis, "started_at is before genesis", event_id, event_type)
        if ended_us < started_us:
            return Rejection(RejectReason.invalid_window, "ended_at is before started_at", event_id, event_type)
    if arrived_at_us is not None:
        latest_us = get_latest_time_us(event)
        if is_from_future(latest_us, arrived_at_us, cfg):
            return Rejection(RejectReason.from_future, future_detail(latest_us, arrived_at_us, cfg),
                             event_id, event_type)
    return Accepted(event, canonical_json(event.model_dump(mode="json")))


def future_detail(latest_us: int, arrived_at_us: int, cfg: RulesetConfig = RULESET_V1) -> str:
    return (f"occurred_at is {(latest_us - arrived_at_us) / 1e6:.0f} s after its arrival time"
            f" (more than {cfg.max_future_skew_s} s)")


def expand_batch(batch: PingBatch) -> list[Ping]:
    """A ping.batch's inner pings as ping events with ids `<batch event_id>:<index>`.

    Inner ids may exceed 128 characters (§10), so they are built without re-validation.
    """
    return [
        Ping.model_construct(
            event_id=f"{batch.event_id}:{i}",
            event_type="ping",
            schema_version=1,
            node_id=p.node_id,
            occurred_at=p.occurred_at,
            checker_id=batch.checker_id,
            reachable=p.reachable,
            rtt_ms=p.rtt_ms,
        )
        for i, p in enumerate(batch.pings)
    ]


def time_raw_json(value: Any) -> str:
    """The written form of a time, as JSON text (a quoted string or bare digits)."""
    return orjson.dumps(value).decode()


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
