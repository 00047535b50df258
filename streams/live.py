"""Per-node live state: accepted pings repartitioned by node, merged into a faust Table, and
the live score snapshots on `epochal.scores` (ruleset §2 up slots and streak, §3 verdicts).

**The repartition (the closer).** A `ping.batch` is keyed by its checker, so one node's pings
arrive on every partition of `epochal.pings`. The closer, which archives them anyway,
repartitions them by node: every `live_every_s` (or once the stream is quiet) it reads, in one
DuckDB query, per (node, reward epoch) the OR of the slot bits, the count and the latest time
of the pings archived since its last publication, and publishes them on the consumer group's
own topic `<group>.node-slots` (`epochal.node-slots` for the default group; like a faust
repartition topic it belongs to the group), one message per partition and a few thousand nodes,
each node on the partition a producer keyed by node_id would pick (murmur2). Never a message or
a Python call per ping, at most one update of a node per `live_every_s` however often epochs
close, and paced to `live_rows_per_s` rows on average (a publication of R rows is not followed
by another for R / live_rows_per_s seconds) so that a large network slows its live updates, not
the archive. An epoch closed since the previous publication gets its last rows too, but only of
the pings its close counted (arrived by its `input_arrival_seq`: a late ping never changes a
closed epoch); epochs closed before the previous publication are settled, and the update says
so (`drop`). With the rows go, per node, its streak state at the end of the `drop` epoch (its
`node_epoch_scores` row there, or the start state when it has none, as the close reads it) and,
when a benchmark or a registration of the node arrived, the verdict of its latest benchmark
against its first registration (`compute_hw_verdict`).

**The Table (every worker's live app).** An agent on that topic (concurrency 1; in each
worker's child process, a faust app of its own, `streams.live_worker`, for the partitions it
holds) merges each node's update into the Table keyed by node_id with
`merge_node_state`, and every `live_every_s` publishes the snapshots of the nodes that changed
(each kept epoch's). A snapshot is computed by the rules of `scoring/` from the Table's state:
`compute_up_slots`, `compute_uptime_ratio`, `compute_streak_state` (or its vectorised twin for a
whole flush; carried from the `drop` epoch through the later ones, an open epoch run to the slot
of the node's latest ping, a closed one to its end), `compute_hw_verdict_column` with
`is_benchmark_fresh`. The last snapshot of a closed epoch thus has the stored row's up slots and
streak when every ping its close counted was seen live.

**A cache, not a source of truth.** On the development broker (Tansu) a Table's changelog
recovery cannot be trusted (its ListOffsets answer is wrong, so faust stops reading a changelog
early), and faust may deliver a message twice. So nothing but the snapshots reads the Table:
epochs close from the archive, and the `epoch_closed` messages carry the stored rows. The merge
is idempotent: the slot bits are OR-ed; the latest ping time, the carried streak (latest settled
epoch) and the verdict (latest benchmark) are maxima; epochs at or below the highest `drop` seen
are dropped; so a re-delivered or re-ordered update changes none of them. The ping count alone
is a sum: an update carries the archive `arrival_seq` range it covers, and a range at or below
what the node's entry has counted is a re-delivery and adds nothing (exact when a node's updates
come in the order they were published, which one Kafka partition keeps). Whenever a worker
becomes the closer it first republishes the whole open state from the archive (`full`: bits and
counts as of the archive), which repairs a Table that lost entries in a restart.

State of a node (the Table's value, JSON):
    {"e": {"<epoch>": [slot_bits, pings, last_ping_us, counted_through_seq]},   kept epochs
     "c": [epoch, streak_slots, prev_up] | null,   streak state at the end of a settled epoch
     "h": [bench_at_us, event_id, seq, verdict] | null,   verdict of the latest benchmark
     "x": dropped_through, "k": closed_through}
"""

from __future__ import annotations

import logging
import time
from typing import MutableMapping, NamedTuple

import numpy as np
import orjson
import polars as pl

