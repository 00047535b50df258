"""Pair signals: what ties two nodes that claim to be independent, each with its figure and the
event ids behind it.

Every signal is a function `Features -> pairs` (columns `a < b` node indices, `value` its figure,
`weight` in [0, 1] how much it says, `evidence` the event ids) listed in `SIGNALS` with its
*family* and *strength*:

- **hard** links (family `identity`): the same wallet, IP or GPU fingerprint on two nodes.
- **circumstantial** signals, one family each except the network ones: `network` (same /24,
  neighbouring /24s, near-identical round trips from every checker: the same place, so their
  weights do not add up), `hardware` (benchmark clones), `uptime` (lockstep), `timing`
  (same-second pings), `registration` (bursts), `jobs` (wash buyers).

Pairs are never formed over all nodes: each signal *blocks* nodes into buckets that can only
hold related nodes (a wallet, a fingerprint, a gap in uptime, a MinHash band, a sorted
neighbourhood of benchmark figures) and compares inside a bucket. A bucket too large to be one
operator's (more than `MAX_BUCKET` nodes) is skipped and reported as such: it is the whole
network, not a farm (a /24 of a cloud provider, a region's outage).

No threshold below is a constant of the simulator: closeness is judged against what chance
gives in the same population (benchmarks against the spread of the model's figures, round trips
against each node's own jitter, bursts against the registration rate around them, lockstep
against the slots where the node's whole region went down, wash jobs against how a buyer's jobs
spread over the network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from scoring.ruleset import RULESET_V1
from scoring.timing import get_epoch_start_us

from .features import MINHASH_K, Features

MAX_BUCKET = 400
PAIR_SCHEMA = {"a": pl.Int64, "b": pl.Int64, "value": pl.Float64, "weight": pl.Float64, "evidence": pl.List(pl.Utf8)}


@dataclass(frozen=True)
class Signal:
    name: str
    family: str
    strength: str  # hard | circumstantial
    fn: Callable[[Features], pl.DataFrame]
    what: str


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=PAIR_SCHEMA)


def _pairs_in_groups(df: pl.DataFrame, group: str, ev: str | None = None) -> pl.DataFrame:
    """All pairs of distinct nodes sharing a value of `group` (buckets of ≤ MAX_BUCKET nodes),
    with the event id of each side's row when `ev` is given."""
    cols = ["idx", group] + ([ev] if ev else [])
    d = df.select(cols).drop_nulls([group]).unique(subset=["idx", group], keep="first")
    size = d.group_by(group).agg(pl.col("idx").n_unique().alias("_n"))
    d = d.join(size.filter((pl.col("_n") >= 2) & (pl.col("_n") <= MAX_BUCKET)), on=group).drop("_n")
    if d.is_empty():
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64, group: d.schema[group], "ev_a": pl.Utf8, "ev_b": pl.Utf8})
    j = d.join(d, on=group, suffix="_r").filter(pl.col("idx") < pl.col("idx_r"))
    return j.select(
        pl.col("idx").alias("a"), pl.col("idx_r").alias("b"), pl.col(group),
        (pl.col(ev) if ev else pl.lit(None, pl.Utf8)).alias("ev_a"),
        (pl.col(f"{ev}_r") if ev else pl.lit(None, pl.Utf8)).alias("ev_b"),
    )


def _in_triangle(p: pl.DataFrame) -> pl.DataFrame:
    """Add `tri`: the pair is an edge of a triangle of pairs (three nodes tied two by two)."""
    ab = p.select("a", "b").unique()
    both = pl.concat([ab, ab.select(pl.col("b").alias("a"), pl.col("a").alias("b"))])
    tri = (both.join(both, on="a", suffix="_2").filter(pl.col("b") < pl.col("b_2"))
           .join(ab.rename({"a": "b", "b": "b_2"}), on=["b", "b_2"], how="semi"))
    in_tri = pl.concat([tri.select(pl.min_horizontal("a", "b").alias("a"), pl.max_horizontal("a", "b").alias("b")),
                        tri.select(pl.min_horizontal("a", "b_2").alias("a"), pl.max_horizontal("a", "b_2").alias("b")),
                        tri.select(pl.col("b").alias("a"), pl.col("b_2").alias("b"))]).unique().with_columns(
        pl.lit(True).alias("tri"))
    return p.join(in_tri, on=["a", "b"], how="left").with_columns(pl.col("tri").fill_null(False))


def _finish(p: pl.DataFrame, value: pl.Expr, weight: pl.Expr) -> pl.DataFrame:
    if p.is_empty():
        return _empty()
    p = p.with_columns(value.cast(pl.Float64).alias("value"), weight.cast(pl.Float64).alias("weight"),
                       pl.concat_list([pl.col("ev_a"), pl.col("ev_b")]).list.drop_nulls().alias("evidence"))
    if p.select(pl.struct("a", "b").is_duplicated().any()).item():
        p = p.group_by(["a", "b"]).agg(
            pl.col("value").max(), pl.col("weight").max(),
            pl.col("evidence").list.explode(keep_nulls=False, empty_as_null=False).unique().sort())
    else:  # one row per pair already (most signals): no grouping of the lists
        p = p.with_columns(pl.col("evidence").list.unique().list.sort())
    return p.select(list(PAIR_SCHEMA)).sort(["a", "b"])


# ---------------------------------------------------------------- hard links

