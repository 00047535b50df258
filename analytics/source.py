"""Where an investigation reads the archive from: the store (read-only) or the published folder.

Either way the investigation sees the same five relations, as DuckDB views on one connection:

- `inv_pings`   (node_id, event_id, occurred_at_us, checker_id, reachable, rtt_ms)
- `inv_events`  (event_id, event_type, node_id, occurred_at_us, payload)   every other event
- `inv_scores`  (reward_epoch, node_id, slot_bitmap, hw_verdict, benchmark_event_id)
- `inv_rewards` (reward_epoch, node_id, amount_base_units, wallet)
- `inv_epochs`  (reward_epoch, input_arrival_seq)

**The cut.** An investigation "up to epoch N" reads exactly what the close of N read: the events
whose `arrival_seq` is at most that close's `input_arrival_seq`, and of those only the ones that
occurred before `end(N)`; and the closed epochs' own rows for epochs ≤ N (immutable). Events
that arrive after that close, or that occur after `end(N)`, change nothing, so the same N gives
the same answer whatever arrived later (tested).

The store is opened read-only; when another process holds it (a stream worker), the published
folder is read instead through `store.published` (the one reader of that folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from store.db import StoreError, connect, resolve_db_path
from scoring.ruleset import RULESET_V1
from scoring.timing import get_epoch_end_us


class SourceError(Exception):
    """The archive cannot be read as asked (reported to the user in one sentence)."""


@dataclass
class Source:
    con: duckdb.DuckDBPyConnection
    up_to_epoch: int
    first_epoch: int
    end_us: int  # end of epoch up_to_epoch (exclusive)
    arrival_cutoff: int | None  # the close of up_to_epoch's input_arrival_seq
    where: str  # what was read, for people
    ruleset_version: str
    published_root: Path | None = None  # when reading a published folder
    closed: dict[int, int | None] | None = None  # closed epoch -> its input_arrival_seq

    def close(self) -> None:
        self.con.close()


def _published_module():
    # The published folder's reader lands from another issue; import it where it is needed so
    # that the store path works without it.
    try:
        from store import published  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - until store/published.py is on main
        return None
    return published


def _cut_views(con, cutoff: int | None, end_us: int, up_to: int) -> None:
    arr = "TRUE" if cutoff is None else f"arrival_seq <= {int(cutoff)}"
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW inv_pings AS
            SELECT node_id, event_id, occurred_at_us, checker_id, reachable, rtt_ms
            FROM src_pings WHERE {arr} AND occurred_at_us < {int(end_us)}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW inv_events AS
            SELECT event_id, event_type, node_id, occurred_at_us, payload
            FROM src_events WHERE {arr} AND occurred_at_us < {int(end_us)}
              AND event_type <> 'ping.batch'"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW inv_scores AS
            SELECT reward_epoch, node_id, slot_bitmap, hw_verdict, benchmark_event_id
            FROM src_scores WHERE reward_epoch <= {int(up_to)}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW inv_rewards AS
            SELECT reward_epoch, node_id, amount_base_units, wallet
            FROM src_rewards WHERE reward_epoch <= {int(up_to)}"""
    )


def _attach_published(con, root: Path, up_to: int) -> None:
    """The published folder's epochs ≤ up_to as views (their inputs are exactly the archive the
    close of up_to had read: the arrival ranges of the epochs up to it)."""
    mod = _published_module()
    mod.attach(con, root, epochs=[e for e in mod.list_epochs(root) if e <= up_to])
    con.execute("CREATE OR REPLACE TEMP VIEW src_pings AS SELECT * FROM inputs WHERE event_type = 'ping'")
    con.execute("CREATE OR REPLACE TEMP VIEW src_events AS SELECT * FROM inputs WHERE event_type <> 'ping'")
    con.execute("CREATE OR REPLACE TEMP VIEW src_scores AS SELECT * FROM node_epoch_scores")
    con.execute("CREATE OR REPLACE TEMP VIEW src_rewards AS SELECT * FROM epoch_rewards")


def open_source(db: str | os.PathLike | None, published: str | os.PathLike | None = None,
                up_to_epoch: int | None = None, memory_limit: str = "4GB") -> Source:
    """Open the archive read-only and cut it at `up_to_epoch` (default: the last closed epoch)."""
    if published is None:
        path = resolve_db_path(db)
        try:
            con = connect(path, create=False, read_only=True, memory_limit=memory_limit)
        except StoreError as exc:
            mod = _published_module()
            pub = mod.published_root(path) if mod is not None else Path(str(path) + ".published")
            if "cannot open" in str(exc) and Path(pub).is_dir():
                return open_source(None, pub, up_to_epoch, memory_limit)  # a writer holds it
            raise SourceError(str(exc)) from exc
        con.execute("CREATE OR REPLACE TEMP VIEW src_pings AS SELECT * FROM archive_pings")
        con.execute("CREATE OR REPLACE TEMP VIEW src_events AS SELECT * FROM archive_events")
        con.execute("CREATE OR REPLACE TEMP VIEW src_scores AS SELECT * FROM node_epoch_scores")
        con.execute("CREATE OR REPLACE TEMP VIEW src_rewards AS SELECT * FROM epoch_rewards")
        where = f"store {path} (read-only)"
        epochs = con.execute("SELECT reward_epoch, input_arrival_seq FROM reward_epochs ORDER BY 1").fetchall()
    else:
        root = Path(published)
        mod = _published_module()
        if mod is None:
            raise SourceError("reading a published folder needs store/published.py, which this build lacks")
        if not root.is_dir():
            raise SourceError(f"no published folder at {root}")
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{memory_limit}'")
        where = f"published folder {root}"
        epochs = [(n, mod.read_manifest(root, n)["arrival_range"]["through"]) for n in mod.list_epochs(root)]
    if not epochs:
        con.close()
        raise SourceError(f"no closed epoch in the {where}")
    closed = {int(e): (None if s is None else int(s)) for e, s in epochs}
    if up_to_epoch is None:
        up_to_epoch = max(closed)
    if up_to_epoch not in closed:
        con.close()
        raise SourceError(f"epoch {up_to_epoch} is not closed in the {where} (closed: {min(closed)}..{max(closed)})")
    try:
        con.execute("SET enable_progress_bar = false")  # the command shows its own progress
        con.execute("SET preserve_insertion_order = false")  # every result is sorted where order matters
    except duckdb.Error:  # inside Jupyter DuckDB refuses to touch the setting without ipywidgets
        pass
    src = Source(con, int(up_to_epoch), min(closed), 0, None, where, RULESET_V1.ruleset_version,
                 None if published is None else Path(published), closed)
    return recut(src, int(up_to_epoch))


def closed_epochs(src: Source) -> list[int]:
    return sorted(src.closed or {})


def recut(src: Source, up_to_epoch: int) -> Source:
    """The same archive cut at another closed epoch (the leak timeline runs one per epoch)."""
    if src.closed is None or up_to_epoch not in src.closed:
        raise SourceError(f"epoch {up_to_epoch} is not closed in the {src.where}")
    end_us = get_epoch_end_us(up_to_epoch, RULESET_V1)
    cutoff = src.closed[up_to_epoch]
    if src.published_root is not None:
        _attach_published(src.con, src.published_root, up_to_epoch)
    _cut_views(src.con, cutoff, end_us, up_to_epoch)
    src.up_to_epoch, src.end_us, src.arrival_cutoff = up_to_epoch, end_us, cutoff
    return src
