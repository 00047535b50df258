"""Hypothesis strategies for hostile event lines (issue 13's fuzz suite), as an attacker or a
careless producer writes them: broken JSON, lone surrogates, control characters, huge and odd
numbers, odd times, ids that collide (with the network's own, across batches, inner ids
`B:i`), rich markup in ids, deep nesting, blank and whitespace lines, exact and conflicting
repeats of earlier lines.

    lines = draw(hostile_lines(Context(base_ids=[...], first_ms=..., last_ms=..., future_ms=...)))

`Context` says where the network's own events lie (`first_ms`..`last_ms`, their ids) and a time
that is surely after the arrival time of the run (`future_ms`), so that generated times are
either inside the network's hours, before genesis, or far ahead: never a time between the
network's end and the arrival time, which a correct engine would accept and close epochs up to
(legitimately, and slowly).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from hypothesis import strategies as st

GENESIS_MS = 1767225600000
WALLET = "AH4xH7cNhkZaWmyz19NSxp989nr4aVchPe1hdwgZZR7o"
RAW = "@@RAW@@"  # a string value "@@RAW@@<token>" is written as the bare token <token>


@dataclass
class Context:
    base_ids: list[str]
    base_nodes: list[str]
    first_ms: int
    last_ms: int
    future_ms: int
    base_lines: list[bytes] = field(default_factory=list)


MARKUP = ["[/x]", "[bold]zzz", "[link=http://x]y[/link]", "[/]", "[red]", "\\[x]", "[b][/i]"]
ODD_TEXT = ["", " ", "x" * 128, "x" * 129, "ü" * 128, "a\nb", "tab\there", "nul\x00", "\u2028", "\x1b[31mred",
            "\ud800", "\udfff\ud800", "\U0001F600", "é", "'; DROP TABLE archive_pings; --", "a,b", "},{", ":0", "%s",
            "{}", "null"]
RAW_NUMBERS = ["1e309", "-1e309", "18446744073709551616", "9223372036854775808", "1" + "0" * 400, "1e-400",
               "NaN", "Infinity", "-Infinity", "-0", "0.0", "1E2", "01", "1.", ".5", "0x10", "+1", "1_000"]


def _raw(token: str) -> str:
    return RAW + token


def _text(draw) -> str:
    return draw(st.one_of(st.sampled_from(MARKUP + ODD_TEXT),
                          st.text(max_size=20),
                          st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=8)))


def _id(draw, ctx: Context, batch_ids: list[str]) -> object:
    choice = draw(st.integers(0, 9))
    if choice <= 2 and ctx.base_ids:
        return draw(st.sampled_from(ctx.base_ids))  # collides with the network's own events
    if choice <= 4 and batch_ids:
        b = draw(st.sampled_from(batch_ids))
        return f"{b}:{draw(st.integers(0, 3))}"  # an inner id of a hostile batch
    if choice == 5:
        return draw(st.sampled_from([5, None, True, [], {}]))
    if choice <= 7:
        return _text(draw)
    return f"h-{draw(st.integers(0, 40))}"  # hostile ids repeat among themselves


def _node(draw, ctx: Context) -> object:
    choice = draw(st.integers(0, 6))
    if choice <= 3 and ctx.base_nodes:
        return draw(st.sampled_from(ctx.base_nodes))
    if choice == 4:
        return draw(st.sampled_from(MARKUP))
    if choice == 5:
        return _text(draw)
    return f"hn-{draw(st.integers(0, 5))}"


def _time(draw, ctx: Context) -> object:
    choice = draw(st.integers(0, 11))
    inside = draw(st.integers(ctx.first_ms, ctx.last_ms))
    if choice <= 3:
        return inside
    if choice <= 5:
        from datetime import datetime, timezone

        t = datetime.fromtimestamp(inside / 1000, tz=timezone.utc)
        frac = draw(st.sampled_from(["", ".5", ".123456", ".123456789", ".1234567891234"]))
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "+05:30", "-01:00"]))
        text = t.strftime("%Y-%m-%dT%H:%M:%S") + frac + ("Z" if zone in ("Z", "z") else "")
        if zone not in ("Z", "z"):  # the same instant written in another offset
            from datetime import timedelta

            sign = 1 if zone[0] == "+" else -1
            local = t + sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            text = local.strftime("%Y-%m-%dT%H:%M:%S") + frac + zone
        return text.replace("T", "t") if zone == "z" else text
    if choice == 6:
        return draw(st.sampled_from([GENESIS_MS - 1, 0, "1970-01-01T00:00:00Z", "2025-12-31T23:59:59.999999Z",
                                     GENESIS_MS]))
    if choice == 7:
        return draw(st.sampled_from([ctx.future_ms, 253402300799999, "9999-12-31T23:59:59Z",
                                     "9999-12-31T23:59:59.999999+00:00"]))
    if choice == 8:
        return draw(st.sampled_from(["2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z",
                                     "2026-01-01 00:00:00Z", "2026-01-01T00:00:00", "", "now", "+2026-01-01T00:00:00Z",
                                     "２０２６-01-01T00:00:00Z", "2026-01-01T00:00:00+24:00"]))
    if choice == 9:
        return draw(st.sampled_from([-1, 253402300800000, 1.7672256e12, True, None, [], {},
                                     _raw("1767225600000.0"), _raw("1e13")]))
    return _raw(draw(st.sampled_from(RAW_NUMBERS)))


def _measure(draw) -> object:
    return draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e6),
                          st.sampled_from([0, -1, 1e308, "12", None, True, _raw("1e309"), _raw("NaN"),
                                           _raw("1" + "0" * 400)])))


def _base_units(draw) -> object:
    return draw(st.sampled_from([0, 1, 3_000_000, 2**63 - 1, 2**63, 2**64, -1, 1.5, "5", None,
                                 _raw("1" + "0" * 60)]))


@st.composite
def hostile_event(draw, ctx: Context, batch_ids: list[str]) -> dict:
    kind = draw(st.sampled_from(["ping", "ping", "ping.batch", "ping.batch", "node.registered",
                                 "node.stake_changed", "job.completed", "appeal.upheld", "benchmark", "odd"]))
    ev: dict = {"event_id": _id(draw, ctx, batch_ids), "event_type": kind, "schema_version": 1,
                "node_id": _node(draw, ctx), "occurred_at": _time(draw, ctx)}
    if kind == "ping":
        ev.update(checker_id=draw(st.sampled_from(["chk", "[bold]c", ""])), reachable=draw(st.booleans()),
                  rtt_ms=_measure(draw))
    elif kind == "ping.batch":
        bid = draw(st.sampled_from([f"hb-{draw(st.integers(0, 4))}", "B"]))
        ev["event_id"] = bid
        batch_ids.append(bid)
        pings = []
        for _ in range(draw(st.integers(0, 4))):
            pings.append({"node_id": _node(draw, ctx), "occurred_at": _time(draw, ctx),
                          "reachable": draw(st.sampled_from([True, False, 1, None])), "rtt_ms": _measure(draw)})
        ev.update(checker_id="chk", pings=pings)
    elif kind == "node.registered":
        ev.update(wallet=draw(st.sampled_from([WALLET, "0" * 32, "", 5])),
                  gpu_model=draw(st.sampled_from(["H100", "NVIDIA GeForce RTX 4090", "[bold]GPU", "x" * 300])),
                  gpu_count=draw(st.sampled_from([1, 8, 0, 65, 2**70, True])), region="eu",
                  ip=draw(st.sampled_from(["10.0.0.1", "::1", "999.1.1.1", ""])), stake_base_units=_base_units(draw))
    elif kind == "node.stake_changed":
        ev.update(stake_base_units=_base_units(draw))
    elif kind == "job.completed":
        ev.update(job_id=draw(st.sampled_from(["j-1", "j-2", "[/job]"])), buyer_id="b",
                  started_at=_time(draw, ctx), ended_at=_time(draw, ctx), committed_until=_time(draw, ctx),
                  status=draw(st.sampled_from(["succeeded", "failed_node", "failed_user", "cancelled", "lost"])),
                  gpu_hours=_measure(draw), fee_base_units=_base_units(draw))
    elif kind == "appeal.upheld":
        ev.update(decision_id=draw(st.sampled_from(["d" * 64, "", "[/x]"])))
    elif kind == "benchmark":
        ev.update(gpu_model="H100", gpu_count=draw(st.sampled_from([1, 8, 0])), fp32_tflops=_measure(draw),
                  mem_bandwidth_gbps=_measure(draw), vram_gb=_measure(draw),
                  gpu_fingerprints=draw(st.sampled_from([["fp-1"], ["fp-1", "fp-1"], [], ["\ud800"], [5]])),
                  download_mbps=1.0, upload_mbps=1.0, ip="10.0.0.1")
    else:
        ev["event_type"] = draw(st.sampled_from(["Ping", "node.deleted", "", 5, None, "[bold]x", "ping "]))
    for _ in range(draw(st.integers(0, 2))):  # a field dropped, replaced or added
        what = draw(st.sampled_from(["drop", "replace", "add"]))
        key = draw(st.sampled_from(sorted(ev)))
        if what == "drop":
            ev.pop(key, None)
        elif what == "replace":
            ev[key] = draw(st.sampled_from([None, 5, "x", [], {}, _raw("1e309"), _raw("[" * 3000 + "]" * 3000)]))
        else:
            ev[draw(st.sampled_from(["extra", "pings", "event_id2", ""]))] = 1
    return ev


def _dumps(draw, ev: dict) -> bytes:
    style = draw(st.sampled_from(["compact", "compact", "spaced", "ascii", "reordered"]))
    if style == "reordered":
        ev = dict(reversed(list(ev.items())))
    seps = (",", ":") if style in ("compact", "reordered") else (", ", ": ")
    text = json.dumps(ev, separators=seps, ensure_ascii=(style == "ascii"))
    while RAW in text:  # bare tokens (numbers JSON cannot hold, NaN, deep nesting)
        start = text.index('"' + RAW)
        end = text.index('"', start + 1 + len(RAW))
        text = text[:start] + text[start + 1 + len(RAW):end] + text[end + 1:]
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate written as bytes: not UTF-8


@st.composite
def hostile_line(draw, ctx: Context, batch_ids: list[str], earlier: list[bytes]) -> bytes:
    kind = draw(st.integers(0, 19))
    if kind <= 9:
        return _dumps(draw, draw(hostile_event(ctx, batch_ids)))
    if kind == 10 and earlier:
        return draw(st.sampled_from(earlier))  # an exact repeat
    if kind == 11 and ctx.base_lines:
        line = draw(st.sampled_from(ctx.base_lines))
        obj = json.loads(line)
        if draw(st.booleans()) and isinstance(obj, dict):
            obj["occurred_at"] = _time(draw, ctx)  # a conflicting repeat of the network's own event
            return _dumps(draw, obj)
        return line  # an exact one
    if kind == 12:
        base = _dumps(draw, draw(hostile_event(ctx, batch_ids)))
        cut = draw(st.integers(0, max(0, len(base) - 1)))
        return base[:cut]  # truncated
    if kind == 13:
        base = bytearray(_dumps(draw, draw(hostile_event(ctx, batch_ids))))
        if base:
            i = draw(st.integers(0, len(base) - 1))
            base[i] = draw(st.sampled_from([0x00, 0x0B, 0x0D, 0x80, 0xFF, 0xC3, 0xED]))
        return bytes(base)
    if kind == 14:
        return draw(st.sampled_from([b"", b" ", b" " * 70, b"\t\r", b"\x0b\x0c", b"\r", b"null", b"[]", b"{}",
                                     b'"ping"', b"1", b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
                                     b"\xef\xbb\xbf{}", b'{"event_id":"\\ud800","event_type":"nope"}']))
    if kind == 15:
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    if kind == 16:  # one inner id of a batch taken by a plain ping, or the other way round
        bid = f"hb-{draw(st.integers(0, 4))}"
        batch_ids.append(bid)
        ev = draw(hostile_event(ctx, batch_ids))
        ev["event_id"] = f"{bid}:{draw(st.integers(0, 3))}"
        return _dumps(draw, ev)
    if kind == 17:  # a compact plain ping for the fast path, valid but for one odd detail
        ev = {"event_id": f"fp-{draw(st.integers(0, 50))}", "event_type": "ping", "schema_version": 1,
              "node_id": _node(draw, ctx), "occurred_at": _time(draw, ctx), "checker_id": "chk",
              "reachable": True, "rtt_ms": _measure(draw)}
        return _dumps(draw, ev)
    if kind == 18:  # too large
        return b'{"event_id":"big","event_type":"ping","pad":"' + b"x" * ((1 << 20) + 1) + b'"}'
    return json.dumps(draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                          max_size=3),
                                        max_leaves=10))).encode()


@st.composite
def hostile_lines(draw, ctx: Context, max_lines: int = 25) -> list[bytes]:
    batch_ids: list[str] = []
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, max_lines))):
        line = draw(hostile_line(ctx, batch_ids, out))
        out.append(line.replace(b"\n", b"\\n"))  # one line each (a raw newline would make two)
    return out


def context_from_files(files, future_ms: int) -> Context:
    """The network's ids, nodes and time span, read from its event files."""
    ids, nodes, times, lines = [], set(), [], []
    for f in files:
        for line in f.read_bytes().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            lines.append(line)
            if isinstance(obj.get("event_id"), str):
                ids.append(obj["event_id"])
            if isinstance(obj.get("node_id"), str):
                nodes.add(obj["node_id"])
            if isinstance(obj.get("occurred_at"), int):
                times.append(obj["occurred_at"])
    rnd = random.Random(0)
    return Context(base_ids=rnd.sample(ids, min(40, len(ids))), base_nodes=sorted(nodes)[:20],
                   first_ms=min(times), last_ms=max(times), future_ms=future_ms,
                   base_lines=rnd.sample(lines, min(40, len(lines))))


