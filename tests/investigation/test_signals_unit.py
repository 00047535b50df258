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


def _features_for_nodes(n: int, slots: int) -> SimpleNamespace:
    from analytics.signals import _LOCK_CACHE

    _LOCK_CACHE.clear()
    return SimpleNamespace(n=n, epochs=np.arange(0, slots // 60, dtype=np.int64),
                           up_words=np.zeros((n, slots // 60), dtype=np.uint64))


def test_fresh_wallet_is_a_move_to_a_wallet_never_seen():
    from analytics.signals import fresh_wallet

    f = _features_for_nodes(4, 60)
    f.wallets = pl.DataFrame({
        "idx": [0, 1, 2, 0, 1, 3], "event_id": ["r0", "r1", "r2", "r0b", "r1b", "r3"],
        "occurred_at_us": [1, 2, 3, 4, 5, 6], "wallet": ["A", "B", "C", "D", "C", "E"]})
    out = fresh_wallet(f)
    # node 0 moved to D (never seen): fresh; node 1 moved to C (node 2's): shared, not fresh;
    # nodes 2 and 3 registered once
    assert out["idx"].to_list() == [0] and out["evidence"].to_list() == [["r0b"]]


def test_job_outcomes_ghost_jobs_and_failures():
    from analytics.signals import job_outcomes
    from scoring.ruleset import RULESET_V1
    from scoring.timing import get_epoch_start_us

    t0 = get_epoch_start_us(0, RULESET_V1)
    m = 60_000_000
    f = _features_for_nodes(3, 120)
    f.up_words[:, :] = np.uint64((1 << 60) - 1)  # everyone up all the time ...
    f.up_words[1, 0] = np.uint64(0)  # ... but node 1 down through the first hour
    rows = [(0, "succeeded", 5, 30), (1, "succeeded", 5, 30), (1, "succeeded", 70, 80)]
    rows += [(2, "failed_node", 65, 70)] * 6 + [(k % 2, "succeeded", 90, 95) for k in range(60)]
    f.jobs = pl.DataFrame({"idx": [r[0] for r in rows], "event_id": [f"jc-{k:03d}" for k in range(len(rows))],
                           "status": [r[1] for r in rows],
                           "started_us": [t0 + r[2] * m + 1 for r in rows], "ended_us": [t0 + r[3] * m for r in rows]})
    out = {r["idx"]: r for r in job_outcomes(f).iter_rows(named=True)}
    assert out[1]["evidence"] == ["jc-001"] and out[1]["value"] == 11  # one ghost job
    assert out[2]["value"] >= 4 and len(out[2]["evidence"]) == 6  # six failures in six where the network fails 6 in 69
    assert 0 not in out
