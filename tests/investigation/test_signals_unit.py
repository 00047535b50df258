"""Signals on hand-made features: what each must and must not link (no simulation, fast)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl

from analytics.signals import _log10_poisson_tail, wash_jobs


def _jobs(rows: list[tuple[int, str]]) -> SimpleNamespace:
    return SimpleNamespace(jobs=pl.DataFrame(
        {"idx": [i for i, _ in rows], "event_id": [f"jc-{k:06d}" for k in range(len(rows))],
         "buyer_id": [b for _, b in rows], "status": ["succeeded"] * len(rows), "fee": [1000] * len(rows)},
        schema={"idx": pl.Int64, "event_id": pl.Utf8, "buyer_id": pl.Utf8, "status": pl.Utf8, "fee": pl.Int64}))


def _network(rng: np.random.Generator, nodes: int = 3000) -> list[tuple[int, str]]:
    """Honest jobs: a very busy buyer (a third of all jobs) and a long tail, spread at random."""
    rows = [(int(rng.integers(0, nodes)), "busy") for _ in range(3000)]
    rows += [(int(rng.integers(0, nodes)), f"buyer-{int(rng.zipf(1.5)) % 300}") for _ in range(6000)]
    return rows


def test_poisson_tail_is_a_tail():
    # below or at the mean the tail is about a half or more: no evidence either way
    assert _log10_poisson_tail(np.array([4178]), np.array([6692.8]))[0] == 0.0
    assert _log10_poisson_tail(np.array([1]), np.array([1.0]))[0] == 0.0
    # small means: exact; P(X >= 3 | 0.1) = 1.547e-4
    assert abs(_log10_poisson_tail(np.array([3]), np.array([0.1]))[0] - np.log10(1.547e-4)) < 0.01
    # large means: the Chernoff bound never claims more than the truth (P(X >= 150 | 100) ~ 1.7e-6)
    lp = _log10_poisson_tail(np.array([150]), np.array([100.0]))[0]
    assert np.log10(1.7e-6) <= lp < -4


def test_a_busy_buyer_links_nobody():
    rng = np.random.default_rng(1)
    assert wash_jobs(_jobs(_network(rng))).is_empty()


def test_a_buyer_closed_on_a_few_nodes_links_them():
    rng = np.random.default_rng(2)
    rows = _network(rng)
    farm = [5000, 5001, 5002, 5003]
    rows += [(farm[k % 4], "loop") for k in range(14)]
    p = wash_jobs(_jobs(rows))
    assert set(p["a"].to_list()) | set(p["b"].to_list()) == set(farm)
    assert p.height == 6 and p["evidence"].list.len().min() == 2
    # one more job of the loop on a node of its own: blatant and closed, that node is in the loop
    p = wash_jobs(_jobs(rows + [(7000, "loop")]))
    assert set(p["a"].to_list()) | set(p["b"].to_list()) == set(farm) | {7000}


def test_a_buyer_that_mostly_buys_elsewhere_is_not_washing():
    # the same loop, but three quarters of the buyer's jobs spread over the network
    rng = np.random.default_rng(3)
    rows = _network(rng)
    farm = [5000, 5001, 5002, 5003]
    rows += [(farm[int(rng.integers(0, 4))], "mixed") for _ in range(14)]
    rows += [(int(rng.integers(0, 3000)), "mixed") for _ in range(60)]
    assert wash_jobs(_jobs(rows)).is_empty()
