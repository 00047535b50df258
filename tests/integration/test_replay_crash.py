"""A replay killed with SIGKILL at every commit point, then run again, ends exactly as a clean run.

The crash hook (`EPOCHAL_REPLAY_CRASH=<point>:<n>`, `streams.crash.CrashHook`) kills the process
the n-th time it reaches <point>:
- inside the ingest run: after_ingest_open (its open mark committed, before its first batch),
  after_ping_flush (the pings are committed in bounded batches while
  files are read; the test makes the batches small so there is one while the file is read and
  one at the end) and before_ingest_commit (every row written and checked, the run's last COMMIT
  not reached): the run is still marked open, the next writer undoes it, nothing of it remains,
  and the rerun is a clean run, counts included;
- after it: after_ingest_commit, before_epoch_commit (inside a close's transaction),
  between_closes and before_checkpoint: the run is archived whole, so the rerun finds every
  line again (accepted ones are exact duplicates, rejected ones are rejected again) and closes
  what was left.
Either way the output tables equal a clean run's, every closed epoch verifies, no event id is
accepted twice, and the runs' counts add up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from epochal.replay import replay
from store.db import connect
from epochal.verify import verify_epoch
from eventkit import EventKit, honest_network, ms
from tablecheck import output_tables

ROOT = Path(__file__).resolve().parents[2]
FLUSH_ROWS = 300  # pings per flush inside the run (the engine's is 1,000,000)
RUN = textwrap.dedent(f"""
    import sys
    import store.ingest as ingest
    ingest.FLUSH_PING_ROWS = {FLUSH_ROWS}
    from epochal.cli import main
    main(sys.argv[1:])
""")


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """An honest network with a few of each kind of bad line, and its clean replay."""
    tmp = tmp_path_factory.mktemp("crash")
    kit = EventKit()
    honest_network(kit, hours=8)
    lines = kit.lines()
    first_ping = json.loads(lines[10])
    lines += [
        lines[10],  # an exact duplicate
        json.dumps({**first_ping, "rtt_ms": 999.0}).encode(),  # a conflicting one
        json.dumps({**json.loads(lines[0]), "event_id": "reg-again", "occurred_at": ms(30)}).encode(),
        b"{not json",
        json.dumps({**first_ping, "event_id": "early", "occurred_at": "2025-12-31T00:00:00Z"}).encode(),
    ]
    path = kit.write(tmp / "events.jsonl", lines)
    db = tmp / "clean.duckdb"
    rerun(path, db)
    counts = runs(db)
    assert len(counts) == 1
    return path, counts[0], output_tables(db)


def run(path: Path, db: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EPOCHAL_REPLAY_CRASH"}
    if crash:
        env["EPOCHAL_REPLAY_CRASH"] = crash
    return subprocess.run([sys.executable, "-c", RUN, "replay", str(path), "--db", str(db),
                           "--arrived-at", "2026-01-02T00:00:00Z"],
                          capture_output=True, text=True, timeout=180, cwd=str(ROOT), env=env)


ARRIVED_US = ms(24 * 60) * 1000  # 2026-01-02T00:00:00Z, as --arrived-at in `run`


def rerun(path: Path, db: Path) -> None:
    """The run after the crash (in this process: it is not the one killed)."""
    replay([path], db, arrived_at_us=ARRIVED_US)


def runs(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT inputs, accepted, duplicates, rejected FROM ingest_runs ORDER BY run_id").fetchall()
    finally:
        con.close()


def check_store(db: Path, clean_tables) -> None:
    assert output_tables(db) == clean_tables
    con = connect(db, create=False, read_only=True)
    try:
        ids = con.execute("SELECT event_id FROM archive_pings UNION ALL SELECT event_id FROM archive_events").fetchall()
        assert len(ids) == len(set(ids)), "an event id accepted twice"
        for (e,) in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall():
            assert verify_epoch(con, e) == [], e
    finally:
        con.close()


# after_ping_flush:1 is a flush while the file is read, :2 the run's last flush (inside commit)
@pytest.mark.parametrize("point", ["after_ingest_open:1", "after_ping_flush:1", "after_ping_flush:2",
                                   "before_ingest_commit:1"])
def test_a_replay_killed_inside_its_ingest_leaves_nothing_and_the_rerun_is_a_clean_run(events, tmp_path, point):
    path, clean_counts, clean_tables = events
    db = tmp_path / "s.duckdb"
    res = run(path, db, crash=point)
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-2000:])
    con = connect(db, create=False, read_only=True)  # as the killed process left it
    assert con.execute("SELECT count(*) FROM ingest_open").fetchall() == [(1,)]  # a run that never completed
    assert con.execute("SELECT count(*) FROM ingest_runs").fetchall() == [(0,)]
    con.close()
    con = connect(db)  # the next writer undoes it before anything else
    left = con.execute("SELECT (SELECT count(*) FROM archive_pings) + (SELECT count(*) FROM archive_events)"
                       " + (SELECT count(*) FROM rejected_events) + (SELECT count(*) FROM ingest_runs)"
                       " + (SELECT count(*) FROM reward_epochs) + (SELECT count(*) FROM ingest_open)").fetchall()[0][0]
    con.close()
    assert left == 0, f"the killed run left {left} rows"
    rerun(path, db)
    assert runs(db) == [clean_counts]
    check_store(db, clean_tables)


@pytest.mark.parametrize("point", ["after_ingest_commit:1", "before_epoch_commit:1", "before_epoch_commit:4",
                                   "between_closes:3", "before_checkpoint:1"])
def test_a_replay_killed_after_its_ingest_is_completed_by_the_rerun(events, tmp_path, point):
    path, clean_counts, clean_tables = events
    inputs, accepted, duplicates, rejected = clean_counts
    db = tmp_path / "s.duckdb"
    res = run(path, db, crash=point)
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-2000:])
    assert runs(db) == [clean_counts]  # the run was archived whole
    rerun(path, db)
    # the rerun reads every line again: the accepted ones are exact duplicates now
    assert runs(db) == [clean_counts, (inputs, 0, accepted + duplicates, rejected)]
    check_store(db, clean_tables)


def test_a_second_replay_killed_inside_its_ingest_leaves_the_first_as_it_was(events, tmp_path):
    path, clean_counts, _clean_tables = events
    kit = EventKit()
    honest_network(kit, hours=8)
    half = kit.write(tmp_path / "first.jsonl", kit.lines()[: len(kit.lines()) // 2])
    db = tmp_path / "s.duckdb"
    rerun(half, db)
    before = (runs(db), output_tables(db))
    res = run(path, db, crash="after_ping_flush:2")
    assert res.returncode == -signal.SIGKILL
    assert (runs(db), output_tables(db)) == before
    rerun(path, db)
    # (the first run closed epochs from half the events, so the epochs differ from a clean run's;
    # the archive does not)
    con = duckdb.connect(str(db), read_only=True)
    n = con.execute("SELECT (SELECT count(*) FROM archive_pings WHERE batch_event_id IS NULL)"
                    " + (SELECT count(*) FROM archive_events)").fetchall()[0][0]
    con.close()
    assert n == clean_counts[1]