def shared_wallet(f: Features) -> pl.DataFrame:
    p = _pairs_in_groups(f.nodes, "wallet", "reg_event_id")
    return _finish(p, pl.lit(1.0), pl.lit(0.9))


def shared_ip(f: Features) -> pl.DataFrame:
    """One IP on several nodes: at registration, or benchmarking for them."""
    rows = pl.concat([
        f.nodes.select("idx", "ip", pl.col("reg_event_id").alias("ev")),
        f.benchmarks.select("idx", "ip", pl.col("event_id").alias("ev")),
    ]).drop_nulls("ip")
    p = _pairs_in_groups(rows, "ip", "ev")
    return _finish(p, pl.lit(1.0), pl.lit(0.85))


def shared_fingerprint(f: Features) -> pl.DataFrame:
    """One GPU (its fingerprint) reported by two nodes: a card cannot sit in two machines."""
    fp = f.benchmarks.select("idx", "event_id", "occurred_at_us", "fingerprints").explode("fingerprints")
    fp = fp.drop_nulls("fingerprints").sort(["occurred_at_us", "event_id"])
    p = _pairs_in_groups(fp.rename({"fingerprints": "fp"}), "fp", "event_id")
    if p.is_empty():
        return _empty()
    p = p.group_by(["a", "b"]).agg(pl.col("fp").n_unique().alias("n"), pl.col("ev_a").first(), pl.col("ev_b").first())
    return _finish(p, pl.col("n"), pl.lit(1.0))


# ---------------------------------------------------------------- network (one family)

def same_subnet(f: Features) -> pl.DataFrame:
    p = _pairs_in_groups(f.nodes, "subnet", "reg_event_id")
    return _finish(p, pl.lit(24.0), pl.lit(0.2))


def neighbour_subnet(f: Features) -> pl.DataFrame:
    """/24s next to each other (third octets 1–3 apart in one /16): one operator's block."""
    d = f.nodes.select("idx", "net16", "c3", "reg_event_id", "subnet").drop_nulls(["net16", "c3"])
    size = d.group_by("net16").len()
    d = d.join(size.filter(pl.col("len") <= MAX_BUCKET), on="net16").drop("len")
    # one join per gap, on the neighbour's exact /24 (never all pairs of a /16)
    parts = []
    for gap in (1, 2, 3):
        j = d.join(d.with_columns(pl.col("c3") - gap), on=["net16", "c3"], suffix="_r")
        parts.append(j.select(pl.min_horizontal("idx", "idx_r").alias("a"), pl.max_horizontal("idx", "idx_r").alias("b"),
                              pl.lit(gap, pl.Int32).alias("gap"),
                              pl.when(pl.col("idx") < pl.col("idx_r")).then(pl.col("reg_event_id"))
                              .otherwise(pl.col("reg_event_id_r")).alias("ev_a"),
                              pl.when(pl.col("idx") < pl.col("idx_r")).then(pl.col("reg_event_id_r"))
                              .otherwise(pl.col("reg_event_id")).alias("ev_b")))
    p = pl.concat(parts)
    return _finish(p, pl.col("gap"), pl.lit(0.12))


def rtt_twins(f: Features) -> pl.DataFrame:
    """Round trips from every checker equal within what each node's own jitter explains."""
    r = f.rtt.filter(pl.col("n") >= 5)
    if r.is_empty():
        return _empty()
    top = r.group_by("checker_id").agg(pl.col("n").sum()).sort(["n", "checker_id"], descending=[True, False])
    use = top["checker_id"].head(4).to_list()
    wide = r.filter(pl.col("checker_id").is_in(use)).pivot(on="checker_id", index="idx", values="med_log")
    wide = wide.drop_nulls()
    if wide.height < 2 or len(use) < 3:
        return _empty()
    cand = []
    for shift in (0.0, 1 / 3, 2 / 3):  # three offset grids, so near values share a bin in one of them
        key = pl.concat_str([((pl.col(c) / 0.1) + shift).floor().cast(pl.Int64).cast(pl.Utf8) for c in use], separator="|")
        g = wide.select("idx", key.alias("k"))
        cand.append(_pairs_in_groups(g, "k").select("a", "b"))
    pairs = pl.concat(cand).unique()
    if pairs.is_empty():
        return _empty()
    # every checker both nodes were seen from must agree within 3 standard errors
    ra = r.select("idx", "checker_id", "med_log", "se_log")
    j = (pairs.join(ra.rename({"idx": "a"}), on="a")
         .join(ra.rename({"idx": "b"}), on=["b", "checker_id"], suffix="_b")
         .with_columns(((pl.col("med_log") - pl.col("med_log_b")).abs()
                        / (pl.col("se_log") ** 2 + pl.col("se_log_b") ** 2 + 1e-6).sqrt()).alias("z")))
    agg = j.group_by(["a", "b"]).agg(pl.len().alias("checkers"), pl.col("z").max().alias("zmax"),
                                     (pl.col("med_log") - pl.col("med_log_b")).abs().max().alias("dmax"))
    ok = agg.filter((pl.col("checkers") >= 3) & (pl.col("zmax") <= 3.0))
    p = ok.with_columns(pl.lit(None, pl.Utf8).alias("ev_a"), pl.lit(None, pl.Utf8).alias("ev_b"))
    return _finish(p, pl.col("dmax").exp() - 1.0, pl.lit(0.25))


# ---------------------------------------------------------------- hardware

