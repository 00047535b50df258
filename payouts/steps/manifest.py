"""§9 The manifest: the pinned hash of the epoch's reward rows."""

from __future__ import annotations

from payouts.epoch import EpochState
from payouts.manifest import compute_manifest_sha256_frame


def process_manifest(state: EpochState) -> None:
    state.manifest_sha256 = compute_manifest_sha256_frame(state.rewards)