from payouts.carry import typed_select
from scoring.hardware import compute_hw_verdict, compute_hw_verdict_column, is_benchmark_fresh, latest_benchmark_sql
from scoring.registration import first_registration_sql
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.timing import compute_reward_epoch, compute_slot, get_epoch_end_us
from scoring.uptime import (
    STREAK_START,
    StreakState,
    compute_streak_state,
    compute_streak_states_np,
    compute_up_slots,
    compute_uptime_ratio,
    slot_bitmap_sql,
)
from store.db import fetch_polars, registered
from streams.outputs import default_partition

log = logging.getLogger("epochal.streams")

TABLE_NAME = "node-live"
NODES_PER_MESSAGE = 2000  # nodes in one node-slots message (~150 KB)


def changelog_topic(app_id: str) -> str:
    """The name faust gives the Table's changelog topic (`<app id>-<table>-changelog`)."""
    return f"{app_id}-{TABLE_NAME}-changelog"


class NodeUpdate(NamedTuple):
    """What one node-slots message says about one node."""

    lo: int  # the archive arrival_seq range the epoch rows cover
    hi: int
    full: bool  # rows count everything archived through `hi` (a republication), not an increment
    drop: int  # epochs at or below it are settled (closed before the previous publication; -1: none)
    closed: int  # the last closed epoch when published (-1: none yet)
    epochs: tuple  # (reward_epoch, slot_bits, pings, last_ping_us), epochs after `drop`
    carried: tuple | None = None  # (drop, streak_slots, prev_up): the node's state at the end of `drop`
    hw: tuple | None = None  # (bench_at_us, event_id, seq, verdict): seq = when it was judged


# ----------------------------------------------------------------------------------------
# pure: the merge and the snapshot
# ----------------------------------------------------------------------------------------

def _later(a, b):
    """The larger of two optional records, compared as tuples (lists after a JSON round trip)."""
    if a is None:
        return None if b is None else list(b)
    if b is None:
        return list(a)
    return list(a) if tuple(a) >= tuple(b) else list(b)


def merge_node_state(state: dict | None, u: NodeUpdate) -> dict:
    """The node's state after update `u`; `state` is not changed. Bits OR, maxima for times,
    the carried streak and the verdict; the ping count added once per arrival range."""
    old = state or {}
    drop = max(int(old.get("x", -1)), u.drop)
    epochs = {k: v for k, v in (old.get("e") or {}).items() if int(k) > drop}  # entries are never changed in place
    for e, bits, pings, last_us in u.epochs:
        if e <= drop:
            continue  # settled: its last rows came before
        cur = epochs.get(str(e))
        if cur is None:
            epochs[str(e)] = [int(bits), int(pings), int(last_us), u.hi]
            continue
        c_bits, c_pings, c_last, c_seq = cur
        if u.full:
            n = pings if u.hi >= c_seq else c_pings  # a count as of `hi` knows all a state through `hi` does
        else:
            n = c_pings + pings if u.lo > c_seq else c_pings  # else a re-delivery
        epochs[str(e)] = [c_bits | int(bits), int(n), max(c_last, int(last_us)), max(c_seq, u.hi)]
    return {"e": epochs, "c": _later(old.get("c"), u.carried), "h": _later(old.get("h"), u.hw), "x": drop,
            "k": max(int(old.get("k", -1)), u.closed)}


def get_chain_start(state: dict) -> tuple[int, StreakState]:
    """Where the node's streak is known from: the end of the settled epoch it carries, else
    the start state (§10) before its first kept epoch (epochs before it had no pings)."""
    c = state.get("c")
    first = min(map(int, state["e"]))
    if c is not None and int(c[0]) < first:
        return int(c[0]) + 1, StreakState(int(c[1]), bool(c[2]))
    return first, STREAK_START


def get_streak_before(state: dict, e: int, cfg: RulesetConfig = RULESET_V1) -> StreakState:
    """The streak state at the start of kept epoch `e`: from the chain's start through the
    epochs before `e` (bits 0 where the state holds none)."""
    k, st = get_chain_start(state)
    for j in range(k, e):
        entry = state["e"].get(str(j))
        st = compute_streak_state(st, int(entry[0]) if entry else 0, cfg)
    return st


