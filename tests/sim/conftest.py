"""Shared fixtures and independent helpers for the simulator tests.

The helpers here re-derive everything from the written files and the raw trace, on purpose
without using the simulator's own internals, so the tests check the output rather than the code.
"""

from __future__ import annotations

import io
import re
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from epochal.sim import resolve_data_dir, simulate

GENESIS = datetime(2026, 1, 1, tzinfo=timezone.utc)
GENESIS_US = 1_767_225_600_000_000
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def occurred_us(v) -> int:
    if isinstance(v, bool):
        raise AssertionError("bool is not a time")
    if isinstance(v, int):
        return v * 1000
    assert isinstance(v, str) and RFC3339.match(v), v
    dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    d = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def read_dir(d: Path) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Parsed events per file and the number of lines per file that are not JSON."""
    events: dict[str, list[dict]] = {}
    bad: dict[str, int] = {}
    for f in sorted(d.glob("*.jsonl")):
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


def up_matrix(events: dict[str, list[dict]], node_ids: list[str], t0_us: int, n_slots: int) -> np.ndarray:
    """Slots (from t0) in which each node had at least one reachable ping, from the files."""
    idx = {n: i for i, n in enumerate(node_ids)}
    m = np.zeros((len(node_ids), n_slots), dtype=bool)

    def mark(nid, at, reachable):
        if reachable and nid in idx:
            s = (occurred_us(at) - t0_us) // 60_000_000
            if 0 <= s < n_slots:
                m[idx[nid], s] = True

    for name, evs in events.items():
        if not name.startswith("pings-"):
            continue
        for ev in evs:
            if ev["event_type"] == "ping":
                mark(ev["node_id"], ev["occurred_at"], ev["reachable"])
            elif ev["event_type"] == "ping.batch":
                for p in ev["pings"]:
                    mark(p["node_id"], p["occurred_at"], p["reachable"])
    return m


def run_lengths(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up-session and gap lengths of each row, between its first and last up slot."""
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
    return np.asarray(ups), np.asarray(gaps)


def trace_presence() -> np.ndarray:
    """Container x minute-slot presence read straight from the duty-cycle archive."""
    d = resolve_data_dir(None)
    with tarfile.open(d / "v2026-GenAI_pod_gpu_duty_cycle_anon.tar.gz") as tf:
        m = [x for x in tf.getmembers() if x.isfile()][0]
        df = pl.read_csv(io.BytesIO(tf.extractfile(m).read()))
    t0 = df["timestamp_anon"].min()
    slot = ((df["timestamp_anon"] - t0) // 60).cast(pl.Int64).to_numpy()
    ips, inv = np.unique(df["container_ip"].to_numpy().astype(str), return_inverse=True)
    p = np.zeros((ips.size, slot.max() + 1), dtype=bool)
    p[inv, slot] = True
    return p


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = np.sort(a)
    b = np.sort(b)
    xs = np.union1d(a, b)
    fa = np.searchsorted(a, xs, side="right") / a.size
    fb = np.searchsorted(b, xs, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("sim")
    summary = simulate(200, 8, 7, d)
    return d, summary


@pytest.fixture(scope="session")
def sim_read(sim_dir):
    d, _ = sim_dir
    events, bad = read_dir(d)
    truth = orjson.loads((d / "truth.json").read_bytes())
    return events, bad, truth
