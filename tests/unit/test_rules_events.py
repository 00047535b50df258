"""The event contract by hand (contract.md "Events", ruleset §10 ingest bounds and time
resolution): each rejection reason, both time forms, ping.batch expansion, canonical form."""

import json

import base58
import pytest

from scoring.events import (
    Accepted,
    Ping,
    PingBatch,
    Rejection,
    RejectReason,
    expand_batch,
    parse_line,
    parse_rfc3339_us,
)

GENESIS_US = 1_767_225_600_000_000
WALLET = base58.b58encode(bytes(range(32))).decode()  # 32 bytes, 42 characters

PING = {
    "event_id": "p1", "event_type": "ping", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "checker_id": "c1", "reachable": True, "rtt_ms": 12.5,
}
REGISTERED = {
    "event_id": "r1", "event_type": "node.registered", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "wallet": WALLET, "gpu_model": "NVIDIA H100",
    "gpu_count": 8, "region": "eu-west", "ip": "10.0.0.1", "stake_base_units": 1_000_000,
}
STAKE = {
    "event_id": "s1", "event_type": "node.stake_changed", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "stake_base_units": 5,
}
JOB = {
    "event_id": "j1", "event_type": "job.completed", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T02:00:00Z", "job_id": "job-1", "buyer_id": "b1",
    "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T01:00:00Z",
    "committed_until": "2026-01-01T01:00:00Z", "status": "succeeded", "gpu_hours": 1.0,
    "fee_base_units": 100,
}
APPEAL = {
    "event_id": "a1", "event_type": "appeal.upheld", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "decision_id": "d" * 64,
}
BENCHMARK = {
    "event_id": "b1", "event_type": "benchmark", "schema_version": 1, "node_id": "n1",
    "occurred_at": "2026-01-01T00:00:00Z", "gpu_model": "H100", "gpu_count": 8,
    "fp32_tflops": 66.0, "mem_bandwidth_gbps": 3300.0, "vram_gb": 80.0,
    "gpu_fingerprints": ["f1", "f2"], "download_mbps": 900.0, "upload_mbps": 800.0,
    "ip": "2001:db8::1",
}
BATCH = {
    "event_id": "batch-7", "event_type": "ping.batch", "schema_version": 1, "node_id": "checker-1",
    "occurred_at": "2026-01-01T00:01:00Z", "checker_id": "checker-1",
    "pings": [
        {"node_id": "n1", "occurred_at": "2026-01-01T00:00:10Z", "reachable": True, "rtt_ms": 3},
        {"node_id": "n2", "occurred_at": 1767225620000, "reachable": False, "rtt_ms": None},
        {"node_id": "n1", "occurred_at": "2026-01-01T00:00:30Z", "reachable": True},
    ],
}
ALL_TYPES = [PING, REGISTERED, STAKE, JOB, APPEAL, BENCHMARK, BATCH]


def line(base: dict, **changes) -> bytes:
    event = dict(base)
    for k, v in changes.items():
        if v is DROP:
            del event[k]
        else:
            event[k] = v
    return json.dumps(event).encode()


DROP = object()


def reason_of(raw: bytes) -> RejectReason | None:
    out = parse_line(raw)
    return out.reason if isinstance(out, Rejection) else None


def accepted(raw: bytes):
    out = parse_line(raw)
    assert isinstance(out, Accepted), out
    return out.event


# acceptance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ALL_TYPES, ids=lambda e: e["event_type"])
def test_a_valid_event_of_every_type_is_accepted(event):
    assert type(accepted(line(event))).__name__ in {
        "Ping", "NodeRegistered", "NodeStakeChanged", "JobCompleted", "AppealUpheld", "Benchmark", "PingBatch",
    }


def test_optional_fields_may_be_left_out():
    assert accepted(line(PING, rtt_ms=DROP)).rtt_ms is None
    assert accepted(line(REGISTERED, operator_id="op-1")).operator_id == "op-1"


# rejection reasons ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"a": NaN}', b"\xff\xfe{}", b'{"a": 1,}'])
def test_a_line_that_is_not_json_is_invalid_json(raw):
    assert reason_of(raw) == RejectReason.invalid_json


def test_a_line_over_one_mebibyte_is_too_large():
    raw = line(PING)
    padded = raw[:-1] + b" " * (2**20 + 1 - len(raw)) + b"}"
    assert len(padded) == 2**20 + 1
    assert reason_of(padded) == RejectReason.too_large


