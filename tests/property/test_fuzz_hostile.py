"""Fuzz: hostile lines (tests/hostile.py) beside a small simulated network, through `epochal
replay` and through the stream's ingest (the closer, in this process; tests/integration/
test_streams_fuzz.py sends them over the real broker). Invariants, for every example:

- no crash: the command exits 0 (a user-visible error would be one sentence, never here);
- the counts add up: non-blank lines (replay) or messages (stream) = accepted + exact duplicates
  + rejected, the archive holds the accepted ones and rejected_events the rejected ones;
- every closed epoch verifies (recomputed from the archive, identical);
- nothing is accepted twice: event ids are unique over the archive's pings (inner ones included)
  and events;
- what was printed shows the data as written (the display commands run on the result).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings

from epochal.cli_common import shown
from hostile import Context, check_store, context_from_files, hostile_lines

GENESIS_MS = 1767225600000
HOURS = 6
ARRIVED_MS = GENESIS_MS + (HOURS + 1) * 3_600_000  # the replay's pinned arrival: an hour after the network
# Each example replays and closes the whole network (~1 s of CPU, most of it the 6 closes and
# their verification), so examples are few and large: up to 60 hostile lines each.
SUITE = dict(deadline=None, database=None,
             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                    HealthCheck.data_too_large, HealthCheck.large_base_example])
MAX_LINES = 60


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> tuple[Path, Context]:
    from epochal.sim import simulate

    out = tmp_path_factory.mktemp("fuzz-network")
    simulate(4, HOURS, 11, out)
    files = sorted(out.glob("*.jsonl"))
    return out, context_from_files(files, future_ms=ARRIVED_MS + 400 * 86_400_000)


_CTX = Context([], [], GENESIS_MS, GENESIS_MS + HOURS * 3_600_000, ARRIVED_MS + 400 * 86_400_000)


def run_cli(*args) -> tuple[int, str, str]:
    from epochal.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def non_blank(data: bytes) -> int:
    return sum(1 for line in data.split(b"\n") if line.strip())


@settings(max_examples=15, **SUITE)
@given(lines=hostile_lines(_CTX, MAX_LINES))
def test_hostile_lines_replayed_beside_a_network(network, tmp_path_factory, lines):
    folder, ctx = network
    _ = ctx  # (the strategy's context is fixed at collection: the network's span is known beforehand)
    tmp = tmp_path_factory.mktemp("fuzz-replay")
    hostile = tmp / "hostile.jsonl"
    hostile.write_bytes(b"\n".join(lines) + b"\n")
    expected = non_blank(hostile.read_bytes()) + sum(non_blank(f.read_bytes()) for f in folder.glob("*.jsonl"))
    db = tmp / "s.duckdb"
    code, out, err = run_cli("replay", folder, hostile, "--db", db, "--arrived-at", ARRIVED_MS)
    assert code == 0, err
    assert out.startswith("read 6 file(s)")
    check_store(db, expected)
    con = duckdb.connect(str(db), read_only=True)
    last = con.execute("SELECT max(reward_epoch) FROM reward_epochs").fetchall()[0][0]
    odd = con.execute("SELECT node_id FROM node_epoch_scores WHERE node_id NOT LIKE 'node-%' LIMIT 2").fetchall()
    con.close()
    if last is not None:
        code, out, err = run_cli("epoch", "show", last, "--db", db, "--top", 50)
        assert code == 0, err
    for (node,) in odd:
        code, out, err = run_cli("node", "show", node, "--db", db)
        assert code == 0 and f"node {shown(node)}: " in out, err


@settings(max_examples=10, **SUITE)
@given(lines=hostile_lines(_CTX, MAX_LINES))
def test_hostile_messages_through_the_stream_closer(network, tmp_path_factory, lines):
    """The live path's ingest: the closer archives micro-batches of Kafka messages (here built in
    this process, the base network first, then the hostile messages in two batches)."""
    from streams.closer import Closer
    from streams.publish import iter_messages
    from streams.segments import Message

    folder, _ctx = network
    tmp = tmp_path_factory.mktemp("fuzz-stream")
    received_us = ARRIVED_MS * 1000
    base = [(t, v) for t, _k, v in iter_messages(sorted(folder.glob("*.jsonl")), time_order=True)]
    offsets: dict[tuple[str, int], int] = {}
    msgs = []
    for topic, value in base + [("epochal.pings" if i % 2 else "epochal.nodes", v) for i, v in enumerate(lines)]:
        part = len(msgs) % 2
        off = offsets.get((topic, part), -1) + 1
        offsets[(topic, part)] = off
        msgs.append(Message(topic, part, off, value, received_us))
    db = tmp / "s.duckdb"
    closer = Closer.open(db, tmp / "segments")
    try:
        closer.set_ping_partitions([0, 1], received_us / 1e6)
        cut = len(base) + len(lines) // 2
        for batch in (msgs[:len(base)], msgs[len(base):cut], msgs[cut:]):
            closer.step(now_s=received_us / 1e6, batch=batch)
        t = closer.totals
        assert t.inputs == len(msgs) and t.inputs == t.accepted + t.duplicates + t.rejected
    finally:
        closer.close()
    check_store(db, len(msgs))
