"""Every line of every file is a contract-valid event, or one of the malformed lines counted in
truth.json; duplicates are exact and counted; time bounds let every simulated epoch close."""

from __future__ import annotations

from collections import Counter

import base58
import orjson

import pytest

from epochal.sim import simulate
from epochal.sim.check import GENESIS_US, occurred_us, read_dir


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    return d, simulate(200, 8, 7, d)


@pytest.fixture(scope="module")
def sim_read(sim_dir):
    d, _ = sim_dir
    events, bad = read_dir(d)
    return events, bad, orjson.loads((d / "truth.json").read_bytes())

ENVELOPE = {"event_id", "event_type", "schema_version", "node_id", "occurred_at"}
PAYLOAD = {
    "node.registered": ({"wallet", "gpu_model", "gpu_count", "region", "ip", "stake_base_units"}, {"operator_id"}),
    "node.stake_changed": ({"stake_base_units"}, set()),
    "ping": ({"checker_id", "reachable", "rtt_ms"}, set()),
    "ping.batch": ({"checker_id", "pings"}, set()),
    "job.completed": (
        {"job_id", "buyer_id", "started_at", "ended_at", "committed_until", "status", "gpu_hours", "fee_base_units"},
        set(),
    ),
    "appeal.upheld": ({"decision_id"}, set()),
    "benchmark": (
        {"gpu_model", "gpu_count", "fp32_tflops", "mem_bandwidth_gbps", "vram_gb", "gpu_fingerprints",
         "download_mbps", "upload_mbps", "ip"},
        set(),
    ),
}
U63 = 2**63 - 1


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_event(ev: dict) -> None:
    assert isinstance(ev, dict)
    assert ENVELOPE <= ev.keys()
    assert isinstance(ev["event_id"], str) and 1 <= len(ev["event_id"]) <= 128
    assert isinstance(ev["node_id"], str) and 1 <= len(ev["node_id"]) <= 128
    assert ev["schema_version"] == 1 and not isinstance(ev["schema_version"], bool)
    assert occurred_us(ev["occurred_at"]) >= GENESIS_US
    required, optional = PAYLOAD[ev["event_type"]]
    assert required <= ev.keys() <= ENVELOPE | required | optional, ev["event_type"]
    t = ev["event_type"]
    if t == "node.registered":
        assert len(base58.b58decode(ev["wallet"])) == 32
        assert isinstance(ev["gpu_model"], str) and ev["gpu_model"]
        assert isinstance(ev["gpu_count"], int) and 1 <= ev["gpu_count"] <= 64
        assert isinstance(ev["stake_base_units"], int) and 0 <= ev["stake_base_units"] <= U63
        assert isinstance(ev["region"], str) and isinstance(ev["ip"], str)
        assert len(ev["ip"].split(".")) == 4 and all(0 <= int(x) <= 255 for x in ev["ip"].split("."))
        if "operator_id" in ev:
            assert isinstance(ev["operator_id"], str)
    elif t == "node.stake_changed":
        assert isinstance(ev["stake_base_units"], int) and 0 <= ev["stake_base_units"] <= U63
    elif t == "ping":
        assert isinstance(ev["checker_id"], str) and isinstance(ev["reachable"], bool)
        assert ev["rtt_ms"] is None or _num(ev["rtt_ms"])
        assert (ev["rtt_ms"] is None) == (not ev["reachable"])
    elif t == "ping.batch":
        assert ev["node_id"] == ev["checker_id"]
        assert 1 <= len(ev["pings"]) <= 10_000
        for p in ev["pings"]:
            assert p.keys() == {"node_id", "occurred_at", "reachable", "rtt_ms"}
            assert isinstance(p["node_id"], str) and 1 <= len(p["node_id"]) <= 128
            assert occurred_us(p["occurred_at"]) >= GENESIS_US
            assert isinstance(p["reachable"], bool)
            assert p["rtt_ms"] is None or _num(p["rtt_ms"])
    elif t == "job.completed":
        st, en, cu = (occurred_us(ev[k]) for k in ("started_at", "ended_at", "committed_until"))
        assert st <= en and cu >= st
        assert occurred_us(ev["occurred_at"]) >= en
        assert ev["status"] in ("succeeded", "failed_node", "failed_user", "cancelled")
        assert _num(ev["gpu_hours"]) and ev["gpu_hours"] >= 0
        assert isinstance(ev["fee_base_units"], int) and 0 <= ev["fee_base_units"] <= U63
    elif t == "appeal.upheld":
        assert isinstance(ev["decision_id"], str) and len(ev["decision_id"]) == 64
    elif t == "benchmark":
        assert isinstance(ev["gpu_count"], int) and 1 <= ev["gpu_count"] <= 64
        for k in ("fp32_tflops", "mem_bandwidth_gbps", "vram_gb", "download_mbps", "upload_mbps"):
            assert _num(ev[k]) and ev[k] > 0
        assert len(ev["gpu_fingerprints"]) == ev["gpu_count"]
        assert all(isinstance(f, str) and f for f in ev["gpu_fingerprints"])


