"""truth.json agrees with the events: planted nodes exist, spoofers' figures give the planted
verdict under ruleset §3 / Appendix A, farm signals are visible, outages and job failures show
in the pings, and honest fleets / outages do not share a farm's tell-tale signals."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import orjson
import pytest

from epochal.sim import simulate
from epochal.sim.check import GENESIS_US, occurred_us, read_dir, streaks, up_matrix
from epochal.sim.hardware import lookup, normalise

# Appendix A figures needed here, copied from the ruleset text (spec_fp32, spec_bw, spec_memory).
APPENDIX_A = {
    "H100": (66.91, 3360.0, 80.0),
    "H800": (59.3, 3360.0, 80.0),
    "A100-80G": (19.49, 2040.0, 80.0),
    "A100-40G": (19.49, 1560.0, 40.0),
    "A800": (19.49, 2040.0, 80.0),
    "A10": (31.24, 600.2, 24.0),
    "V100-32G": (15.67, 898.0, 32.0),
    "V100-16G": (16.35, 1130.0, 16.0),
    "T4": (8.141, 320.0, 16.0),
    "P100": (9.526, 732.2, 16.0),
    "RTX-A6000": (38.71, 768.0, 48.0),
    "RTX-4090": (82.58, 1010.0, 24.0),
    "RTX-4080": (48.74, 716.8, 16.0),
    "RTX-3090": (35.58, 936.2, 24.0),
    "RTX-3080": (29.77, 760.3, 10.0),
    "RTX-4070": (29.15, 504.2, 12.0),
    "RTX-3060": (12.74, 360.0, 12.0),
}


def rule_verdict(reg: dict, bm: dict) -> str:
    spec = lookup(reg["gpu_model"])
    if spec is None:
        return "unknown_model"
    fp, bw, mem = APPENDIX_A[spec.key]
    assert (spec.fp32_tflops, spec.bw_gbps, spec.mem_gb) == (fp, bw, mem)
    r_f, r_b = bm["fp32_tflops"] / fp, bm["mem_bandwidth_gbps"] / bw
    if r_f > 1.10 or r_b > 1.10:
        return "impossible"
    if r_f < 0.60 or r_b < 0.60 or bm["vram_gb"] < 0.9 * mem or bm["gpu_count"] != reg["gpu_count"]:
        return "mismatch"
    return "verified"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    simulate(300, 8, 21, d)
    events, bad = read_dir(d)
    truth = orjson.loads((d / "truth.json").read_bytes())
    regs = {e["node_id"]: e for e in events["nodes.jsonl"] if e["event_type"] == "node.registered"}
    benches = defaultdict(list)
    for e in events["benchmarks.jsonl"]:
        benches[e["node_id"]].append(e)
    return events, truth, regs, benches


def plants(truth, kind):
    return [p for p in truth["plants"] if p["kind"] == kind]


def test_appendix_a_normalisation_examples():
    assert normalise("NVIDIA GeForce RTX 4090") == "RTX 4090" and lookup("NVIDIA GeForce RTX 4090").key == "RTX-4090"
    assert normalise("A100-SXM4-80GB") == "A100 SXM4 80GB" and lookup("A100-SXM4-80GB").key == "A100-80G"
    assert normalise("Tesla V100-SXM2-32GB") == "V100 SXM2 32GB" and lookup("Tesla V100-SXM2-32GB").key == "V100-32G"
    assert normalise("GPU-series-1") == "GPU SERIES 1" and lookup("GPU-series-1") is None
    assert lookup("G2") is None and lookup("G3") is None and lookup("V100M16").key == "V100-16G"
    assert lookup("A100 80 GB").key == "A100-80G"


def test_truth_shape_and_planted_nodes_registered(sim):
    events, truth, regs, _ = sim
    assert truth["seed"] == 21 and truth["nodes"] == 300 and truth["hours"] == 8
    kinds = {p["kind"] for p in truth["plants"]}
    assert {"farm", "spoofer", "outage", "fleet"} <= kinds
    for p in truth["plants"]:
        assert p["node_ids"] and isinstance(p["params"], dict)
        for nid in p["node_ids"]:
            assert nid in regs, (p["kind"], nid)
    assert len(regs) == 300


def test_spoofer_benchmarks_give_the_planted_verdict(sim):
    _, truth, regs, benches = sim
    sp = plants(truth, "spoofer")
    assert {p["params"]["expected_verdict"] for p in sp} == {"impossible", "mismatch", "verified"}
    for p in sp:
        (nid,) = p["node_ids"]
        assert benches[nid]
        for bm in benches[nid]:
            assert rule_verdict(regs[nid], bm) == p["params"]["expected_verdict"], p


def test_honest_benchmarks_verify_or_are_unknown(sim):
    _, truth, regs, benches = sim
    planted = {n for p in truth["plants"] if p["kind"] in ("farm", "spoofer") for n in p["node_ids"]}
    verdicts = defaultdict(int)
    for nid, reg in regs.items():
        if nid in planted:
            continue
        for bm in benches[nid]:
            v = rule_verdict(reg, bm)
            verdicts[v] += 1
            assert v in ("verified", "unknown_model"), (reg, bm)
    assert verdicts["verified"] > 0.6 * sum(verdicts.values())
    assert verdicts["unknown_model"] > 0  # anonymised series of the real inventories stay unknown


def test_fingerprints_unique_except_planted_reuse(sim):
    events, truth, regs, benches = sim
    # bind each fingerprint to its first reporter (ruleset §10), collect later reporters
    owners: dict[str, str] = {}
    fraud = set()
    for bm in sorted(events["benchmarks.jsonl"], key=lambda e: (occurred_us(e["occurred_at"]), e["event_id"])):
        for f in bm["gpu_fingerprints"]:
            if owners.setdefault(f, bm["node_id"]) != bm["node_id"]:
                fraud.add(bm["node_id"])
    assert sorted(fraud) == truth["params"]["expected_fingerprint_fraud_node_ids"]
    reuse_farms = [p for p in plants(truth, "farm") if "fingerprint_reuse" in p["params"]["signals"]]
    assert reuse_farms
    allowed = set()
    for p in reuse_farms:
        members = set(p["node_ids"])
        shared = defaultdict(set)
        for nid in members:
            for bm in benches[nid]:
                for f in bm["gpu_fingerprints"]:
                    shared[f].add(nid)
        assert any(len(v) >= 2 for v in shared.values()), p["params"]["farm_id"]  # visible in the events
        assert set(p["params"]["expected_fingerprint_fraud_node_ids"]) <= members
        allowed |= set(p["params"]["expected_fingerprint_fraud_node_ids"])
    thieves = [p for p in plants(truth, "spoofer") if p["params"]["mode"] == "fingerprint_reuse"]
    assert thieves
    for p in thieves:
        (nid,) = p["node_ids"]
        victim = p["params"]["victim_node_id"]
        assert set(benches[nid][0]["gpu_fingerprints"]) <= set(benches[victim][0]["gpu_fingerprints"])
        assert occurred_us(benches[victim][0]["occurred_at"]) < occurred_us(benches[nid][0]["occurred_at"])
        allowed.add(nid)
    assert fraud == allowed


def test_farm_signals_visible(sim):
    events, truth, regs, benches = sim
    farms = plants(truth, "farm")
    assert any(len(p["params"]["signals"]) <= 2 for p in farms) or len(farms) < 3
    assert any(len(p["params"]["signals"]) == 6 for p in farms)
    t0 = GENESIS_US
    up = None
    for p in farms:
        ids = p["node_ids"]
        sig = p["params"]["signals"]
        assert 3 <= len(ids) <= 200 and p["params"]["size"] == len(ids)
        if "shared_ip" in sig:
            prefixes = {int(regs[n]["ip"].split(".")[2]) for n in ids}
            firsts = {".".join(regs[n]["ip"].split(".")[:2]) for n in ids}
            assert len(firsts) == 1 and max(prefixes) - min(prefixes) <= 3
        if "wallet_reuse" in sig:
            assert len({regs[n]["wallet"] for n in ids}) < len(ids)
        else:
            assert len({regs[n]["wallet"] for n in ids}) == len(ids)
        if "registration_burst" in sig:
            ts = sorted(occurred_us(regs[n]["occurred_at"]) for n in ids)
            assert ts[-1] - ts[0] <= len(ids) * 6_000_000
        if "benchmark_clone" in sig:
            fps = [benches[n][0]["fp32_tflops"] for n in ids]
            assert (max(fps) - min(fps)) / min(fps) < 0.003
        if "lockstep_uptime" in sig:
            if up is None:
                up = up_matrix(events, sorted(regs), t0, truth["hours"] * 60)
                order = {n: i for i, n in enumerate(sorted(regs))}
            rows = up[[order[n] for n in ids]]
            assert (rows == rows[0]).all()


def test_fleets_are_open_and_independent(sim):
    _, truth, regs, benches = sim
    for p in plants(truth, "fleet"):
        ids = p["node_ids"]
        assert len({regs[n]["operator_id"] for n in ids}) == 1 == len(
            {regs[n]["ip"].rsplit(".", 1)[0] for n in ids}
        )
        assert regs[ids[0]]["operator_id"] == p["params"]["operator_id"]
        fps = [f for n in ids for f in benches[n][0]["gpu_fingerprints"]]
        assert len(fps) == len(set(fps))
        assert len({benches[n][0]["fp32_tflops"] for n in ids}) > 1


def test_outages_and_job_failures_show_in_pings(sim):
    events, truth, regs, _ = sim
    t0 = GENESIS_US
    ids = sorted(regs)
    order = {n: i for i, n in enumerate(ids)}
    up = up_matrix(events, ids, t0, truth["hours"] * 60 + 7)
    regional = [p for p in plants(truth, "outage") if p["params"]["scope"] == "region"]
    assert regional
    for p in regional:
        s0 = (occurred_us(p["params"]["start"]) - t0) // 60_000_000
        rows = up[[order[n] for n in p["node_ids"]], s0 : s0 + p["params"]["minutes"]]
        assert not rows.any()
        assert len(p["node_ids"]) >= 3
        assert {regs[n]["region"] for n in p["node_ids"]} == {p["params"]["region"]}
        # not a farm: many subnets and wallets, no shared fingerprints
        assert len({regs[n]["wallet"] for n in p["node_ids"]}) >= 0.8 * len(p["node_ids"])
    jobs = {e["job_id"]: e for e in events["jobs.jsonl"] if e["event_type"] == "job.completed"}
    job_plants = [p for p in plants(truth, "outage") if p["params"]["scope"] == "job"]
    assert {p["params"]["mode"] for p in job_plants} == {"downtime", "failed_node"}
    expected = set(truth["params"]["expected_downtime_job_ids"])
    for p in job_plants:
        job = jobs[p["params"]["job_id"]]
        assert job["node_id"] == p["node_ids"][0]
        assert p["params"]["job_id"] in expected
        if p["params"]["mode"] == "failed_node":
            assert job["status"] == "failed_node"
    # recompute §8 downtime_during_job from the events
    recomputed = set()
    for jid, job in jobs.items():
        st = occurred_us(job["started_at"])
        lim = min(occurred_us(job["ended_at"]), occurred_us(job["committed_until"]))
        first = -(-(st - t0) // 60_000_000)
        last = (lim - t0) // 60_000_000
        row = up[order[job["node_id"]], first:last] if last > first else np.zeros(0, bool)
        run = best = 0
        for u in row:
            run = 0 if u else run + 1
            best = max(best, run)
        if job["status"] == "failed_node" or best >= 5:
            recomputed.add(jid)
    assert recomputed == expected


def test_appeal_targets_a_planted_failed_node_job(sim):
    import hashlib

    events, truth, _, _ = sim
    appeals = [e for e in events["jobs.jsonl"] if e["event_type"] == "appeal.upheld"]
    ap = plants(truth, "appeal")
    assert len(appeals) == len(ap) == 1
    jid = ap[0]["params"]["job_id"]
    assert appeals[0]["decision_id"] == hashlib.sha256(f"downtime_during_job|{jid}".encode()).hexdigest()


def test_most_honest_nodes_can_become_eligible(sim):
    events, truth, regs, _ = sim
    planted = {n for p in truth["plants"] if p["kind"] != "fleet" for n in p["node_ids"]}
    honest = sorted(set(regs) - planted)
    up = up_matrix(events, honest, GENESIS_US, truth["hours"] * 60)
    st = streaks(up)
    assert (st >= 300).mean() > 0.5


def test_spread_farms_and_shared_subnets_are_planted(sim):
    """Farms built other ways (several /24s, partial and jittered signals) and honest shared
    subnets: planted, visible in the events, and the subnets share nothing but the place."""
    events, truth, regs, benches = sim
    spread = [p for p in plants(truth, "farm") if p["params"]["hiding"] == "spread"]
    assert spread and all(p["params"]["design"] for p in spread)
    for p in spread:
        ids = p["node_ids"]
        assert len({regs[n]["ip"] for n in ids}) == len(ids)  # no shared IP
        if "wallet_reuse" not in p["params"]["signals"]:
            assert len({regs[n]["wallet"] for n in ids}) == len(ids)
        if "jittered_lockstep" in p["params"]["signals"]:
            order = {n: i for i, n in enumerate(sorted(regs))}
            up = up_matrix(events, sorted(regs), GENESIS_US, truth["hours"] * 60)[[order[n] for n in ids]]
            assert not (up == up[0]).all()  # jittered: not identical rows
    subnets = plants(truth, "subnet")
    assert subnets
    farm_nodes = {n for p in plants(truth, "farm") for n in p["node_ids"]}
    for p in subnets:
        ids = p["node_ids"]
        assert len(ids) >= 6 and not set(ids) & farm_nodes
        assert len({regs[n]["ip"].rsplit(".", 1)[0] for n in ids}) <= 2
        assert len({regs[n]["wallet"] for n in ids}) == len(ids)
        fps = [f for n in ids for f in benches[n][0]["gpu_fingerprints"]]
        assert len(fps) == len(set(fps))