def benchmark_clone(f: Features) -> pl.DataFrame:
    """Benchmark figures of two nodes of one model closer than chance allows in that model's
    population (median over each node's benchmarks)."""
    b = f.benchmarks.drop_nulls(["fp32", "bw", "vram"]).filter((pl.col("fp32") > 0) & (pl.col("bw") > 0))
    if b.is_empty():
        return _empty()
    per = b.group_by("idx").agg(
        pl.col("gpu_model").last(), pl.col("gpu_count").last(), pl.col("fp32").log().median().alias("lf"),
        pl.col("bw").log().median().alias("lb"), pl.col("vram").median().alias("vram"), pl.col("event_id").last().alias("ev"),
    ).with_columns(pl.concat_str([pl.col("gpu_model"), pl.col("gpu_count").cast(pl.Utf8)], separator="×").alias("grp"))
    # How far apart two honest nodes of one model read: the 10–90 % range of each node's figures
    # around its model's median, pooled over every model with 3+ nodes (a farm of clones is a
    # small part of the pool, so it cannot shrink the yardstick it is measured with).
    per = per.with_columns(pl.len().over("grp").alias("m"),
                           (pl.col("lf") - pl.col("lf").median().over("grp")).alias("cf"),
                           (pl.col("lb") - pl.col("lb").median().over("grp")).alias("cb"))
    pool = per.filter(pl.col("m") >= 3)
    sf = float(pool["cf"].quantile(0.9) - pool["cf"].quantile(0.1)) if pool.height >= 10 else 0.1
    sb = float(pool["cb"].quantile(0.9) - pool["cb"].quantile(0.1)) if pool.height >= 10 else 0.1
    per = per.with_columns(pl.lit(max(sf, 0.02)).alias("sf"), pl.lit(max(sb, 0.02)).alias("sb"))
    per = per.filter(pl.col("m") >= 2).sort(["grp", "lf", "idx"])
    if per.is_empty():
        return _empty()
    per = per.with_columns(pl.int_range(pl.len()).over("grp").alias("rank"))
    K = 12  # each node against its next K in its model's order of fp32 (a sorted neighbourhood)
    parts = []
    for k in range(1, K + 1):
        parts.append(per.join(per.with_columns((pl.col("rank") - k).alias("rank")), on=["grp", "rank"], suffix="_r"))
    j = pl.concat(parts)
    df = (pl.col("lf") - pl.col("lf_r")).abs()
    db = (pl.col("lb") - pl.col("lb_r")).abs()
    j = j.with_columns(df.alias("df"), db.alias("db"))
    # chance that a pair of this model is this close on both figures, times the pairs there are
    j = j.with_columns(
        ((2 * pl.max_horizontal(pl.col("df"), pl.lit(1e-4)) / pl.col("sf"))
         * (2 * pl.max_horizontal(pl.col("db"), pl.lit(1e-4)) / pl.col("sb"))
         * (pl.col("m") * (pl.col("m") - 1) / 2)).alias("expected")
    ).filter((pl.col("expected") < 0.05) & ((pl.col("vram") - pl.col("vram_r")).abs() <= 0.01 * pl.col("vram")))
    p = j.select(
        pl.min_horizontal("idx", "idx_r").alias("a"), pl.max_horizontal("idx", "idx_r").alias("b"),
        pl.max_horizontal("df", "db").alias("d"), pl.col("expected"), pl.col("ev").alias("ev_a"), pl.col("ev_r").alias("ev_b"),
    )
    # three nodes all clones of one another: chance gives that about expected² as often, but
    # only when no two of them are already near-identical: a node that happens to read close
    # to a tight pair of clones closes a triangle by that one coincidence, so a triangle lifts
    # a pair only if the pair itself is past 1 %
    p = _in_triangle(p)
    return _finish(p, pl.col("d").exp() - 1.0,
                   pl.when((pl.col("expected") < 0.001) | (pl.col("tri") & (pl.col("expected") < 0.01))).then(0.55).otherwise(0.4))


# ---------------------------------------------------------------- uptime