def test_every_line_is_a_contract_event_or_a_counted_malformed_line(sim_read):
    events, bad, truth = sim_read
    p = truth["params"]
    assert sum(bad.values()) == p["malformed_lines"] > 0
    for name, n in bad.items():
        assert n == p["malformed_lines_by_file"].get(name, 0), name
    n = 0
    for evs in events.values():
        for ev in evs:
            check_event(ev)
            n += 1
    assert n > 20_000


def test_event_ids_unique_except_counted_exact_duplicates(sim_dir, sim_read):
    d, _ = sim_dir
    events, _, truth = sim_read
    raw_by_id: dict[str, set[bytes]] = {}
    counts = Counter()
    inner_ids = set()
    for evs in events.values():
        for ev in evs:
            key = orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)
            raw_by_id.setdefault(ev["event_id"], set()).add(key)
            counts[ev["event_id"]] += 1
            if ev["event_type"] == "ping.batch":
                for i in range(len(ev["pings"])):
                    inner_ids.add(f"{ev['event_id']}:{i}")
    # no id carries two different payloads
    assert all(len(v) == 1 for v in raw_by_id.values())
    assert sum(c - 1 for c in counts.values()) == truth["params"]["duplicate_lines"] > 0
    assert not inner_ids & counts.keys()


def test_both_time_forms_and_several_checkers(sim_read):
    events, _, truth = sim_read
    forms = Counter()
    checkers = set()
    batch_sizes = []
    seen = set()
    for name, evs in events.items():
        if not name.startswith("pings-"):
            continue
        for ev in evs:
            if ev["event_id"] in seen:  # an exact duplicate line
                continue
            seen.add(ev["event_id"])
            checkers.add(ev["checker_id"])
            if ev["event_type"] == "ping":
                forms[type(ev["occurred_at"]).__name__] += 1
            else:
                batch_sizes.append(len(ev["pings"]))
                forms.update(type(p["occurred_at"]).__name__ for p in ev["pings"])
    assert forms["int"] == truth["params"]["ms_occurred_at_pings"]
    assert 0.05 < forms["int"] / (forms["int"] + forms["str"]) < 0.3
    assert len(checkers) >= 4 and batch_sizes and min(batch_sizes) >= 1


def test_rfc3339_strings_have_z_and_microseconds(sim_read):
    events, _, _ = sim_read
    for ev in events["nodes.jsonl"] + events["jobs.jsonl"] + events["benchmarks.jsonl"]:
        s = ev["occurred_at"]
        assert isinstance(s, str) and s.endswith("Z") and len(s.split(".")[1]) == 7


def test_window_registration_and_watermark(sim_read):
    events, _, truth = sim_read
    hours = truth["hours"]
    t0 = GENESIS_US + truth["params"]["start_reward_epoch"] * 3_600_000_000
    t_end = t0 + hours * 3_600_000_000
    ping_times = []
    for name, evs in events.items():
        for ev in evs:
            if ev["event_type"] == "ping":
                ping_times.append(occurred_us(ev["occurred_at"]))
            elif ev["event_type"] == "ping.batch":
                ping_times += [occurred_us(p["occurred_at"]) for p in ev["pings"]]
            else:
                assert t0 <= occurred_us(ev["occurred_at"]) < t_end + 3_600_000_000
    assert min(ping_times) >= t0
    # watermark = max ping time - 5 min passes the end of the last simulated hour
    assert max(ping_times) - 300_000_000 >= t_end
    assert max(ping_times) < t_end + 3_600_000_000
    regs = [occurred_us(e["occurred_at"]) for e in events["nodes.jsonl"] if e["event_type"] == "node.registered"]
    assert len(regs) == truth["nodes"]
    assert max(regs) < t0 + 3_600_000_000  # everyone registers in the first hour


def test_benchmarks_at_registration_and_every_12h(tmp_path):
    simulate(25, 26, 3, tmp_path)
    events, _ = read_dir(tmp_path)
    per_node = Counter(e["node_id"] for e in events["benchmarks.jsonl"])
    assert set(per_node.values()) == {3}  # ~0 h, ~12 h, ~24 h
