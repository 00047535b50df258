"""Simulated networks for the investigation's tests: simulated and replayed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from epochal.replay import replay
from epochal.sim import simulate


NODES, HOURS = 250, 8


@pytest.fixture(scope="session")
def sim_store(tmp_path_factory):
    """seed -> (events folder, store path), built on first use."""
    root = tmp_path_factory.mktemp("inv")
    made: dict[int, tuple[Path, Path]] = {}

    def get(seed: int) -> tuple[Path, Path]:
        if seed not in made:
            d = root / f"sim-{seed}"
            simulate(NODES, HOURS, seed, d)
            db = root / f"store-{seed}.duckdb"
            replay([d], db)
            made[seed] = (d, db)
        return made[seed]

    return get
