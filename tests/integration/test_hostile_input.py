"""Hostile input and careless operators (issue 13): every case that crashed the engine, lost
data or paid a wrong amount, as a named test. Each replays beside a small honest network
(`eventkit.honest_network`) and checks counts, the archive and the closed epochs.

Cases that need a file the engine cannot read run the command without the permission override
when this runs as root (`setpriv` drops CAP_DAC_OVERRIDE), so a mode of 000 means what it says.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from epochal.cli_common import shown
from epochal.replay import replay
from store.db import connect
from epochal.verify import verify_epoch
from eventkit import SPEC, EventKit, honest_network, ms
from payouts.close import close_ready_epochs
from tablecheck import output_tables

ROOT = Path(__file__).resolve().parents[2]
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


@dataclass
class Ran:
    returncode: int | None
    stdout: str
    stderr: str


def cli(*args, drop_dac: bool = False, subprocess_: bool = False, timeout: float = 120) -> Ran:
    """`epochal ARGS`, in this process (fast) unless it must run apart: without the permission
    override (`drop_dac`, as root), or bounded in time (`subprocess_`)."""
    argv = list(map(str, args))
    if drop_dac or subprocess_:
        cmd = [sys.executable, "-m", "epochal.cli", *argv]
        if drop_dac and os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: a file's mode cannot deny reading")
            cmd = NO_DAC + cmd
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
        return Ran(res.returncode, res.stdout, res.stderr)
    from epochal.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
    return Ran(code, out.getvalue(), err.getvalue())


def one_sentence(res, says: str) -> None:
    assert res.returncode not in (0, None), res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("epochal: ") and says in lines[0], res.stderr


def ids_accepted(db) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT event_id FROM archive_pings UNION ALL SELECT event_id FROM archive_events").fetchall()]
    finally:
        con.close()


def assert_nothing_accepted_twice(db) -> None:
    ids = ids_accepted(db)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    kit = EventKit()
    honest_network(kit, hours=8)
    return kit, kit.write(tmp_path_factory.mktemp("network") / "events.jsonl")


@pytest.fixture(scope="module")
def clean(network, tmp_path_factory):
    """The honest network replayed alone: its counts and output tables."""
    _, path = network
    db = tmp_path_factory.mktemp("clean") / "clean.duckdb"
    report = replay([path], db)
    return report.counts, output_tables(db)


# 1. a crash inside an ingest ------------------------------------------------------------------

KILL_BETWEEN_PINGS_AND_EVENTS = textwrap.dedent("""
    import os, signal, sys
    import store.ingest as ingest
    ingest.FLUSH_PING_ROWS = 300  # the pings are written in several batches while the file is read
    classify = ingest.Ingestor._classify
    def killed_at_the_other_events(self, inputs, *args, **kw):
        if inputs == "event_inputs":  # every ping written, the other events next
            os.kill(os.getpid(), signal.SIGKILL)
        return classify(self, inputs, *args, **kw)
    ingest.Ingestor._classify = killed_at_the_other_events
    from epochal.replay import replay
    replay([sys.argv[1]], sys.argv[2])
