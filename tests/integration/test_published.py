"""The published folder (issue 14): every closed epoch as immutable Parquet, manifest last.

One simulated network (30 nodes × 6 h: rejections, slash decisions, stake changes) replayed once
for the module; each test that changes things works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from epochal.replay import replay
from store import published as pub

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from epochal.cli import main; main()"]
NODES, HOURS, SEED = 30, 6, 5


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    from epochal.sim import simulate

    d = tmp_path_factory.mktemp("pubsim")
    simulate(NODES, HOURS, SEED, d)
    return d


@pytest.fixture(scope="module")
def replayed(sim_dir, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("pubreplay")
    db = d / "s.duckdb"
    report = replay([sim_dir], db)
    return {"db": db, "root": Path(str(db) + ".published"), "report": report}


def _cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    e.pop("EPOCHAL_PUBLISH", None) if not (env and "EPOCHAL_PUBLISH" in env) else None
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, env=e, cwd=cwd or ROOT)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _store_rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------
# what a replay publishes
# ----------------------------------------------------------------------------------------

def test_replay_publishes_every_closed_epoch_with_its_manifest_last(replayed):
    root, db = replayed["root"], replayed["db"]
    closed = [r[0] for r in _store_rows(db, "SELECT reward_epoch FROM reward_epochs ORDER BY 1")]
    assert len(closed) >= 4
    assert pub.list_epochs(root) == closed == replayed["report"].published
    previous = None
    for e in closed:
        m = pub.read_manifest(root, e)
        store_row = _store_rows(db, f"SELECT manifest_sha256, params_sha256, ruleset_version, engine_version,"
                                    f" input_arrival_seq FROM reward_epochs WHERE reward_epoch = {e}")[0]
        assert (m["manifest_sha256"], m["params_sha256"], m["ruleset_version"], m["engine_version"],
                m["arrival_range"]["through"]) == store_row
        assert m["reward_epoch"] == e and m["format"] == pub.FORMAT
        assert [f["name"] for f in m["files"]] == [f"{n}.parquet" for n in pub.FILE_NAMES]
        for f in m["files"]:
            p = pub.epoch_dir(root, e) / f["name"]
            assert _sha(p) == f["sha256"] and p.stat().st_size == f["bytes"]
            assert pl.read_parquet(p).height == f["rows"]
        assert m["previous_manifest_sha256"] == previous  # the chain
        previous = _sha(pub.epoch_dir(root, e) / "manifest.json")
        # nothing temporary is left behind
        assert not [p.name for p in pub.epoch_dir(root, e).iterdir() if p.name.startswith(".")]


def test_inputs_over_all_epochs_are_exactly_the_archive(replayed):
    root, db = replayed["root"], replayed["db"]
    inputs = pub.scan(root, "inputs").collect()
    pings = _store_rows(db, "SELECT arrival_seq, event_id, node_id, occurred_at_us, occurred_at_raw, checker_id,"
                            " reachable, rtt_ms, batch_event_id, reward_epoch, slot, late FROM archive_pings"
                            " ORDER BY arrival_seq, event_id")
    events = _store_rows(db, "SELECT arrival_seq, event_id, event_type, node_id, occurred_at_us, reward_epoch, late,"
                             " payload, digest FROM archive_events ORDER BY arrival_seq, event_id")
    got_pings = inputs.filter(pl.col("event_type") == "ping").sort("arrival_seq", "event_id").select(
        "arrival_seq", "event_id", "node_id", "occurred_at_us", "occurred_at_raw", "checker_id", "reachable",
        "rtt_ms", "batch_event_id", "reward_epoch", "slot", "late").rows()
    got_events = inputs.filter(pl.col("event_type") != "ping").sort("arrival_seq", "event_id").select(
        "arrival_seq", "event_id", "event_type", "node_id", "occurred_at_us", "reward_epoch", "late", "payload",
        "digest").rows()
    assert got_pings == pings and got_events == events
    assert inputs.height == len(pings) + len(events)
    # each within its epoch's arrival range; a replay archives all before its first close
    for e in pub.list_epochs(root):
        r = pub.read_manifest(root, e)["arrival_range"]
        seqs = inputs.filter(pl.col("published_epoch") == e)["arrival_seq"]
        assert seqs.is_empty() or (seqs.min() > r["after"] and seqs.max() <= r["through"])
    first = pub.list_epochs(root)[0]
    assert inputs.filter(pl.col("published_epoch") != first).is_empty()
    rejected = pub.scan(root, "rejected_events").collect()
    assert rejected.height == _store_rows(db, "SELECT count(*) FROM rejected_events")[0][0] > 0


def test_output_files_hold_the_stores_rows(replayed):
    root, db = replayed["root"], replayed["db"]
    for name, order in (("node_epoch_scores", "reward_epoch, node_id"), ("epoch_rewards", "reward_epoch, node_id"),
                        ("ledger_entries", "reward_epoch, entry_id"), ("reward_epochs", "reward_epoch")):
        want = _store_rows(db, f"SELECT * FROM {name} ORDER BY {order}")
        got = pub.scan(root, name).drop("published_epoch").collect().sort(
            [c.strip() for c in order.split(",")]).rows()
        assert got == want, name
    # slash decisions: the last close's file is the store's table; every file is as its close left it
    last = pub.list_epochs(root)[-1]
    decisions = pub.scan(root, "slash_decisions").collect()
    assert decisions.height > 0
    want = _store_rows(db, "SELECT * FROM slash_decisions ORDER BY decision_id")
    got = decisions.filter(pl.col("published_epoch") == last).drop("published_epoch", "reward_epoch").rows()
    assert got == want
    for row in decisions.iter_rows(named=True):
        assert row["decided_in_epoch"] <= row["published_epoch"]
        settled = row["resolved_in_epoch"] is not None
        assert settled == (row["status"] != "proposed")
        assert not settled or row["resolved_in_epoch"] <= row["published_epoch"]


def test_nodes_file_is_the_registry_as_of_each_close(replayed):
    root, db = replayed["root"], replayed["db"]
    last = pub.list_epochs(root)[-1]
    nodes = pub.scan(root, "nodes", epochs=[last]).collect()
    regs = _store_rows(db, "SELECT node_id, payload ->> '$.wallet', payload ->> '$.region',"
                           " payload ->> '$.operator_id', event_id FROM archive_events"
                           " WHERE event_type = 'node.registered' ORDER BY node_id")
    assert nodes.select("node_id", "wallet", "region", "operator_id", "registration_event_id").rows() == regs
    assert nodes["gpu_class"].is_in(["enterprise", "community"]).all() or nodes["gpu_model_key"].is_null().any()
    # stake: the node's stake account in the ledger after the close
    stake = dict(_store_rows(db, f"""
        SELECT substr(account, 6, length(account) - 11), sum(amount)::BIGINT FROM (
            SELECT credit_account AS account, amount_base_units AS amount FROM ledger_entries
            WHERE reward_epoch <= {last} AND credit_account LIKE 'node:%:stake'
            UNION ALL SELECT debit_account, -amount_base_units FROM ledger_entries
            WHERE reward_epoch <= {last} AND debit_account LIKE 'node:%:stake') GROUP BY 1"""))
    assert dict(nodes.select("node_id", "stake_base_units").rows()) == {n: stake.get(n, 0) for n in nodes["node_id"]}
    assert sum(stake.values()) > 0


def test_publishing_again_changes_nothing(replayed, tmp_path):
    root = tmp_path / "copy.published"
    shutil.copytree(replayed["root"], root)
    before = _folder_bytes(root)
    con = duckdb.connect(str(replayed["db"]), read_only=True)
    try:
        assert pub.publish_pending(con, root) == []
    finally:
        con.close()
    assert _folder_bytes(root) == before


def test_a_lost_folder_is_published_again_byte_for_byte(replayed, tmp_path):
    """`epochal epoch publish` writes every closed epoch not yet published: a fresh folder gets
    the same bytes (the writer is deterministic), and an epoch whose manifest was lost (a crash
    before it) is written again, identical."""
    out = _cli("epoch", "publish", "--db", str(replayed["db"]), "--publish", str(tmp_path / "again"))
    assert out.returncode == 0, out.stderr
    assert _folder_bytes(tmp_path / "again") == _folder_bytes(replayed["root"])
    e = pub.list_epochs(tmp_path / "again")[2]
    (pub.epoch_dir(tmp_path / "again", e) / "manifest.json").unlink()
    (pub.epoch_dir(tmp_path / "again", e) / "nodes.parquet").write_bytes(b"half a file")
    assert e not in pub.list_epochs(tmp_path / "again")
    out = _cli("epoch", "publish", "--db", str(replayed["db"]), "--publish", str(tmp_path / "again"))
    assert out.returncode == 0, out.stderr
    assert f"published 1 epoch(s) {e} into" in " ".join(out.stdout.split())
    assert _folder_bytes(tmp_path / "again") == _folder_bytes(replayed["root"])


@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_the_bytes_do_not_depend_on_how_epochs_are_batched(replayed, tmp_path, monkeypatch, batch):
    """Epochs written together (one query per file over the batch, cut into the epochs) give
    each epoch the bytes of its own queries: one at a time, in runs of 4, all at once (the
    replay's folder was written in the background thread's own runs)."""
    monkeypatch.setattr(pub, "BATCH_EPOCHS", batch)
    con = duckdb.connect(str(replayed["db"]), read_only=True)
    try:
        assert pub.publish_pending(con, tmp_path / "b") == pub.list_epochs(replayed["root"])
        # and each file is exactly its epoch's own query, whatever the batch cut
        cur = con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        closed = pub._closed_epochs(cur)
        spans = [(r[0], closed[i - 1][1] if i else -1, r[1]) for i, r in enumerate(closed)]
        got = {n: pub.split_batch(cur.sql(q).to_arrow_table(), n, spans) for n, q in pub.batch_queries(spans).items()}
        for e, after, through in spans:
            for name, sql in pub.file_queries(e, after, through):
                if name != "inputs":
                    want = cur.sql(sql).to_arrow_table()
                    assert got[name][e].schema == want.schema and got[name][e].equals(want), (name, e)
        assert any(got["slash_decisions"][e].num_rows for e, _, _ in spans)  # (the batch held some of each)
        assert any(got["rejected_events"][e].num_rows for e, _, _ in spans)
    finally:
        con.close()
    assert _folder_bytes(tmp_path / "b") == _folder_bytes(replayed["root"])


def test_a_folder_of_another_store_is_refused_in_one_sentence(replayed, tmp_path, sim_dir):
    root = tmp_path / "other.published"
    shutil.copytree(replayed["root"], root)
    e = pub.list_epochs(root)[-1]
    m = pub.read_manifest(root, e)
    m["manifest_sha256"] = "0" * 64
    (pub.epoch_dir(root, e) / "manifest.json").write_bytes(pub.manifest_bytes(m))
    out = _cli("epoch", "publish", "--db", str(replayed["db"]), "--publish", str(root))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "another store's folder" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_publish_option_and_environment_choose_the_folder(sim_dir, tmp_path):
    assert pub.published_root(tmp_path / "x.duckdb") == Path(str(tmp_path / "x.duckdb") + ".published")
    assert pub.published_root(tmp_path / "x.duckdb", tmp_path / "p") == tmp_path / "p"
    out = _cli("replay", str(sim_dir), "--db", str(tmp_path / "a.duckdb"), env={"EPOCHAL_PUBLISH": str(tmp_path / "env")})
    assert out.returncode == 0, out.stderr
    assert pub.list_epochs(tmp_path / "env") and not Path(str(tmp_path / "a.duckdb") + ".published").exists()
    assert f"into {tmp_path / 'env'}" in " ".join(out.stdout.split())
    out = _cli("epoch", "close", "--db", str(tmp_path / "a.duckdb"), "--publish", str(tmp_path / "opt"))
    assert out.returncode == 0, out.stderr  # nothing to close: the close still publishes every epoch
    assert _folder_bytes(tmp_path / "opt") == _folder_bytes(tmp_path / "env")


# ----------------------------------------------------------------------------------------
# readers
# ----------------------------------------------------------------------------------------

def test_readers_see_only_manifested_epochs(replayed, tmp_path):
    root = tmp_path / "partial.published"
    shutil.copytree(replayed["root"], root)
    epochs = pub.list_epochs(root)
    hidden = epochs[-1]
    (pub.epoch_dir(root, hidden) / "manifest.json").unlink()
    (root / "reward_epoch=notanumber").mkdir()
    (root / "stray.txt").write_text("x")
    assert pub.list_epochs(root) == epochs[:-1]
    with pytest.raises(LookupError):
        pub.read_manifest(root, hidden)
    assert set(pub.scan(root, "node_epoch_scores").collect()["published_epoch"].unique()) == set(epochs[:-1])
    con = duckdb.connect()
    pub.attach(con, root)
    assert con.sql("SELECT max(published_epoch) FROM node_epoch_scores").fetchall()[0][0] == epochs[-2]
    assert con.sql("SELECT DISTINCT published_epoch FROM nodes").fetchall() == [(epochs[-2],)]
    assert con.sql("SELECT list(reward_epoch ORDER BY reward_epoch) FROM manifests").fetchall()[0][0] == epochs[:-1]
    # a chosen few, and an empty folder (the views exist, with their columns)
    pub.attach(con, root, epochs=[epochs[0]])
    assert con.sql("SELECT DISTINCT reward_epoch FROM node_epoch_scores").fetchall() == [(epochs[0],)]
    empty = duckdb.connect()
    pub.attach(empty, tmp_path / "nothing-here")
    for name in (*pub.FILE_NAMES, "manifests"):
        assert empty.sql(f"SELECT count(*) FROM {name}").fetchall() == [(0,)]
    assert "slot_bitmap" in empty.sql("SELECT * FROM node_epoch_scores").columns
    assert pub.scan(tmp_path / "nothing-here", "epoch_rewards").collect().columns == \
        pub.scan(root, "epoch_rewards").collect().columns


HOLDER = """
import sys, time
from store.db import connect
from store.published import publish_pending
con = connect(sys.argv[1])            # the writer's lock, held until stdin closes
con.execute("CREATE TABLE IF NOT EXISTS holder_was_here (x INTEGER)")
con.execute("INSERT INTO holder_was_here VALUES (1)")
print(publish_pending(con, sys.argv[2]), flush=True)
sys.stdin.read()
con.close()
"""


def test_a_reader_lists_and_reads_while_another_process_holds_the_store(replayed, tmp_path):
    db = tmp_path / "held.duckdb"
    shutil.copy(replayed["db"], db)
    root = tmp_path / "held.published"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = holder.stdout.readline()
        assert line.strip() == str(pub.list_epochs(replayed["root"])), line
        with pytest.raises(duckdb.IOException):  # the store itself cannot be opened, not even read-only
            duckdb.connect(str(db), read_only=True)
        assert pub.list_epochs(root) == pub.list_epochs(replayed["root"])
        scores = pub.scan(root, "node_epoch_scores").collect()
        assert scores.height == _store_rows(replayed["db"], "SELECT count(*) FROM node_epoch_scores")[0][0]
        con = duckdb.connect()
        pub.attach(con, root)
        paid = con.sql("SELECT sum(amount_base_units) FROM epoch_rewards").fetchall()[0][0]
        assert paid == _store_rows(replayed["db"], "SELECT sum(allocated_base_units) FROM reward_epochs")[0][0]
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert holder.returncode == 0


def test_the_module_docstring_documents_every_column_of_every_file():
    doc = pub.__doc__
    names = list(pub.FILE_NAMES)
    for i, name in enumerate(names):
        start = doc.index(f"\n{name}.parquet:")
        end = doc.index(f"\n{names[i + 1]}.parquet:") if i + 1 < len(names) else doc.index("\nmanifest.json")
        section = doc[start:end]
        for col, typ in pub.file_columns(name):
            assert re.search(rf"\b{re.escape(col)} {re.escape(typ)}(\W|$)", section), \
                f"store/published.py's docstring must list `{col} {typ}` under {name}.parquet"


# ----------------------------------------------------------------------------------------
# re-deriving epochs from the folder alone
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder_only(replayed, tmp_path_factory) -> Path:
    """A copy of the published folder, its store deleted."""
    d = tmp_path_factory.mktemp("folderonly")
    db = d / "gone.duckdb"
    shutil.copy(replayed["db"], db)
    root = d / "gone.published"
    shutil.copytree(replayed["root"], root)
    db.unlink()
    assert not db.exists()
    return root


def test_every_epoch_verifies_from_the_folder_alone_with_the_store_deleted(folder_only, tmp_path):
    from epochal.verify_published import verify_published_epoch

    epochs = pub.list_epochs(folder_only)
    for e in epochs:
        assert verify_published_epoch(folder_only, e) == [], e
    out = _cli("epoch", "verify", str(epochs[-1]), "--published", str(folder_only),
               "--db", str(tmp_path / "no-such-store.duckdb"))
    assert out.returncode == 0, out.stderr
    assert f"epoch {epochs[-1]} verified from" in " ".join(out.stdout.split())
    assert not (tmp_path / "no-such-store.duckdb").exists()
    missing = _cli("epoch", "verify", "999", "--published", str(folder_only))
    assert missing.returncode == 1 and "epoch 999 is not published" in missing.stderr
    assert "Traceback" not in missing.stderr


def _rewrite(path: Path, frame: pl.DataFrame) -> None:
    frame.write_parquet(path)


def _reforge(root: Path, from_epoch: int) -> None:
    """What a careful forger does: every manifest from `from_epoch` on made to match the files,
    and the hash chain after it."""
    previous = None
    for e in pub.list_epochs(root):
        m = pub.read_manifest(root, e)
        if e >= from_epoch:
            for f in m["files"]:
                p = pub.epoch_dir(root, e) / f["name"]
                f.update(rows=pl.read_parquet(p).height, bytes=p.stat().st_size, sha256=_sha(p))
            m["previous_manifest_sha256"] = previous
            (pub.epoch_dir(root, e) / "manifest.json").write_bytes(pub.manifest_bytes(m))
        previous = _sha(pub.epoch_dir(root, e) / "manifest.json")


def _epoch_with_decisions(root: Path) -> int:
    d = pub.scan(root, "slash_decisions").filter(pl.col("decided_in_epoch") == pl.col("published_epoch")).collect()
    assert d.height, "the simulated network makes slash decisions"
    return int(d["published_epoch"].max())


def _tamper(root: Path, n: int, name: str) -> str:
    """Change one row of epoch n's `name` file; returns what a re-derivation must name."""
    p = pub.epoch_dir(root, n) / f"{name}.parquet"
    f = pl.read_parquet(p)
    if name == "node_epoch_scores":
        i = int(f["weight"].arg_max())
        f = f.with_columns(pl.when(pl.int_range(pl.len()) == i).then(pl.col("weight") + 1)
                           .otherwise(pl.col("weight")).alias("weight"))
        return _write_and(p, f, f"node_epoch_scores.weight for node {f['node_id'][i]}")
    if name == "epoch_rewards":
        f = f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col("amount_base_units") + 1)
                           .otherwise(pl.col("amount_base_units")).alias("amount_base_units"))
        return _write_and(p, f, "epoch_rewards:")
    if name == "ledger_entries":
        f = f.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("node:someone-else:rewards"))
                           .otherwise(pl.col("credit_account")).alias("credit_account"))
        return _write_and(p, f, "ledger_entries differ")
    if name == "slash_decisions":
        i = int((f["decided_in_epoch"] == n).arg_max())
        f = f.with_columns(pl.when(pl.int_range(pl.len()) == i).then(pl.col("amount_base_units") + 7)
                           .otherwise(pl.col("amount_base_units")).alias("amount_base_units"))
        return _write_and(p, f, f"slash_decisions.amount_base_units of {f['decision_id'][i]}")
    if name == "nodes":
        f = f.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("mars-1"))
                           .otherwise(pl.col("region")).alias("region"))
        return _write_and(p, f, f"nodes.parquet of epoch {n}: region of node {f['node_id'][2]}")
    if name == "reward_epochs":
        f = f.with_columns(pl.col("eligible_nodes") - 1)
        return _write_and(p, f, "reward_epochs.eligible_nodes")
    if name == "rejected_events":
        f = f.with_columns(pl.lit("invalid_json").alias("reason"))
        return _write_and(p, f, None)
    raise AssertionError(name)


