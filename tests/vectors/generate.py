#!/usr/bin/env python3
"""Write the committed test vectors of ruleset v1 from the reference rule functions.

    .venv/bin/python tests/vectors/generate.py            # write the files that are missing
    .venv/bin/python tests/vectors/generate.py --check    # exit 1 if a file differs from a fresh run

Vectors are regenerated ONLY for a new ruleset version (a change of any parameter or of the
model table is a new version: ruleset-v1.md, opening paragraph): the files of a version are named
`ruleset-<version>.<kind>.json` and, once committed, are never rewritten; they are what any other
implementation of the same version (the vectorised forms, a stream path, another language) is
held to. Writing over an existing file needs `--force` and is only right when the vectors of a
not-yet-released version are being fixed. `tests/unit/test_vectors.py` checks the rule functions
against the committed files, and checks that this generator still reproduces them.

The inputs below are hand-picked boundary cases (the same ones the hand-computed unit tests
reason about) plus a few seeded pseudo-random ones; the expected outputs are whatever the
reference functions return, so the unit tests, not these files, are the independent check.
Integers that may exceed 2^53 (allocation amounts and weights) are written as decimal strings
so that a reader with binary64 numbers loses nothing; floats are written with Python's repr,
which round-trips exactly.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from payouts.allocation import allocate_pool  # noqa: E402
from payouts.emission import compute_emission, compute_pools  # noqa: E402
from payouts.manifest import compute_manifest_sha256  # noqa: E402
from scoring.eligibility import get_ineligible_reason  # noqa: E402
from scoring.events import Accepted, PingBatch, expand_batch, parse_line  # noqa: E402
from scoring.hardware import (  # noqa: E402
    MODEL_TABLE,
    compute_hw_verdict,
    get_model,
    is_benchmark_fresh,
    normalize_model_name,
)
from scoring.reputation import (  # noqa: E402
    compute_availability,
    compute_availability_step,
    compute_jobs_score,
    compute_penalty,
    compute_reputation,
    compute_tenure,
)
from scoring.ruleset import RULESET_V1  # noqa: E402
from scoring.uptime import STREAK_START, StreakState, compute_streak_state, compute_up_slots, compute_uptime_ratio  # noqa: E402

VECTORS_DIR = Path(__file__).resolve().parent
GENESIS_US = RULESET_V1.genesis_us
HOUR_US = 3_600_000_000
ALL_UP = (1 << 60) - 1


def slots_text(bitmap: int) -> str:
    """'1' for up, '0' for not up, slot 0 first."""
    return "".join("1" if (bitmap >> i) & 1 else "0" for i in range(60))


def bitmap_of(text: str) -> int:
    return sum(1 << i for i, c in enumerate(text) if c == "1")


def down(*slots: int) -> int:
    return ALL_UP & ~sum(1 << s for s in set(slots))


# streak and up slots (§2) ----------------------------------------------------------------------


def streak_cases() -> list[dict]:
    rnd = random.Random(20260101)
    sequences: list[tuple[str, StreakState, list[int]]] = [
        ("all up", STREAK_START, [ALL_UP]),
        ("three all-up epochs", STREAK_START, [ALL_UP] * 3),
        ("five all-up epochs reach 300", STREAK_START, [ALL_UP] * 5),
        ("single gap pends", STREAK_START, [down(30)]),
        ("double gap resets", StreakState(500, True), [down(30, 31)]),
        ("triple gap resets", StreakState(500, True), [down(30, 31, 32)]),
        ("ends on one non-up slot: kept", StreakState(60, True), [down(59)]),
        ("ends on two non-up slots: zero", StreakState(60, True), [down(58, 59)]),
        ("pending end then slot 0 not up: reset", STREAK_START, [down(59), down(0)]),
        ("pending end then slot 0 up: kept", STREAK_START, [down(59), ALL_UP]),
        ("first slot of the first epoch not up", STREAK_START, [down(0)]),
        ("first two slots of the first epoch not up", STREAK_START, [down(0, 1)]),
        ("alternating", STREAK_START, [sum(1 << s for s in range(1, 60, 2))]),
        ("idle epoch", StreakState(12_345, True), [0]),
        ("only the last slot up", StreakState(999, True), [1 << 59]),
        ("only the first slot up after a pending end", StreakState(40, False), [1]),
    ]
    for i in range(24):
        state = StreakState(rnd.randrange(0, 2000), rnd.random() < 0.5)
        epochs = []
        for _ in range(rnd.randrange(1, 4)):
            kind = rnd.random()
            if kind < 0.4:
                epochs.append(rnd.getrandbits(60))
            else:
                epochs.append(down(*[rnd.randrange(60) for _ in range(rnd.randrange(0, 5))]))
        sequences.append((f"seeded {i}", state, epochs))
    cases = []
    for name, start, epochs in sequences:
        state = start
        steps = []
        for b in epochs:
            state = compute_streak_state(state, b)
            up = compute_up_slots(b)
            steps.append({
                "slots": slots_text(b),
                "up_slots": up,
                "uptime_ratio": compute_uptime_ratio(up),
                "streak_slots": state.streak_slots,
                "prev_up": state.prev_up,
            })
        cases.append({"name": name, "start": {"streak_slots": start.streak_slots, "prev_up": start.prev_up}, "epochs": steps})
    return cases


# reputation (§4) -------------------------------------------------------------------------------


def availability_cases() -> list[dict]:
    rnd = random.Random(168)
    seqs = [[1.0], [0.75], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0] * 200, [0.0] * 10,
            [1.0] + [0.0] * 168, [k / 60 for k in range(61)]]
    seqs += [[rnd.randrange(61) / 60 for _ in range(rnd.randrange(1, 300))] for _ in range(6)]
    out = []
    for us in seqs:
        num = den = 0.0
        for u in us:
            num, den = compute_availability_step(num, den, u)
        out.append({"uptime_ratios": us, "num": num, "den": den, "A": compute_availability(num, den)})
    return out


def reputation_cases() -> dict:
    rnd = random.Random(1000)
    comps = [
        (1.0, 1.0, 1.0, 1.0, 1.0), (0.0, 0.5, 0.0, 0.0, 1.0), (0.5, 0.75, 0.9, 0.5, 1.0),
        (1.0, 0.5, 1.0, 1.0, 0.25), (0.0, 0.5, 0.0, 0.0, 0.25), (1.0, 1.0, 1.0, 1.0, 0.5),
        (1.0, 1.0, 1.0, 1.0, compute_penalty(11)), (0.3, 0.6, 0.7, 0.2, 1.0),
    ]
    for _ in range(24):
        s, f = rnd.randrange(50), rnd.randrange(50)
        comps.append((rnd.randrange(61) / 60, compute_jobs_score(s, f), rnd.choice([0.0, rnd.uniform(0.6, 1.0), 1.0]),
                      min(1.0, rnd.randrange(2000) / 720), compute_penalty(rnd.choice([0, 0, 0, 1, 2, 5]))))
    end = GENESIS_US + 1000 * HOUR_US
    return {
        "reputation": [dict(zip("AJHTP", c), R=compute_reputation(*c)) for c in comps],
        "jobs": [{"succeeded": s, "failed_node": f, "J": compute_jobs_score(s, f)}
                 for s, f in [(0, 0), (3, 1), (9, 0), (0, 2), (1234, 17)]],
        "tenure": [{"epoch_end_us": end, "registered_at_us": end - d, "T": compute_tenure(end, end - d)}
                   for d in [0, 1, HOUR_US // 2, 72 * HOUR_US, 360 * HOUR_US, 720 * HOUR_US - 1,
                             720 * HOUR_US, 5000 * HOUR_US, 123_456_789_012]],
        "penalty": [{"slashes": n, "P": compute_penalty(n)} for n in [0, 1, 2, 3, 10, 40]],
    }


# hardware (§3, Appendix A) ---------------------------------------------------------------------


def hardware_cases() -> dict:
    verdicts = []
    t4 = [
        (8.141, 320.0, 16.0, 1, 1), (8.141, 352.0, 16.0, 1, 1), (8.141, 352.001, 16.0, 1, 1),
        (8.9551, 320.0, 16.0, 1, 1), (8.9552, 320.0, 16.0, 1, 1), (8.141, 192.0, 16.0, 1, 1),
        (8.141, 191.999, 16.0, 1, 1), (4.8846, 320.0, 16.0, 1, 1), (4.8845, 320.0, 16.0, 1, 1),
        (8.141, 320.0, 14.4, 1, 1), (8.141, 320.0, 14.399, 1, 1), (8.141, 320.0, 16.0, 2, 1),
        (8.141, 320.0, 16.0, 7, 8), (8.141, 400.0, 16.0, 2, 1), (7.3269, 256.0, 16.0, 1, 1),
        (8.9551, 256.0, 16.0, 1, 1),
    ]
    for fp32, bw, vram, found, claimed in t4:
        verdicts.append(("Tesla T4", claimed, fp32, bw, vram, found))
    verdicts += [
        ("GPU-series-1", 1, 8.141, 320.0, 16.0, 1), ("G2", 1, 1.0, 1.0, 1.0, 1), (None, None, 8.141, 320.0, 16.0, 1),
        ("NVIDIA GeForce RTX 4090", 1, 82.58, 1010.0, 24.0, 1), ("Tesla T4", 1, 82.58, 1010.0, 24.0, 1),
    ]
    for m in MODEL_TABLE:
        verdicts.append((m.aliases[-1], 4, m.spec_fp32_tflops * 0.95, m.spec_bw_gbps * 0.9, m.spec_memory_gb, 4))
    names = ["NVIDIA GeForce RTX 4090", "A100-SXM4-80GB", "Tesla V100-SXM2-32GB", "GPU-series-1",
             "A100 80 GB", "nvidia geforce rtx 4090", "NVIDIA_A100_SXM4_80GB", "  Tesla   V100   SXM2  32 GB ",
             "h100-pcie", "G2", "4090", "GeForce RTX 3060 12 GB"]
    names += [a for m in MODEL_TABLE for a in m.aliases]
    end = GENESIS_US + 48 * HOUR_US
    return {
        "verdicts": [
            {"claimed_model": c, "claimed_gpu_count": cc, "fp32_tflops": f, "mem_bandwidth_gbps": b,
             "vram_gb": v, "found_gpu_count": n, "verdict": r[0], "hw_ratio": r[1]}
            for c, cc, f, b, v, n in verdicts
            for r in [compute_hw_verdict(c, cc, f, b, v, n)]
        ],
        "normalisation": [
            {"claimed": s, "normalised": normalize_model_name(s),
             "model_key": (get_model(s).model_key if get_model(s) else None)}
            for s in names
        ],
        "freshness": [
            {"benchmark_at_us": end - d, "epoch_end_us": end, "fresh": is_benchmark_fresh(end - d, end)}
            for d in [0, HOUR_US, 24 * HOUR_US - 1, 24 * HOUR_US, 24 * HOUR_US + 1, 48 * HOUR_US]
        ],
    }


# eligibility (§5) ------------------------------------------------------------------------------


def eligibility_cases() -> list[dict]:
    start = GENESIS_US + 10 * HOUR_US
    reg = start - 7 * HOUR_US
    rows = [
        (reg, False, True, 300, 60), (None, False, True, 300, 60), (start, False, True, 300, 60),
        (start - 1, False, True, 300, 60), (start + 1, False, True, 300, 60), (reg, True, True, 300, 60),
        (reg, False, False, 300, 60), (reg, False, True, 299, 60), (reg, False, True, 300, 0),
        (reg, False, True, 300, 1), (None, True, False, 0, 0), (reg, True, False, 0, 0),
        (reg, False, False, 0, 0), (reg, False, True, 0, 0),
    ]
    return [
        {"registered_at_us": r, "epoch_start_us": start, "banned": b, "hardware_verified": v,
         "streak_slots": s, "up_slots": u, "reason": get_ineligible_reason(r, start, b, v, s, u)}
        for r, b, v, s, u in rows
    ]


# emission and pools (§6) -----------------------------------------------------------------------


def emission_cases() -> list[dict]:
    out = []
    for e in [0, 1, 2, 24, 168, 720, 8760, 17520, 87600, 1_000_000]:
        em = compute_emission(e)
        ent, com = compute_pools(em)
        out.append({"reward_epoch": e, "emission_base_units": em, "enterprise_pool": ent, "community_pool": com})
    return out


# allocation (§7) -------------------------------------------------------------------------------


def allocation_cases() -> list[dict]:
    rnd = random.Random(7)
    pools: list[tuple[int, dict[str, int]]] = [
        (101, {"d": 3, "c": 2, "b": 1, "a": 1}),
        (10, {"c": 1, "b": 1, "a": 1}),
        (11, {"c": 1, "a": 1, "b": 1}),
        (1, {"a": 1, "Z": 1}),
        (100, {"x": 1, "y": 3}),
        (228_310_503, {"a": 0, "b": 0}),
        (4_337_899_542, {}),
        (7, {"a": 0, "b": 2, "c": 1}),
        (0, {"a": 5}),
        (2**40 + 1, {"b": 2**30, "a": 2**30}),
        (4_337_899_542, {"h200": 60 * 12000 * 64 * 1000, "a100": 60 * 6000 * 1 * 900}),
    ]
    for _ in range(8):
        n = rnd.randrange(1, 40)
        pools.append((rnd.choice([rnd.randrange(1000), compute_pools(compute_emission(rnd.randrange(9000)))[0]]),
                      {f"node-{rnd.getrandbits(32):08x}": rnd.choice([0, rnd.randrange(1, 4), rnd.randrange(10**11)])
                       for _ in range(n)}))
    out = []
    for pool, ws in pools:
        res = allocate_pool(pool, ws)
        out.append({
            "pool_base_units": str(pool),
            "weights": [[n, str(w)] for n, w in ws.items()],
            "shares": [[n, str(res.shares[n])] for n in ws],
            "unallocated_base_units": str(res.unallocated_base_units),
        })
    return out


# manifest (§9) ---------------------------------------------------------------------------------


def manifest_cases() -> list[dict]:
    wa, wb = "1thX6LZfHDZZKUs92febYZhYRcXddmzfzF2NvTkPNE", "11111111111111111111111111111111"
    sets = [
        [],
        [(7, "node-b", "community", 228_310_503, wb), (7, "node-a", "enterprise", 4_337_899_542, wa)],
        [(3, "a1", "community", 5, wb), (3, "Z9", "community", 6, wb)],
        [(1, "nœud", "community", 2, wb)],
        [(12, "n", "enterprise", 2**70 + 3, wb)],
    ]
    return [
        {"rows": [[e, n, p, str(a), w] for e, n, p, a, w in rows], "manifest_sha256": compute_manifest_sha256(rows)}
        for rows in sets
    ]


# events (contract, §10) ------------------------------------------------------------------------


def event_cases() -> dict:
    ping = {"event_id": "p1", "event_type": "ping", "schema_version": 1, "node_id": "n1",
            "occurred_at": "2026-01-01T00:00:00Z", "checker_id": "c1", "reachable": True, "rtt_ms": 12.5}
    reg = {"event_id": "r1", "event_type": "node.registered", "schema_version": 1, "node_id": "n1",
           "occurred_at": "2026-01-01T00:00:00Z", "wallet": "1thX6LZfHDZZKUs92febYZhYRcXddmzfzF2NvTkPNE",
           "gpu_model": "NVIDIA H100", "gpu_count": 8, "region": "eu-west", "ip": "10.0.0.1",
           "stake_base_units": 1_000_000}
    batch = {"event_id": "batch-7", "event_type": "ping.batch", "schema_version": 1, "node_id": "checker-1",
             "occurred_at": "2026-01-01T00:01:00Z", "checker_id": "checker-1",
             "pings": [{"node_id": "n1", "occurred_at": "2026-01-01T00:00:10Z", "reachable": True, "rtt_ms": 3},
                       {"node_id": "n2", "occurred_at": 1767225620000, "reachable": False, "rtt_ms": None}]}

    job = {"event_id": "j1", "event_type": "job.completed", "schema_version": 1, "node_id": "n1",
           "occurred_at": "2026-01-01T02:00:00Z", "job_id": "job-1", "buyer_id": "buyer-1",
           "started_at": "2026-01-01T00:10:00Z", "ended_at": "2026-01-01T01:40:00Z",
           "committed_until": "2026-01-01T02:00:00Z", "status": "failed_node", "gpu_hours": 1.5,
           "fee_base_units": 1000}

    def j(base, **kw):
        return json.dumps({**base, **kw})

    lines = [
        j(ping), j(ping, occurred_at=1767225600000), j(ping, rtt_ms=5), j(ping, rtt_ms=5.0),
        json.dumps(dict(reversed(list(ping.items()))), indent=2),
        j(ping, occurred_at="2026-01-01T00:00:00.1234569Z"), j(ping, occurred_at="2026-01-01T05:30:00+05:30"),
        j(ping, occurred_at="2025-12-31T23:59:59.999999Z"), j(ping, occurred_at=1767225599999),
        j(ping, occurred_at="2026-02-29T00:00:00Z"), j(ping, occurred_at="2026-01-01T24:00:00Z"),
        j(ping, occurred_at="2026-01-01T00:00:00"), j(ping, occurred_at=True),
        "{not json", "[1, 2]", j(ping, event_type="node.deleted"), j(ping, event_type=5),
        j(ping, colour="blue"), j(ping, schema_version=2), j(ping, reachable="true"),
        j(reg), j(reg, gpu_count=0), j(reg, gpu_count=65), j(reg, gpu_count=64), j(reg, gpu_count=True),
        j(reg, stake_base_units=2**63), j(reg, stake_base_units=2**63 - 1), j(reg, wallet="0" * 32),
        j(reg, wallet="tVojvhToWjQ8Xvo4UPx2Xz9eRy7auyYMmZBjc2XfN"),
        j(batch), j(batch, pings=[]),
        j(batch, pings=[batch["pings"][0], {**batch["pings"][1], "reachable": "no"}]),
        j(batch, pings=[batch["pings"][0], {**batch["pings"][1], "occurred_at": "2025-12-31T23:59:59Z"}]),
        # §10 as amended 2026-12-07: a job's window starts at genesis at the earliest and never ends
        # before it starts (an empty window, ended_at = started_at, is a window)
        j(job), j(job, started_at="1970-01-01T00:00:00Z"), j(job, started_at="2025-12-31T23:59:59.999999Z"),
        j(job, ended_at="2026-01-01T00:09:59.999999Z"), j(job, ended_at="2026-01-01T00:10:00Z"),
        # a lone surrogate escape is no character: not JSON this engine reads
        '{"event_id": "\\ud800", "event_type": "nope"}', '{"event_id": "\\ud83d\\ude00", "event_type": "nope"}',
    ]
    cases = []
    for text in lines:
        out = parse_line(text.encode())
        if isinstance(out, Accepted):
            case = {"line": text, "outcome": "accepted", "canonical": out.canonical.decode(),
                    "occurred_at_us": out.event.occurred_at_us}
            if isinstance(out.event, PingBatch):
                case["inner_pings"] = [[p.event_id, p.node_id, p.occurred_at_us, p.reachable]
                                       for p in expand_batch(out.event)]
        else:
            case = {"line": text, "outcome": out.reason.value}
        cases.append(case)
    return {"lines": cases}


KINDS = {
    "streak": streak_cases,
    "availability": availability_cases,
    "reputation": reputation_cases,
    "hardware": hardware_cases,
    "eligibility": eligibility_cases,
    "emission": emission_cases,
    "allocation": allocation_cases,
    "manifest": manifest_cases,
    "events": event_cases,
}


def file_name(kind: str) -> str:
    return f"ruleset-{RULESET_V1.ruleset_version}.{kind}.json"


def render(kind: str) -> str:
    doc = {
        "kind": kind,
        "ruleset_version": RULESET_V1.ruleset_version,
        "params_sha256": RULESET_V1.params_sha256,
        "generator": "tests/vectors/generate.py",
        "cases": KINDS[kind](),
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    parser.add_argument("--force", action="store_true", help="overwrite existing files of this version")
    args = parser.parse_args(argv)
    status = 0
    for kind in KINDS:
        path = VECTORS_DIR / file_name(kind)
        text = render(kind)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"differs: {path.name}")
                status = 1
        elif path.exists() and not args.force:
            if path.read_text(encoding="utf-8") != text:
                print(f"kept (differs; vectors of a released version are never rewritten): {path.name}")
                status = 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")
    return status


if __name__ == "__main__":
    sys.exit(main())