def get_snapshot_slots(state: dict, e: int, last_us: int, cfg: RulesetConfig = RULESET_V1) -> int | None:
    """The slots of `e` the live streak runs: to the latest ping's while `e` is open, all once
    it has closed (None)."""
    if e > int(state.get("k", -1)) and compute_reward_epoch(last_us, cfg) == e:
        return compute_slot(last_us, cfg) + 1
    return None


SNAPSHOT_SCHEMA = {"kind": pl.String, "reward_epoch": pl.Int64, "node_id": pl.String, "up_slots": pl.Int64,
                   "uptime_ratio": pl.Float64, "streak_slots": pl.Int64, "hw_verdict": pl.String,
                   "pings": pl.Int64, "last_ping_us": pl.Int64}


def get_hw_verdict(state: dict, e: int, cfg: RulesetConfig = RULESET_V1) -> str | None:
    """The `hw_verdict` of epoch `e` (§3, §10): the latest benchmark's verdict when fresh at
    end(e), else stale; None when no benchmark of the node is known."""
    h = state.get("h")
    if h is None:
        return None
    return compute_hw_verdict_column(h[3], is_benchmark_fresh(int(h[0]), get_epoch_end_us(e, cfg), cfg))


def compute_live_snapshot(node_id: str, state: dict, e: int, cfg: RulesetConfig = RULESET_V1) -> dict:
    """The `epochal.scores` message (kind "live") of kept epoch `e`, by the rules of scoring/.
    The streak runs through the slot of the node's latest ping while `e` is open, through its
    end once closed; `hw_verdict` is null when no benchmark of the node is known."""
    bits, pings, last_us = (int(x) for x in state["e"][str(e)][:3])
    slots = get_snapshot_slots(state, e, last_us, cfg)
    streak = compute_streak_state(get_streak_before(state, e, cfg), bits, cfg, slots).streak_slots
    up_slots = compute_up_slots(bits)
    return {"kind": "live", "reward_epoch": e, "node_id": node_id, "up_slots": up_slots,
            "uptime_ratio": compute_uptime_ratio(up_slots, cfg), "streak_slots": streak,
            "hw_verdict": get_hw_verdict(state, e, cfg), "pings": pings, "last_ping_us": last_us}


