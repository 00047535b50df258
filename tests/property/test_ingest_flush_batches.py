"""Pings are archived in batches while files are read (`store.ingest.FLUSH_PING_ROWS`). A batch
takes a whole number of DuckDB row groups of the pings read first (so it leaves no partial row
group for the checkpoint to merge again); the pings after them wait for the next batch, as if
not read yet, and the run's last batch takes them all. However the batches fall, the archive,
the rejections and the counts are those of a run archived in one batch."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings, strategies as st

import store.ingest as ingest
from hostile import WALLET
from store.db import connect

GENESIS_MS = 1767225600000
ARRIVED_US = (GENESIS_MS + 7 * 3_600_000) * 1000

ARCHIVE = {
    "archive_pings": "SELECT * FROM archive_pings ORDER BY arrival_seq, event_id",
    "archive_events": "SELECT * FROM archive_events ORDER BY arrival_seq",
    "rejected_events": "SELECT * EXCLUDE (received_at) FROM rejected_events ORDER BY arrival_seq",
    "ingest_runs": "SELECT inputs, accepted, duplicates, rejected, late, blank_lines FROM ingest_runs",
    # one row per batch and epoch: what adds up per epoch is the same
    "archive_ping_digests": "SELECT reward_epoch, max(last_arrival_seq), sum(pings), bit_xor(digest)"
                            " FROM archive_ping_digests GROUP BY 1 ORDER BY 1",
}


def ingested(paths: list[Path], db: Path, flush_rows: int, points: list | None = None) -> dict[str, list[tuple]]:
    saved = ingest.FLUSH_PING_ROWS
    ingest.FLUSH_PING_ROWS = flush_rows
    con = connect(db)
    try:
        def hook(point: str) -> None:
            if points is not None and point == "after_ping_flush":
                points.append(con.execute("SELECT count(*) FROM archive_pings").fetchall()[0][0])

        ingest.ingest_files(con, paths, arrived_at_us=ARRIVED_US, crash_hook=hook)
    finally:
        ingest.FLUSH_PING_ROWS = saved
        con.close()
    ro = duckdb.connect(str(db), read_only=True)
    try:
        return {name: ro.execute(sql).fetchall() for name, sql in ARCHIVE.items()}
    finally:
        ro.close()


def _ping(event_id: str, minute: int, rtt: float) -> dict:
    return {"event_id": event_id, "event_type": "ping", "schema_version": 1, "node_id": "n1",
            "occurred_at": GENESIS_MS + 60_000 * minute, "checker_id": "c", "reachable": True, "rtt_ms": rtt}


@st.composite
def colliding_lines(draw) -> list[bytes]:
    """Valid pings, ping batches and registrations whose ids collide: a plain ping's id a
    batch's or an event's, exact repeats and conflicting ones, in any order. (Not an inner id
    of a batch taken by another event: when the first read of such an id is rejected for one
    of its batch's inner ids, which of the later reads it is judged against depends on where
    the batches fall, as it did before batches took whole row groups; see `store.ingest`.)"""
    ids = ["p0", "p1", "p2", "r0"]
    out = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["ping", "ping", "batch", "registration", "repeat"]))
        if kind == "repeat" and out:
            out.append(draw(st.sampled_from(out)))
        elif kind == "batch":
            pings = [{k: v for k, v in _ping("", draw(st.integers(0, 3)), draw(st.sampled_from([1.0, 2.0]))).items()
                      if k in ("node_id", "occurred_at", "reachable", "rtt_ms")}
                     for _ in range(draw(st.integers(1, 3)))]
            out.append(json.dumps({"event_id": draw(st.sampled_from(["B0", "B1", "p0"])), "event_type": "ping.batch",
                                   "schema_version": 1, "node_id": "c", "occurred_at": GENESIS_MS,
                                   "checker_id": "c", "pings": pings}, separators=(",", ":")).encode())
        elif kind == "registration":
            out.append(json.dumps({"event_id": draw(st.sampled_from(ids)), "event_type": "node.registered",
                                   "schema_version": 1, "node_id": draw(st.sampled_from(["n1", "n2"])),
                                   "occurred_at": GENESIS_MS + draw(st.integers(0, 2)), "wallet": WALLET,
                                   "gpu_model": "H100", "gpu_count": 1, "region": "eu", "ip": "10.0.0.1",
                                   "stake_base_units": 1}).encode())
        else:
            ev = _ping(draw(st.sampled_from(ids)), draw(st.integers(0, 3)), draw(st.sampled_from([1.0, 2.0])))
            spaced = draw(st.booleans())  # the slow path or the fast one
            out.append(json.dumps(ev, separators=(", ", ": ") if spaced else (",", ":")).encode())
    return out


def assert_batches_change_nothing(tmp: Path, lines: list[bytes], files: int, flush_rows: int) -> None:
    """The lines in `files` consecutive files (a batch may follow each file's blocks), archived
    in batches of `flush_rows` and in one."""
    step = -(-len(lines) // files)
    paths = []
    for i in range(0, len(lines), step):
        paths.append(tmp / f"in-{i}.jsonl")
        paths[-1].write_bytes(b"\n".join(lines[i:i + step]) + b"\n")
    assert ingested(paths, tmp / "batched.duckdb", flush_rows) == ingested(paths, tmp / "one.duckdb", 1_000_000)


SUITE = dict(deadline=None, database=None,
             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                    HealthCheck.data_too_large])


@settings(max_examples=40, **SUITE)
@given(lines=colliding_lines(), files=st.integers(1, 4), flush_rows=st.sampled_from([1, 2, 3, 5, 8]))
def test_however_the_ping_batches_fall_colliding_ids_are_judged_the_same(tmp_path_factory, lines, files,
                                                                         flush_rows):
    assert_batches_change_nothing(tmp_path_factory.mktemp("flush"), lines, files, flush_rows)


def test_a_batch_read_while_files_are_read_takes_whole_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 5)
    path = tmp_path / "pings.jsonl"
    path.write_text("".join(json.dumps({
        "event_id": f"p{i}", "event_type": "ping", "schema_version": 1, "node_id": f"n{i % 3}",
        "occurred_at": GENESIS_MS + 60_000 * i, "checker_id": "c", "reachable": True, "rtt_ms": 3.0}) + "\n"
        for i in range(23)))
    points: list[int] = []
    tables = ingested([path], tmp_path / "s.duckdb", 8, points)
    # one block of 23 pings: the batch after it takes 20 (4 row groups of 5), the run's end the last 3
    assert points == [20, 23]
    assert [r[1] for r in tables["archive_pings"]] == [f"p{i}" for i in range(23)]
    assert tables["ingest_runs"] == [(23, 23, 0, 0, 0, 0)]