def _regional_mask(f: Features) -> tuple[np.ndarray, list[dict]]:
    """Slots where a region went down together: excluded from lockstep.

    An outage starts at a slot where 30 % or more of the region's active nodes go down within
    two slots, over many subnets (5 or more, one for every two nodes, and 30 % of the region's
    subnets: a farm is one place or a few, a region many); it lasts until half of the nodes it
    took down are up again. The same nodes going down together again and again are not a region.
    Returns a (nodes, slots) bool mask of excluded slots (the region's nodes, the outage's slots
    and one either side) and the outages found."""
    n, E = f.up_words.shape
    if n == 0 or E == 0:
        return np.zeros((n, 0), bool), []
    up = _up_matrix(f)
    S = up.shape[1]
    region = f.nodes["region"].fill_null("?").to_numpy()
    subnet = f.nodes["subnet"].fill_null("?").to_numpy()
    mask = np.zeros_like(up)
    outages: list[dict] = []
    active = np.logical_or.accumulate(up, axis=1)  # after its first up slot
    fall = np.zeros_like(up)
    fall[:, 1:] = up[:, :-1] & ~up[:, 1:]
    fall2 = fall.copy()
    fall2[:, :-1] |= fall[:, 1:]  # down at this slot or the next
    for r in sorted(set(region.tolist())):
        rows = np.flatnonzero(region == r)
        if rows.size < 5:
            continue
        act = active[rows].sum(axis=0)
        fr = fall2[rows]
        share = fr.sum(axis=0) / np.maximum(act, 1)
        s_hot = np.flatnonzero((share >= 0.3) & (fr.sum(axis=0) >= 5))
        region_nets = len(set(subnet[rows].tolist()))
        s_next = -1
        found: list[tuple[int, int, np.ndarray, int]] = []
        for s0 in s_hot.tolist():
            if s0 <= s_next:
                continue
            hit = rows[fr[:, s0]]
            nets = len(set(subnet[hit].tolist()))
            if nets < max(5, 0.5 * hit.size, 0.3 * region_nets):
                continue
            s1 = s0 + 1
            while s1 < S and (~up[hit, s1]).mean() >= 0.5:
                s1 += 1
            s_next = s1
            found.append((s0, s1, hit, nets))
        # the same nodes going down together again and again are a group in lockstep, not the
        # region: an outage whose nodes are mostly another outage's (Jaccard ≥ 0.7) is dropped
        sets = [set(h.tolist()) for _, _, h, _ in found]
        for k, (s0, s1, hit, nets) in enumerate(found):
            if any(j != k and len(sets[k] & sets[j]) >= 0.7 * len(sets[k] | sets[j]) for j in range(len(found))):
                continue
            lo, hi = max(0, s0 - 1), min(S, s1 + 2)
            mask[np.ix_(rows, np.arange(lo, hi))] = True
            outages.append({"region": r, "from_slot": int(s0), "to_slot": int(s1), "nodes": int(hit.size),
                            "subnets": nets, "node_idx": hit.tolist()})
    return mask, outages


def _up_matrix(f: Features) -> np.ndarray:
    n, E = f.up_words.shape
    bits = np.unpackbits(f.up_words.view(np.uint8).reshape(n, E, 8), axis=2, bitorder="little")[:, :, :60]
    return bits.reshape(n, E * 60).astype(bool)


_LOCK_CACHE: dict[int, tuple] = {}


def lockstep_context(f: Features) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    key = id(f)
    if key not in _LOCK_CACHE:
        _LOCK_CACHE.clear()
        mask, outages = _regional_mask(f)
        _LOCK_CACHE[key] = (_up_matrix(f), mask, outages)
    return _LOCK_CACHE[key]


LOCKSTEP_LAGS = tuple(k for m in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 30) for k in (-m, m))
FALL_BANDS, FALL_ROWS = 8, 3  # MinHash-LSH over each node's falls: 8 bands of 3


def _fall_candidates(falls: np.ndarray) -> pl.DataFrame:
    """Pairs of nodes whose sets of fall slots are alike (MinHash, 8 bands of 3: a pair with
    Jaccard 0.5 meets in a band with probability 0.66, 0.3 with 0.2), among nodes with 3+ falls."""
    rows, cols = np.nonzero(falls)
    if rows.size == 0:
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    per = np.bincount(rows, minlength=falls.shape[0])
    keep = per[rows] >= 3
    rows, cols = rows[keep], cols[keep].astype(np.int64)
    if rows.size == 0:
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    who = rows[starts]
    rng = np.random.default_rng(18)  # fixed: the same candidates every run
    prime = (1 << 31) - 1
    k = FALL_BANDS * FALL_ROWS
    a = rng.integers(1, prime, k, dtype=np.int64)
    b = rng.integers(0, prime, k, dtype=np.int64)
    sig = np.empty((who.size, k), dtype=np.int64)
    for j in range(k):
        sig[:, j] = np.minimum.reduceat((a[j] * cols + b[j]) % prime, starts)
    parts = []
    for band in range(FALL_BANDS):
        s3 = sig[:, band * FALL_ROWS:(band + 1) * FALL_ROWS].astype(np.uint64)
        key = (s3[:, 0] << np.uint64(31)) ^ (s3[:, 1] * np.uint64(2654435761)) ^ (s3[:, 2] << np.uint64(13))
        parts.append(_pairs_in_groups(pl.DataFrame({"idx": who.astype(np.int64), "k": key}), "k").select("a", "b"))
    return pl.concat(parts).unique()


def _gap_candidates(up: np.ndarray, valid: np.ndarray) -> pl.DataFrame:
    """Pairs sharing a gap of 2+ slots exactly (first and last slot), in gaps shared by at most
    30 nodes: the exact form, for networks too small for the sketch's odds."""
    S = up.shape[1]
    d = np.zeros((up.shape[0], S + 2), np.int8)
    d[:, 1:-1] = (~up & valid).astype(np.int8)
    ch = np.diff(d, axis=1)
    sr, sc = np.nonzero(ch == 1)
    _, ec = np.nonzero(ch == -1)  # row-major: starts and ends pair up in order
    gap = pl.DataFrame({"idx": sr.astype(np.int64), "s": sc.astype(np.int64), "e": ec.astype(np.int64)})
    gap = gap.filter((pl.col("e") - pl.col("s") >= 2) & (pl.col("e") < S))
    if gap.is_empty():
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    gap = gap.with_columns((pl.col("s") * (S + 1) + pl.col("e")).alias("k"))
    size = gap.group_by("k").len()
    gap = gap.join(size.filter(pl.col("len") <= 30), on="k").drop("len")
    return _pairs_in_groups(gap, "k").select("a", "b").unique()


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).sum(axis=1, dtype=np.int64).astype(np.float64)


