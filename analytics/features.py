"""Per-node facts an investigation starts from, read columnar from the cut archive.

Every frame is keyed by `idx`, the node's rank in byte order of `node_id`, so that arrays built
from them (uptime words, signatures) are indexed alike. Nothing here loops per ping: the ping
aggregates (round trips per checker, same-second signatures) are DuckDB `GROUP BY`s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from store.db import fetch_polars
from scoring.hardware import get_model

from .source import Source

MINHASH_K = 12  # same-second signature length (4 bands of 3)
SAMPLE_NODE_MINUTES = 16_000_000  # node-minutes the ping pass reads in full; beyond, a sample
SAMPLE_MIN_MINUTES = 180  # never fewer minutes per node than this (three hours of pings)


def ping_sample(nodes: int, epochs: int) -> int:
    """One minute in `r` is read by the ping pass (r a power of two, 1 on any archive of up to
    `SAMPLE_NODE_MINUTES` node-minutes): the ping pass is the investigation's one scan of
    every ping, and past that size reading all of them costs minutes for figures that a few
    hundred pings per node already pin down. The minutes are chosen by a hash of the minute,
    so the choice depends on nothing but the archive's time axis."""
    minutes = max(int(epochs), 1) * 60
    r = 1
    while nodes * minutes / (2 * r) >= SAMPLE_NODE_MINUTES and minutes / (2 * r) >= SAMPLE_MIN_MINUTES:
        r *= 2
    return r


@dataclass
class Features:
    nodes: pl.DataFrame  # idx, node_id, reg_event_id, registered_at_us, wallet, ip, region, gpu_model, gpu_count, operator_id, fleet, subnet, net16, c3, rewards_base_units, epochs_paid
    benchmarks: pl.DataFrame  # idx, event_id, occurred_at_us, gpu_model, gpu_count, fp32, bw, vram, ip, fingerprints
    jobs: pl.DataFrame  # idx, event_id, occurred_at_us, buyer_id, job_id, status, fee, started_us, ended_us
    up_words: np.ndarray  # (nodes, epochs) uint64: slot bitmaps of the closed epochs ≤ N
    epochs: np.ndarray  # the epochs of up_words' columns
    verdicts: pl.DataFrame  # idx, hw_verdict, benchmark_event_id (at epoch N)
    rtt: pl.DataFrame  # idx, checker_id, n, med_log (mean of ln rtt), sd_log, se_log
    minhash: np.ndarray  # (nodes, MINHASH_K) uint64, or empty when no pings
    ping_counts: np.ndarray  # reachable pings per node, among those read (see `ping_sample`)
    ping_rate: int = 1  # one minute in `ping_rate` read by the ping pass
    wallets: pl.DataFrame | None = None  # idx, event_id, occurred_at_us, wallet: every registration, in time order

    @property
    def n(self) -> int:
        return self.nodes.height