def test_a_line_of_exactly_one_mebibyte_is_not_too_large():
    raw = line(PING)
    padded = raw[:-1] + b" " * (2**20 - len(raw)) + b"}"
    assert len(padded) == 2**20
    assert isinstance(parse_line(padded), Accepted)


def test_an_unknown_event_type_is_unknown_event_type():
    assert reason_of(line(PING, event_type="node.deleted")) == RejectReason.unknown_event_type


def test_a_non_string_event_type_is_schema():
    assert reason_of(line(PING, event_type=5)) == RejectReason.schema
    assert reason_of(line(PING, event_type=DROP)) == RejectReason.schema


def test_a_json_value_that_is_not_an_object_is_schema():
    assert reason_of(b"[1, 2]") == RejectReason.schema
    assert reason_of(b'"ping"') == RejectReason.schema


@pytest.mark.parametrize(
    "base, field, value",
    [
        (PING, "reachable", "true"),
        (PING, "reachable", 1),
        (PING, "rtt_ms", "12"),
        (PING, "rtt_ms", -1.0),
        (PING, "checker_id", 7),
        (PING, "node_id", ""),
        (PING, "event_id", "x" * 129),
        (REGISTERED, "gpu_count", "8"),
        (REGISTERED, "gpu_count", 8.0),
        (REGISTERED, "stake_base_units", 1.5),
        (REGISTERED, "ip", "999.0.0.1"),
        (JOB, "status", "lost"),
        (JOB, "started_at", 1.5),
        (JOB, "gpu_hours", None),
        (BENCHMARK, "gpu_fingerprints", "f1"),
        (BENCHMARK, "vram_gb", "80"),
    ],
)
def test_a_field_of_the_wrong_type_or_shape_is_schema(base, field, value):
    assert reason_of(line(base, **{field: value})) == RejectReason.schema


@pytest.mark.parametrize("base", [PING, REGISTERED, BATCH], ids=lambda e: e["event_type"])
def test_an_extra_field_is_schema(base):
    assert reason_of(line(base, colour="blue")) == RejectReason.schema


def test_a_missing_required_field_is_schema():
    assert reason_of(line(PING, reachable=DROP)) == RejectReason.schema
    assert reason_of(line(REGISTERED, wallet=DROP)) == RejectReason.schema


@pytest.mark.parametrize(
    "base, field",
    [
        (REGISTERED, "gpu_count"),
        (REGISTERED, "stake_base_units"),
        (PING, "schema_version"),
        (STAKE, "stake_base_units"),
        (JOB, "fee_base_units"),
        (PING, "rtt_ms"),
        (BENCHMARK, "fp32_tflops"),
        (PING, "occurred_at"),
    ],
)
def test_a_boolean_where_a_number_belongs_is_schema(base, field):
    assert reason_of(line(base, **{field: True})) == RejectReason.schema


def test_schema_version_2_is_schema():
    assert reason_of(line(PING, schema_version=2)) == RejectReason.schema
    assert reason_of(line(PING, schema_version="1")) == RejectReason.schema


@pytest.mark.parametrize(
    "wallet",
    [
        base58.b58encode(b"\x01" * 31).decode(),  # 31 bytes, 41 characters
        base58.b58encode(b"\x01" * 33).decode(),  # 33 bytes
        "0" * 32,  # '0' is not in the base58 alphabet
        "I" * 40,  # neither is 'I'
        "",
    ],
)
def test_a_wallet_that_is_not_32_bytes_of_base58_is_schema(wallet):
    assert reason_of(line(REGISTERED, wallet=wallet)) == RejectReason.schema


def test_a_wallet_of_32_zero_bytes_is_accepted():
    assert accepted(line(REGISTERED, wallet="1" * 32)).wallet == "1" * 32


def test_gpu_count_is_bounded_1_to_64():
    assert reason_of(line(REGISTERED, gpu_count=0)) == RejectReason.schema
    assert reason_of(line(REGISTERED, gpu_count=65)) == RejectReason.schema
    assert reason_of(line(BENCHMARK, gpu_count=0)) == RejectReason.schema
    assert accepted(line(REGISTERED, gpu_count=1)).gpu_count == 1
    assert accepted(line(REGISTERED, gpu_count=64)).gpu_count == 64