def _write_and(p: Path, frame: pl.DataFrame, named: str | None) -> str | None:
    _rewrite(p, frame)
    return named


@pytest.mark.parametrize("name", ["node_epoch_scores", "epoch_rewards", "ledger_entries", "slash_decisions", "nodes",
                                  "reward_epochs", "rejected_events"])
def test_one_changed_row_in_any_output_file_is_caught_and_named(folder_only, tmp_path, name):
    from epochal.verify_published import verify_published_epoch

    root = tmp_path / "t.published"
    shutil.copytree(folder_only, root)
    n = _epoch_with_decisions(root) if name in ("slash_decisions", "rejected_events") else pub.list_epochs(root)[-1]
    if name == "rejected_events":  # the rejections sit in the epoch whose arrival range holds them
        n = int(pub.scan(root, "rejected_events").collect()["published_epoch"][0])
    named = _tamper(root, n, name)
    # as changed: its sha256 no longer matches the manifest
    diffs = verify_published_epoch(root, pub.list_epochs(root)[-1])
    assert f"epoch {n}: {name}.parquet: its sha256 differs from the manifest's (the file was changed)" in diffs, diffs
    if name == "node_epoch_scores":  # the command says so too (once: a process start costs seconds)
        out = _cli("epoch", "verify", str(pub.list_epochs(root)[-1]), "--published", str(root))
        assert out.returncode == 1 and f"{name}.parquet" in out.stderr and "Traceback" not in out.stderr
    if named is None:
        return  # (rejections are no input of a close: only their hash guards them)
    # and with every manifest forged to match: the re-derivation from the inputs names the row
    _reforge(root, n)
    diffs = verify_published_epoch(root, n)
    assert not [d for d in diffs if "sha256 differs" in d]
    assert any(named in d for d in diffs), (named, diffs)