def compute_live_snapshots(items, cfg: RulesetConfig = RULESET_V1) -> pl.DataFrame:
    """`compute_live_snapshot` of every kept epoch of every (node_id, state) in `items`, one row
    each (SNAPSHOT_SCHEMA): the streaks of all nodes at once by `compute_streak_states_np` (held
    to the scalar rule by a differential test), the rows built by columns, so a flush of tens
    of thousands of nodes is numpy and a few list comprehensions, not 60 Python steps a row."""
    items = [(node, state) for node, state in items if state.get("e")]
    cols: dict[str, list] = {k: [] for k in SNAPSHOT_SCHEMA if k != "kind"}
    if items:
        starts = [get_chain_start(state) for _node, state in items]
        k0 = np.fromiter((k for k, _st in starts), dtype=np.int64, count=len(items))
        last_e = np.fromiter((max(map(int, state["e"])) for _n, state in items), dtype=np.int64, count=len(items))
        streak = np.fromiter((st.streak_slots for _k, st in starts), dtype=np.int64, count=len(items))
        prev = np.fromiter((st.prev_up for _k, st in starts), dtype=bool, count=len(items))
        full = cfg.slots_per_epoch
        for j in range(int((last_e - k0).max()) + 1):  # the chains' j-th epochs, all nodes at once
            idx = np.flatnonzero(k0 + j <= last_e).tolist()
            es = [int(k0[i]) + j for i in idx]
            entries = [items[i][1]["e"].get(str(e)) for i, e in zip(idx, es)]
            bits = np.fromiter((int(x[0]) if x else 0 for x in entries), dtype=np.uint64, count=len(idx))
            slots = np.fromiter(((get_snapshot_slots(items[i][1], e, int(x[2]), cfg) or full) if x else full
                                 for i, e, x in zip(idx, es, entries)), dtype=np.int64, count=len(idx))
            s_idx, p_idx = streak[idx], prev[idx]
            seen = compute_streak_states_np(s_idx, p_idx, bits, cfg, slots=slots)[0].tolist()
            streak[idx], prev[idx] = compute_streak_states_np(s_idx, p_idx, bits, cfg)
            for i, e, x, st in zip(idx, es, entries, seen):
                if x is not None:
                    cols["node_id"].append(items[i][0])
                    cols["reward_epoch"].append(e)
                    cols["up_slots"].append(int(x[0]))  # the bits, until below
                    cols["streak_slots"].append(st)
                    cols["hw_verdict"].append(get_hw_verdict(items[i][1], e, cfg))
                    cols["pings"].append(int(x[1]))
                    cols["last_ping_us"].append(int(x[2]))
    cols["up_slots"] = [compute_up_slots(b) for b in cols["up_slots"]]
    cols["uptime_ratio"] = [compute_uptime_ratio(u, cfg) for u in cols["up_slots"]]
    cols["kind"] = ["live"] * len(cols["node_id"])
    return pl.DataFrame({k: cols[k] for k in SNAPSHOT_SCHEMA}, schema=SNAPSHOT_SCHEMA)


# ----------------------------------------------------------------------------------------
# the closer's side: read the updates from the archive, encode them by partition
# ----------------------------------------------------------------------------------------

def get_slot_updates(con, lo: int, hi: int, drop: int | None) -> pl.DataFrame:
    """Per (node, epoch after `drop`) of the pings archived with arrival_seq in [lo, hi]: slot
    bits, count, latest time; of a closed epoch only the pings its close counted. With the
    node's streak state at the end of `drop` (its score row there, or the start state when it
    has none, as the close reads it)."""
    drop = -1 if drop is None else int(drop)
    return fetch_polars(con, f"""
        WITH d AS (
            SELECT p.node_id, p.reward_epoch,
                   {slot_bitmap_sql("p.slot", "p.reachable")}::BIGINT AS bits,
                   count(*) AS pings, max(p.occurred_at_us) AS last_ping_us
            FROM archive_pings p LEFT JOIN reward_epochs r ON r.reward_epoch = p.reward_epoch
            WHERE p.arrival_seq BETWEEN {int(lo)} AND {int(hi)} AND p.reward_epoch > {drop}
              AND (r.reward_epoch IS NULL OR p.arrival_seq <= r.input_arrival_seq)
            GROUP BY ALL)
        SELECT d.node_id, d.reward_epoch, d.bits, d.pings, d.last_ping_us,
               coalesce(s.streak_slots, {STREAK_START.streak_slots}) AS c_streak,
               coalesce(s.streak_prev_up, {str(STREAK_START.prev_up).lower()}) AS c_up
        FROM d LEFT JOIN node_epoch_scores s ON s.reward_epoch = {drop} AND s.node_id = d.node_id
        ORDER BY d.node_id, d.reward_epoch
    """)


