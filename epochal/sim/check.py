"""Reading simulated output back, independently of how it was generated: used by the tests
(and handy for anyone checking a simulated directory)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

from .data import load_traces

GENESIS_US = 1_767_225_600_000_000
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def occurred_us(v) -> int:
    """Microseconds since the Unix epoch of an `occurred_at` value (RFC 3339 or epoch ms)."""
    if isinstance(v, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(v, int):
        return v * 1000
    if not isinstance(v, str) or not _RFC3339.match(v):
        raise ValueError(f"not an RFC 3339 time: {v!r}")
    frac = ""
    m = re.search(r"\.(\d+)", v)
    if m:  # keep microseconds, truncate further digits (ruleset §10)
        frac = m.group(1)
        v = v.replace("." + frac, "." + frac[:6].ljust(6, "0"))
    d = datetime.fromisoformat(v.replace("Z", "+00:00")) - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def read_dir(d: Path) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Parsed events per `.jsonl` file, and per file the number of lines that are not JSON."""
    events: dict[str, list[dict]] = {}
    bad: dict[str, int] = {}
    for f in sorted(Path(d).glob("*.jsonl")):
        evs = []
        nbad = 0
        for line in f.read_bytes().split(b"\n"):
            if not line:
                continue
            try:
                evs.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                nbad += 1
        events[f.name] = evs
        bad[f.name] = nbad
    return events, bad


def iter_pings(events: dict[str, list[dict]]):
    """(node_id, occurred_at, reachable) of every ping, single or inside a batch."""
    for name, evs in events.items():
        for ev in evs:
            if ev.get("event_type") == "ping":
                yield ev["node_id"], ev["occurred_at"], ev["reachable"]
            elif ev.get("event_type") == "ping.batch":
                for p in ev["pings"]:
                    yield p["node_id"], p["occurred_at"], p["reachable"]


def up_matrix(events: dict[str, list[dict]], node_ids: list[str], t0_us: int, n_slots: int) -> np.ndarray:
    """Slots from `t0_us` in which each node had at least one reachable ping (ruleset §2)."""
    idx = {n: i for i, n in enumerate(node_ids)}
    m = np.zeros((len(node_ids), n_slots), dtype=bool)
    for nid, at, reachable in iter_pings(events):
        if reachable and nid in idx:
            s = (occurred_us(at) - t0_us) // 60_000_000
            if 0 <= s < n_slots:
                m[idx[nid], s] = True
    return m


def run_lengths(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up-session and gap lengths (slots) of each row, between its first and last up slot."""
    ups: list[int] = []
    gaps: list[int] = []
    for row in rows:
        w = np.flatnonzero(row)
        if w.size == 0:
            continue
        r = row[w[0] : w[-1] + 1].astype(np.int8)
        b = np.concatenate([[0], np.flatnonzero(np.diff(r)) + 1, [r.size]])
        lens = np.diff(b)
        vals = r[b[:-1]].astype(bool)
        ups += lens[vals].tolist()
        gaps += lens[~vals].tolist()
    return np.asarray(ups, dtype=np.int64), np.asarray(gaps, dtype=np.int64)


def trace_reference_runs(window: int, step: int = 7, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Up-session and gap lengths of the real heartbeat trace seen through windows of `window`
    slots (every container, offsets 0, step, 2·step, ...): what a simulated node observed over
    `window` slots should look like. Read from the source the simulator reads (the packaged
    profile, unless `data_dir` or $EPOCHAL_DATA_DIR names the full traces)."""
    p = load_traces(data_dir).presence
    s = p.shape[1]
    if window > s:
        return run_lengths(p)
    rows = np.stack([p[c, o : o + window] for c in range(p.shape[0]) for o in range(0, s - window + 1, step)])
    return run_lengths(rows)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup |F_a − F_b| (NumPy only)."""
    a = np.sort(np.asarray(a))
    b = np.sort(np.asarray(b))
    xs = np.union1d(a, b)
    fa = np.searchsorted(a, xs, side="right") / a.size
    fb = np.searchsorted(b, xs, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def streaks(up: np.ndarray) -> np.ndarray:
    """Ruleset §2 streak at the end of the matrix, per row."""
    out = np.zeros(up.shape[0], dtype=np.int64)
    for i, row in enumerate(up):
        streak, pending = 0, False
        for u in row:
            if u:
                streak += 1
                pending = False
            elif pending:
                streak, pending = 0, False
            else:
                pending = True
        out[i] = streak
    return out
