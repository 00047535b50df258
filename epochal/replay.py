"""`epochal replay`: archive event files, then close every epoch that is ready.

Replay reads every given file before it closes anything (ruleset §10), so its outputs do not
depend on the order of lines or files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from epochal import store
from epochal.ingest import IngestCounts, ingest_files
from payouts.close import EpochResult, close_ready_epochs
from scoring.ruleset import RULESET_V1, RulesetConfig
from store.published import Publisher, published_root


INGEST_MEMORY_LIMIT = "256MB"
CLOSE_MEMORY_LIMIT = "512MB"


@dataclass
class ReplayReport:
    counts: IngestCounts
    closed: list[EpochResult]
    published: list[int] = field(default_factory=list)  # epochs published by this run
    publish_root: Path | None = None


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for its *.jsonl files in name order."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(p.glob("*.jsonl")))
        else:
            out.append(p)
    return out


def replay(paths: list[Path], db: str | Path | None, cfg: RulesetConfig = RULESET_V1, *,
           progress: Callable[[int], None] | None = None,
           on_closed: Callable[[EpochResult], None] | None = None,
           publish: str | Path | None | bool = None) -> ReplayReport:
    """`publish`: the published folder (None: `published_root(db)`; False: publish nothing).
    Every epoch closed, and any closed earlier but not yet published, is published after its
    store commit (`store.published`)."""
    con = store.connect(db)
    root = None if publish is False else published_root(db, publish or None)
    publisher = None
    try:
        # Ingest streams through bounded batches; a small DuckDB buffer pool keeps its cache of
        # the growing archive from making memory grow with the input (the budget: flat RSS).
        con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
        counts = ingest_files(con, expand_paths(paths), cfg, progress=progress)
        con.execute(f"SET memory_limit = '{CLOSE_MEMORY_LIMIT}'")
        if root is not None:
            publisher = Publisher(con, root)
            publisher.start()

        def closed_one(result: EpochResult) -> None:
            if publisher is not None:
                publisher.closed(result.reward_epoch)  # its files are written meanwhile
            if on_closed is not None:
                on_closed(result)

        closed = close_ready_epochs(con, cfg, on_closed=closed_one)
        published = publisher.finish() if publisher is not None else []
        con.execute("CHECKPOINT")
    finally:
        if publisher is not None:
            publisher.close()
        con.close()
    return ReplayReport(counts, closed, published, root)
