"""A user's mistake on the command line: one sentence on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "epochal.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("args, says", [
    (["replay", "/no/such/file.jsonl", "--db", "{tmp}/s.duckdb"], "no such file or folder"),
    (["replay", "--bogus"], "No such option"),
    (["replay"], "Missing argument"),
    (["epoch", "show", "abc", "--db", "{tmp}/s.duckdb"], "Invalid value"),
    (["epoch", "show", "3", "--db", "{tmp}/missing.duckdb"], "no store at"),
    (["epoch", "verify", "3", "--db", "{tmp}/missing.duckdb"], "no store at"),
    (["node", "show", "n1", "--db", "{tmp}/nofolder/x.duckdb"], "no store at"),
    (["simulate", "--nodes", "0", "--hours", "2", "--out", "{tmp}/sim"], "at least 1"),
    (["simulate", "--nodes", "5", "--hours", "1", "--out", "{tmp}/sim", "--traces", "{tmp}/none"], "not found"),
    (["demo", "--nodes", "5", "--hours", "1", "--out", "{tmp}/demo", "--traces", "{tmp}"], "lacks"),
    (["frobnicate"], "No such command"),
    (["replay", "{tmp}", "--db", "{tmp}/s.duckdb"], "no .jsonl event files"),
    (["serve", "--published", "{tmp}/none"], "no published folder at"),
    (["serve", "--db", "{tmp}/s.duckdb", "--port", "0"], "--port must be between"),
    (["serve", "--db", "{tmp}/s.duckdb", "--bootstrap", "nohost"], "--bootstrap must be HOST:PORT"),
    (["serve", "--db", "{tmp}/s.duckdb", "--window", "0"], "--window must be at least 1"),
])
def test_a_user_mistake_is_one_sentence_on_stderr(tmp_path, args, says):
    res = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert says in lines[0] and lines[0].startswith("epochal: ")
    assert lines[0].endswith(".") and not lines[0].endswith("..")


def test_showing_an_epoch_that_is_not_closed_is_a_user_mistake(tmp_path):
    from eventkit import EventKit

    kit = EventKit()
    kit.pings("n1", range(0, 10))
    path = kit.write(tmp_path / "e.jsonl")
    assert run("replay", str(path), "--db", str(tmp_path / "s.duckdb")).returncode == 0
    res = run("epoch", "show", "5", "--db", str(tmp_path / "s.duckdb"))
    assert res.returncode == 1 and "is not closed" in res.stderr and "Traceback" not in res.stderr


def test_a_file_that_is_not_a_store_is_a_user_mistake(tmp_path):
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("this is not a database")
    res = run("epoch", "show", "1", "--db", str(bogus))
    assert res.returncode != 0 and "Traceback" not in res.stderr and res.stderr.startswith("epochal: ")