def lockstep(f: Features) -> pl.DataFrame:
    """Uptime that moves together, judged on the slots both nodes were active and neither in a
    regional outage of its region (see `_regional_mask`).

    Candidates: nodes whose falls (a slot down after a slot up) are alike (MinHash-LSH), or that
    share a whole gap exactly. A pair is in lockstep when the two fall in the same minute far
    more often than two independent nodes falling as often would (μ = g_a·g_b / n, Poisson tail,
    Chernoff bound, at least 1e-4) with their slots correlated (phi ≥ 0.3), and clearly more
    often (1.5×) than with one of them shifted by 1–10, 15, 20 or 30 minutes either way: two
    nodes merely alike (flaky in the same hours, or blinking with the same period) fall together
    about as often at some other lag. Three nodes in lockstep two by two (a triangle) past 1e-6
    each make links (chance gives such a triangle about 1e-12 as often)."""
    up, mask, _ = lockstep_context(f)
    n, S = up.shape
    if n < 2 or S < 3:
        return _empty()
    valid = np.logical_or.accumulate(up, axis=1) & ~mask
    falls = np.zeros_like(up)
    falls[:, 1:] = up[:, :-1] & ~up[:, 1:] & valid[:, 1:] & valid[:, :-1]
    cand = pl.concat([_fall_candidates(falls), _gap_candidates(up, valid)]).unique().sort(["a", "b"])
    if cand.is_empty():
        return _empty()
    a_all = cand["a"].to_numpy()
    b_all = cand["b"].to_numpy()
    Vp, Up, Fp = (np.packbits(m, axis=1) for m in (valid, up & valid, falls))
    sig = np.zeros(a_all.size)
    phi = np.zeros(a_all.size)
    for lo in range(0, a_all.size, 50000):
        a, b = a_all[lo:lo + 50000], b_all[lo:lo + 50000]
        vv = Vp[a] & Vp[b]
        nn = _popcount(vv)
        x, y = Up[a] & vv, Up[b] & vv
        n1, n2, n11 = _popcount(x), _popcount(y), _popcount(x & y)
        d1, d2 = nn - n1, nn - n2
        den = np.sqrt(n1 * d1 * n2 * d2)
        phi[lo:lo + 50000] = np.where(den > 0, (nn * n11 - n1 * n2) / np.where(den > 0, den, 1), 0.0)
        fa, fb = Fp[a] & vv, Fp[b] & vv
        both = _popcount(fa & fb)
        mu = np.maximum(_popcount(fa) * _popcount(fb) / np.maximum(nn, 1), 1e-9)
        chern = np.where(both > mu, both * np.log(np.maximum(both, 1e-9) / mu) - both + mu, 0.0) / math.log(10)
        sig[lo:lo + 50000] = np.where(both >= 2, chern, 0.0)
    hot = np.flatnonzero((sig >= 4) & (phi >= 0.3))
    # the lag test, on the few pairs that passed
    for lo in range(0, hot.size, 5000):
        h = hot[lo:lo + 5000]
        a, b = a_all[h], b_all[h]
        v = valid[a] & valid[b]
        fa, fb = falls[a] & v, falls[b] & v
        both = (fa & fb).sum(1)
        lagged = np.zeros_like(both)
        for k in LOCKSTEP_LAGS:
            lagged = np.maximum(lagged, (fa & np.roll(fb, k, axis=1)).sum(1))
        sig[h] = np.where(both >= 1.5 * lagged, sig[h], 0.0)
    cnt = cand.with_columns(pl.Series("sig", sig), pl.Series("phi", phi)).filter(
        (pl.col("sig") >= 4) & (pl.col("phi") >= 0.3))
    p = _in_triangle(cnt.with_columns(pl.lit(None, pl.Utf8).alias("ev_a"), pl.lit(None, pl.Utf8).alias("ev_b")))
    # 0.35 at 1e-4, a link alone (0.5) from 1e-7, 0.65 from 1e-10
    w = 0.35 + 0.3 * ((pl.col("sig") - 4) / 6).clip(0, 1)
    return _finish(p, pl.col("phi"), pl.when(pl.col("tri") & (pl.col("sig") >= 6)).then(pl.max_horizontal(w, 0.55))
                   .otherwise(w))


# ---------------------------------------------------------------- timing