@pytest.mark.parametrize("name", ["node_epoch_scores", "slash_decisions", "nodes"])
def test_verifying_every_epoch_at_once_finds_what_one_at_a_time_finds(folder_only, tmp_path, name):
    """`verify_published_epochs` (the demo's: the folder loaded once) against `verify_published_epoch`."""
    from epochal.verify_published import verify_published_epoch, verify_published_epochs

    root = tmp_path / "t.published"
    shutil.copytree(folder_only, root)
    epochs = pub.list_epochs(root)
    ticks = []
    assert verify_published_epochs(root, progress=ticks.append) == {e: [] for e in epochs}
    assert len(ticks) == len(epochs)
    n = _epoch_with_decisions(root) if name == "slash_decisions" else epochs[-1]
    named = _tamper(root, n, name)
    changed = f"epoch {n}: {name}.parquet: its sha256 differs from the manifest's (the file was changed)"
    assert changed in verify_published_epochs(root)[n]
    _reforge(root, n)
    every = verify_published_epochs(root)
    assert any(named in d for d in every[n]), every[n]
    assert all(every[e] == [] for e in epochs if e < n)
    assert set(every[n]) == set(verify_published_epoch(root, n))
    assert verify_published_epochs(root, [n]) == {n: every[n]}


def test_one_removed_input_event_is_caught_and_named(folder_only, tmp_path):
    from epochal.verify_published import verify_published_epoch

    root = tmp_path / "t.published"
    shutil.copytree(folder_only, root)
    n = pub.list_epochs(root)[-1]
    inputs = pub.scan(root, "inputs").collect()
    victim = inputs.filter((pl.col("event_type") == "ping") & (pl.col("reward_epoch") == n)).row(0, named=True)
    k = victim["published_epoch"]
    p = pub.epoch_dir(root, k) / "inputs.parquet"
    _rewrite(p, pl.read_parquet(p).filter(pl.col("event_id") != victim["event_id"]))
    diffs = verify_published_epoch(root, n)
    assert f"epoch {k}: inputs.parquet: its sha256 differs from the manifest's (the file was changed)" in diffs
    assert any(f"epoch {k}: inputs.parquet:" in d and "rows, the manifest says" in d for d in diffs)
    _reforge(root, k)
    diffs = verify_published_epoch(root, n)
    assert any(d.startswith("reward_epochs.input_event_count") for d in diffs), diffs
    # a forger who mends only that epoch's manifest breaks the hash chain at the next one
    root2 = tmp_path / "t2.published"
    shutil.copytree(folder_only, root2)
    p2 = pub.epoch_dir(root2, k) / "inputs.parquet"
    _rewrite(p2, pl.read_parquet(p2).filter(pl.col("event_id") != victim["event_id"]))
    m = pub.read_manifest(root2, k)
    m["files"][0].update(rows=pl.read_parquet(p2).height, bytes=p2.stat().st_size, sha256=_sha(p2))
    (pub.epoch_dir(root2, k) / "manifest.json").write_bytes(pub.manifest_bytes(m))
    diffs = verify_published_epoch(root2, n)
    assert k == n or f"epoch {k + 1}: manifest.json: previous_manifest_sha256 is not the sha256 of epoch {k}'s" \
        " manifest (a manifest was changed)" in diffs, diffs
    assert any(d.startswith("reward_epochs.input_event_count") for d in diffs), diffs


# ----------------------------------------------------------------------------------------
# a crash between the store commit and the manifest
# ----------------------------------------------------------------------------------------

WALL_CLOCK = {"reward_epochs.parquet": ["closed_at"], "rejected_events.parquet": ["received_at"]}


@pytest.mark.parametrize("point", ["before_manifest:3", "after_file:11"])
def test_a_crash_before_the_manifest_is_completed_by_the_next_run_identically(sim_dir, replayed, tmp_path, point):
    """The replay is killed (SIGKILL) after its store commits, while publishing: with some
    epochs' files written but no manifest (`before_manifest`), or in the middle of the files
    (`after_file`). Readers see only the epochs whose manifest made it. The next run
    (`epochal epoch close`, with nothing left to close) completes the folder: its bytes are
    those of an uncrashed publication of the same store, and those of a clean run's folder but
    for the wall-clock columns (when the epoch was closed, when a rejection was received)."""
    db = tmp_path / "crash.duckdb"
    root = Path(str(db) + ".published")
    crashed = _cli("replay", str(sim_dir), "--db", str(db), env={"EPOCHAL_PUBLISH_CRASH": point})
    assert crashed.returncode == -9, crashed.stderr
    epochs = pub.list_epochs(replayed["root"])
    seen = pub.list_epochs(root)
    assert seen == epochs[:2] if point.startswith("before_manifest") else seen == []
    assert any(p.name.endswith(".parquet") for p in root.rglob("*"))  # files of unmanifested epochs
    done = _cli("epoch", "close", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert pub.list_epochs(root) == epochs
    assert not [p for p in root.rglob(".*")]  # no temporary file left
    # the same bytes as an uncrashed publication of this store ...
    con = duckdb.connect(str(db), read_only=True)
    try:
        pub.publish_pending(con, tmp_path / "fresh")
    finally:
        con.close()
    assert _folder_bytes(root) == _folder_bytes(tmp_path / "fresh")
    # ... and as the clean run's, but for the wall clock
    got, want = _folder_bytes(root), _folder_bytes(replayed["root"])
    assert got.keys() == want.keys()
    for rel in got:
        name = Path(rel).name
        if name in WALL_CLOCK:
            a = pl.read_parquet(root / rel).drop(WALL_CLOCK[name])
            assert a.equals(pl.read_parquet(replayed["root"] / rel).drop(WALL_CLOCK[name])), rel
        elif name != "manifest.json":
            assert got[rel] == want[rel], rel
    for e in epochs:  # manifests: only the hashes of the files with a wall clock differ
        a, b = pub.read_manifest(root, e), pub.read_manifest(replayed["root"], e)
        for m in (a, b):
            m.pop("previous_manifest_sha256")
            m["files"] = [f for f in m["files"] if f["name"] not in WALL_CLOCK]
        assert a == b


def test_a_broken_manifest_is_named_not_a_traceback(folder_only, tmp_path):
    from epochal.verify_published import verify_published_epoch

    root = tmp_path / "m.published"
    shutil.copytree(folder_only, root)
    first, last = pub.list_epochs(root)[0], pub.list_epochs(root)[-1]
    (pub.epoch_dir(root, first) / "manifest.json").write_text("{not json")
    m = pub.read_manifest(root, last)
    del m["files"]
    (pub.epoch_dir(root, last) / "manifest.json").write_bytes(pub.manifest_bytes(m))
    diffs = verify_published_epoch(root, last)
    assert diffs[0].startswith(f"epoch {first}: manifest.json is not valid JSON")
    assert f"epoch {last}: manifest.json lacks a valid files" in diffs
    from epochal.verify_published import verify_published_epochs

    assert f"epoch {last}: manifest.json lacks a valid files" in verify_published_epochs(root)[last]
    out = _cli("epoch", "verify", str(last), "--published", str(root))
    assert out.returncode == 1 and "not valid JSON" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("forgery", ["column dropped", "null time", "payload not JSON"])
def test_a_consistently_forged_folder_that_breaks_the_load_or_the_close_is_named_not_a_traceback(
        folder_only, tmp_path, forgery):
    """A folder is data from outside: files forged with every manifest made to match, so that
    the load into the store's tables (a column dropped, a NULL where the store has NOT NULL) or
    the close itself (a payload that is not JSON) fails. Each ended in a DuckDB traceback; it is
    a named difference, for one epoch, for all at once, and on the command line (exit 1)."""
    from epochal.verify_published import verify_published_epoch, verify_published_epochs

    root = tmp_path / "f.published"
    shutil.copytree(folder_only, root)
    k, n = pub.list_epochs(root)[0], pub.list_epochs(root)[-1]
    p = pub.epoch_dir(root, k) / "inputs.parquet"
    f = pl.read_parquet(p)
    first_event = pl.int_range(pl.len()) == int(f["payload"].is_not_null().arg_max())
    if forgery == "column dropped":
        f = f.drop("checker_id")
    elif forgery == "null time":
        f = f.with_columns(pl.when(first_event).then(None).otherwise(pl.col("occurred_at_us")).alias("occurred_at_us"))
    else:
        f = f.with_columns(pl.when(first_event).then(pl.lit("{")).otherwise(pl.col("payload")).alias("payload"))
    _rewrite(p, f)
    _reforge(root, k)
    diffs = verify_published_epoch(root, n)
    assert any(d.startswith(f"epoch {n} is not re-derived: ") for d in diffs), diffs
    every = verify_published_epochs(root)
    assert any(d.startswith(f"epoch {n} is not re-derived: ") for d in every[n]), every[n]
    if forgery == "payload not JSON":  # the command says so too (once: a process start costs seconds)
        out = _cli("epoch", "verify", str(n), "--published", str(root))
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"epoch {n} is not re-derived" in out.stderr
