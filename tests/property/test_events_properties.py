"""Properties of the event contract (contract.md "Events", ruleset §10): bad input is data with
a reason, never an exception; the canonical form ignores key order, whitespace and 5 vs 5.0;
both time forms name the same microsecond."""

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.events import Accepted, Rejection, parse_line

GENESIS = datetime(2026, 1, 1, tzinfo=timezone.utc)
GENESIS_US = 1_767_225_600_000_000

PING = {
    "event_id": "p1", "event_type": "ping", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "checker_id": "c1", "reachable": True, "rtt_ms": 12.5,
}
BENCHMARK = {
    "event_id": "b1", "event_type": "benchmark", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "gpu_model": "H100", "gpu_count": 8,
    "fp32_tflops": 66.0, "mem_bandwidth_gbps": 3300.0, "vram_gb": 80.0,
    "gpu_fingerprints": ["f1", "f2"], "download_mbps": 900.0, "upload_mbps": 800.0, "ip": "10.0.0.2",
}
BATCH = {
    "event_id": "batch-1", "event_type": "ping.batch", "schema_version": 1, "node_id": "chk",
    "occurred_at": 1767225660000, "checker_id": "chk",
    "pings": [
        {"node_id": "n1", "occurred_at": "2026-01-01T00:00:10Z", "reachable": True, "rtt_ms": 3.0},
        {"node_id": "n2", "occurred_at": 1767225620000, "reachable": False, "rtt_ms": None},
    ],
}
VALID = [PING, BENCHMARK, BATCH]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def permuted(obj, rnd):
    """The same JSON value with every object's keys in a random order."""
    if isinstance(obj, dict):
        items = [(k, permuted(v, rnd)) for k, v in obj.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(obj, list):
        return [permuted(v, rnd) for v in obj]
    return obj


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_rejection_or_an_event_never_an_exception(raw):
    assert isinstance(parse_line(raw), (Accepted, Rejection))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.sampled_from(sorted({k for e in VALID for k in e})), json_values)
def test_a_valid_event_with_one_field_replaced_by_any_json_gives_a_result_never_an_exception(base, key, value):
    event = dict(base)
    event[key] = value
    out = parse_line(json.dumps(event).encode())
    assert isinstance(out, (Accepted, Rejection))
    if isinstance(out, Accepted):
        assert parse_line(out.canonical).canonical == out.canonical


@given(st.sampled_from(VALID), st.randoms(use_true_random=False), st.sampled_from([None, 0, 1, 4, "\t"]),
       st.sampled_from([(",", ":"), (", ", ": "), (" ,  ", " :\t")]))
def test_the_canonical_form_ignores_key_order_and_whitespace(base, rnd, indent, separators):
    reference = parse_line(json.dumps(base).encode())
    assert isinstance(reference, Accepted)
    other = json.dumps(permuted(base, rnd), indent=indent, separators=separators).encode()
    assert parse_line(other).canonical == reference.canonical


@given(st.integers(0, 2**53), st.sampled_from(["fp32_tflops", "mem_bandwidth_gbps", "vram_gb", "download_mbps"]))
def test_an_integer_and_the_equal_float_in_a_float_field_are_the_same_value(n, field):
    as_int = parse_line(json.dumps({**BENCHMARK, field: n}).encode())
    as_float = parse_line(json.dumps({**BENCHMARK, field: float(n)}).encode())
    assert isinstance(as_int, Accepted)
    assert as_int.canonical == as_float.canonical


instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(timezone.utc)
)
offsets_min = st.integers(-23 * 60 - 59, 23 * 60 + 59)


def rfc3339(dt_utc: datetime, offset_min: int, extra_digits: str) -> str:
    local = dt_utc + timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    hh, mm = divmod(abs(offset_min), 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + extra_digits + f"{sign}{hh:02d}:{mm:02d}"


@settings(max_examples=300)
@given(instants, offsets_min, st.text("0123456789", max_size=4))
def test_an_rfc3339_time_with_any_offset_names_its_utc_microsecond(dt, offset_min, extra):
    expected_us = GENESIS_US + (dt - GENESIS) // timedelta(microseconds=1)
    out = parse_line(json.dumps({**PING, "occurred_at": rfc3339(dt, offset_min, extra)}).encode())
    assert isinstance(out, Accepted), out
    assert out.event.occurred_at_us == expected_us


@given(st.integers(1_767_225_600_000, 253402300799999))
def test_epoch_milliseconds_and_the_equal_rfc3339_string_name_the_same_microsecond(ms):
    dt = GENESIS + timedelta(milliseconds=ms - 1_767_225_600_000)
    as_ms = parse_line(json.dumps({**PING, "occurred_at": ms}).encode())
    as_text = parse_line(json.dumps({**PING, "occurred_at": dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).encode())
    assert as_ms.event.occurred_at_us == as_text.event.occurred_at_us == ms * 1000


@given(st.integers(1, 10**6))
def test_any_time_before_genesis_is_before_genesis(us_before):
    dt = GENESIS - timedelta(microseconds=us_before)
    out = parse_line(json.dumps({**PING, "occurred_at": dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).encode())
    assert isinstance(out, Rejection) and out.reason.value == "before_genesis"