def get_hw_updates(con, lo: int, hi: int, cfg: RulesetConfig = RULESET_V1) -> list[tuple]:
    """(node, bench_at_us, event_id, verdict) of the latest benchmark of every node a benchmark
    or a registration of which was archived in [lo, hi], judged against the node's first
    registration by `compute_hw_verdict` (the typed events of payouts/carry.py, for those nodes only)."""
    nodes = con.execute(f"""
        SELECT DISTINCT node_id FROM archive_events
        WHERE arrival_seq BETWEEN {int(lo)} AND {int(hi)} AND event_type IN ('benchmark', 'node.registered')
    """).fetchall()
    if not nodes:
        return []
    frame = pl.DataFrame({"node_id": [n for (n,) in nodes]}, schema={"node_id": pl.String})
    ours = f"arrival_seq <= {int(hi)} AND node_id IN (SELECT node_id FROM live_hw_nodes)"
    with registered(con, "live_hw_nodes", frame):
        rows = con.execute(f"""
            WITH bench AS ({typed_select("benchmarks", ours)}
            ), regs AS ({typed_select("registrations", ours)}
            ), latest AS ({latest_benchmark_sql("bench")}
            ), first AS ({first_registration_sql("regs")})
            SELECT b.node_id, b.occurred_at_us, b.event_id, r.gpu_model, r.gpu_count,
                   b.fp32_tflops, b.mem_bandwidth_gbps, b.vram_gb, b.gpu_count
            FROM latest JOIN bench b USING (node_id, event_id)
            LEFT JOIN (SELECT r.* FROM first f JOIN regs r USING (node_id, event_id)) r USING (node_id)
        """).fetchall()
    out = []
    for node, at_us, event_id, model, claimed, fp32, bw, vram, found in rows:
        verdict, _ratio = compute_hw_verdict(model, claimed, fp32, bw, vram, found, cfg)
        out.append((node, int(at_us), event_id, verdict))
    return out


