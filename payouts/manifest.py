"""The epoch manifest hash (ruleset §9), pinned byte for byte.

SHA-256, lower-case hex, of the UTF-8 bytes of one line per `epoch_rewards` row of the epoch,
sorted by node_id (byte order): `<reward_epoch>,<node_id>,<pool>,<amount_base_units>,<wallet>\n`.
An epoch that pays nobody hashes the empty string.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import polars as pl


def compute_manifest_sha256(rows: Iterable[tuple[int, str, str, int, str]]) -> str:
    """rows: (reward_epoch, node_id, pool, amount_base_units, wallet)."""
    ordered = sorted(rows, key=lambda r: r[1].encode("utf-8"))
    h = hashlib.sha256()
    for reward_epoch, node_id, pool, amount, wallet in ordered:
        h.update(f"{int(reward_epoch)},{node_id},{pool},{int(amount)},{wallet}\n".encode("utf-8"))
    return h.hexdigest()


def compute_manifest_sha256_frame(rewards: pl.DataFrame) -> str:
    """`compute_manifest_sha256` of reward rows as a frame (reward_epoch, node_id, pool,
    amount_base_units, wallet): the lines built by polars and hashed in one pass (polars sorts
    strings by their UTF-8 bytes). Held to the reference by tests/property/test_rule_twins.py."""
    ordered = rewards if rewards["node_id"].is_sorted() else rewards.sort("node_id")  # (a close's are)
    text = (ordered
            .select(pl.concat_str([pl.col("reward_epoch").cast(pl.String), pl.col("node_id"), pl.col("pool"),
                                   pl.col("amount_base_units").cast(pl.String), pl.col("wallet")], separator=",")
                    + "\n")
            .to_series().str.join("").item()) if rewards.height else ""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