def same_second(f: Features) -> pl.DataFrame:
    """Pings answered by the same checker in the same second, slot after slot (MinHash over the
    (checker, second) of each node's pings; 4 bands of 3)."""
    mh = f.minhash
    have = np.flatnonzero(f.ping_counts >= 30)
    if have.size < 2:
        return _empty()
    cand = []
    for band in range(MINHASH_K // 3):
        cols = mh[have, band * 3:(band + 1) * 3]
        key = (cols[:, 0] ^ (cols[:, 1] * np.uint64(0x9E3779B97F4A7C15)) ^ (cols[:, 2] * np.uint64(0xC2B2AE3D27D4EB4F)))
        g = pl.DataFrame({"idx": have.astype(np.int64), "k": key})
        cand.append(_pairs_in_groups(g, "k").select("a", "b"))
    pairs = pl.concat(cand).unique()
    if pairs.is_empty():
        return _empty()
    a = pairs["a"].to_numpy()
    b = pairs["b"].to_numpy()
    jac = (mh[a] == mh[b]).mean(axis=1)
    p = pairs.with_columns(pl.Series("j", jac), pl.lit(None, pl.Utf8).alias("ev_a"), pl.lit(None, pl.Utf8).alias("ev_b"))
    p = p.filter(pl.col("j") >= 0.4)
    return _finish(p, pl.col("j"), 0.3 + 0.3 * ((pl.col("j") - 0.4) / 0.6).clip(0, 1))


# ---------------------------------------------------------------- registration

def _log10_poisson_tail(k: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """log10 P(X ≥ k), X ~ Poisson(mu). Exact (a sum of terms from k) while mu is small; past
    mu = 30 the Chernoff bound −(k·ln(k/mu) − k + mu), which never claims more than the truth;
    0 when k ≤ mu (the tail is then about one half or more: no evidence)."""
    k = np.asarray(k, dtype=np.float64)
    mu = np.maximum(np.asarray(mu, dtype=np.float64), 1e-12)
    out = np.zeros(k.size)
    for i, (kk, m) in enumerate(zip(k.tolist(), mu.tolist())):
        if kk <= m:
            continue
        if m > 30:
            out[i] = -(kk * math.log(kk / m) - kk + m) / math.log(10)
            continue
        terms = [-m + j * math.log(m) - math.lgamma(j + 1) for j in range(int(kk), int(kk) + 200)]
        top = max(terms)
        out[i] = min(0.0, (top + math.log(sum(math.exp(t - top) for t in terms))) / math.log(10))
    return out


def _log10_binomial_tail_bound(w: np.ndarray, k: np.ndarray, p: float) -> np.ndarray:
    """Chernoff bound of log10 P(X ≥ w), X ~ Binomial(k, p): −k·KL(w/k ‖ p) / ln 10 (0 when w/k ≤ p)."""
    q = np.clip(w / np.maximum(k, 1), 1e-12, 1 - 1e-12)
    p = min(max(p, 1e-12), 1 - 1e-12)
    kl = q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))
    return np.where(q > p, -k * kl / math.log(10), 0.0)


def registration_burst(f: Features) -> pl.DataFrame:
    """Nodes claiming the same hardware (same model string and count) registered in a run that
    hardware dominates far beyond its share of all registrations, and far denser than that
    hardware registers around it. For runs of 4 to 32 consecutive registrations of one
    claim: of the K registrations (any claim) inside the run's span, how improbable W of one claim
    is at its share p (binomial tail, Chernoff bound); a run also needs a rate 5× that claim's
    rate over the 10 minutes either side. Judged against the network's own registration wave,
    so a launch hour when everybody registers is no evidence."""
    r = f.nodes.drop_nulls(["registered_at_us", "gpu_model"]).select(
        "idx", "registered_at_us", "reg_event_id",
        pl.concat_str([pl.col("gpu_model"), pl.col("gpu_count").cast(pl.Utf8)], separator="×").alias("grp"),
    ).sort(["grp", "registered_at_us", "idx"])
    if r.height < 4:
        return _empty()
    t_all = np.sort(r["registered_at_us"].to_numpy())
    total = t_all.size
    out = []
    side = 600 * 1_000_000
    for (grp,), g in r.group_by(["grp"], maintain_order=True):
        t = g["registered_at_us"].to_numpy()
        if t.size < 4:
            continue
        ix = g["idx"].to_numpy()
        ev = g["reg_event_id"].to_numpy()
        share = t.size / total
        best = np.zeros(t.size - 1)  # significance of each consecutive pair
        for W in (4, 5, 6, 8, 10, 12, 16, 24, 32):
            if t.size < W:
                break
            lo, hi = t[: t.size - W + 1], t[W - 1:]
            span = np.maximum((hi - lo).astype(np.float64), 1_000_000)
            k_all = (np.searchsorted(t_all, hi, side="right") - np.searchsorted(t_all, lo, side="left")).astype(np.float64)
            around = (np.searchsorted(t, hi + side, side="right") - np.searchsorted(t, lo - side, side="left"))
            dense = (W / span) >= 5 * around / (span + 2 * side)
            sig = np.where(dense, -_log10_binomial_tail_bound(np.full(span.size, float(W)), k_all, share), 0.0)
            for k in range(W - 1):  # every consecutive pair inside the run gets the run's figure
                best[k: k + sig.size] = np.maximum(best[k: k + sig.size], sig)
        hot = np.flatnonzero(best >= 5)
        for i in hot.tolist():
            out.append((int(ix[i]), int(ix[i + 1]), float(best[i]), str(ev[i]), str(ev[i + 1])))
    if not out:
        return _empty()
    p = pl.DataFrame(out, schema=["x", "y", "s", "ev_a", "ev_b"], orient="row").select(
        pl.min_horizontal("x", "y").alias("a"), pl.max_horizontal("x", "y").alias("b"), "s", "ev_a", "ev_b")
    # a burst alone makes a link (0.5) only past about 4e-8 (s ≥ 7.4)
    return _finish(p, pl.col("s"), 0.3 + 0.25 * ((pl.col("s") - 5) / 3).clip(0, 1))


# ---------------------------------------------------------------- jobs

