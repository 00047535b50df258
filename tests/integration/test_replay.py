"""The embedded engine end to end: replay, close, verify, late events, bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import duckdb
import pytest

import epochal.replay as replay_module
import store.db as store_db
from epochal.replay import replay
from store.db import connect
from store.ingest import ROW_GROUP_ROWS
from epochal.verify import verify_epoch
from eventkit import EventKit, honest_network, ms
from payouts.emission import compute_emission
from tablecheck import output_tables


@pytest.fixture()
def network(tmp_path):
    kit = EventKit()
    honest_network(kit, hours=8)
    return kit, kit.write(tmp_path / "events.jsonl")


def test_replay_closes_every_epoch_the_watermark_passed(network, tmp_path):
    _, path = network
    report = replay([path], tmp_path / "s.duckdb")
    # last ping at minute 489 (+7 s): watermark 08:04:07 passes end(7) = 08:00
    assert [r.reward_epoch for r in report.closed] == list(range(0, 8))
    assert report.counts.adds_up()
    assert report.counts.rejected == 0


def test_every_closed_epoch_recomputes_identically_from_the_archive(network, tmp_path):
    _, path = network
    replay([path], tmp_path / "s.duckdb")
    con = connect(tmp_path / "s.duckdb")
    for e in range(8):
        assert verify_epoch(con, e) == []


def test_conservation_holds_for_every_epoch(network, tmp_path):
    _, path = network
    replay([path], tmp_path / "s.duckdb")
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    for e, emission, allocated, unallocated in con.execute(
            "SELECT reward_epoch, emission_base_units, allocated_base_units, unallocated_base_units FROM reward_epochs").fetchall():
        assert emission == compute_emission(e)
        assert allocated + unallocated == emission
        paid = con.execute("SELECT coalesce(sum(amount_base_units), 0) FROM epoch_rewards WHERE reward_epoch = ?", [e]).fetchone()[0]
        assert paid == allocated


def test_manifest_is_the_pinned_hash_of_the_reward_rows(network, tmp_path):
    _, path = network
    replay([path], tmp_path / "s.duckdb")
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    for e, manifest in con.execute("SELECT reward_epoch, manifest_sha256 FROM reward_epochs").fetchall():
        rows = con.execute("SELECT reward_epoch, node_id, pool, amount_base_units, wallet FROM epoch_rewards"
                           " WHERE reward_epoch = ?", [e]).fetchall()
        text = "".join(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]}\n" for r in sorted(rows, key=lambda r: r[1].encode()))
        assert manifest == hashlib.sha256(text.encode()).hexdigest()
    # epoch 0 pays nobody (nobody registered before its start): the empty string's hash
    assert con.execute("SELECT manifest_sha256 FROM reward_epochs WHERE reward_epoch = 0").fetchone()[0] == \
        hashlib.sha256(b"").hexdigest()


def test_nodes_are_told_why_they_were_not_paid(network, tmp_path):
    _, path = network
    replay([path], tmp_path / "s.duckdb")
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)

    def row(e, node):
        return con.execute("SELECT eligible, ineligible_reason, streak_slots, reputation, hw_verdict"
                           " FROM node_epoch_scores WHERE reward_epoch = ? AND node_id = ?", [e, node]).fetchone()

    assert row(0, "n-h100")[1] == "not_registered"  # registered at start(0): not strictly before
    assert row(3, "n-h100")[1:3] == ("streak_short", 240)
    assert row(4, "n-h100")[:3] == (True, None, 300)  # 300 slots are reached at the end of epoch 4
    assert row(5, "n-anon")[1] == "hardware_unverified" and row(5, "n-anon")[4] == "unknown_model"
    ghost = row(0, "n-ghost")
    assert ghost[1] == "not_registered" and ghost[3] is None  # never registered: reputation null
    assert row(1, "n-ghost")[2] == 0  # up in minutes 60..89, then two+ non-up slots reset the streak
    assert row(2, "n-ghost") is None  # no events in epoch 2 and not registered: no row
    # the 4090 missed minutes 200..202: three non-up slots reset its streak in epoch 3
    assert row(3, "n-4090")[2] == 60 - 23
    assert row(7, "n-4090")[1] == "streak_short"


def test_closing_again_is_a_no_op(network, tmp_path):
    _, path = network
    db = tmp_path / "s.duckdb"
    replay([path], db)
    before = output_tables(db)
    from payouts.close import close_epoch

    con = connect(db)
    close_epoch(con, 3)
    con.close()
    assert output_tables(db) == before


def test_late_events_are_archived_counted_and_change_no_closed_epoch(network, tmp_path):
    kit, path = network
    db = tmp_path / "s.duckdb"
    replay([path], db)
    before = output_tables(db)
    late = EventKit()
    late.pings("n-4090", [200, 201, 202])  # the outage minutes of epoch 3, arriving after it closed
    report = replay([late.write(tmp_path / "late.jsonl")], db)
    assert report.counts.late == 3 and report.counts.accepted == 3
    assert report.closed == []
    assert output_tables(db) == before
    con = connect(db)
    assert con.execute("SELECT count(*) FROM archive_pings WHERE late").fetchone()[0] == 3
    assert verify_epoch(con, 3) == []


def test_replaying_the_same_files_twice_changes_nothing(network, tmp_path):
    _, path = network
    db = tmp_path / "s.duckdb"
    replay([path], db)
    before = output_tables(db)
    report = replay([path], db)
    assert report.counts.duplicates == report.counts.inputs
    assert output_tables(db) == before


def test_a_file_of_malformed_lines_is_fully_accounted_for(tmp_path):
    kit = EventKit()
    honest_network(kit, hours=6)
    good = kit.lines()
    reg = dict(kit.events[0])
    bad = [
        b'{"event_id": "t1", "event_type": "ping", "schema_ver',  # truncated JSON
        json.dumps({**json.loads(good[-40]), "event_id": "w1", "reachable": "yes"}).encode(),  # wrong type
        json.dumps({**json.loads(good[-40]), "event_id": "w2", "event_type": "pong"}).encode(),  # unknown type
        b'{"event_id":"big","event_type":"ping","pad":"' + b"x" * (10 * 1024 * 1024) + b'"}',  # a 10 MB line
        json.dumps({**reg, "event_id": "bad-wallet", "node_id": "zz", "wallet": "not-a-wallet"}).encode(),
        json.dumps({**json.loads(good[-40]), "rtt_ms": 999.0}).encode(),  # conflicting duplicate
        json.dumps({**reg, "event_id": "reg-again", "occurred_at": ms(30)}).encode(),  # already registered
        json.dumps({**json.loads(good[-40]), "event_id": "old", "occurred_at": "2025-12-31T23:00:00Z"}).encode(),
        b"[1, 2, 3]",
        b"\xff\xfe not utf-8",
        good[-40],  # exact duplicate
    ]
    lines = good[:-40] + bad[:5] + good[-40:] + bad[5:]
    path = kit.write(tmp_path / "mixed.jsonl", lines)
    db = tmp_path / "s.duckdb"
    report = replay([path], db)
    c = report.counts
    assert c.inputs == len(lines)
    assert c.accepted == len(good)
    assert c.duplicates == 1
    assert c.rejected == len(bad) - 1
    assert c.by_reason == {"already_registered": 1, "before_genesis": 1, "conflicting_duplicate": 1,
                           "invalid_json": 2, "schema": 3, "too_large": 1, "unknown_event_type": 1}
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == c.rejected
    assert con.execute("SELECT count(*) FROM rejected_events WHERE raw IS NULL OR reason IS NULL").fetchone()[0] == 0
    # the valid lines around the bad ones were processed: epochs closed as in a clean run
    clean_db = tmp_path / "clean.duckdb"
    replay([kit.write(tmp_path / "clean.jsonl")], clean_db)
    assert output_tables(db) == output_tables(clean_db)


def test_epoch_show_and_node_show_explain_the_numbers(network, tmp_path):
    _, path = network
    db = tmp_path / "s.duckdb"
    replay([path], db)
    show = subprocess.run([sys.executable, "-m", "epochal.cli", "epoch", "show", "5", "--db", str(db)],
                          capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    assert "emission_base_units" in show.stdout and "hardware_unverified" in show.stdout
    node = subprocess.run([sys.executable, "-m", "epochal.cli", "node", "show", "n-anon", "--db", str(db)],
                          capture_output=True, text=True)
    assert node.returncode == 0, node.stderr
    assert "hardware_unverified" in node.stdout and "GPU-series-1" in node.stdout
    verify = subprocess.run([sys.executable, "-m", "epochal.cli", "epoch", "verify", "5", "--db", str(db)],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and "verified" in verify.stdout


def test_epoch_verify_reports_a_tampered_epoch(network, tmp_path):
    _, path = network
    db = tmp_path / "s.duckdb"
    replay([path], db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE epoch_rewards SET amount_base_units = amount_base_units + 1"
                " WHERE reward_epoch = 6 AND node_id = 'n-h100'")
    con.execute("UPDATE node_epoch_scores SET reputation = reputation - 1 WHERE reward_epoch = 6 AND node_id = 'n-4090'")
    con.close()
    res = subprocess.run([sys.executable, "-m", "epochal.cli", "epoch", "verify", "6", "--db", str(db)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "epoch_rewards" in res.stderr and "reputation" in res.stderr and "Traceback" not in res.stderr


def test_a_replay_never_imports_pandas(network, tmp_path):
    """pyarrow's `pa.array` and `to_numpy` import pandas on first use when it is installed
    (~0.3 s of every replay, with the GIL held); the ingest and the publisher convert through
    `store.arrow` instead. Blank, short and malformed lines take the other conversions too."""
    _, path = network
    messy = tmp_path / "messy.jsonl"
    messy.write_bytes(path.read_bytes() + b"\n   \n{not json\n" + b"x" * 80 + b"\n")
    code = (
        "import sys; from pathlib import Path; from epochal.replay import replay; "
        f"r = replay([Path({str(messy)!r})], Path({str(tmp_path / 's.duckdb')!r})); "
        "print(len(r.published), r.counts.blank_lines, r.counts.rejected, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["8", "2", "2", "False"]


def test_the_closes_threads_change_no_output(network, tmp_path, monkeypatch):
    """A small network's epochs close on one DuckDB thread (an epoch's pings fill less than a
    row group); the outputs are those of the closes on every thread, byte for byte."""
    _, path = network
    chosen = []
    most = store_db.get_most_epoch_pings
    monkeypatch.setattr(store_db, "get_most_epoch_pings", lambda con: chosen.append(most(con)) or chosen[-1])
    one = tmp_path / "one.duckdb"
    replay([path], one)
    monkeypatch.setattr(replay_module, "ROW_GROUP_ROWS", 0)  # never one thread
    every = tmp_path / "every.duckdb"
    replay([path], every)
    con = duckdb.connect(str(one), read_only=True)
    try:
        per_epoch = con.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM archive_pings GROUP BY reward_epoch)")
        assert chosen == [per_epoch.fetchall()[0][0]] * 2  # what the choice read: the most pings in an epoch
    finally:
        con.close()
    assert 0 < chosen[0] < ROW_GROUP_ROWS
    assert output_tables(one) == output_tables(every)
