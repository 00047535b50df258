"""A fast columnar writer of valid event files for the replay benchmark.

`write_events_file(path, nodes, hours)` writes one JSONL file: a `node.registered` per node,
a verified `benchmark` per node every 12 h (so that every epoch has hardware-verified,
streak-eligible nodes and the close does real work), and one `ping` per node per minute
(`reachable: true`, RFC 3339 `Z` times, plain numbers: the contract's plain form). Lines are
in time order, hour by hour; each hour's pings are built with Polars string expressions
(no Python call per ping) and appended, so the writer holds one hour at a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from bench import fleet

BENCH_EVERY_H = 12


def _minute_prefixes(hours: int) -> list[str]:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [(t0 + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M") for m in range(hours * 60)]


def ping_lines(nodes: int, minute_lo: int, minute_hi: int, prefixes: list[str]) -> pl.Series:
    """Ping lines of minutes [minute_lo, minute_hi) for every node, minute-major."""
    i = np.arange(nodes)
    node_df = pl.DataFrame({
        "node": [fleet.node_id(k) for k in range(nodes)],
        # each node pings at its own second and millisecond of the minute
        "suffix": [f":{(k * 7) % 60:02d}.{(k * 13) % 1000:03d}Z" for k in range(nodes)],
        "chk": pl.Series((i % 16).astype(np.int64)).cast(pl.String),
    })
    mins = np.arange(minute_lo, minute_hi)
    min_df = pl.DataFrame({"m": pl.Series(mins).cast(pl.String), "prefix": [prefixes[m] for m in mins]})
    df = min_df.join(node_df, how="cross")
    n = df.height
    rtt = pl.Series(np.round(10.0 + (np.arange(n) % 400) * 0.1, 1)).cast(pl.String)
    return df.with_columns(rtt=rtt).select(
        pl.concat_str([
            pl.lit('{"event_id":"p-'), pl.col("node"), pl.lit("-"), pl.col("m"),
            pl.lit('","event_type":"ping","schema_version":1,"node_id":"'), pl.col("node"),
            pl.lit('","occurred_at":"'), pl.col("prefix"), pl.col("suffix"),
            pl.lit('","checker_id":"chk-'), pl.col("chk"),
            pl.lit('","reachable":true,"rtt_ms":'), pl.col("rtt"), pl.lit("}"),
        ]).alias("line")
    )["line"]


def write_events_file(path: Path, nodes: int, hours: int) -> dict:
    """Write the file; return its counts (lines, pings, other events, bytes)."""
    prefixes = _minute_prefixes(hours)
    wallets = fleet.wallets(min(nodes, fleet.N_WALLETS))
    pings = events = 0
    with open(path, "wb") as fh:
        regs = [orjson.dumps(fleet.registered_event(k, fleet.GENESIS_MS, wallets[k % len(wallets)]))
                for k in range(nodes)]
        fh.write(b"\n".join(regs) + b"\n")
        events += len(regs)
        for h in range(hours):
            if h % BENCH_EVERY_H == 0:
                at = fleet.GENESIS_MS + h * 3_600_000 + 30_000
                bl = [orjson.dumps(fleet.benchmark_event(k, at, f"bench-{fleet.node_id(k)}-{h}"))
                      for k in range(nodes)]
                fh.write(b"\n".join(bl) + b"\n")
                events += len(bl)
            lines = ping_lines(nodes, h * 60, (h + 1) * 60, prefixes)
            fh.write(lines.str.join("\n").item().encode() + b"\n")
            pings += len(lines)
    return {"lines": pings + events, "pings": pings, "events": events, "bytes": path.stat().st_size}