def _ip_parts(df: pl.DataFrame, col: str) -> pl.DataFrame:
    parts = pl.col(col).str.split(".")
    ok = pl.col(col).str.contains(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
    return df.with_columns(
        pl.when(ok).then(parts.list.slice(0, 3).list.join(".")).otherwise(None).alias("subnet"),
        pl.when(ok).then(parts.list.slice(0, 2).list.join(".")).otherwise(None).alias("net16"),
        pl.when(ok).then(parts.list.get(2, null_on_oob=True).cast(pl.Int32, strict=False)).otherwise(None).alias("c3"),
    )


def load_features(src: Source) -> Features:
    con = src.con
    regs = fetch_polars(
        con,
        """SELECT node_id, event_id AS reg_event_id, occurred_at_us AS registered_at_us,
                  payload->>'wallet' AS wallet, payload->>'ip' AS ip, payload->>'region' AS region,
                  payload->>'gpu_model' AS gpu_model, TRY_CAST(payload->>'gpu_count' AS INTEGER) AS gpu_count,
                  payload->>'operator_id' AS operator_id
           FROM inv_events WHERE event_type = 'node.registered'
           QUALIFY row_number() OVER (PARTITION BY node_id ORDER BY occurred_at_us, event_id) = 1""",
    )
    seen = fetch_polars(
        con,
        """SELECT node_id FROM inv_scores UNION SELECT node_id FROM inv_events WHERE event_type = 'benchmark'""",
    )
    ids = pl.concat([regs.select("node_id"), seen]).unique().sort("node_id")
    ids = ids.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"))
    nodes = ids.join(regs, on="node_id", how="left")
    # a fleet: an operator_id declared by two or more nodes
    fleets = nodes.filter(pl.col("operator_id").is_not_null()).group_by("operator_id").len()
    fleets = fleets.filter(pl.col("len") >= 2).select(pl.col("operator_id"), pl.lit(True).alias("_fleet"))
    nodes = nodes.join(fleets, on="operator_id", how="left").with_columns(
        pl.when(pl.col("_fleet")).then(pl.col("operator_id")).otherwise(None).alias("fleet")
    ).drop("_fleet")
    nodes = _ip_parts(nodes, "ip")
    keys = {m: (g.model_key if (g := get_model(m)) is not None else None) for m in nodes["gpu_model"].unique().to_list()}
    nodes = nodes.with_columns(pl.col("gpu_model").replace_strict(keys, default=None, return_dtype=pl.Utf8).alias("model_key"))
    paid = fetch_polars(
        con,
        """SELECT node_id, sum(amount_base_units)::BIGINT AS rewards_base_units, count(*)::BIGINT AS epochs_paid
           FROM inv_rewards WHERE amount_base_units > 0 GROUP BY node_id""",
    )
    nodes = nodes.join(paid, on="node_id", how="left").with_columns(
        pl.col("rewards_base_units").fill_null(0), pl.col("epochs_paid").fill_null(0)
    ).sort("idx")
    key = nodes.select("node_id", "idx")

    benchmarks = fetch_polars(
        con,
        """SELECT node_id, event_id, occurred_at_us, payload->>'gpu_model' AS gpu_model,
                  TRY_CAST(payload->>'gpu_count' AS INTEGER) AS gpu_count,
                  TRY_CAST(payload->>'fp32_tflops' AS DOUBLE) AS fp32,
                  TRY_CAST(payload->>'mem_bandwidth_gbps' AS DOUBLE) AS bw,
                  TRY_CAST(payload->>'vram_gb' AS DOUBLE) AS vram,
                  payload->>'ip' AS ip,
                  CAST(json_extract_string(payload, '$.gpu_fingerprints[*]') AS VARCHAR[]) AS fingerprints
           FROM inv_events WHERE event_type = 'benchmark'""",
    ).join(key, on="node_id", how="inner").sort(["idx", "occurred_at_us", "event_id"])

    jobs = fetch_polars(
        con,
        """SELECT node_id, event_id, occurred_at_us, payload->>'buyer_id' AS buyer_id, payload->>'job_id' AS job_id,
                  payload->>'status' AS status, TRY_CAST(payload->>'fee_base_units' AS BIGINT) AS fee,
                  epoch_us(TRY_CAST(payload->>'started_at' AS TIMESTAMPTZ)) AS started_us,
                  epoch_us(TRY_CAST(payload->>'ended_at' AS TIMESTAMPTZ)) AS ended_us
           FROM inv_events WHERE event_type = 'job.completed'
           QUALIFY row_number() OVER (PARTITION BY payload->>'job_id' ORDER BY occurred_at_us, event_id) = 1""",
    ).join(key, on="node_id", how="inner").sort(["idx", "event_id"])

    wallets = fetch_polars(
        con,
        """SELECT node_id, event_id, occurred_at_us, payload->>'wallet' AS wallet
           FROM inv_events WHERE event_type = 'node.registered' AND payload->>'wallet' IS NOT NULL""",
    ).join(key, on="node_id", how="inner").sort(["occurred_at_us", "event_id"])

    scores = fetch_polars(
        con, "SELECT reward_epoch, node_id, slot_bitmap::UBIGINT AS slot_bitmap FROM inv_scores"
    ).join(key, on="node_id", how="inner")
    epochs = np.arange(src.first_epoch, src.up_to_epoch + 1, dtype=np.int64)
    up_words = np.zeros((nodes.height, epochs.size), dtype=np.uint64)
    if scores.height:
        up_words[scores["idx"].to_numpy(), scores["reward_epoch"].to_numpy() - src.first_epoch] = (
            scores["slot_bitmap"].cast(pl.UInt64).to_numpy()
        )
    verdicts = fetch_polars(
        con,
        f"""SELECT node_id, hw_verdict, benchmark_event_id FROM inv_scores
            WHERE reward_epoch = {int(src.up_to_epoch)}""",
    ).join(key, on="node_id", how="inner")

    # One pass over the pings: per (node, checker) the count, the mean and spread of ln(rtt)
    # (the round trips' jitter is multiplicative), and the MinHash of the (checker, second)
    # tokens (the per-node MinHash is the minimum over its checkers). On a large archive the
    # pass reads a sample of whole minutes, the same minutes for every node (`ping_sample`):
    # a same-second pair still shares its seconds inside them, and round trips keep tens of
    # pings per node and checker; their standard errors count only the pings read.
    rate = ping_sample(nodes.height, epochs.size)
    where = "reachable" if rate == 1 else f"reachable AND hash(occurred_at_us // 60000000) % {rate} = 0"
    mins = ", ".join(f"min(hash(checker_id, occurred_at_us // 1000000, {k}))::UBIGINT AS h{k}"
                     for k in range(MINHASH_K))
    per = fetch_polars(
        con,
        f"""SELECT node_id, checker_id, count(*)::BIGINT AS n,
                   avg(ln(rtt_ms)) FILTER (WHERE rtt_ms > 0) AS med_log,
                   coalesce(stddev_samp(ln(rtt_ms)) FILTER (WHERE rtt_ms > 0), 0) AS sd_log,
                   count(*) FILTER (WHERE rtt_ms > 0)::BIGINT AS n_rtt, {mins}
            FROM inv_pings WHERE {where} GROUP BY node_id, checker_id""",
    ).join(key, on="node_id", how="inner")
    rtt = per.filter(pl.col("n_rtt") > 0).select(
        "idx", "checker_id", pl.col("n_rtt").alias("n"), "med_log", "sd_log",
        (pl.col("sd_log") / pl.col("n_rtt").cast(pl.Float64).sqrt()).alias("se_log"))
    mh = per.group_by("idx").agg(pl.col("n").sum().alias("pings"), *[pl.col(f"h{k}").min() for k in range(MINHASH_K)])
    minhash = np.zeros((nodes.height, MINHASH_K), dtype=np.uint64)
    counts = np.zeros(nodes.height, dtype=np.int64)
    if mh.height:
        ix = mh["idx"].to_numpy()
        minhash[ix] = mh.select([f"h{k}" for k in range(MINHASH_K)]).cast(pl.UInt64).to_numpy()
        counts[ix] = mh["pings"].to_numpy()
    return Features(nodes, benchmarks, jobs, up_words, epochs, verdicts, rtt, minhash, counts, rate, wallets)