def test_base_units_are_bounded_0_to_two_to_the_63_minus_1():
    assert reason_of(line(REGISTERED, stake_base_units=2**63)) == RejectReason.schema
    assert reason_of(line(STAKE, stake_base_units=2**64)) == RejectReason.schema  # past u64
    assert reason_of(line(STAKE, stake_base_units=10**30)) == RejectReason.schema
    assert reason_of(line(STAKE, stake_base_units=-1)) == RejectReason.schema
    assert reason_of(line(JOB, fee_base_units=2**63)) == RejectReason.schema
    assert accepted(line(STAKE, stake_base_units=2**63 - 1)).stake_base_units == 2**63 - 1
    assert accepted(line(STAKE, stake_base_units=0)).stake_base_units == 0


def test_an_event_before_genesis_is_before_genesis():
    assert reason_of(line(PING, occurred_at="2025-12-31T23:59:59.999999Z")) == RejectReason.before_genesis
    assert reason_of(line(PING, occurred_at=1767225599999)) == RejectReason.before_genesis
    assert reason_of(line(REGISTERED, occurred_at="2026-01-01T00:59:59+01:00")) == RejectReason.before_genesis


def test_a_job_that_started_before_genesis_is_before_genesis():
    # (amended 2026-12-07: a job dated 1970 counted decades of slots as downtime)
    assert reason_of(line(JOB, started_at="1970-01-01T00:00:00Z")) == RejectReason.before_genesis
    assert reason_of(line(JOB, started_at=1767225599999)) == RejectReason.before_genesis
    assert accepted(line(JOB, started_at=1767225600000)).job_id == "job-1"


def test_a_job_that_ends_before_it_starts_is_an_invalid_window():
    assert reason_of(line(JOB, ended_at="2025-12-31T23:00:00Z")) == RejectReason.invalid_window
    assert reason_of(line(JOB, started_at="2026-01-01T00:30:00Z", ended_at="2026-01-01T00:29:59.999999Z")) \
        == RejectReason.invalid_window
    assert accepted(line(JOB, ended_at="2026-01-01T00:00:00Z")).job_id == "job-1"  # an empty window is one


def test_an_event_more_than_five_minutes_after_its_arrival_is_from_future():
    arrived = GENESIS_US + 3_600_000_000  # 01:00

    def reason(raw):
        out = parse_line(raw, arrived_at_us=arrived)
        return out.reason if isinstance(out, Rejection) else None

    assert reason(line(PING, occurred_at="2026-01-01T01:05:00Z")) is None  # exactly 5 min: allowed
    assert reason(line(PING, occurred_at="2026-01-01T01:05:00.000001Z")) == RejectReason.from_future
    assert reason(line(JOB, occurred_at="2027-01-01T00:00:00Z")) == RejectReason.from_future
    late_inner = {**BATCH["pings"][0], "occurred_at": "2026-01-01T01:06:00Z"}  # one inner ping ahead
    assert reason(line(BATCH, pings=[*BATCH["pings"], late_inner])) == RejectReason.from_future
    assert parse_line(line(PING, occurred_at="2027-01-01T00:00:00Z")).event.node_id == "n1"  # no arrival: no check
    # the other reasons come first
    assert reason(line(PING, occurred_at="2027-01-01T00:00:00Z", reachable="yes")) == RejectReason.schema


def test_a_lone_surrogate_escape_is_not_json_this_engine_reads():
    # (a 41-byte line with one ended the ingest in a UnicodeEncodeError)
    assert reason_of(b'{"event_id":"\\ud800","event_type":"nope"}') == RejectReason.invalid_json
    assert reason_of(line(PING, node_id="\udfff")) == RejectReason.invalid_json
    assert reason_of(b'{"event_id":"x","event_type":"ping","\\udc00":1}') == RejectReason.invalid_json
    assert accepted(b'{"event_id":"x","event_type":"ping","schema_version":1,"node_id":"\\ud83d\\ude00",'
                    b'"occurred_at":1767225600000,"checker_id":"c","reachable":true}').node_id == "\U0001F600"


def test_an_event_exactly_at_genesis_is_accepted():
    assert accepted(line(PING, occurred_at="2026-01-01T01:00:00+01:00")).occurred_at_us == GENESIS_US


def test_a_rejection_carries_the_event_id_and_type_when_known():
    out = parse_line(line(PING, reachable="yes"))
    assert (out.reason, out.event_id, out.event_type) == (RejectReason.schema, "p1", "ping")


# times ---------------------------------------------------------------------------------------