""")


def test_a_crash_between_the_pings_and_the_other_events_of_an_ingest_stores_nothing(network, clean, tmp_path):
    """Finding 1: the pings and the other events were two commits; SIGKILL between them left
    pings without registrations, a close then paid nothing, and a rerun could not repair it."""
    _, path = network
    db = tmp_path / "s.duckdb"
    res = subprocess.run([sys.executable, "-c", KILL_BETWEEN_PINGS_AND_EVENTS, str(path), str(db)],
                         capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert res.returncode == -signal.SIGKILL, res.stderr
    con = connect(db)
    try:
        archived = con.execute("SELECT (SELECT count(*) FROM archive_pings) + (SELECT count(*) FROM archive_events)"
                               " + (SELECT count(*) FROM ingest_runs)").fetchall()[0][0]
        assert archived == 0, "a killed ingest run left rows behind"
        assert close_ready_epochs(con) == []  # nothing for a close to pay wrongly
    finally:
        con.close()
    rerun = replay([path], db)
    clean_counts, clean_tables = clean
    assert (rerun.counts.accepted, rerun.counts.duplicates, rerun.counts.rejected) == \
        (clean_counts.accepted, clean_counts.duplicates, clean_counts.rejected)
    assert output_tables(db) == clean_tables


# 2. --db naming an event file ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["store.jsonl", "store.json", "store.csv", "empty.duckdb"])
def test_a_db_naming_an_existing_file_that_is_not_a_store_is_refused(network, tmp_path, name):
    """Finding 2: DuckDB opened an existing .jsonl as an in-memory database; the replay said
    "closed 6 epoch(s)" and stored nothing."""
    _, path = network
    target = tmp_path / name
    content = b"" if name.startswith("empty") else path.read_bytes()[:5000]
    target.write_bytes(content)
    res = cli("replay", path, "--db", target)
    one_sentence(res, "is not an epochal store")
    assert target.read_bytes() == content
    for args in (["epoch", "show", "1"], ["epoch", "verify", "1"], ["epoch", "close"], ["node", "show", "n1"],
                 ["slashes", "list"]):
        one_sentence(cli(*args, "--db", target), "is not an epochal store")


def test_a_db_that_is_another_programs_duckdb_file_is_refused(network, tmp_path):
    """Finding 8 (the --db part): a DuckDB file of another program ended in a BinderException."""
    _, path = network
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE archive_pings (x INTEGER)")
    con.execute("CREATE TABLE things (y VARCHAR)")
    con.close()
    for args in (["replay", path], ["epoch", "show", "1"], ["epoch", "verify", "1"], ["slashes", "list"]):
        one_sentence(cli(*args, "--db", other), "not an epochal store")
    con = duckdb.connect(str(other), read_only=True)
    assert {r[0] for r in con.execute("SHOW TABLES").fetchall()} == {"archive_pings", "things"}
    con.close()


# 3. one event_id accepted twice -----------------------------------------------------------------

BATCH = {"event_id": "B", "event_type": "ping.batch", "schema_version": 1, "node_id": "chk", "occurred_at": ms(1),
         "checker_id": "chk", "pings": [{"node_id": "n-h100", "occurred_at": ms(0.5), "reachable": True, "rtt_ms": 1.0},
                                        {"node_id": "n-4090", "occurred_at": ms(0.6), "reachable": True, "rtt_ms": 2.0}]}


def plain_ping(event_id: str, node: str, at: int, checker: str = "chk-x", rtt: float = 1.0) -> dict:
    return {"event_id": event_id, "event_type": "ping", "schema_version": 1, "node_id": node, "occurred_at": at,
            "checker_id": checker, "reachable": True, "rtt_ms": rtt}


def _replay_lines(tmp_path, network, extra: list[dict], name: str = "extra.jsonl"):
    _, path = network
    f = tmp_path / name
    f.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in extra))
    db = tmp_path / "s.duckdb"
    return db, replay([path, f], db)


def test_a_plain_ping_with_a_batchs_inner_id_after_the_batch_is_a_conflict(network, tmp_path):
    """Finding 3: plain ping `B:1` after batch B was archived as a second event with that id and
    gave another node an up slot."""
    db, rep = _replay_lines(tmp_path, network, [BATCH, plain_ping("B:1", "n-intruder", ms(2))])
    assert rep.counts.by_reason == {"conflicting_duplicate": 1}
    assert_nothing_accepted_twice(db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM node_epoch_scores WHERE node_id = 'n-intruder'").fetchall()[0][0] == 0
    assert con.execute("SELECT node_id FROM archive_pings WHERE event_id = 'B:1'").fetchall() == [("n-4090",)]


def test_a_batch_whose_inner_id_was_taken_by_an_earlier_ping_is_a_conflict(network, tmp_path):
    db, rep = _replay_lines(tmp_path, network, [plain_ping("B:1", "n-intruder", ms(2)), BATCH])
    assert rep.counts.by_reason == {"conflicting_duplicate": 1}
    assert_nothing_accepted_twice(db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM archive_pings WHERE batch_event_id = 'B'").fetchall()[0][0] == 0
    detail = con.execute("SELECT detail FROM rejected_events").fetchall()[0][0]
    assert "B:1" in detail


def test_a_plain_ping_repeating_a_batchs_inner_ping_exactly_is_one_ping(network, tmp_path):
    same = plain_ping("B:1", "n-4090", ms(0.6), checker="chk", rtt=2.0)  # the very ping B:1 of the batch
    (tmp_path / "a").mkdir()
    db, rep = _replay_lines(tmp_path / "a", network, [same, BATCH])
    assert rep.counts.rejected == 0 and rep.counts.duplicates == 0  # the batch stands, its B:1 not twice
    assert_nothing_accepted_twice(db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT event_id FROM archive_pings WHERE batch_event_id = 'B'").fetchall() == [("B:0",)]
    con.close()
    (tmp_path / "b").mkdir()
    db2, rep2 = _replay_lines(tmp_path / "b", network, [BATCH, same])
    assert rep2.counts.duplicates == 1 and rep2.counts.rejected == 0
    assert_nothing_accepted_twice(db2)
    assert output_tables(db) == output_tables(db2)  # the same pings either way round


def test_other_events_and_envelopes_share_the_inner_ids_namespace(network, tmp_path):
    stake = {"event_id": "B:0", "event_type": "node.stake_changed", "schema_version": 1, "node_id": "n-h100",
             "occurred_at": ms(3), "stake_base_units": 5}
    envelope = {**BATCH, "event_id": "B:1", "pings": [{**BATCH["pings"][0], "occurred_at": ms(0.7)}]}
    (tmp_path / "a").mkdir()
    db, rep = _replay_lines(tmp_path / "a", network, [BATCH, stake, envelope])
    assert rep.counts.by_reason == {"conflicting_duplicate": 2}
    assert_nothing_accepted_twice(db)
    (tmp_path / "b").mkdir()
    db2, rep2 = _replay_lines(tmp_path / "b", network, [stake, BATCH])  # the event first
    assert rep2.counts.by_reason == {"conflicting_duplicate": 1}
    assert_nothing_accepted_twice(db2)
    con = duckdb.connect(str(db2), read_only=True)
    assert con.execute("SELECT count(*) FROM archive_events WHERE event_id = 'B:0'").fetchall() == [(1,)]
    con.close()


def test_a_later_run_sees_the_inner_ids_an_earlier_run_archived(network, tmp_path):
    db, _ = _replay_lines(tmp_path, network, [BATCH])
    f = tmp_path / "later.jsonl"
    f.write_text(json.dumps(plain_ping("B:0", "n-intruder", ms(2))) + "\n")
    rep = replay([f], db)
    assert rep.counts.by_reason == {"conflicting_duplicate": 1}
    assert_nothing_accepted_twice(db)


# 4. a far-future ping ---------------------------------------------------------------------------

def test_a_ping_dated_after_the_arrival_time_is_from_future_and_closes_nothing(network, clean, tmp_path):
    """Finding 4: one far-future ping moved the watermark; the replay closed hour after hour.
    Ruleset §10 (amended): a replay judges from_future against its arrival time."""
    f = tmp_path / "ahead.jsonl"
    f.write_text(json.dumps(plain_ping("ahead", "n-h100", ms(30 * 60))) + "\n")  # dated 30:00
    arrived = ms(9 * 60) * 1000  # the replay arrives at 09:00
    db = tmp_path / "s.duckdb"
    rep = replay([network[1], f], db, arrived_at_us=arrived)
    assert rep.counts.by_reason == {"from_future": 1}
    assert output_tables(db) == clean[1]  # the same epochs as without it: none closed early
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT arrived_at_us FROM ingest_runs").fetchall() == [(arrived,)]
    assert con.execute("SELECT reason, event_id FROM rejected_events").fetchall() == [("from_future", "ahead")]
    con.close()
    # five minutes of skew are allowed
    f.write_text(json.dumps(plain_ping("ahead", "n-h100", ms(9 * 60 + 5))) + "\n")
    rep = replay([network[1], f], tmp_path / "s2.duckdb", arrived_at_us=arrived)
    assert rep.counts.by_reason == {}


@pytest.mark.parametrize("when", ["2999-12-31T00:00:00Z", "9999-12-31T23:59:59Z", 253402300799999])
def test_a_far_future_ping_neither_hangs_a_replay_nor_closes_an_epoch(network, clean, tmp_path, when):
    f = tmp_path / "far.jsonl"
    f.write_text(json.dumps(plain_ping("far", "n-h100", when)) + "\n")
    db = tmp_path / "s.duckdb"
    res = cli("replay", network[1], f, "--db", db, subprocess_=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "from_future 1" in res.stdout and "the replay's start" in res.stdout
    assert output_tables(db) == clean[1]


def test_arrived_at_pins_the_arrival_time_of_a_replay(network, tmp_path):
    ahead = tmp_path / "ahead.jsonl"
    ahead.write_text(json.dumps(plain_ping("ahead", "n-h100", ms(20 * 60))) + "\n")
    db = tmp_path / "s.duckdb"
    res = cli("replay", network[1], ahead, "--db", db, "--arrived-at", "2026-01-01T09:00:00Z")
    assert res.returncode == 0 and "from_future 1" in res.stdout and "2026-01-01T09:00:00" in res.stdout
    db2 = tmp_path / "s2.duckdb"
    res = cli("replay", network[1], ahead, "--db", db2, "--arrived-at", str(ms(20 * 60)))
    assert res.returncode == 0 and "from_future" not in res.stdout
    one_sentence(cli("replay", network[1], "--db", tmp_path / "s3.duckdb", "--arrived-at", "tomorrow"),
                 "--arrived-at must be")


# 5. a job dated 1970 ----------------------------------------------------------------------------

def test_a_job_started_before_genesis_is_rejected_and_slashes_nobody(network, clean, tmp_path):
    """Finding 5: a job.completed with started_at in 1970 counted decades of slots as downtime
    and slashed an honest node a third of its stake."""
    job = {"event_id": "job-1970", "event_type": "job.completed", "schema_version": 1, "node_id": "n-h100",
           "occurred_at": ms(300), "job_id": "j-1970", "buyer_id": "b", "started_at": "1970-01-01T00:00:00Z",
           "ended_at": ms(290), "committed_until": ms(290), "status": "succeeded", "gpu_hours": 1.0,
           "fee_base_units": 1}
    backwards = {**job, "event_id": "job-back", "job_id": "j-back", "started_at": ms(200), "ended_at": ms(100)}
    db, rep = _replay_lines(tmp_path, network, [job, backwards])
    assert rep.counts.by_reason == {"before_genesis": 1, "invalid_window": 1}
    tables = output_tables(db)
    assert tables["slash_decisions"] == [] and tables == clean[1]


# 6. a line that crashed the ingest --------------------------------------------------------------

SURROGATE_LINES = [
    b'{"event_id":"\\ud800","event_type":"nope"}',
    b'{"event_id":"s1","event_type":"ping","schema_version":1,"node_id":"\\udfff","occurred_at":1767225600000,'
    b'"checker_id":"c","reachable":true,"rtt_ms":1}',
    b'{"\\ud800":1,"event_type":"ping"}',
    b'{"event_id":"s2","event_type":"benchmark","gpu_fingerprints":["\\ud800\\u0041"]}',
]


def test_a_lone_surrogate_is_rejected_as_invalid_json_not_a_crash(network, clean, tmp_path):
    """Finding 6: `{"event_id":"\\ud800","event_type":"nope"}` ended the ingest in a
    UnicodeEncodeError; nothing of the run was stored."""
    _, path = network
    f = tmp_path / "s.jsonl"
    pair = b'{"event_id":"\\ud83d\\ude00","event_type":"nope"}'  # a surrogate pair is one character
    f.write_bytes(b"\n".join(SURROGATE_LINES + [pair]) + b"\n")
    db = tmp_path / "s.duckdb"
    rep = replay([path, f], db)
    assert rep.counts.by_reason == {"invalid_json": 4, "unknown_event_type": 1}
    assert output_tables(db) == clean[1]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT event_id FROM rejected_events WHERE reason = 'unknown_event_type'").fetchall() == \
        [("\U0001F600",)]


def test_a_lone_surrogate_in_the_stream_is_rejected_not_a_poison_pill(tmp_path):
    """The same lines on the live path (the closer's ingest): rejected with a reason, archived
    offsets move on."""
    from streams.closer import Closer
    from streams.segments import Message

    closer = Closer.open(tmp_path / "s.duckdb", tmp_path / "segments")
    try:
        msgs = [Message("epochal.pings", 0, i, line, ms(1) * 1000) for i, line in enumerate(SURROGATE_LINES)]
        rep = closer.step(batch=msgs)
        assert (rep.inputs, rep.rejected, rep.by_reason) == (4, 4, {"invalid_json": 4})
        assert closer.through[("epochal.pings", 0)] == 3
    finally:
        closer.close()


# 7. markup in ids --------------------------------------------------------------------------------

def test_ids_that_look_like_markup_print_as_themselves(tmp_path):
    """Finding 7: node ids `[/x]` and `[bold]zzz` crashed `epoch show`, `node show`, `slashes
    list` with a MarkupError, or printed garbled."""
    kit = EventKit()
    for node in ("[bold]zzz", "[/x]"):
        kit.register(node, "NVIDIA H100 80GB HBM3", gpus=8)
        kit.benchmark(node, 1, *[x * 0.95 for x in SPEC["H100"][:2]], SPEC["H100"][2] * 0.98, gpus=8)
        kit.pings(node, range(0, 7 * 60 + 10), checker="[red]chk")
    kit.job("[/x]", "[/job]", 10, 100, status="failed_node")
    db = tmp_path / "s.duckdb"
    replay([kit.write(tmp_path / "e.jsonl")], db)
    show = cli("epoch", "show", "6", "--db", db)
    assert show.returncode == 0 and "[bold]zzz" in show.stdout and "[/x]" in show.stdout, show.stderr
    for node in ("[/x]", "[bold]zzz"):
        res = cli("node", "show", node, "--db", db)
        assert res.returncode == 0 and f"node {node}: claims 8" in res.stdout, res.stderr
    listed = cli("slashes", "list", "--db", db)
    assert listed.returncode == 0 and "[/x]" in listed.stdout, listed.stderr
    decision = duckdb.connect(str(db), read_only=True).execute("SELECT decision_id FROM slash_decisions").fetchall()
    shown = cli("slashes", "show", decision[0][0], "--db", db)
    assert shown.returncode == 0 and "[/job]" in shown.stdout and "[/x]" in shown.stdout, shown.stderr
    one_sentence(cli("node", "show", "[/nobody]", "--db", db), "node [/nobody] has no scores")
    one_sentence(cli("slashes", "list", "--node", "[/y]", "--status", "[b]x", "--db", db), "'[b]x'")
    one_sentence(cli("replay", tmp_path / "nonexist[/x].jsonl", "--db", db), "nonexist[/x].jsonl")


def test_control_characters_in_ids_print_as_escapes(tmp_path):
    """Ids carrying terminal control sequences (ESC, BEL, a bidi override) never reach the
    terminal raw: an id could clear the screen or hide part of a line, and rich silently drops
    some (BEL), so the printed id would not be the stored one. Found by the fuzz suite."""
    kit = EventKit()
    nodes = ("a\x1b[2Jb", "bell\x07x", "rtl\u202eevil", "tab\tx")
    for node in nodes:
        kit.register(node, "NVIDIA H100 80GB HBM3", gpus=8)
        kit.benchmark(node, 1, *[x * 0.95 for x in SPEC["H100"][:2]], SPEC["H100"][2] * 0.98, gpus=8)
        kit.pings(node, range(0, 7 * 60 + 10))
    db = tmp_path / "s.duckdb"
    replay([kit.write(tmp_path / "e.jsonl")], db)
    show = cli("epoch", "show", "6", "--db", db)
    assert show.returncode == 0, show.stderr
    assert "\x1b" not in show.stdout and "\x07" not in show.stdout and "\u202e" not in show.stdout
    assert "a\\x1b[2Jb" in show.stdout and "bell\\x07x" in show.stdout and "rtl\\u202eevil" in show.stdout
    for node, printed in zip(nodes, ("a\\x1b[2Jb", "bell\\x07x", "rtl\\u202eevil", "tab\\x09x")):
        assert shown(node) == printed
        res = cli("node", "show", node, "--db", db)
        assert res.returncode == 0 and f"node {printed}: claims 8" in res.stdout, res.stderr
    one_sentence(cli("node", "show", "no\x1b[31mbody", "--db", db), "node no\\x1b[31mbody has no scores")


# 8. tracebacks on user mistakes --------------------------------------------------------------------

def test_an_unreadable_file_is_one_sentence_and_stores_nothing(network, tmp_path):
    _, path = network
    folder = tmp_path / "events"
    folder.mkdir()
    shutil.copy(path, folder / "a.jsonl")
    locked = folder / "locked.jsonl"
    locked.write_text(path.read_text()[:2000])
    locked.chmod(0)
    db = tmp_path / "s.duckdb"
    one_sentence(cli("replay", folder, "--db", db, drop_dac=True), "cannot read")
    one_sentence(cli("replay", path, locked, "--db", db, drop_dac=True), "not readable")
    assert not db.exists()


def test_a_broken_link_inside_a_folder_is_one_sentence(network, tmp_path):
    _, path = network
    folder = tmp_path / "events"
    folder.mkdir()
    shutil.copy(path, folder / "a.jsonl")
    (folder / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    one_sentence(cli("replay", folder, "--db", tmp_path / "s.duckdb"), "broken link")
    one_sentence(cli("replay", folder / "b.jsonl", "--db", tmp_path / "s.duckdb"), "no such file or folder")


def test_a_file_that_fails_while_it_is_read_stores_nothing(network, tmp_path, monkeypatch):
    """An error in the middle of a run (here: a file replaced by a folder once staging began)
    rolls the whole run back."""
    import store.ingest as ingest
    from store.sources import SourceError

    _, path = network
    second = tmp_path / "second.jsonl"
    shutil.copy(path, second)
    real = ingest.Ingestor.stage_file

    def vanish(self, p):
        if Path(p) == second:
            second.unlink()
        return real(self, p)

    monkeypatch.setattr(ingest.Ingestor, "stage_file", vanish)
    monkeypatch.setattr(ingest, "FLUSH_PING_ROWS", 200)  # batches of the run are committed before the error
    db = tmp_path / "s.duckdb"
    with pytest.raises(SourceError, match="cannot read"):
        replay([path, second], db)
    assert ids_accepted(db) == []
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM ingest_open").fetchall() == [(0,)]
    con.close()


@pytest.mark.parametrize("args, says", [
    (["node", "show", "n-h100", "--last", "-1"], "--last"),
    (["node", "show", "n-h100", "--last", str(2**70)], "--last"),
    (["epoch", "show", "3", "--top", "-1"], "--top"),
    (["epoch", "show", "3", "--top", str(2**70)], "--top"),
    (["epoch", "show", str(2**70)], "'N'"),
    (["epoch", "verify", str(2**70)], "'N'"),
])
def test_numbers_out_of_range_are_one_sentence(tmp_path, args, says):
    """--last -1, --top -1 and 2**70 ended in DuckDB's BinderException / ConversionException."""
    one_sentence(cli(*args, "--db", tmp_path / "s.duckdb"), says)


def test_epoch_verify_only_reads_the_store(network, tmp_path):
    """`epoch verify` opened the store for writing, so it refused a store it may only read."""
    _, path = network
    db = tmp_path / "s.duckdb"
    replay([path], db)
    before = db.read_bytes()
    db.chmod(0o444)
    try:
        res = cli("epoch", "verify", "5", "--db", db, drop_dac=True)
        assert res.returncode == 0 and "verified" in res.stdout, res.stderr
    finally:
        db.chmod(0o644)
    assert db.read_bytes() == before


def test_a_published_folder_that_cannot_be_one_is_one_sentence(network, tmp_path, monkeypatch):
    """`--publish` (or $EPOCHAL_PUBLISH) naming a file, or a path through a file, ended in a
    NotADirectoryError traceback once the replay had closed its epochs. It is refused before the
    store is touched; a folder that fails while the files are written (here an entry that should
    be an epoch's folder) is one sentence saying the epochs are closed in the store, and
    `epoch publish` completes the folder once it can take them."""
    from store.published import list_epochs

    monkeypatch.delenv("EPOCHAL_PUBLISH", raising=False)
    _, path = network
    a_file = tmp_path / "file.json"
    a_file.write_text("{}")
    db = tmp_path / "s.duckdb"
    for bad in (a_file, a_file / "sub"):
        one_sentence(cli("replay", path, "--db", db, "--publish", bad), f"the published folder {bad}")
        assert not db.exists()
    monkeypatch.setenv("EPOCHAL_PUBLISH", str(a_file))
    one_sentence(cli("replay", path, "--db", db), "exists and is not a folder")
    assert not db.exists()
    monkeypatch.delenv("EPOCHAL_PUBLISH")
    root = tmp_path / "odd"
    (root / "reward_epoch=0").mkdir(parents=True)
    (root / "reward_epoch=1").write_text("not a folder")
    res = cli("replay", path, "--db", db, "--publish", root)
    one_sentence(res, "the epochs are closed in the store")
    assert "reward_epoch=1" in res.stderr
    for args in (["epoch", "close"], ["epoch", "publish"], ["streams", "worker", "--bootstrap", "127.0.0.1:1"]):
        one_sentence(cli(*args, "--db", db, "--publish", a_file), "exists and is not a folder")
    (root / "reward_epoch=1").unlink()
    res = cli("epoch", "publish", "--db", db, "--publish", root)
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(db), read_only=True)
    closed = [r[0] for r in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall()]
    con.close()
    assert closed and list_epochs(root) == closed


