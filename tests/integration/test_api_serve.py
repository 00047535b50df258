"""The real server (`epochal serve`, uvicorn, in a subprocess) over a store that another process
holds open for writing: it answers every endpoint (it reads only the published folder), and an
epoch that a writer closes and publishes meanwhile shows up without a restart."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import duckdb
import orjson
import pytest

from apikit import CLI, ROOT, Server, published_folder, wait_until

from scoring.ruleset import RULESET_V1
from scoring.timing import format_us
from store.published import list_epochs, published_root


def extra_pings(path, nodes: list[str], first_epoch: int, epochs: int) -> None:
    """One reachable ping a minute for every node through `epochs` more epochs and 6 minutes,
    so that the watermark passes their ends."""
    start = RULESET_V1.genesis_us + first_epoch * RULESET_V1.reward_epoch_us
    minutes = epochs * 60 + 6
    with open(path, "wb") as f:
        for m in range(minutes):
            at = format_us(start + m * 60_000_000 + 1_000_000)
            for node in nodes:
                f.write(orjson.dumps({"event_id": f"extra-{node}-{m}", "event_type": "ping", "schema_version": 1,
                                      "node_id": node, "occurred_at": at, "checker_id": "chk-extra",
                                      "reachable": True, "rtt_ms": 12.5}) + b"\n")


def test_serves_while_the_store_is_held_and_shows_newly_published_epochs(tmp_path_factory):
    data = published_folder(tmp_path_factory)
    work = tmp_path_factory.mktemp("held")
    db = work / "store.duckdb"
    shutil.copy2(data["db"], db)
    shutil.copytree(data["root"], published_root(db))
    before = list_epochs(published_root(db))

    server = Server(["--db", str(db)], work / "serve.log")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from store.db import connect
        con = connect({str(db)!r})  # read-write: DuckDB's lock keeps every other process out
        print("held", flush=True)
        import sys; sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT))
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(db), read_only=True).close()  # the store really is held
        h = server.wait_ready()
        assert (h["published_epochs"], h["latest_epoch"]) == (len(before), before[-1])
        nodes = server.get("/nodes", params={"limit": 200}).json()["nodes"]
        node = nodes[0]["node_id"]
        wallet = next(n["wallet"] for n in nodes if n["reward_base_units"] > 0)
        for path in ("/", "/nodes", f"/nodes/{node}", "/epochs", f"/epochs/{before[-1]}", f"/wallets/{wallet}/rewards",
                     "/openapi.json"):
            assert server.get(path).status_code == 200, path
    finally:
        holder.stdin.close()
        holder.wait(20)

    # a writer closes two more epochs and publishes them while the server runs
    extra = work / "extra.jsonl"
    extra_pings(extra, [n["node_id"] for n in nodes], before[-1] + 1, 2)
    try:
        out = subprocess.run(CLI + ["replay", str(extra), "--db", str(db)], cwd=str(ROOT), capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        after = list_epochs(published_root(db))
        assert after[-1] >= before[-1] + 2, (before, after)
        h = wait_until(lambda: (lambda j: j if j["latest_epoch"] == after[-1] else None)(server.get("/health").json()),
                       60, "the new epochs on the running server")
        assert h["published_epochs"] == len(after)
        assert server.get(f"/epochs/{after[-1]}").json()["reward_epoch"] == after[-1]
        d = server.get(f"/nodes/{node}").json()
        assert d["current"]["reward_epoch"] == after[-1]
        assert d["epochs"][-1]["up_slots"] == 60  # a ping every minute
    finally:
        assert server.stop() in (0, -15), server.tail()
