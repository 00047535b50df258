"""The live Table's own faust app, in a child process of `epochal streams worker`.

The per-node live state (`streams.live`) is a faust Table, and a faust app that has a Table
recovers it on every rebalance: it pauses, seeks and resumes all of its partitions. Run inside
the ingest app, that made the ingest agent lose messages in the crash test (faust committed
offsets past messages that were never handed to the agent, 2 runs in 4; faust-streaming has
open reports of skipped offsets around rebalances). The archive must never depend on the
cache, so the Table lives in an app of its own: consumer group `<group>-live`, reading only
`<group>.node-slots`, in a child process the worker starts, stops and outlives (the child
exits within a second when its parent is gone, SIGKILL included). The ingest app has no Table,
as before.

The child writes `<segments>/live-<worker>.json` (applied updates, snapshots, busy time) every
`status_every_s`. It runs at a lower CPU priority than the worker (`niceness`): the archive
comes first, the cache catches up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scoring.ruleset import RULESET_V1
from streams import live
from streams.broker import (DEFAULT_PARTITIONS, ensure_topics, faust_app_settings, node_slots_topic, stop_process,
                            topic_partitions)
from streams.logs import log, setup_logging
from streams.outputs import OutputSink

PINGS_TOPIC = "epochal.pings"


@dataclass
class LiveConfig:
    bootstrap: str
    group: str  # the ingest app's consumer group: the live app's is `<group>-live`
    worker_id: str
    seg_dir: str
    partitions: int  # of <group>.node-slots and of the Table
    live_every_s: float = 10.0
    status_every_s: float = 10.0
    session_timeout_s: float = 10.0
    parent_pid: int = 0
    # The cache yields the CPU to the archive: applying a burst of node updates is ~1 core for
    # a few seconds, and on a small machine it slowed the worker's ingest and closes by a
    # tenth (bench_stream). Niceness only orders the two when CPU is short; idle, it costs nothing.
    niceness: int = 10

    @property
    def app_id(self) -> str:
        return f"{self.group}-live"


def prepare_live_topics(bootstrap: str, group: str) -> int | None:
    """Create `<group>.node-slots` (as many partitions as `epochal.pings`) and the live Table's
    changelog topic (compacted, as many partitions as `<group>.node-slots`, which faust
    requires) when missing: the app has `topic_allow_declare=False`, on Tansu or any Kafka.
    Returns the partitions of the Table, or None (no live Table) when the topics cannot be
    made to fit."""
    slots = node_slots_topic(group)
    changelog = live.changelog_topic(f"{group}-live")
    try:
        n = topic_partitions(bootstrap, slots)
        if n is None:
            ensure_topics(bootstrap, topic_partitions(bootstrap, PINGS_TOPIC) or DEFAULT_PARTITIONS, (slots,))
            n = topic_partitions(bootstrap, slots)
        ensure_topics(bootstrap, n, (changelog,), configs={"cleanup.policy": "compact"})
        m = topic_partitions(bootstrap, changelog)
    except Exception as exc:  # noqa: BLE001 - the live Table is a cache; the worker runs without it
        log.warning("no live Table: its topics cannot be created (%r)", exc)
        return None
    if not n or m != n:
        log.warning("no live Table: %s has %s partitions, %s has %s", slots, n, changelog, m)
        return None
    return n


def start_live_process(cfg: LiveConfig) -> subprocess.Popen:
    """The child running `run_live_worker(cfg)`; it shares the worker's stdout and stderr."""
    cmd = [sys.executable, "-c", "from streams.live_worker import main; main()", json.dumps(asdict(cfg))]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env, cwd=root)


def stop_live_process(proc: subprocess.Popen | None, timeout_s: float = 15.0) -> None:
    if proc is not None:
        stop_process(proc, timeout_s)  # terminate, then kill after the timeout


def build_live_app(cfg: LiveConfig, cache_holder: dict):
    """The live app: the Table, its agent on `<group>.node-slots` (concurrency 1), the snapshot
    timer, the status file and the parent watch."""
    import faust  # faust costs ~1 s to import: only the live Table's process needs it

    app = faust.App(cfg.app_id, **faust_app_settings(cfg.bootstrap, cfg.session_timeout_s))
    table = app.Table(live.TABLE_NAME, partitions=cfg.partitions, help="per-node live state (a cache: streams.live)")
    sink = OutputSink(cfg.bootstrap)
    cache = cache_holder["cache"] = live.LiveCache(table, sink, RULESET_V1)
    cache_holder["sink"] = sink
    slots = app.topic(node_slots_topic(cfg.group), value_serializer="raw", key_serializer="raw")
    status_path = Path(cfg.seg_dir) / f"live-{cfg.worker_id}.json"
    last_status = [0.0]

    @app.agent(slots, concurrency=1, name="epochal-node-live")
    async def node_live(stream):
        async for value in stream:  # one message: a few thousand nodes of one partition
            try:
                cache.apply(value)
            except Exception as exc:  # noqa: BLE001 - a cache: a bad update is skipped, not fatal
                log.warning("a node-slots message was skipped: %r", exc)

    @app.timer(cfg.live_every_s)
    async def live_snapshots():
        try:
            cache.flush()
        except Exception as exc:  # noqa: BLE001
            log.warning("live snapshots not published: %r", exc)

    @app.timer(1.0)
    async def watch():
        if cfg.parent_pid and os.getppid() != cfg.parent_pid:  # the worker is gone (even by SIGKILL)
            log.warning("live Table: the worker %d is gone; exiting", cfg.parent_pid)
            os._exit(0)
        if time.monotonic() - last_status[0] >= cfg.status_every_s:
            last_status[0] = time.monotonic()
            st = {"worker_id": cfg.worker_id, "pid": os.getpid(), "group": cfg.app_id, "updated_at": time.time(),
                  **cache.status()}
            tmp = status_path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps(st))
                os.replace(tmp, status_path)
            except OSError:
                pass

    return app


def run_live_worker(cfg: LiveConfig) -> int:
    from faust import Worker  # (see build_live_app)

    setup_logging()
    if cfg.niceness:
        try:
            os.nice(cfg.niceness)
        except OSError as exc:  # not allowed here: run at the worker's priority
            log.info("live Table: niceness not changed (%s)", exc)
    holder: dict = {}
    app = build_live_app(cfg, holder)
    log.info("live Table: group %s, %d partitions of %s", cfg.app_id, cfg.partitions, node_slots_topic(cfg.group))
    worker = Worker(app, loglevel="warning", quiet=True, override_logging=False, loop=asyncio.new_event_loop())
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        try:
            holder["cache"].flush()  # the snapshots still pending (faust has stopped: no other user)
        except Exception as exc:  # noqa: BLE001 - a cache's last words
            log.warning("last live snapshots not published: %r", exc)
        holder["sink"].close()
    return 0


def main() -> None:
    cfg = LiveConfig(**json.loads(sys.argv[1]))
    raise SystemExit(run_live_worker(cfg))
