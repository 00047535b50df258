"""The published folder's Parquet writer gives the same bytes for the same rows, however the
store holds them (one insert or many, in memory or checkpointed to disk, one thread or two) —
what DuckDB's own COPY does not (it was tried: a file written before a checkpoint differed)."""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow.parquet as pq

from store import published as pub

ROWS = 50_000  # with row groups of 20,000 (patched): two full, the last one partial
GROUP = 20_000
SELECT = "SELECT * FROM t ORDER BY k"
MAKE = """
    SELECT k, 'node-' || (k % 977)::VARCHAR AS node_id, 'evt-' || k::VARCHAR AS event_id,
           CASE WHEN k % 5 = 0 THEN NULL ELSE k * 1.5 END AS rtt_ms, k % 3 = 0 AS reachable,
           1767225600000000 + k * 60000000 AS occurred_at_us
    FROM range({lo}, {hi}) r(k)"""


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(con, path) -> str:
    assert pub.write_parquet(con, SELECT, path, {"occurred_at_us": "DELTA_BINARY_PACKED"}) == ROWS
    return _sha(path)


def test_the_same_rows_give_the_same_bytes_however_the_store_holds_them(tmp_path, monkeypatch):
    monkeypatch.setattr(pub, "ROW_GROUP_ROWS", GROUP)
    one = duckdb.connect()
    one.execute(f"CREATE TABLE t AS {MAKE.format(lo=0, hi=ROWS)}")
    want = _write(one, tmp_path / "one.parquet")

    many = duckdb.connect(str(tmp_path / "many.duckdb"))
    many.execute(f"CREATE TABLE t AS {MAKE.format(lo=0, hi=0)}")
    step = 1_913
    for lo in range(ROWS - step, -step, -step):  # backwards, in odd-sized pieces
        many.execute(f"INSERT INTO t {MAKE.format(lo=max(lo, 0), hi=lo + step)}")
    assert _write(many, tmp_path / "many.parquet") == want
    many.execute("CHECKPOINT")
    many.execute("SET threads = 1")
    assert _write(many, tmp_path / "many1.parquet") == want
    many.close()
    reopened = duckdb.connect(str(tmp_path / "many.duckdb"), read_only=True)
    assert _write(reopened, tmp_path / "reopened.parquet") == want

    meta = pq.read_metadata(tmp_path / "one.parquet")
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == \
        [GROUP, GROUP, ROWS - 2 * GROUP]


def test_rows_of_several_selects_follow_one_another_in_one_file(tmp_path, monkeypatch):
    monkeypatch.setattr(pub, "ROW_GROUP_ROWS", GROUP)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS {MAKE.format(lo=0, hi=ROWS)}")
    parts = ("SELECT * FROM t WHERE k < 33333 ORDER BY k", "SELECT * FROM t WHERE k >= 33333 ORDER BY k")
    assert pub.write_parquet(con, parts, tmp_path / "parts.parquet", {}) == ROWS
    pub.write_parquet(con, SELECT, tmp_path / "whole.parquet", {})
    assert _sha(tmp_path / "parts.parquet") == _sha(tmp_path / "whole.parquet")


def test_a_table_written_from_memory_gives_the_bytes_of_the_same_rows_from_the_store(tmp_path, monkeypatch):
    """`write_table` (the batched epochs' files, cut from one query's rows) and `write_parquet`
    (rows streamed from the store) write the same bytes for the same rows, a slice's too."""
    monkeypatch.setattr(pub, "ROW_GROUP_ROWS", GROUP)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS {MAKE.format(lo=0, hi=ROWS)}")
    enc = {"occurred_at_us": "DELTA_BINARY_PACKED"}
    pub.write_parquet(con, "SELECT * FROM t WHERE k >= 7 AND k < 45000 ORDER BY k", tmp_path / "s.parquet", enc)
    whole = con.sql(SELECT).to_arrow_table()
    rows, size, sha = pub.write_table(whole.slice(7, 45000 - 7), tmp_path / "m.parquet", enc)
    assert (rows, size, sha) == (45000 - 7, (tmp_path / "s.parquet").stat().st_size, _sha(tmp_path / "s.parquet"))
    assert _sha(tmp_path / "m.parquet") == sha
