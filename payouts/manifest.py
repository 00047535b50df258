"""The epoch manifest hash (ruleset §9), pinned byte for byte.

SHA-256, lower-case hex, of the UTF-8 bytes of one line per `epoch_rewards` row of the epoch,
sorted by node_id (byte order): `<reward_epoch>,<node_id>,<pool>,<amount_base_units>,<wallet>\n`.
An epoch that pays nobody hashes the empty string.
"""

from __future__ import annotations

import hashlib
from typing import Iterable


def compute_manifest_sha256(rows: Iterable[tuple[int, str, str, int, str]]) -> str:
    """rows: (reward_epoch, node_id, pool, amount_base_units, wallet)."""
    ordered = sorted(rows, key=lambda r: r[1].encode("utf-8"))
    h = hashlib.sha256()
    for reward_epoch, node_id, pool, amount, wallet in ordered:
        h.update(f"{int(reward_epoch)},{node_id},{pool},{int(amount)},{wallet}\n".encode("utf-8"))
    return h.hexdigest()