def wash_jobs(f: Features) -> pl.DataFrame:
    """Jobs that circulate a buyer's money among the same few suppliers: a buyer whose jobs
    keep going back to a small closed set of nodes.

    *The buyer returns far more than chance.* Its repeats (jobs − distinct nodes) are set
    against what its jobs would give spread over the nodes as every *other* buyer's jobs are
    (each node's share of the others' jobs, smoothed by one job per active node; the mean is
    the expected number of pairs of its jobs on one node, C(J, 2)·Σ share², which never
    undercounts the repeats), Poisson tail, corrected for the number of buyers looked at,
    past 1e-4. *Its money stays in a small set.* Its regular suppliers (nodes that took two or
    more of its jobs) are two or more, at most `MAX_BUCKET`, and took at least half of its
    jobs. A busy honest buyer returns to a node about as often as chance says, and one that
    mostly buys across the network is not closed, so sharing a buyer alone makes no link. The
    regular suppliers of a washing buyer are linked two by two (citing one job each); when
    they took three quarters of its jobs, so are the nodes that took a single one (a link
    alone when the buyer is past 1e-10, else 0.45: one more tie to the set makes a link)."""
    j = f.jobs.drop_nulls("buyer_id")
    if j.is_empty():
        return _empty()
    total = j.height
    active = j["idx"].n_unique()
    per_node = j.group_by("idx").agg(pl.len().alias("jn"))
    sq_all = float(((per_node["jn"] + 1).cast(pl.Float64) ** 2).sum())
    bn = (j.group_by(["buyer_id", "idx"]).agg(pl.len().cast(pl.Int64).alias("k"), pl.col("event_id").min().alias("ev"))
          .join(per_node.with_columns(pl.col("jn").cast(pl.Int64)), on="idx"))
    # Σ over all nodes of (others' jobs + 1)²: the global sum, corrected on the buyer's own nodes
    per = bn.group_by("buyer_id").agg(
        pl.col("k").sum().alias("jobs"), pl.len().alias("nodes"),
        (((pl.col("jn") - pl.col("k") + 1) ** 2) - (pl.col("jn") + 1) ** 2).cast(pl.Float64).sum().alias("dsq"),
        pl.col("k").filter(pl.col("k") >= 2).sum().alias("kept"), (pl.col("k") >= 2).sum().alias("regular"))
    per = per.with_columns(
        (pl.col("jobs") - pl.col("nodes")).alias("repeats"),
        (pl.col("jobs") * (pl.col("jobs") - 1) / 2 * (sq_all + pl.col("dsq"))
         / (total - pl.col("jobs") + active).cast(pl.Float64) ** 2).alias("mu"))
    tests = math.log10(max(per.height, 1))
    per = per.filter((pl.col("repeats") >= 2) & (pl.col("regular") >= 2) & (pl.col("regular") <= MAX_BUCKET)
                     & (2 * pl.col("kept") >= pl.col("jobs")))
    if per.is_empty():
        return _empty()
    lp = _log10_poisson_tail(per["repeats"].to_numpy(), per["mu"].to_numpy()) + tests
    per = per.with_columns(pl.Series("lp", lp)).filter(pl.col("lp") <= -4)
    if per.is_empty():
        return _empty()
    # the nodes that took a single job of a washing buyer whose regular suppliers took three
    # quarters of its jobs are in the loop too: at full weight when the buyer is blatant
    # (past 1e-10), else just short of a link alone (another tie to the set makes one)
    closed3 = 4 * pl.col("kept") >= 3 * pl.col("jobs")
    d = bn.join(per.select("buyer_id", "lp", closed3.alias("c3"), (pl.col("lp") <= -10).alias("blatant")),
                on="buyer_id").filter((pl.col("k") >= 2) | pl.col("c3")).select(
        "idx", "buyer_id", "ev", "lp", "blatant", (pl.col("k") >= 2).alias("regular"))
    p = d.join(d, on="buyer_id", suffix="_r").filter(pl.col("idx") < pl.col("idx_r")).select(
        pl.col("idx").alias("a"), pl.col("idx_r").alias("b"), "lp",
        pl.when(pl.col("regular") & pl.col("regular_r") | pl.col("blatant")).then(0.5).otherwise(0.45).alias("w"),
        pl.col("ev").alias("ev_a"), pl.col("ev_r").alias("ev_b"))
    # value: −log10 of the buyer's odds (after the correction); 0.5 makes a link alone
    return _finish(p, -pl.col("lp"), pl.col("w"))


SIGNALS: tuple[Signal, ...] = (
    Signal("shared_wallet", "identity", "hard", shared_wallet, "the same payout wallet"),
    Signal("shared_ip", "identity", "hard", shared_ip, "the same IP at registration or benchmarking"),
    Signal("shared_fingerprint", "identity", "hard", shared_fingerprint, "the same GPU fingerprint in benchmarks"),
    Signal("same_subnet", "network", "circumstantial", same_subnet, "distinct IPs in one /24"),
    Signal("neighbour_subnet", "network", "circumstantial", neighbour_subnet, "/24s 1–3 apart in one /16"),
    Signal("rtt_twins", "network", "circumstantial", rtt_twins, "round trips equal from every checker"),
    Signal("benchmark_clone", "hardware", "circumstantial", benchmark_clone, "benchmark figures closer than chance"),
    Signal("lockstep_uptime", "uptime", "circumstantial", lockstep, "the same gaps in uptime, outside regional outages"),
    Signal("same_second_pings", "timing", "circumstantial", same_second, "pings in the same second by the same checker"),
    Signal("registration_burst", "registration", "circumstantial", registration_burst,
           "same hardware registered in a run far denser than around it"),
    Signal("wash_jobs", "jobs", "circumstantial", wash_jobs, "a buyer's jobs going back to the same few nodes"),
)
SIGNAL_BY_NAME = {s.name: s for s in SIGNALS}


# ---------------------------------------------------------------- per node

