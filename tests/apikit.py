"""Shared pieces of the API tests: one small published folder per test session (a real
simulation, replayed and published by the engine), the expected rows read back with DuckDB
through the reader's views, and the real server (`epochal serve`) in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from epochal.cli import main; main()"]
NODES, HOURS, SEED = 40, 8, 3  # seed 3 plants farms, spoofers (slashes with evidence), outages


def published_folder(tmp_path_factory) -> dict:
    """{"db", "root", "sim"}: a simulated network replayed into a store and published; built
    once per session (the first module to ask builds it, the others reuse the folder)."""
    from epochal.replay import replay
    from epochal.sim import simulate
    from store.published import publish_pending, published_root

    base = tmp_path_factory.getbasetemp() / "api-data"
    db = base / "store.duckdb"
    done = base / "done"
    if not done.exists():
        base.mkdir(parents=True, exist_ok=True)
        simulate(NODES, HOURS, SEED, base / "sim")
        replay([base / "sim"], db)
        con = duckdb.connect(str(db))
        try:
            publish_pending(con, published_root(db))  # a no-op where the replay published already
        finally:
            con.close()
        done.touch()
    return {"db": db, "root": published_root(db), "sim": base / "sim"}


def published_con(root: Path, epochs=None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the reader's views over the folder (the expected values)."""
    from store.published import attach

    con = duckdb.connect()
    attach(con, root, epochs)
    return con


def rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
        except (httpx.HTTPError, OSError) as exc:
            v, last = None, exc
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")


class Server:
    """`epochal serve` in a subprocess on a free loopback port; `stop()` ends it (SIGTERM)."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        e.update(env or {})
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(CLI + ["serve", "--port", str(self.port), *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=e, cwd=str(ROOT),
                                     start_new_session=True)

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kw)

    def wait_ready(self, timeout: float = 60) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            return self.get("/health").json()

        return wait_until(ready, timeout, "the server to answer /health")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode
