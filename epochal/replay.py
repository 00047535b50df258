"""`epochal replay`: archive event files, then close every epoch that is ready.

Replay reads every given file before it closes anything (ruleset §10), so its outputs do not
depend on the order of lines or files. The files are archived as one run (`store.ingest`), all
or nothing: a crash or an unreadable file leaves nothing of the run behind (a killed run is
undone by the next writer, before anything else).

The arrival time (§10 "Ingest bounds"): every line of a replay arrives when the replay starts
(the wall clock, read once here at the edge), or at `arrived_at_us` when the caller pins it
(`--arrived-at`, for a reproducible replay of recorded files). An event dated more than 5 min
after it is rejected `from_future`, so one far-future ping can neither move the watermark ahead
nor make the replay close empty epochs up to it. The run records the arrival time it used
(`ingest_runs.arrived_at_us`), and its rejections, so re-deriving an epoch never reads a clock.

`EPOCHAL_REPLAY_CRASH=<point>:<n>` kills the process at a commit point (`streams.crash`), for the
crash tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import store.db as store
from store.ingest import ROW_GROUP_ROWS, IngestCounts, ingest_files
from store.sources import SourceError, check_readable, expand_paths
from payouts.close import EpochResult, close_ready_epochs
from scoring.ruleset import RULESET_V1, RulesetConfig
from store.published import Publisher, check_root, published_root
from streams.crash import CrashHook


INGEST_MEMORY_LIMIT = "256MB"
CLOSE_MEMORY_LIMIT = "512MB"
CRASH_ENV = "EPOCHAL_REPLAY_CRASH"


@dataclass
class ReplayReport:
    counts: IngestCounts
    closed: list[EpochResult]
    published: list[int] = field(default_factory=list)  # epochs published by this run
    publish_root: Path | None = None
    files: list[Path] = field(default_factory=list)  # the files read, folders expanded
    arrived_at_us: int | None = None  # the arrival time every line was judged against


def replay(paths: list[Path], db: str | Path | None, cfg: RulesetConfig = RULESET_V1, *,
           progress: Callable[[int], None] | None = None,
           on_closed: Callable[[EpochResult], None] | None = None,
           publish: str | Path | None | bool = None,
           arrived_at_us: int | None = None) -> ReplayReport:
    """`publish`: the published folder (None: `published_root(db)`; False: publish nothing).
    Every epoch closed, and any closed earlier but not yet published, is published after its
    store commit (`store.published`). `arrived_at_us`: the arrival time of every line (None:
    now). A path that cannot be read raises `SourceError` before the store is touched."""
    files = expand_paths(paths)
    if not files:
        raise SourceError("no .jsonl event files in the given folders")
    check_readable(files)
    # the edge reads the clock once: every line of this run arrived now (unless pinned)
    arrived = time.time_ns() // 1000 if arrived_at_us is None else arrived_at_us
    crash = CrashHook(os.environ.get(CRASH_ENV))
    # a folder that cannot take the epochs is refused before the store is touched
    root = None if publish is False else check_root(published_root(db, publish or None))
    con = store.connect(db)
    publisher = None
    try:
        # Ingest streams through bounded batches; a small DuckDB buffer pool keeps its cache of
        # the growing archive from making memory grow with the input (the budget: flat RSS).
        con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
        counts = ingest_files(con, files, cfg, progress=progress, arrived_at_us=arrived, crash_hook=crash)
        crash("after_ingest_commit")
        con.execute(f"SET memory_limit = '{CLOSE_MEMORY_LIMIT}'")
        if store.get_most_epoch_pings(con) < ROW_GROUP_ROWS:
            # DuckDB's threads split a scan by row group: when an epoch's pings fill less than
            # one, the closes' queries are a task or two each and a second thread only adds its
            # scheduling, and takes the core the publisher's thread would use (23 closes of
            # 1,000 nodes, alternating runs: 1.33-1.43 s on one thread, 1.62-1.94 s on two
            # beside the publisher; 1.22-1.28 s against 1.28-1.82 s without it).
            con.execute("SET threads = 1")
        if root is not None:
            publisher = Publisher(con, root)
            publisher.start()

        def closed_one(result: EpochResult) -> None:
            if publisher is not None:
                publisher.closed(result.reward_epoch)  # its files are written meanwhile
            if on_closed is not None:
                on_closed(result)
            crash("between_closes")

        closed = close_ready_epochs(con, cfg, on_closed=closed_one,
                                    before_commit=lambda e: crash("before_epoch_commit"))
        published = publisher.finish() if publisher is not None else []
        crash("before_checkpoint")
        con.execute("CHECKPOINT")
    finally:
        if publisher is not None:
            publisher.close()
        con.close()
    return ReplayReport(counts, closed, published, root, files, arrived)