def test_both_occurred_at_forms_give_the_same_microseconds():
    assert parse_rfc3339_us("2026-01-01T00:00:00Z") == GENESIS_US
    a = accepted(line(PING, occurred_at="2026-01-01T00:00:00Z"))
    b = accepted(line(PING, occurred_at=1767225600000))
    assert a.occurred_at_us == b.occurred_at_us == 1_767_225_600_000_000


def test_fraction_digits_beyond_the_microsecond_are_truncated_not_rounded():
    assert parse_rfc3339_us("2026-01-01T00:00:00.1234569Z") == GENESIS_US + 123_456
    assert parse_rfc3339_us("2026-01-01T00:00:00.999999999Z") == GENESIS_US + 999_999
    assert parse_rfc3339_us("2026-01-01T00:00:00.5Z") == GENESIS_US + 500_000
    assert parse_rfc3339_us("2026-01-01T00:00:00.000001Z") == GENESIS_US + 1


def test_offsets_are_applied():
    assert parse_rfc3339_us("2026-01-01T05:30:00+05:30") == GENESIS_US
    assert parse_rfc3339_us("2025-12-31T19:00:00-05:00") == GENESIS_US
    assert parse_rfc3339_us("2026-01-01T00:00:00+00:00") == GENESIS_US
    assert parse_rfc3339_us("2026-01-01T00:00:00-00:00") == GENESIS_US
    assert parse_rfc3339_us("2026-01-01t00:00:00z") == GENESIS_US
    assert parse_rfc3339_us("2026-01-01T12:00:00.25+01:00") == GENESIS_US + 11 * 3_600_000_000 + 250_000


def test_a_leap_day_exists_only_in_leap_years():
    assert parse_rfc3339_us("2028-02-29T00:00:00Z") == GENESIS_US + (365 + 365 + 31 + 28) * 86_400_000_000
    assert reason_of(line(PING, occurred_at="2026-02-29T00:00:00Z")) == RejectReason.schema


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00",  # no offset
        "2026-01-01",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00.Z",
        "yesterday",
        "",
    ],
)
def test_an_invalid_rfc3339_time_is_schema(text):
    assert reason_of(line(PING, occurred_at=text)) == RejectReason.schema


def test_a_non_integer_or_negative_epoch_milliseconds_time_is_schema():
    assert reason_of(line(PING, occurred_at=1767225600000.0)) == RejectReason.schema
    assert reason_of(line(PING, occurred_at=-1)) == RejectReason.schema
    assert reason_of(line(PING, occurred_at=10**20)) == RejectReason.schema


def test_an_rfc3339_time_with_a_trailing_newline_is_schema():
    assert reason_of(line(PING, occurred_at="2026-01-01T00:00:00Z\n")) == RejectReason.schema


def test_an_rfc3339_time_with_non_ascii_digits_is_schema():
    assert reason_of(line(PING, occurred_at="２０２６-01-01T00:00:00Z")) == RejectReason.schema


# ping.batch ----------------------------------------------------------------------------------


def test_a_batch_expands_to_pings_with_ids_batch_id_colon_index():
    batch = accepted(line(BATCH))
    assert isinstance(batch, PingBatch)
    pings = expand_batch(batch)
    assert [p.event_id for p in pings] == ["batch-7:0", "batch-7:1", "batch-7:2"]
    assert all(isinstance(p, Ping) and p.event_type == "ping" for p in pings)
    assert [p.node_id for p in pings] == ["n1", "n2", "n1"]
    assert [p.checker_id for p in pings] == ["checker-1"] * 3
    assert [p.reachable for p in pings] == [True, False, True]
    assert [p.rtt_ms for p in pings] == [3.0, None, None]


def test_inner_pings_keep_their_own_times():
    pings = expand_batch(accepted(line(BATCH)))
    assert [p.occurred_at_us for p in pings] == [
        GENESIS_US + 10_000_000, GENESIS_US + 20_000_000, GENESIS_US + 30_000_000,
    ]


def test_inner_ids_may_exceed_128_characters():
    batch = accepted(line(BATCH, event_id="b" * 128))
    ids = [p.event_id for p in expand_batch(batch)]
    assert ids[0] == "b" * 128 + ":0" and len(ids[0]) == 130


def test_one_invalid_inner_ping_rejects_the_whole_batch():
    bad = json.loads(json.dumps(BATCH))
    bad["pings"][1]["reachable"] = "no"
    assert reason_of(json.dumps(bad).encode()) == RejectReason.schema