# 9. minor ----------------------------------------------------------------------------------------

def test_a_whitespace_only_line_is_blank_whatever_its_length(network, clean, tmp_path):
    _, path = network
    f = tmp_path / "ws.jsonl"
    f.write_bytes(b" " * 65 + b"\n" + b"\t \r" * 400 + b"\r\n" + b" " * 10 + b"\n")
    rep = replay([path, f], tmp_path / "s.duckdb")
    assert rep.counts.blank_lines == 3 and rep.counts.rejected == 0


def test_a_folder_named_like_an_event_file_is_not_read_behind_the_summarys_back(network, tmp_path):
    """A folder `x.jsonl` inside a given folder was expanded (twice) and its files read while the
    summary said "read 1 file(s)"."""
    _, path = network
    top = tmp_path / "top"
    (top / "x.jsonl").mkdir(parents=True)
    shutil.copy(path, top / "a.jsonl")
    shutil.copy(path, top / "x.jsonl" / "inner.jsonl")
    db = tmp_path / "s.duckdb"
    one_sentence(cli("replay", top, "--db", db), "is a folder inside the folder")
    assert not db.exists()
    res = cli("replay", top / "a.jsonl", top / "x.jsonl", "--db", db)  # named: read, and counted
    assert res.returncode == 0 and res.stdout.startswith("read 2 file(s)"), res.stderr


# names that are not UTF-8 ---------------------------------------------------------------------------

def test_file_and_store_names_that_are_not_utf8(network, tmp_path):
    """An event file named in bytes that are not UTF-8 is read and named with U+FFFD where it is
    stored; a store so named is refused in one sentence (DuckDB failed on it with std::bad_cast)."""
    _, path = network
    folder = tmp_path / "events"
    folder.mkdir()
    odd = os.path.join(os.fsencode(folder), b"\xff\xfe.jsonl")
    with open(odd, "wb") as fh:
        fh.write(path.read_bytes() + b"{not json\n")
    db = tmp_path / "s.duckdb"
    res = cli("replay", folder, "--db", db)
    assert res.returncode == 0 and res.stdout.startswith("read 1 file(s)"), res.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT source FROM rejected_events").fetchall()[0][0].startswith(f"{folder}/\ufffd\ufffd.jsonl:")
    assert "\ufffd\ufffd.jsonl" in con.execute("SELECT sources FROM ingest_runs").fetchall()[0][0]
    con.close()
    one_sentence(cli("replay", path, "--db", os.fsdecode(os.path.join(os.fsencode(tmp_path), b"\xff.duckdb"))),
                 "is not UTF-8 text")