def check_store(db, expected_inputs: int) -> None:
    """The fuzz invariants on a store: the runs' inputs are the inputs sent and add up (accepted +
    exact duplicates + rejected), the archive holds the accepted ones and rejected_events the
    rejected ones, no event id is accepted twice, and every closed epoch verifies."""
    from store.db import connect
    from epochal.verify import verify_epoch

    con = connect(db, create=False, read_only=True)
    try:
        runs = con.execute("SELECT sum(inputs), sum(accepted), sum(duplicates), sum(rejected) FROM ingest_runs"
                           ).fetchall()[0]
        inputs, accepted, duplicates, rejected = (int(x or 0) for x in runs)
        assert inputs == expected_inputs, (inputs, expected_inputs)
        assert inputs == accepted + duplicates + rejected
        archived = con.execute("SELECT (SELECT count(*) FROM archive_pings WHERE batch_event_id IS NULL)"
                               " + (SELECT count(*) FROM archive_events)").fetchall()[0][0]
        assert archived == accepted
        assert con.execute("SELECT count(*) FROM rejected_events").fetchall()[0][0] == rejected
        ids = [r[0] for r in con.execute(
            "SELECT event_id FROM archive_pings UNION ALL SELECT event_id FROM archive_events").fetchall()]
        assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:5]
        for (e,) in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall():
            assert verify_epoch(con, e) == [], e
    finally:
        con.close()