def test_an_inner_ping_with_an_extra_field_rejects_the_batch():
    bad = json.loads(json.dumps(BATCH))
    bad["pings"][0]["event_id"] = "x"
    assert reason_of(json.dumps(bad).encode()) == RejectReason.schema


def test_one_inner_ping_before_genesis_rejects_the_whole_batch():
    bad = json.loads(json.dumps(BATCH))
    bad["pings"][2]["occurred_at"] = "2025-12-31T23:59:59Z"
    assert reason_of(json.dumps(bad).encode()) == RejectReason.before_genesis


def test_a_batch_holds_1_to_10000_pings():
    one = {"node_id": "n1", "occurred_at": 1767225600000, "reachable": True}
    assert reason_of(line(BATCH, pings=[])) == RejectReason.schema
    assert len(accepted(line(BATCH, pings=[one] * 10_000)).pings) == 10_000
    assert reason_of(line(BATCH, pings=[one] * 10_001)) == RejectReason.schema


# canonical form ------------------------------------------------------------------------------


def test_key_order_and_whitespace_do_not_change_the_canonical_form():
    a = json.dumps(REGISTERED).encode()
    b = json.dumps(dict(reversed(list(REGISTERED.items()))), indent=3).encode()
    assert a != b
    assert parse_line(a).canonical == parse_line(b).canonical


def test_key_order_inside_batch_pings_does_not_change_the_canonical_form():
    reordered = json.loads(json.dumps(BATCH))
    reordered["pings"] = [dict(reversed(list(p.items()))) for p in reordered["pings"]]
    assert parse_line(line(BATCH)).canonical == parse_line(json.dumps(reordered).encode()).canonical


def test_an_integer_and_the_equal_float_in_a_float_field_are_the_same_value():
    assert parse_line(line(PING, rtt_ms=5)).canonical == parse_line(line(PING, rtt_ms=5.0)).canonical
    assert (
        parse_line(line(BENCHMARK, vram_gb=80)).canonical
        == parse_line(line(BENCHMARK, vram_gb=80.0)).canonical
    )
    assert parse_line(line(PING, rtt_ms=5)).canonical != parse_line(line(PING, rtt_ms=5.5)).canonical


def test_a_different_value_gives_a_different_canonical_form():
    assert parse_line(line(PING)).canonical != parse_line(line(PING, reachable=False)).canonical


def test_the_two_time_forms_are_different_json_values():
    # equal instants, but "…Z" and 1767225600000 are two different JSON values (a conflict)
    a = parse_line(line(PING, occurred_at="2026-01-01T00:00:00Z"))
    b = parse_line(line(PING, occurred_at=1767225600000))
    assert a.canonical != b.canonical


def test_the_canonical_form_has_sorted_keys_and_no_whitespace():
    canonical = parse_line(line(STAKE)).canonical
    assert canonical == (
        b'{"event_id":"s1","event_type":"node.stake_changed","node_id":"n1",'
        b'"occurred_at":"2026-01-01T00:00:00Z","schema_version":1,"stake_base_units":5}'
    )


def test_parsing_the_canonical_form_gives_the_same_canonical_form():
    for event in ALL_TYPES:
        first = parse_line(line(event)).canonical
        assert parse_line(first).canonical == first


def test_a_left_out_optional_field_equals_an_explicit_null():
    # The reading chosen and documented in scoring/ruleset.py: a missing optional field and an
    # explicit null are the same event (the contract gives the field no other meaning).
    assert parse_line(line(PING, rtt_ms=DROP)).canonical == parse_line(line(PING, rtt_ms=None)).canonical


# bad input never raises ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"[" * 2000 + b"]" * 2000, b"[" * 100_000, b'{"a":' * 2000 + b"1" + b"}" * 2000],
    ids=["deep-array", "unterminated-deep-array", "deep-object"],
)
def test_a_deeply_nested_line_is_a_rejection_not_an_exception(raw):
    assert len(raw) <= 2**20
    assert reason_of(raw) in (RejectReason.invalid_json, RejectReason.schema)


def test_an_integer_too_large_for_a_float_in_a_float_field_is_schema():
    raw = line(PING, rtt_ms=10**400)
    assert reason_of(raw) == RejectReason.schema


def test_an_integer_within_float_range_in_a_float_field_is_accepted_as_a_float():
    assert accepted(line(PING, rtt_ms=2**64)).rtt_ms == float(2**64)