def encode_updates(lo: int, hi: int, full: bool, drop: int | None, closed: int | None, slots: pl.DataFrame,
                   hw: list[tuple], partition_of, max_nodes: int = NODES_PER_MESSAGE) -> list[tuple[int, bytes]]:
    """(partition, message) pairs: each node goes to `partition_of(node_id)`, at most
    `max_nodes` nodes a message, each as {"n": node_id, "e": [[epoch, bits, pings,
    last_ping_us], ...], "s": carried streak, "u": carried prev_up}; the verdicts ride along as
    [node_id, bench_at_us, event_id, verdict]. Columnar: polars groups the rows and writes each
    node's JSON, Python only sorts whole lines into messages (turning the grouped rows into
    Python objects cost ~0.5 s for 20,000 nodes)."""
    drop = -1 if drop is None else int(drop)
    closed = -1 if closed is None else int(closed)
    by_part: dict[int, tuple[list, list]] = {}
    if slots.height:
        grouped = slots.group_by("node_id", maintain_order=True).agg(
            pl.concat_list("reward_epoch", "bits", "pings", "last_ping_us").alias("e"),
            pl.first("c_streak").alias("s"), pl.first("c_up").alias("u")).rename({"node_id": "n"})
        lines = grouped.write_ndjson().encode().splitlines()
        for node, line in zip(grouped.get_column("n").to_list(), lines):
            by_part.setdefault(partition_of(node), ([], []))[0].append(line)
    for h in hw:
        by_part.setdefault(partition_of(h[0]), ([], []))[1].append(h)
    head = b'{"lo":%d,"hi":%d,"full":%s,"drop":%d,"closed":%d,"nodes":[' % (
        int(lo), int(hi), b"true" if full else b"false", drop, closed)
    out = []
    for p, (nodes, verdicts) in sorted(by_part.items()):
        for i in range(max(1, -(-max(len(nodes), len(verdicts)) // max_nodes))):
            part_nodes = b",".join(nodes[i * max_nodes:(i + 1) * max_nodes])
            part_hw = orjson.dumps(verdicts[i * max_nodes:(i + 1) * max_nodes])
            out.append((p, head + part_nodes + b'],"hw":' + part_hw + b"}"))
    return out


def decode_updates(value: bytes) -> dict[str, NodeUpdate]:
    m = orjson.loads(value)
    lo, hi, full, drop, closed = int(m["lo"]), int(m["hi"]), bool(m["full"]), int(m["drop"]), int(m["closed"])
    hw = {node: (at_us, event_id, hi, verdict) for node, at_us, event_id, verdict in m["hw"]}
    out = {}
    for entry in m["nodes"]:
        # {"n", "e", "s", "u"}; a worker before the columnar encoding wrote [n, e, s, u]
        node, epochs, c_streak, c_up = ((entry["n"], entry["e"], entry["s"], entry["u"])
                                        if isinstance(entry, dict) else entry)
        out[node] = NodeUpdate(lo, hi, full, drop, closed, epochs, (drop, c_streak, c_up) if drop >= 0 else None,
                               hw.pop(node, None))
    for node, h in hw.items():
        out[node] = NodeUpdate(lo, hi, full, drop, closed, (), None, h)
    return out


# ----------------------------------------------------------------------------------------
# the agent's side
# ----------------------------------------------------------------------------------------

class LiveCache:
    """Applies node-slots messages to `table` (a faust Table inside the agent; any mapping in
    tests) and publishes the snapshots of the nodes that changed when `flush` is called (the
    worker calls it every live_every_s). Used from one thread (the faust event loop)."""

    def __init__(self, table: MutableMapping, sink=None, cfg: RulesetConfig = RULESET_V1) -> None:
        self.table = table
        self.sink = sink
        self.cfg = cfg
        self.dirty: set[str] = set()
        self.final: dict[tuple[str, int], dict] = {}  # snapshots of epochs dropped before a flush
        self.applied_hi = -1
        self.messages = self.node_updates = self.snapshots = 0
        self.busy_s = 0.0  # time spent applying and flushing (the event loop's, in the worker)

    def apply(self, value: bytes) -> int:
        """One node-slots message; returns the nodes it updated."""
        t0 = time.perf_counter()
        updates = decode_updates(value)
        table, dirty = self.table, self.dirty
        for node, u in updates.items():
            old = table.get(node)
            if old is not None and node in dirty and u.drop > int(old.get("x", -1)):
                for k in old.get("e") or {}:  # epochs this update drops: their last snapshot now
                    if int(k) <= u.drop:
                        settled = {**old, "k": max(int(old.get("k", -1)), u.closed)}
                        self.final[(node, int(k))] = compute_live_snapshot(node, settled, int(k), self.cfg)
            table[node] = merge_node_state(old, u)
            dirty.add(node)
            if u.hi > self.applied_hi:
                self.applied_hi = u.hi
        self.messages += 1
        self.node_updates += len(updates)
        self.busy_s += time.perf_counter() - t0
        return len(updates)

    def take_snapshots(self) -> pl.DataFrame:
        """The snapshots to publish: the dropped epochs' last ones, then every kept epoch of
        the nodes changed since the last call."""
        get = self.table.get
        states = [(node, get(node)) for node in self.dirty]
        frame = compute_live_snapshots([(n, st) for n, st in states if st is not None], self.cfg)
        if self.final:
            frame = pl.concat([pl.DataFrame(list(self.final.values()), schema=SNAPSHOT_SCHEMA, orient="row"), frame])
        self.final.clear()
        self.dirty.clear()
        return frame

    def flush(self) -> int:
        t0 = time.perf_counter()
        frame = self.take_snapshots()
        if frame.height and self.sink is not None:
            lines = frame.write_ndjson().encode().splitlines()  # one JSON object a row, by polars
            self.sink.send_keyed("scores", [k.encode() for k in frame.get_column("node_id").to_list()], lines)
            self.sink.hand_over()
        self.snapshots += frame.height
        self.busy_s += time.perf_counter() - t0
        return frame.height

    def status(self) -> dict:
        return {"messages": self.messages, "node_updates": self.node_updates, "snapshots": self.snapshots,
                "applied_through_seq": self.applied_hi, "pending_nodes": len(self.dirty),
                "busy_s": round(self.busy_s, 3)}


def partition_of_node(sink, kind: str = "node-slots"):
    """The partition of a node's updates: the one a producer keyed by node_id would pick."""
    n = sink.n_partitions(kind)
    cache: dict[str, int] = {}

    def of(node_id: str) -> int:
        p = cache.get(node_id)
        if p is None:
            p = cache[node_id] = default_partition(node_id.encode(), n)
        return p

    return of