NODE_SCHEMA = {"idx": pl.Int64, "value": pl.Float64, "evidence": pl.List(pl.Utf8), "detail": pl.Utf8}


def fresh_wallet(f: Features) -> pl.DataFrame:
    """A node that moved its payouts to a wallet the archive had never seen (re-registered with
    a wallet no registration carried before): a fresh wallet per claim is how an operator keeps
    its nodes' payouts apart. Value: the fresh wallets it moved to; evidence: those
    registrations."""
    w = f.wallets
    if w is None or w.is_empty():
        return pl.DataFrame(schema=NODE_SCHEMA)
    w = w.with_columns(pl.int_range(pl.len()).alias("_o"))
    first_seen = w.group_by("wallet").agg(pl.col("_o").min().alias("_first"))
    first_reg = w.group_by("idx").agg(pl.col("_o").min().alias("_reg"))
    moved = (w.join(first_seen, on="wallet").join(first_reg, on="idx")
             .filter((pl.col("_o") == pl.col("_first")) & (pl.col("_o") > pl.col("_reg"))))
    if moved.is_empty():
        return pl.DataFrame(schema=NODE_SCHEMA)
    return moved.group_by("idx").agg(pl.len().cast(pl.Float64).alias("value"), pl.col("event_id").sort().alias("evidence")).with_columns(
        pl.lit("moved its payouts to a wallet never seen before").alias("detail")).select(list(NODE_SCHEMA)).sort("idx")


def job_outcomes(f: Features) -> pl.DataFrame:
    """Job outcomes no honest supplier produces: jobs reported `succeeded` over a span of two
    or more whole slots in which the node was never up (work done with no heartbeat: the job
    was made up), or `failed_node` jobs far beyond the network's own failure rate (binomial
    tail, Chernoff bound, past 1e-4). Value: −log10 of the failures' odds, or the number of
    ghost jobs when there are any (then 10 + that number); evidence: those jobs."""
    j = f.jobs
    if j.is_empty():
        return pl.DataFrame(schema=NODE_SCHEMA)
    out = []
    # ghost jobs, against the closed epochs' uptime
    up = _LOCK_CACHE[id(f)][0] if id(f) in _LOCK_CACHE else _up_matrix(f)  # the lockstep's, when it ran
    if up.size:
        S = up.shape[1]
        t0 = get_epoch_start_us(int(f.epochs[0]), RULESET_V1)
        slot = RULESET_V1.slot_us
        ok = j.filter((pl.col("status") == "succeeded") & pl.col("started_us").is_not_null() & pl.col("ended_us").is_not_null())
        s1 = ((ok["started_us"].to_numpy() - t0 + slot - 1) // slot).astype(np.int64)
        s2 = ((ok["ended_us"].to_numpy() - t0) // slot).astype(np.int64)  # exclusive
        s1, s2 = np.clip(s1, 0, S), np.clip(s2, 0, S)
        span = s2 - s1
        ix = ok["idx"].to_numpy()
        ups = np.zeros(ix.size, dtype=np.int64)
        step = max(1, 20_000_000 // (S + 1))  # jobs per chunk: a running count of up slots per job's node
        for lo in range(0, ix.size, step):
            cum = np.zeros((min(step, ix.size - lo), S + 1), dtype=np.int32)
            np.cumsum(up[ix[lo:lo + step]], axis=1, out=cum[:, 1:])
            r = np.arange(cum.shape[0])
            ups[lo:lo + step] = cum[r, s2[lo:lo + step]] - cum[r, s1[lo:lo + step]]
        ghost = ok.filter(pl.Series((span >= 2) & (ups == 0)))
        if ghost.height:
            out.append(ghost.group_by("idx").agg((10 + pl.len()).cast(pl.Float64).alias("value"),
                                                 pl.col("event_id").sort().alias("evidence")).with_columns(
                pl.lit("jobs reported succeeded while the node was never up").alias("detail")))
    # failures beyond the network's rate
    done = j.filter(pl.col("status").is_in(["succeeded", "failed_node", "failed_user"]))
    if done.height:
        rate = float((done["status"] == "failed_node").mean())
        per = done.group_by("idx").agg(pl.len().alias("n"), (pl.col("status") == "failed_node").sum().alias("k"),
                                       pl.col("event_id").filter(pl.col("status") == "failed_node").sort().alias("evidence"))
        per = per.filter(pl.col("k") >= 3)
        if per.height and rate > 0:
            lp = _log10_binomial_tail_bound(per["k"].to_numpy().astype(float), per["n"].to_numpy().astype(float), rate)
            per = per.with_columns(pl.Series("value", -lp)).filter(pl.col("value") >= 4)
            out.append(per.select("idx", "value", "evidence", pl.lit(
                f"failed_node far beyond the network's rate ({rate:.3f})").alias("detail")))
    if not out:
        return pl.DataFrame(schema=NODE_SCHEMA)
    return (pl.concat([o.select(list(NODE_SCHEMA)) for o in out]).sort(["idx", "value"], descending=[False, True])
            .group_by("idx", maintain_order=True).first())


NODE_SIGNALS: tuple[Signal, ...] = (
    Signal("fresh_wallet", "wallet", "circumstantial", fresh_wallet, "payouts moved to a wallet never seen before"),
    Signal("job_outcomes", "jobs", "circumstantial", job_outcomes,
           "jobs succeeded with the node never up, or failures far beyond the network's rate"),
)
