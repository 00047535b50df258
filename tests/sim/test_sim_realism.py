"""The real traces are really used: heartbeat sessions and gaps follow the duty-cycle trace,
hardware follows the two inventories plus a consumer share, jobs follow the pod list.

The references are read from the source the simulator reads (the packaged profile unless
$EPOCHAL_DATA_DIR names the full traces); test_sim_profile.py holds the profile to the traces."""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
import polars as pl
import pytest

from epochal.sim import load_traces, simulate
from epochal.sim.check import GENESIS_US, ks_distance, occurred_us, read_dir, run_lengths, trace_reference_runs, up_matrix

TAIL = 7


def honest_runs(d, nodes, hours, min_share=0.7):
    events, _ = read_dir(d)
    truth = orjson.loads((d / "truth.json").read_bytes())
    ids = [e["node_id"] for e in events["nodes.jsonl"] if e["event_type"] == "node.registered"]
    planted = {n for p in truth["plants"] if p["kind"] != "fleet" for n in p["node_ids"]}
    honest = sorted(set(ids) - planted)
    assert len(honest) > min_share * nodes
    up = up_matrix(events, honest, GENESIS_US, hours * 60 + TAIL)
    return run_lengths(up), events


@pytest.mark.parametrize("nodes,hours,seed", [(400, 6, 1), (300, 8, 2)])
def test_sessions_and_gaps_follow_the_trace(tmp_path, nodes, hours, seed):
    simulate(nodes, hours, seed, tmp_path)
    (ups, gaps), _ = honest_runs(tmp_path, nodes, hours)
    ref_ups, ref_gaps = trace_reference_runs(hours * 60 + TAIL)
    assert ups.size > 500 and gaps.size > 400
    d_up, d_gap = ks_distance(ups, ref_ups), ks_distance(gaps, ref_gaps)
    print(f"KS up-sessions {d_up:.4f}, gaps {d_gap:.4f}")
    assert d_up <= 0.1
    assert d_gap <= 0.1
    # and it is the trace, not any renewal process: a geometric model with the same means is far off
    rng = np.random.default_rng(0)
    fake = rng.geometric(1 / ref_gaps.mean(), ref_gaps.size)
    assert ks_distance(fake, ref_gaps) > 0.1


def test_reference_matches_raw_csv(traces_dir):
    """The trace reader agrees with the raw CSV: 143 containers, ~57 s sampling, real gaps."""
    import io
    import tarfile

    with tarfile.open(traces_dir / "v2026-GenAI_pod_gpu_duty_cycle_anon.tar.gz") as tf:
        m = [x for x in tf.getmembers() if x.isfile()][0]
        df = pl.read_csv(io.BytesIO(tf.extractfile(m).read()))
    assert df["container_ip"].n_unique() == 143
    ups, gaps = trace_reference_runs(10_000)  # whole trace
    assert gaps.size > 1000 and np.median(gaps) >= 1 and gaps.max() > 100


def test_longer_than_trace_is_concatenated(tmp_path):
    hours = 30  # the trace covers 22.8 h
    simulate(60, hours, 4, tmp_path)
    (ups, gaps), events = honest_runs(tmp_path, 60, hours, min_share=0.3)
    ids = sorted({e["node_id"] for e in events["nodes.jsonl"]})
    up = up_matrix(events, ids, GENESIS_US, hours * 60)
    assert up[:, -120:].any(axis=1).mean() > 0.5  # nodes keep beating after 23 h
    assert ups.size > 0


def test_hardware_from_real_inventories(tmp_path):
    simulate(600, 1, 9, tmp_path)
    events, _ = read_dir(tmp_path)
    claims = Counter(e["gpu_model"] for e in events["nodes.jsonl"] if e["event_type"] == "node.registered")
    counts = Counter(e["gpu_count"] for e in events["nodes.jsonl"] if e["event_type"] == "node.registered")
    traces = load_traces()
    inv = {m for m, _ in traces.inventory_spot} | {m for m, _ in traces.inventory_openb}
    from_inventory = sum(v for k, v in claims.items() if k in inv)
    consumer = sum(v for k, v in claims.items() if "RTX" in k.upper() or "4090" in k or "A6000" in k)
    assert from_inventory > 0.4 * 600 and consumer > 0.15 * 600
    for anon in ("G2", "GPU-series-1"):
        assert claims[anon] > 0
    assert set(counts) <= {1, 2, 4, 8} and counts[8] > 0 and counts[1] > 0


def test_jobs_follow_the_pod_list(tmp_path):
    simulate(300, 12, 5, tmp_path)
    events, _ = read_dir(tmp_path)
    jobs = [e for e in events["jobs.jsonl"] if e["event_type"] == "job.completed"]
    assert len(jobs) > 200
    status = Counter(j["status"] for j in jobs)
    assert status["succeeded"] > status["failed_user"] > status["cancelled"] > 0
    durs = np.array([(occurred_us(j["ended_at"]) - occurred_us(j["started_at"])) / 1e6 for j in jobs
                     if j["status"] == "succeeded"])
    pods = load_traces().pods  # GPU pods only; -1 where the trace has no time
    ran = np.isin(pods["phase"], ["Running", "Succeeded"]) & (pods["scheduled"] >= 0) & (pods["deletion"] >= 0)
    ref = (pods["deletion"][ran] - pods["scheduled"][ran]).astype(float)
    ref = ref[ref <= 12 * 3600]  # only what can complete inside the window
    # short jobs are more likely to fit in the window, so compare loosely
    assert ks_distance(np.floor(durs), ref) < 0.2
    assert all(j["occurred_at"] >= j["ended_at"] for j in jobs if isinstance(j["occurred_at"], str))
    usually = sum(occurred_us(j["committed_until"]) >= occurred_us(j["ended_at"]) for j in jobs) / len(jobs)
    assert usually > 0.8
