"""Columnar ping generation and serialisation (no per-ping Python loop).

Presence (node × minute slot) becomes ping rows with NumPy, the rows become JSON lines with
Polars string expressions, and each hour is appended to a pings file as it is produced, so the
memory held is one hour of pings whatever the length of the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import polars as pl

from .timefmt import SLOT_US, iso_us, minute_prefix

MAX_BATCH = 2000  # inner pings per ping.batch (contract allows 10,000; keeps lines far below 1 MiB)


@dataclass
class PingNoise:
    malformed: int = 0
    duplicates: int = 0
    by_file_malformed: dict[str, int] = field(default_factory=dict)
    by_file_duplicates: dict[str, int] = field(default_factory=dict)


@dataclass
class PingCounts:
    singles: int = 0
    batches: int = 0
    inner: int = 0
    reachable: int = 0
    unreachable: int = 0
    ms_form: int = 0
    lines: int = 0


@dataclass(frozen=True)
class PingSettings:
    checkers: tuple[str, ...]
    batching: tuple[bool, ...]  # per checker: sends ping.batch (True) or single pings
    second_ping_share: float = 0.05
    unreachable_share: float = 0.25
    ms_share: float = 0.15
    late_share: float = 0.02  # lines delivered out of order (up to late_max_us late)
    late_max_us: int = 180_000_000


def _ts_expr(t0_ms: int) -> pl.Expr:
    """occurred_at JSON value: quoted RFC 3339 (µs) or bare integer epoch milliseconds."""
    iso = pl.concat_str(
        [
            pl.lit('"'),
            pl.col("prefix"),
            (pl.col("off") // 1_000_000).cast(pl.Utf8).str.zfill(2),
            pl.lit("."),
            (pl.col("off") % 1_000_000).cast(pl.Utf8).str.zfill(6),
            pl.lit('Z"'),
        ]
    )
    ms = (pl.lit(t0_ms, dtype=pl.Int64) + pl.col("slot").cast(pl.Int64) * 60_000 + pl.col("off") // 1000).cast(
        pl.Utf8
    )
    return pl.when(pl.col("ms")).then(ms).otherwise(iso)


def chunk_lines(
    presence: np.ndarray,
    s0: int,
    s1: int,
    force_all: bool,
    node_ids: pl.Series,
    t0_us: int,
    abs_slot0: int,
    settings: PingSettings,
    rng: np.random.Generator,
    counts: PingCounts,
    rtt_base: np.ndarray | None = None,
    sync: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """JSON lines of slots [s0, s1) sorted by delivery order; also whether each is a single
    ping line (eligible for noise) and its sort key.

    `rtt_base` (nodes × checkers, ms): the round trip a checker sees to a node, each ping
    jittered around it; without it every ping's RTT is drawn alone. `sync` = (group of each
    node or -1, checker and second per (group, slot of [s0, s1))): the first ping of a slot of
    a node in a group is taken by the group's checker in the group's second of that slot, as
    when one machine answers for every node of a farm."""
    block = presence[:, s0:s1]
    up_n, up_s = np.nonzero(block)
    dn_n, dn_s = np.nonzero(~block)
    if force_all:  # the very last slot: every node gets a ping, so the watermark clearly passes
        keep_dn = rng.random(dn_n.size) < settings.unreachable_share
        keep_dn |= dn_s == (s1 - s0 - 1)
    else:
        keep_dn = rng.random(dn_n.size) < settings.unreachable_share
    dn_n, dn_s = dn_n[keep_dn], dn_s[keep_dn]
    second = rng.random(up_n.size) < settings.second_ping_share
    node = np.concatenate([up_n, up_n[second], dn_n]).astype(np.int32)
    slot = (np.concatenate([up_s, up_s[second], dn_s]) + s0).astype(np.int32)
    k = np.concatenate(
        [np.zeros(up_n.size, np.int8), np.ones(int(second.sum()), np.int8), np.full(dn_n.size, 2, np.int8)]
    )
    reach = k < 2
    n = node.size
    off = rng.integers(0, SLOT_US, n, dtype=np.int64)
    nchk = len(settings.checkers)
    checker = rng.integers(0, nchk, n).astype(np.int16)
    if rtt_base is None:
        rtt = np.clip(np.round(rng.lognormal(np.log(38.0), 0.55, n) * 10), 5, 20000).astype(np.int64)
    else:
        jitter = rng.lognormal(0.0, 0.12, n)
        rtt = np.clip(np.round(rtt_base[node, checker] * jitter * 10), 5, 20000).astype(np.int64)
    if sync is not None:
        grp_of, g_chk, g_sec = sync
        g = grp_of[node]
        m = (g >= 0) & (k == 0)
        if m.any():
            gi, si = g[m], slot[m] - s0
            checker[m] = g_chk[gi, si]
            off[m] = g_sec[gi, si].astype(np.int64) * 1_000_000 + rng.integers(0, 1_000_000, int(m.sum()))
            if rtt_base is not None:
                rtt[m] = np.clip(np.round(rtt_base[node[m], checker[m]] * jitter[m] * 10), 5, 20000)
    ms = rng.random(n) < settings.ms_share
    batched = np.asarray(settings.batching, dtype=bool)[checker]
    t_us = t0_us + slot.astype(np.int64) * SLOT_US + off
    ms_trunc = np.where(ms, (off // 1000) * 1000, off)
    counts.reachable += int(reach.sum())
    counts.unreachable += int((~reach).sum())
    counts.ms_form += int(ms.sum())

    prefixes = pl.Series([minute_prefix(t0_us + s * SLOT_US) for s in range(s0, s1)], dtype=pl.Utf8)
    chk_names = pl.Series(list(settings.checkers), dtype=pl.Utf8)
    df = pl.DataFrame(
        {
            "node": node_ids.gather(node),
            "slot": slot,
            "abs": (slot.astype(np.int64) + abs_slot0),
            "k": k,
            "off": ms_trunc,
            "ms": ms,
            "reach": reach,
            "rtt": rtt,
            "chk": chk_names.gather(checker),
            "cidx": checker,
            "batched": batched,
            "t": t_us,
        }
    ).with_columns(prefixes.gather(pl.Series(slot - s0)).alias("prefix"))
    t0_ms = t0_us // 1000
    reach_s = pl.when(pl.col("reach")).then(pl.lit("true")).otherwise(pl.lit("false"))
    rtt_s = (
        pl.when(pl.col("reach"))
        .then(pl.concat_str([(pl.col("rtt") // 10).cast(pl.Utf8), pl.lit("."), (pl.col("rtt") % 10).cast(pl.Utf8)]))
        .otherwise(pl.lit("null"))
    )
    ts = _ts_expr(t0_ms)

    singles = df.filter(~pl.col("batched")).select(
        pl.concat_str(
            [
                pl.lit('{"event_id":"pg-'),
                pl.col("node"),
                pl.lit("-"),
                pl.col("abs").cast(pl.Utf8),
                pl.lit("-"),
                pl.col("k").cast(pl.Utf8),
                pl.lit('","event_type":"ping","schema_version":1,"node_id":"'),
                pl.col("node"),
                pl.lit('","occurred_at":'),
                ts,
                pl.lit(',"checker_id":"'),
                pl.col("chk"),
                pl.lit('","reachable":'),
                reach_s,
                pl.lit(',"rtt_ms":'),
                rtt_s,
                pl.lit("}"),
            ]
        ).alias("line"),
        pl.col("t"),
    )
    counts.singles += singles.height

    inner = (
        df.filter(pl.col("batched"))
        .sort(["cidx", "slot", "t", "node"])
        .with_columns(
            pl.concat_str(
                [
                    pl.lit('{"node_id":"'),
                    pl.col("node"),
                    pl.lit('","occurred_at":'),
                    ts,
                    pl.lit(',"reachable":'),
                    reach_s,
                    pl.lit(',"rtt_ms":'),
                    rtt_s,
                    pl.lit("}"),
                ]
            ).alias("inner"),
            (pl.int_range(pl.len()).over(["cidx", "slot"]) // MAX_BATCH).alias("part"),
        )
    )
    counts.inner += inner.height
    groups = inner.group_by(["cidx", "slot", "part"], maintain_order=True).agg(
        pl.col("inner").str.join(","), pl.len().alias("n")
    )
    nb = groups.height
    counts.batches += nb
    g_c = groups["cidx"].to_numpy()
    g_s = groups["slot"].to_numpy().astype(np.int64)
    g_p = groups["part"].to_numpy()
    flush = t0_us + (g_s + 1) * SLOT_US + rng.integers(200_000, 3_000_000, nb, dtype=np.int64)
    heads = [
        '{"event_id":"pb-%s-%d-%d","event_type":"ping.batch","schema_version":1,"node_id":"%s",'
        '"occurred_at":"%s","checker_id":"%s","pings":['
        % (settings.checkers[c], s + abs_slot0, p, settings.checkers[c], iso_us(f), settings.checkers[c])
        for c, s, p, f in zip(g_c.tolist(), g_s.tolist(), g_p.tolist(), flush.tolist())
    ]
    batches = pl.DataFrame({"head": pl.Series(heads, dtype=pl.Utf8), "inner": groups["inner"], "t": flush}).select(
        pl.concat_str([pl.col("head"), pl.col("inner"), pl.lit("]}")]).alias("line"), pl.col("t")
    )

    lines = pl.concat([singles, batches])
    key = lines["t"].to_numpy().copy()
    late = rng.random(key.size) < settings.late_share
    key[late] += rng.integers(1, settings.late_max_us, int(late.sum()), dtype=np.int64)
    is_single = np.concatenate([np.ones(singles.height, bool), np.zeros(batches.height, bool)])
    order = np.argsort(key, kind="stable")
    return lines["line"].gather(order), is_single[order], key[order]


def add_noise(
    lines: pl.Series, is_single: np.ndarray, rng: np.random.Generator, n_dup: int, n_bad: int
) -> tuple[pl.Series, int, int]:
    """Insert exact duplicate lines and malformed (non-JSON) lines near their originals."""
    cand = np.flatnonzero(is_single)
    if cand.size == 0 or lines.len() == 0:
        return lines, 0, 0
    n_dup = min(n_dup, cand.size)
    n_bad = min(n_bad, cand.size)
    pos = np.arange(lines.len(), dtype=np.float64)
    extra_pos: list[float] = []
    extra: list[str] = []
    dup_src = np.sort(rng.choice(cand, n_dup, replace=False)) if n_dup else np.array([], np.int64)
    for i in dup_src.tolist():
        j = min(i + int(rng.integers(1, 40)), lines.len() - 1)
        extra_pos.append(j + 0.5)
        extra.append(lines[i])
    bad_src = np.sort(rng.choice(cand, n_bad, replace=False)) if n_bad else np.array([], np.int64)
    for i in bad_src.tolist():
        src = lines[i]
        kind = int(rng.integers(0, 4))
        if kind <= 1:  # truncated write: never ends with the closing brace
            bad = src[: int(rng.integers(10, len(src) - 1))]
        elif kind == 2:  # two events glued on one line
            bad = src + src
        else:  # lost first byte
            bad = src[1:]
        extra_pos.append(i + 0.25)
        extra.append(bad)
    allpos = np.concatenate([pos, np.asarray(extra_pos, dtype=np.float64)])
    merged = pl.concat([lines, pl.Series(extra, dtype=pl.Utf8)])
    order = np.argsort(allpos, kind="stable")
    return merged.gather(order), n_dup, n_bad


def write_lines(fh: BinaryIO, lines: pl.Series) -> None:
    if lines.len():
        pl.DataFrame({"l": lines}).write_csv(fh, include_header=False, quote_style="never")
