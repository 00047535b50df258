"""The traffic simulator: a network of GPU nodes, its checkers, buyers, farms and spoofers.

Everything is drawn from NumPy generators seeded from `seed` (one independent stream per
component), iterates over lists and arrays only (never over sets or dict order that depends on
hashing), and reads no clock: the same arguments give byte-identical files.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import base58
import numpy as np
import orjson
import polars as pl

from . import hardware as hw
from .data import load_traces
from .pings import PingCounts, PingNoise, PingSettings, add_noise, chunk_lines, write_lines
from .timefmt import GENESIS_US, HOUR_US, SLOT_US, iso_us

TAIL_SLOTS = 7  # pings of the first minutes after the last hour, so the watermark passes its end
HOURS_PER_FILE = 4
CHUNK_SLOTS = 30  # pings are built and written half an hour at a time (bounded memory)
MAX_NODES = 1_000_000
MAX_HOURS = 24 * 366

REGIONS: tuple[str, ...] = ("us-east", "us-west", "eu-central", "eu-west", "ap-southeast", "ap-northeast", "sa-east")
REGION_WEIGHTS = np.array([0.24, 0.16, 0.18, 0.14, 0.12, 0.10, 0.06])
REGION_OCTETS: tuple[tuple[int, ...], ...] = (
    (3, 18, 34, 44, 52, 54, 98, 107),
    (13, 35, 50, 64, 104, 184),
    (3, 18, 35, 52, 85, 91, 185),
    (5, 34, 51, 62, 79, 176, 212),
    (13, 43, 47, 103, 119, 175),
    (27, 43, 57, 106, 133, 153),
    (15, 18, 54, 177, 186, 200),
)
CHECKERS: tuple[str, ...] = (
    "checker-use1",
    "checker-usw2",
    "checker-euc1",
    "checker-euw1",
    "checker-apse1",
    "checker-apne1",
)
CHECKER_BATCHING: tuple[bool, ...] = (True, False, True, False, True, False)
# Typical round trip (ms) from a node in each region (rows, REGIONS order) to each checker
# (columns, CHECKERS order); each node sees its own factor around it, nodes of one data centre
# nearly the same one, and every node behind one machine exactly the same one.
REGION_CHECKER_RTT_MS = np.array(
    [
        [8, 65, 90, 80, 220, 160],
        [65, 8, 150, 140, 170, 110],
        [90, 150, 8, 20, 160, 230],
        [80, 140, 20, 8, 170, 220],
        [220, 170, 160, 170, 8, 70],
        [160, 110, 230, 220, 70, 8],
        [120, 180, 200, 190, 320, 260],
    ],
    dtype=np.float64,
)

FARM_SIGNALS: tuple[str, ...] = (
    "shared_ip",
    "registration_burst",
    "wallet_reuse",
    "benchmark_clone",
    "fingerprint_reuse",
    "lockstep_uptime",
)
# Farms built other ways ("spread" farms: no single IP, partial and jittered signals), so a
# detector tuned on the designs above is also tried on these. Each is (design, signals).
SPREAD_FARM_DESIGNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("multi_subnet_clone", ("benchmark_clone", "jittered_lockstep", "same_second", "shared_rtt")),
    ("partial_fingerprints", ("fingerprint_reuse", "neighbour_subnets", "wash_jobs")),
    ("jittered_slow_burst", ("jittered_lockstep", "slow_burst")),
    ("wallet_pairs", ("wallet_reuse", "same_second", "wash_jobs")),
)

# Spoofer designs: (mode, claimed spelling, claimed count, true model, found count, expected verdict)
SPOOF_DESIGNS: tuple[tuple[str, str, int, str, int, str], ...] = (
    ("impossible", "T4", 1, "RTX-4090", 1, "impossible"),
    ("mismatch", "H100", 8, "A100-80G", 8, "mismatch"),
    ("fingerprint_reuse", "", 0, "", 0, "verified"),
    ("impossible", "A100-SXM4-80GB", 1, "A10", 1, "impossible"),
    ("mismatch", "NVIDIA GeForce RTX 4090", 1, "RTX-3060", 1, "mismatch"),
    ("mismatch_vram", "A100-SXM4-80GB", 8, "A100-40G", 8, "mismatch"),
    ("mismatch", "H800", 8, "A800", 8, "mismatch"),
    ("mismatch_count", "A100-SXM4-80GB", 8, "A100-80G", 4, "mismatch"),
    ("impossible", "RTX 3060", 1, "RTX-4090", 1, "impossible"),
)


@dataclass
class Node:
    idx: int
    node_id: str
    role: str  # honest | fleet | farm | spoofer
    region: int = 0
    ip: str = ""
    wallet: str = ""
    claimed: str = ""
    claimed_count: int = 1
    true_model: str = ""
    found_count: int = 1
    operator_id: str | None = None
    reg_us: int = 0
    stake: int = 0
    fingerprints: list[str] = field(default_factory=list)
    q: tuple[float, float, float] = (0.95, 0.95, 0.96)  # fp32, bandwidth, vram quality factors
    clone_group: int = -1
    bench_us: list[int] = field(default_factory=list)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _hex(rng: np.random.Generator, nbytes: int) -> str:
    return rng.bytes(nbytes).hex()


def _wallet(rng: np.random.Generator) -> str:
    return base58.b58encode(rng.bytes(32)).decode("ascii")


def _fingerprint(rng: np.random.Generator) -> str:
    b = rng.bytes(16).hex()
    uuid = f"GPU-{b[:8]}-{b[8:12]}-{b[12:16]}-{b[16:20]}-{b[20:]}"
    return hashlib.sha256(uuid.encode()).hexdigest()


def _dumps(obj: dict) -> bytes:
    # orjson hands back an over-allocated buffer (kilobytes for a short line): copy it to size
    return bytes(memoryview(orjson.dumps(obj)))


def _sizes(rng: np.random.Generator, budget: int, lo: int, hi: int) -> list[int]:
    """Group sizes in [lo, hi] (log-uniform) summing to about `budget`."""
    out: list[int] = []
    left = budget
    while left >= lo:
        s = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi + 0.999)))))
        s = max(lo, min(hi, s, left))
        rem = left - s
        if 0 < rem < lo and s + rem <= hi:
            s += rem
        out.append(s)
        left -= s
    return out


class _Subnets:
    """Allocates /24 prefixes (unique across independent operators) per region."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[tuple[int, int, int]] = set()

    def new(self, region: int, span: int = 1) -> tuple[int, int, int]:
        octets = REGION_OCTETS[region]
        while True:
            a = int(octets[int(self.rng.integers(0, len(octets)))])
            b = int(self.rng.integers(0, 256))
            c = int(self.rng.integers(0, 256 - span))
            cand = [(a, b, c + i) for i in range(span)]
            if not any(p in self.used for p in cand):
                self.used.update(cand)
                return cand[0]


def _claim_spelling(rng: np.random.Generator, true_model: str, inventory_string: str | None) -> str:
    spellings = hw.CLAIM_SPELLINGS.get(true_model)
    if inventory_string is not None and (not spellings or rng.random() < 0.7):
        return inventory_string
    if not spellings:
        return inventory_string or true_model
    return spellings[int(rng.integers(0, len(spellings)))]


def _draw_hardware(rng: np.random.Generator, traces) -> tuple[str, str, int]:
    """(claimed spelling, true model key, gpu count) from the real inventories or the consumer mix."""
    u = rng.random()
    if u < 0.45:
        model, count = traces.inventory_spot[int(rng.integers(0, len(traces.inventory_spot)))]
    elif u < 0.70:
        model, count = traces.inventory_openb[int(rng.integers(0, len(traces.inventory_openb)))]
    else:
        keys = [k for k, _ in hw.CONSUMER_MIX]
        p = np.array([w for _, w in hw.CONSUMER_MIX])
        key = keys[int(rng.choice(len(keys), p=p / p.sum()))]
        counts = [c for c, _ in hw.CONSUMER_COUNTS]
        pc = np.array([w for _, w in hw.CONSUMER_COUNTS])
        count = counts[int(rng.choice(len(counts), p=pc / pc.sum()))]
        return _claim_spelling(rng, key, None), key, int(count)
    key = hw.INVENTORY_MODEL[model]
    return _claim_spelling(rng, key, model), key, int(count)


def _validate(nodes: int, hours: int, seed: int, start_reward_epoch: int) -> None:
    for name, v in (("nodes", nodes), ("hours", hours), ("seed", seed), ("start_reward_epoch", start_reward_epoch)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}.")
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, got {nodes}.")
    if nodes > MAX_NODES:
        raise ValueError(f"nodes must be at most {MAX_NODES}, got {nodes}.")
    if hours < 1:
        raise ValueError(f"hours must be at least 1, got {hours}.")
    if hours > MAX_HOURS:
        raise ValueError(f"hours must be at most {MAX_HOURS}, got {hours}.")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    if start_reward_epoch < 0:
        raise ValueError(f"start_reward_epoch must be non-negative, got {start_reward_epoch}.")


def _max_down_run(row: np.ndarray) -> int:
    if row.size == 0:
        return 0
    d = np.concatenate([[0], (~row).astype(np.int8), [0]])
    ch = np.flatnonzero(np.diff(d))
    if ch.size == 0:
        return 0
    return int((ch[1::2] - ch[0::2]).max())


def simulate(
    nodes: int,
    hours: int,
    seed: int,
    out_dir: Path,
    *,
    start_reward_epoch: int = 0,
    data_dir: Path | None = None,
    progress: Callable[[float], None] | None = None,
    failed_node_share: float = 0.03,
) -> dict:
    """Write `out_dir/{nodes,benchmarks,jobs}.jsonl`, `out_dir/pings-NNN.jsonl` and
    `out_dir/truth.json` for `nodes` nodes over reward epochs
    `start_reward_epoch .. start_reward_epoch + hours - 1`; return a summary."""
    _validate(nodes, hours, seed, start_reward_epoch)
    if not 0.0 <= failed_node_share <= 1.0:
        raise ValueError(f"failed_node_share must lie in [0, 1], got {failed_node_share}.")
    traces = load_traces(data_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a directory.")
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.glob("pings-*.jsonl")):
        old.unlink()

    N, H = int(nodes), int(hours)
    t0 = GENESIS_US + int(start_reward_epoch) * HOUR_US
    t_end = t0 + H * HOUR_US
    L = H * 60 + TAIL_SLOTS
    abs_slot0 = (t0 - GENESIS_US) // SLOT_US

    # ---------------------------------------------------------------- population and roles
    r_pop = _rng(seed, 1)
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < N:
        nid = "node-" + _hex(r_pop, 6)
        if nid not in seen:
            seen.add(nid)
            ids.append(nid)
    plants: list[dict] = []
    farm_sizes: list[int] = []
    fleet_sizes: list[int] = []
    n_spoof = 0
    if N >= 20:
        n_spoof = min(max(len(SPOOF_DESIGNS), round(0.015 * N)), N // 8)
        farm_sizes = _sizes(r_pop, max(3, round(0.06 * N)), 3, int(min(200, max(3, round(0.03 * N)))))
        fleet_sizes = _sizes(r_pop, round(0.10 * N), 4, int(min(50, max(4, round(0.02 * N)))))
    roles: list[str] = []
    groups: list[int] = []  # farm / fleet number, -1 otherwise
    for g, s in enumerate(farm_sizes):
        roles += ["farm"] * s
        groups += [g] * s
    for g, s in enumerate(fleet_sizes):
        roles += ["fleet"] * s
        groups += [g] * s
    roles += ["spoofer"] * n_spoof
    groups += [-1] * n_spoof
    # spread farms and honest shared subnets (look-alikes) draw from a stream of their own
    r_x = _rng(seed, 21)
    farm2_sizes: list[int] = []
    subnet_sizes: list[int] = []
    if N >= 60:
        farm2_sizes = _sizes(r_x, max(3, round(0.03 * N)), 3, int(min(120, max(3, round(0.015 * N)))))
        subnet_sizes = _sizes(r_x, max(6, round(0.04 * N)), 6, int(min(60, max(6, round(0.02 * N)))))
    for g, s in enumerate(farm2_sizes):
        roles += ["farm2"] * s
        groups += [g] * s
    for g, s in enumerate(subnet_sizes):
        roles += ["subnet"] * s
        groups += [g] * s
    roles += ["honest"] * (N - len(roles))
    groups += [-1] * (N - len(groups))
    # shuffle which random id gets which role (ids are random already; keep index order stable)
    nodes_l = [Node(i, ids[i], roles[i]) for i in range(N)]

    subnets = _Subnets(_rng(seed, 2))
    r_hw = _rng(seed, 3)
    r_reg = _rng(seed, 4)
    region_p = REGION_WEIGHTS / REGION_WEIGHTS.sum()

    def independent(n: Node) -> None:
        n.region = int(r_reg.choice(len(REGIONS), p=region_p))
        a, b, c = subnets.new(n.region)
        n.ip = f"{a}.{b}.{c}.{int(r_reg.integers(2, 255))}"
        n.wallet = _wallet(r_reg)
        n.claimed, n.true_model, n.claimed_count = _draw_hardware(r_hw, traces)
        n.found_count = n.claimed_count
        n.reg_us = t0 + min(int(r_reg.exponential(6 * 60e6)), 40 * 60_000_000) + int(r_reg.integers(0, 1_000_000))
        if r_reg.random() < 0.15:
            n.operator_id = "op-" + _hex(r_reg, 4)

    def quality(n: Node) -> None:
        n.q = (float(r_hw.uniform(0.87, 1.0)), float(r_hw.uniform(0.87, 1.0)), float(r_hw.uniform(0.94, 0.985)))

    def own_fingerprints(n: Node) -> None:
        n.fingerprints = [_fingerprint(r_hw) for _ in range(n.found_count)]

    # honest
    for n in nodes_l:
        if n.role == "honest":
            independent(n)
            quality(n)
            own_fingerprints(n)

    # shared subnets: a university or cloud /24 (sometimes two) holding many independent nodes
    r_sub = _rng(seed, 22)
    dc_of: dict[int, int] = {}  # node index -> data-centre number (shared RTT factor)
    n_dc = 0
    for g, size in enumerate(subnet_sizes):
        members = [n for n in nodes_l if n.role == "subnet" and groups[n.idx] == g]
        region = int(r_sub.choice(len(REGIONS), p=region_p))
        span = 2 if size > 20 and r_sub.random() < 0.5 else 1
        a, b, c = subnets.new(region, span=span)
        hosts = r_sub.permutation(np.arange(2, 255))
        for k, n in enumerate(members):
            independent(n)
            quality(n)
            own_fingerprints(n)
            n.region = region
            n.ip = f"{a}.{b}.{c + k % span}.{int(hosts[k // span])}"
            dc_of[n.idx] = n_dc
        n_dc += 1
        plants.append(
            {
                "kind": "subnet",
                "node_ids": sorted(n.node_id for n in members),
                "params": {
                    "what": ("university", "cloud")[int(r_sub.integers(0, 2))],
                    "region": REGIONS[region],
                    "subnets": [f"{a}.{b}.{c + i}.0/24" for i in range(span)],
                    "size": len(members),
                    "independent": True,
                },
            }
        )

    # fleets: honest data centres, one declared operator, one /24
    for g, size in enumerate(fleet_sizes):
        members = [n for n in nodes_l if n.role == "fleet" and groups[n.idx] == g]
        region = int(r_reg.choice(len(REGIONS), p=region_p))
        a, b, c = subnets.new(region)
        operator = "op-dc-" + _hex(r_reg, 3)
        claimed, true_model, count = _draw_hardware(r_hw, traces)
        shared_wallet = bool(r_reg.random() < 0.5)
        wallet = _wallet(r_reg)
        base = int(r_reg.integers(0, 20 * 60_000_000))
        for k, n in enumerate(members):
            n.region = region
            n.ip = f"{a}.{b}.{c}.{10 + k}"
            n.wallet = wallet if shared_wallet else _wallet(r_reg)
            n.claimed, n.true_model, n.claimed_count, n.found_count = claimed, true_model, count, count
            n.operator_id = operator
            n.reg_us = t0 + base + int(r_reg.integers(0, 15 * 60_000_000))
            dc_of[n.idx] = n_dc
            quality(n)
            own_fingerprints(n)
        n_dc += 1
        plants.append(
            {
                "kind": "fleet",
                "node_ids": sorted(n.node_id for n in members),
                "params": {
                    "operator_id": operator,
                    "region": REGIONS[region],
                    "subnet": f"{a}.{b}.{c}.0/24",
                    "shared_wallet": shared_wallet,
                    "gpu_model": claimed,
                    "size": len(members),
                },
            }
        )

    # farms: one operator pretending to be many independent nodes
    r_farm = _rng(seed, 5)
    farm_members: list[list[Node]] = []
    farm_signals: list[list[str]] = []
    for g, size in enumerate(farm_sizes):
        members = [n for n in nodes_l if n.role == "farm" and groups[n.idx] == g]
        hiding = ("blatant", "moderate", "subtle", "subtle")[g % 4] if g else "blatant"
        if hiding == "blatant":
            signals = list(FARM_SIGNALS)
        elif hiding == "moderate":
            k = int(r_farm.integers(3, 5))
            signals = sorted(r_farm.choice(FARM_SIGNALS, k, replace=False).tolist(), key=FARM_SIGNALS.index)
        else:
            k = int(r_farm.integers(1, 3))
            signals = sorted(r_farm.choice(FARM_SIGNALS, k, replace=False).tolist(), key=FARM_SIGNALS.index)
        region = int(r_farm.choice(len(REGIONS), p=region_p))
        if r_farm.random() < 0.6:
            key = ("RTX-4090", "RTX-3090", "RTX-4080")[int(r_farm.integers(0, 3))]
            count = (1, 1, 2)[int(r_farm.integers(0, 3))]
            claimed = _claim_spelling(r_farm, key, None)
        else:
            claimed, key, count = _draw_hardware(r_farm, traces)
        ip_style = ("single_ip", "same_24", "adjacent_24")[int(r_farm.integers(0, 3))]
        n_wallets = max(1, size // 8)
        wallets = [_wallet(r_farm) for _ in range(n_wallets)]
        burst_at = t0 + int(r_farm.integers(60_000_000, 35 * 60_000_000))
        span = max(1, (size + 199) // 200) + (2 if ip_style == "adjacent_24" else 0)
        a, b, c = subnets.new(region, span=span)
        shared_q = (float(r_farm.uniform(0.9, 0.99)), float(r_farm.uniform(0.9, 0.99)), float(r_farm.uniform(0.95, 0.98)))
        pool = [_fingerprint(r_farm) for _ in range(max(count, (size * count) // 3))]
        t_burst = burst_at
        for k, n in enumerate(members):
            n.claimed, n.true_model, n.claimed_count, n.found_count = claimed, key, count, count
            if "shared_ip" in signals:
                n.region = region
                if ip_style == "single_ip":
                    n.ip = f"{a}.{b}.{c}.{77}"
                elif ip_style == "same_24":
                    n.ip = f"{a}.{b}.{c + k // 200}.{20 + (k % 200)}"
                else:
                    n.ip = f"{a}.{b}.{c + k % 3}.{30 + k // 3}"
            else:
                n.region = int(r_farm.choice(len(REGIONS), p=region_p))
                pa, pb, pc = subnets.new(n.region)
                n.ip = f"{pa}.{pb}.{pc}.{int(r_farm.integers(2, 255))}"
            if "wallet_reuse" in signals:
                n.wallet = wallets[k % n_wallets] if k < n_wallets else wallets[int(r_farm.integers(0, n_wallets))]
            else:
                n.wallet = _wallet(r_farm)
            if "registration_burst" in signals:
                t_burst += int(r_farm.integers(800_000, 6_000_000))
                n.reg_us = t_burst
            else:
                n.reg_us = t0 + min(int(r_farm.exponential(6 * 60e6)), 40 * 60_000_000) + int(r_farm.integers(0, 10**6))
            if "benchmark_clone" in signals:
                n.q = shared_q
                n.clone_group = g
            else:
                n.q = (float(r_farm.uniform(0.87, 1.0)), float(r_farm.uniform(0.87, 1.0)), float(r_farm.uniform(0.94, 0.985)))
            if "fingerprint_reuse" in signals:
                n.fingerprints = [pool[int(j)] for j in r_farm.choice(len(pool), count, replace=False)]
            else:
                n.fingerprints = [_fingerprint(r_farm) for _ in range(count)]
        farm_members.append(members)
        farm_signals.append(signals)
        plants.append(
            {
                "kind": "farm",
                "node_ids": sorted(n.node_id for n in members),
                "params": {
                    "farm_id": f"farm-{g}",
                    "size": len(members),
                    "hiding": hiding,
                    "signals": signals,
                    "ip_style": ip_style if "shared_ip" in signals else None,
                    "wallets": sorted(set(n.wallet for n in members)),
                    "gpu_model": claimed,
                    "registration_burst_start": iso_us(burst_at) if "registration_burst" in signals else None,
                },
            }
        )

    # spread farms: no single IP, distinct wallets or wallets shared by pairs, partial signals
    r_f2 = _rng(seed, 23)
    host_of: dict[int, int] = {}  # node index -> machine number (same RTT factor exactly)
    n_host = 0
    for g, members in enumerate(farm_members):
        if "shared_ip" in farm_signals[g]:
            for n in members:
                host_of[n.idx] = n_host
            n_host += 1
    farm2_design: list[tuple[str, tuple[str, ...]]] = []
    for g2, size in enumerate(farm2_sizes):
        g = len(farm_sizes) + g2
        members = [n for n in nodes_l if n.role == "farm2" and groups[n.idx] == g2]
        design, signals = SPREAD_FARM_DESIGNS[g2 % len(SPREAD_FARM_DESIGNS)]
        farm2_design.append((design, signals))
        region = int(r_f2.choice(len(REGIONS), p=region_p))
        if r_f2.random() < 0.6:
            key = ("RTX-4090", "RTX-3090", "RTX-4080", "RTX-A6000")[int(r_f2.integers(0, 4))]
            count = (1, 1, 2)[int(r_f2.integers(0, 3))]
            claimed = _claim_spelling(r_f2, key, None)
        else:
            claimed, key, count = _draw_hardware(r_f2, traces)
        shared_q = (float(r_f2.uniform(0.9, 0.99)), float(r_f2.uniform(0.9, 0.99)), float(r_f2.uniform(0.95, 0.98)))
        pool = [_fingerprint(r_f2) for _ in range(count)]
        n_pool = max(2, round(0.4 * size))
        n_wallets = (size + 1) // 2
        wallets = [_wallet(r_f2) for _ in range(n_wallets)]
        n_sub = int(r_f2.integers(2, 5))
        if "neighbour_subnets" in signals:
            a, b, c = subnets.new(region, span=n_sub)
            nets = [(a, b, c + i) for i in range(n_sub)]
        else:  # a few unrelated /24s (other providers, other regions), or one of its own each
            nets = [subnets.new(int(r_f2.choice(len(REGIONS), p=region_p))) for _ in range(n_sub + 2)]
        t_burst = t0 + int(r_f2.integers(60_000_000, 30 * 60_000_000))
        for k, n in enumerate(members):
            n.claimed, n.true_model, n.claimed_count, n.found_count = claimed, key, count, count
            n.region = region
            if "wallet_pairs" == design:
                pa, pb, pc = subnets.new(int(r_f2.choice(len(REGIONS), p=region_p)))
            else:
                pa, pb, pc = nets[int(r_f2.integers(0, len(nets)))]
            n.ip = f"{pa}.{pb}.{pc}.{int(r_f2.integers(2, 255))}"
            n.wallet = wallets[k // 2] if "wallet_reuse" in signals else _wallet(r_f2)
            if "slow_burst" in signals:
                t_burst += int(r_f2.integers(5_000_000, 40_000_000))
                n.reg_us = t_burst
            else:
                n.reg_us = t0 + min(int(r_f2.exponential(6 * 60e6)), 40 * 60_000_000) + int(r_f2.integers(0, 10**6))
            if "benchmark_clone" in signals:
                n.q = shared_q
                n.clone_group = g
            else:
                n.q = (float(r_f2.uniform(0.87, 1.0)), float(r_f2.uniform(0.87, 1.0)), float(r_f2.uniform(0.94, 0.985)))
            if "fingerprint_reuse" in signals and k < n_pool:
                n.fingerprints = list(pool)
            else:
                n.fingerprints = [_fingerprint(r_f2) for _ in range(count)]
            if "shared_rtt" in signals or "same_second" in signals:
                host_of[n.idx] = n_host
        n_host += 1
        farm_members.append(members)
        farm_signals.append(list(signals))
        plants.append(
            {
                "kind": "farm",
                "node_ids": sorted(n.node_id for n in members),
                "params": {
                    "farm_id": f"farm-{g}",
                    "size": len(members),
                    "hiding": "spread",
                    "design": design,
                    "signals": list(signals),
                    "ip_style": None,
                    "subnets": sorted({".".join(n.ip.split(".")[:3]) + ".0/24" for n in members}),
                    "wallets": sorted(set(n.wallet for n in members)),
                    "gpu_model": claimed,
                    "registration_burst_start": None,
                },
            }
        )

    # round trips: a region's typical figure per checker, a factor per node (per data centre,
    # nearly; per machine, exactly)
    r_rtt = _rng(seed, 24)
    factor = r_rtt.lognormal(0.0, 0.25, (N, len(CHECKERS)))
    dc_factor = r_rtt.lognormal(0.0, 0.25, (max(1, n_dc), len(CHECKERS)))
    host_factor = r_rtt.lognormal(0.0, 0.25, (max(1, n_host), len(CHECKERS)))
    near = r_rtt.lognormal(0.0, 0.03, (N, len(CHECKERS)))
    for i, d in sorted(dc_of.items()):
        factor[i] = dc_factor[d] * near[i]
    for i, h in sorted(host_of.items()):
        factor[i] = host_factor[h]
    rtt_base = REGION_CHECKER_RTT_MS[np.array([n.region for n in nodes_l])] * factor

    # spoofers
    r_sp = _rng(seed, 6)
    spoofers = [n for n in nodes_l if n.role == "spoofer"]
    honest_known = [
        n for n in nodes_l if n.role == "honest" and hw.lookup(n.claimed) is not None and n.claimed_count <= 8
    ]
    spoof_params: dict[int, dict] = {}
    victims_used: list[int] = []
    for i, n in enumerate(spoofers):
        mode, claim, ccount, true_model, found, expected = SPOOF_DESIGNS[i % len(SPOOF_DESIGNS)]
        independent(n)
        n.reg_us = t0 + int(r_sp.integers(0, 12 * 60_000_000))
        n.operator_id = None
        params: dict = {"mode": mode, "expected_verdict": expected}
        if mode == "fingerprint_reuse" and honest_known:
            n.reg_us = t0 + int(r_sp.integers(46 * 60_000_000, 55 * 60_000_000))  # after every honest benchmark
            cands = [v for v in honest_known if v.idx not in victims_used]
            victim = cands[int(r_sp.integers(0, len(cands)))] if cands else honest_known[0]
            victims_used.append(victim.idx)
            n.claimed, n.true_model, n.claimed_count = victim.claimed, victim.true_model, victim.claimed_count
            n.found_count = n.claimed_count
            n.fingerprints = list(victim.fingerprints)
            n.q = (float(r_sp.uniform(0.88, 0.99)), float(r_sp.uniform(0.88, 0.99)), float(r_sp.uniform(0.94, 0.985)))
            params.update(
                {
                    "victim_node_id": victim.node_id,
                    "claimed_model": n.claimed,
                    "true_model": n.true_model,
                    "expected_rule": "hardware_fraud",
                }
            )
        else:
            if mode == "fingerprint_reuse":  # no victim possible: fall back to an impossible claim
                mode, claim, ccount, true_model, found, expected = SPOOF_DESIGNS[0]
                params = {"mode": mode, "expected_verdict": expected}
            n.claimed, n.claimed_count, n.true_model, n.found_count = claim, ccount, true_model, found
            n.q = (float(r_sp.uniform(0.88, 0.99)), float(r_sp.uniform(0.88, 0.99)), float(r_sp.uniform(0.94, 0.985)))
            n.fingerprints = [_fingerprint(r_sp) for _ in range(found)]
            params.update(
                {
                    "claimed_model": claim,
                    "claimed_gpu_count": ccount,
                    "true_model": true_model,
                    "found_gpu_count": found,
                    "expected_rule": "hardware_fraud" if expected == "impossible" else None,
                }
            )
        spoof_params[n.idx] = params

    # stakes
    r_st = _rng(seed, 7)
    for n in nodes_l:
        spec = hw.SPECS.get(n.true_model)
        tokens = int(r_st.integers(5_000, 200_000)) if (spec is None or spec.klass == "enterprise") else int(
            r_st.integers(100, 5_000)
        )
        n.stake = tokens * 1_000_000 + int(r_st.integers(0, 1_000_000))

    # ---------------------------------------------------------------- presence (real heartbeats)
    r_pr = _rng(seed, 8)
    C = traces.presence
    n_c, S = C.shape
    presence = np.zeros((N, L), dtype=bool)
    source: list[list[tuple[int, int, int]]] = [[] for _ in range(N)]  # (container, from, length)
    # Systematic sampling of containers ordered by how fragmented their heartbeat is, done
    # separately for the honest population and for the rest, so that even a few dozen nodes
    # carry the trace's mix of steady and flaky machines (and not a lucky draw of it).
    runs = np.abs(np.diff(C.astype(np.int8), axis=1)).sum(axis=1)
    by_frag = np.lexsort((np.arange(n_c), runs))
    order = np.zeros(N, dtype=np.int64)
    honest_like = [n.idx for n in nodes_l if n.role in ("honest", "fleet", "subnet")]
    others = [n.idx for n in nodes_l if n.role not in ("honest", "fleet", "subnet")]
    for grp in (honest_like, others):
        k = len(grp)
        if k == 0:
            continue
        pos = np.floor((np.arange(k) + r_pr.random()) * n_c / k).astype(np.int64) % n_c
        order[np.asarray(grp)[r_pr.permutation(k)]] = by_frag[pos]

    # Independent machines do not live the same minutes: two nodes drawing one container get
    # windows of it at least 10 minutes apart while the trace has room (an identical history
    # of two strangers would be a trace artefact, not a network's life).
    used_offsets: dict[int, set[int]] = {}

    def fill(i: int, c: int) -> None:
        pos = 0
        hi = S - L + 1 if L <= S else S
        o = int(r_pr.integers(0, hi))
        taken = used_offsets.setdefault(c, set())
        if len(taken) < hi // 20:  # room left: look for a window 10 minutes from the others
            for _ in range(20):
                if not any(u in taken for u in range(o - 9, o + 10)):
                    break
                o = int(r_pr.integers(0, hi))
        taken.add(o)
        while pos < L:
            take = min(L - pos, S - o)
            presence[i, pos : pos + take] = C[c, o : o + take]
            source[i].append((c, o, take))
            pos += take
            c, o = int(r_pr.integers(0, n_c)), 0

    # A farm's machines share a host (power, network): its blips are theirs. The host is drawn
    # from the fragmented containers of the trace (50+ changes, present half the time or more),
    # so that the shared life is there to be seen
    # within the simulated hours (a host that never blips plants nothing).
    r_host = _rng(seed, 28)
    frag_half = [int(c) for c in by_frag.tolist() if runs[int(c)] >= 50 and C[int(c)].mean() >= 0.5]
    frag_half = frag_half or [int(c) for c in by_frag[n_c // 2:].tolist()]
    hosts_first = {ms[0].idx for g2, ms in enumerate(farm_members[len(farm_sizes):])
                   if ms and "jittered_lockstep" in farm2_design[g2][1]}
    lock_rows: dict[int, int] = {}
    for n in nodes_l:
        g = groups[n.idx]
        if n.role == "farm" and "lockstep_uptime" in farm_signals[g]:
            if g in lock_rows:
                presence[n.idx] = presence[lock_rows[g]]
                source[n.idx] = list(source[lock_rows[g]])
                continue
            lock_rows[g] = n.idx
            fill(n.idx, int(frag_half[int(r_host.integers(0, len(frag_half)))]))
            continue
        if n.idx in hosts_first:
            fill(n.idx, int(frag_half[int(r_host.integers(0, len(frag_half)))]))
            continue
        fill(n.idx, int(order[n.idx]))

    # jittered lockstep: one machine's up and down, each node dropping a few slots of its own
    # and now and then coming back a minute late
    r_jit = _rng(seed, 25)
    sync_groups: list[list[int]] = []
    for g2, (design, signals) in enumerate(farm2_design):
        members = farm_members[len(farm_sizes) + g2]
        if "same_second" in signals:
            sync_groups.append([n.idx for n in members])
        if "jittered_lockstep" not in signals:
            continue
        host = presence[members[0].idx].copy()
        rises = np.flatnonzero(host[1:] & ~host[:-1]) + 1
        for n in members:
            row = host.copy()
            row[r_jit.random(L) < 0.02] = False
            late_up = rises[r_jit.random(rises.size) < 0.3]
            row[late_up] = False
            presence[n.idx] = row

    # regional outages: many honest nodes of one region down at once, nothing else shared
    r_out = _rng(seed, 9)
    outaged: set[int] = set()
    if N >= 20:
        for _ in range(max(1, H // 12)):
            lo, hi = (60, H * 60 - 30) if H >= 2 else (5, 40)
            s_start = int(r_out.integers(lo, hi))
            minutes = int(r_out.integers(3, 26))
            region = int(r_out.choice(len(REGIONS), p=region_p))
            cands = [
                n.idx for n in nodes_l if n.role in ("honest", "fleet", "subnet") and n.region == region and n.idx not in outaged
            ]
            share = float(r_out.uniform(0.6, 0.9))
            hit = [i for i in cands if r_out.random() < share]
            if len(hit) < 3:
                continue
            presence[hit, s_start : s_start + minutes] = False
            outaged.update(hit)
            plants.append(
                {
                    "kind": "outage",
                    "node_ids": sorted(nodes_l[i].node_id for i in hit),
                    "params": {
                        "scope": "region",
                        "region": REGIONS[region],
                        "start": iso_us(t0 + s_start * SLOT_US),
                        "end": iso_us(t0 + (s_start + minutes) * SLOT_US),
                        "minutes": minutes,
                        "reward_epoch": int(start_reward_epoch + s_start // 60),
                        "share_of_region": round(len(hit) / max(1, len(cands)), 4),
                    },
                }
            )

    # ---------------------------------------------------------------- benchmarks
    r_b = _rng(seed, 10)
    bench_events: list[tuple[int, str, bytes]] = []
    for n in nodes_l:
        t = n.reg_us + int(r_b.integers(30_000_000, 300_000_000))
        times = []
        while t < t_end:
            times.append(t)
            t += 12 * HOUR_US + int(r_b.integers(-20 * 60_000_000, 20 * 60_000_000))
        n.bench_us = times
        fp_spec, bw_spec, mem_spec = hw.true_figures(n.true_model)
        down = 1000 * float(r_b.uniform(1.0, 10.0)) if n.true_model in hw.SPECS and hw.SPECS[n.true_model].klass == "enterprise" else float(r_b.uniform(50, 1000))
        for k, tb in enumerate(times):
            if n.clone_group >= 0:
                noise = (float(r_b.uniform(0.9995, 1.0005)), float(r_b.uniform(0.9995, 1.0005)))
            else:
                noise = (float(r_b.uniform(0.985, 1.015)), float(r_b.uniform(0.985, 1.015)))
            fq = min(1.02, max(0.85, n.q[0] * noise[0]))
            bq = min(1.02, max(0.85, n.q[1] * noise[1]))
            eid = f"bm-{n.node_id}-{k}"
            ev = {
                "event_id": eid,
                "event_type": "benchmark",
                "schema_version": 1,
                "node_id": n.node_id,
                "occurred_at": iso_us(tb),
                "gpu_model": hw.REPORTED_NAME[n.true_model],
                "gpu_count": n.found_count,
                "fp32_tflops": round(fp_spec * fq, 3),
                "mem_bandwidth_gbps": round(bw_spec * bq, 1),
                "vram_gb": round(mem_spec * n.q[2], 2),
                "gpu_fingerprints": list(n.fingerprints),
                "download_mbps": round(down * float(r_b.uniform(0.9, 1.05)), 1),
                "upload_mbps": round(down * float(r_b.uniform(0.2, 0.9)), 1),
                "ip": n.ip,
            }
            bench_events.append((tb, eid, _dumps(ev)))

    # who reports a fingerprint first binds it (ruleset §10); later reporters are hardware fraud
    bound: dict[str, str] = {}
    fraud_nodes: list[str] = []
    for tb, eid, raw in sorted(bench_events, key=lambda x: (x[0], x[1])):
        ev = orjson.loads(raw)
        for fpr in ev["gpu_fingerprints"]:
            owner = bound.setdefault(fpr, ev["node_id"])
            if owner != ev["node_id"] and ev["node_id"] not in fraud_nodes:
                fraud_nodes.append(ev["node_id"])
    fraud_set = set(fraud_nodes)
    for g, members in enumerate(farm_members):
        for p in plants:
            if p["kind"] == "farm" and p["params"]["farm_id"] == f"farm-{g}":
                p["params"]["expected_fingerprint_fraud_node_ids"] = sorted(
                    n.node_id for n in members if n.node_id in fraud_set
                )
    for n in spoofers:
        params = spoof_params[n.idx]
        plants.append({"kind": "spoofer", "node_ids": [n.node_id], "params": params})

    # ---------------------------------------------------------------- jobs
    r_j = _rng(seed, 11)
    pods = traces.pods
    n_cand = int(r_j.poisson(N * H * 0.12))
    pidx = r_j.integers(0, pods["phase"].size, n_cand)
    phase = pods["phase"][pidx]
    ngpu = pods["num_gpu"][pidx]
    milli = pods["gpu_milli"][pidx]
    sched = np.where(pods["scheduled"][pidx] >= 0, pods["scheduled"][pidx], pods["creation"][pidx])
    dur_s = np.where(phase == "Pending", pods["deletion"][pidx] - pods["creation"][pidx], pods["deletion"][pidx] - sched)
    dur_s = np.maximum(dur_s, 5)
    start_us = t0 + r_j.integers(0, H * HOUR_US, n_cand, dtype=np.int64) 
    end_us = start_us + dur_s * 1_000_000 + r_j.integers(0, 1_000_000, n_cand)
    keep = end_us + 60_000_000 <= t_end
    found_counts = np.array([n.found_count for n in nodes_l])
    by_count: dict[int, np.ndarray] = {}
    job_rows: list[dict] = []
    buyers = [f"buyer-{_hex(r_j, 4)}" for _ in range(max(5, N // 20))]
    bw_ = 1.0 / np.arange(1, len(buyers) + 1) ** 1.1
    bw_ /= bw_.sum()
    for j in np.flatnonzero(keep).tolist():
        g = int(ngpu[j])
        if g not in by_count:
            by_count[g] = np.flatnonzero(found_counts >= g)
        pool_idx = by_count[g]
        if pool_idx.size == 0:
            continue
        s_rel = int((start_us[j] - t0) // SLOT_US)
        cands = pool_idx[r_j.integers(0, pool_idx.size, 4)]
        ups = presence[cands, s_rel]
        node = int(cands[int(np.argmax(ups))])
        ph = str(phase[j])
        if ph in ("Running", "Succeeded"):
            status = "succeeded"
        elif ph == "Failed":
            status = "failed_node" if r_j.random() < failed_node_share else "failed_user"
        else:
            status = "cancelled"
        d = int(dur_s[j])
        gpu_equiv = g if g > 1 else int(milli[j]) / 1000.0
        gpu_hours = 0.0 if status == "cancelled" else round(gpu_equiv * d / 3600.0, 6)
        price = hw.price_per_gpu_hour_base_units(nodes_l[node].true_model)
        fee = int(gpu_hours * price) if status in ("succeeded", "failed_user") else 0
        st, en = int(start_us[j]), int(end_us[j])
        if status == "succeeded":
            if r_j.random() < 0.05:
                committed = st + int(d * float(r_j.uniform(0.6, 0.95)) * 1_000_000)
            else:
                committed = st + int(math.ceil(d / 900.0)) * 900 * 1_000_000
                committed = max(committed, en)
        elif status == "cancelled":
            committed = st
        else:
            committed = st + int(math.ceil(d * float(r_j.uniform(1.2, 4.0)) / 900.0)) * 900 * 1_000_000
        job_rows.append(
            {
                "job_id": "job-" + _hex(r_j, 6),
                "node": node,
                "buyer": buyers[int(r_j.choice(len(buyers), p=bw_))],
                "start": st,
                "end": en,
                "committed": committed,
                "status": status,
                "gpu_hours": gpu_hours,
                "fee": fee,
                "delay": int(r_j.integers(0, 30_000_000)),
            }
        )

    # nodes that fail during jobs (planted): downtime inside the window, or a failed_node job
    r_jf = _rng(seed, 12)
    job_plants: list[dict] = []
    if N >= 20 and job_rows:
        want = max(2, round(0.004 * N))
        used_nodes: set[int] = set()
        order_j = r_jf.permutation(len(job_rows))
        mode_i = 0
        for jj in order_j.tolist():
            if len(job_plants) >= want:
                break
            jr = job_rows[jj]
            nd = jr["node"]
            if nodes_l[nd].role != "honest" or nd in outaged or nd in used_nodes or jr["status"] == "cancelled":
                continue
            limit = min(jr["end"], jr["committed"])
            first = -(-(jr["start"] - t0) // SLOT_US)
            last = (limit - t0) // SLOT_US
            mode = ("downtime", "failed_node")[mode_i % 2]
            if mode == "downtime":
                if last - first < 7:
                    continue
                dmin = int(r_jf.integers(5, min(15, last - first) + 1))
                s = int(r_jf.integers(first, last - dmin + 1))
                presence[nd, s : s + dmin] = False
                extra = {"down_minutes": dmin, "down_from": iso_us(t0 + s * SLOT_US)}
            else:
                if H >= 2 and jr["end"] + HOUR_US > t_end:  # leave room for an appeal
                    continue
                jr["status"] = "failed_node"
                jr["fee"] = 0
                s = (jr["end"] - t0) // SLOT_US
                dmin = int(r_jf.integers(5, 21))
                presence[nd, s : min(L - TAIL_SLOTS, s + dmin)] = False
                extra = {"down_minutes": dmin, "down_from": iso_us(t0 + s * SLOT_US)}
            used_nodes.add(nd)
            mode_i += 1
            job_plants.append(
                {
                    "kind": "outage",
                    "node_ids": [nodes_l[nd].node_id],
                    "params": {"scope": "job", "mode": mode, "job_id": jr["job_id"], "expected_rule": "downtime_during_job", **extra},
                }
            )
    plants.extend(job_plants)

    # appeal: one planted failed_node decision is overturned
    appeals: list[tuple[int, str, bytes]] = []
    for p in job_plants:
        if p["params"]["mode"] != "failed_node":
            continue
        jr = next(x for x in job_rows if x["job_id"] == p["params"]["job_id"])
        room = t_end - (jr["end"] + jr["delay"])
        if room <= 2 * 60_000_000:
            continue
        at = jr["end"] + jr["delay"] + int(r_jf.integers(60_000_000, min(2 * HOUR_US, room - 60_000_000)))
        if at >= t_end:
            continue
        decision_id = hashlib.sha256(f"downtime_during_job|{jr['job_id']}".encode()).hexdigest()
        eid = "ap-" + _hex(r_jf, 8)
        ev = {
            "event_id": eid,
            "event_type": "appeal.upheld",
            "schema_version": 1,
            "node_id": nodes_l[jr["node"]].node_id,
            "occurred_at": iso_us(at),
            "decision_id": decision_id,
        }
        appeals.append((at, eid, _dumps(ev)))
        plants.append(
            {
                "kind": "appeal",
                "node_ids": [nodes_l[jr["node"]].node_id],
                "params": {"decision_id": decision_id, "job_id": jr["job_id"], "rule": "downtime_during_job"},
            }
        )
        break

    # wash jobs: a buyer of the farm's own buys only from its nodes, always "succeeded"
    r_w = _rng(seed, 26)
    for g2, (design, signals) in enumerate(farm2_design):
        if "wash_jobs" not in signals:
            continue
        members = farm_members[len(farm_sizes) + g2]
        buyer = f"buyer-{_hex(r_w, 4)}"
        for _ in range(3 * len(members)):
            n = members[int(r_w.integers(0, len(members)))]
            d = int(r_w.integers(600, 2400))
            if H * HOUR_US <= (d + 120) * 1_000_000:
                continue
            st = t0 + int(r_w.integers(0, H * HOUR_US - (d + 120) * 1_000_000))
            en = st + d * 1_000_000
            gpu_hours = round(n.found_count * d / 3600.0, 6)
            job_rows.append(
                {
                    "job_id": "job-" + _hex(r_w, 6),
                    "node": n.idx,
                    "buyer": buyer,
                    "start": st,
                    "end": en,
                    "committed": max(en, st + int(math.ceil(d / 900.0)) * 900 * 1_000_000),
                    "status": "succeeded",
                    "gpu_hours": gpu_hours,
                    "fee": int(gpu_hours * hw.price_per_gpu_hour_base_units(n.true_model)),
                    "delay": int(r_w.integers(0, 30_000_000)),
                }
            )
        for p in plants:
            if p["kind"] == "farm" and p["params"]["farm_id"] == f"farm-{len(farm_sizes) + g2}":
                p["params"]["wash_buyer_id"] = buyer

    # jobs whose node really had >= 5 consecutive non-up slots inside the window (§8), or failed_node
    expected_downtime: list[str] = []
    for jr in job_rows:
        limit = min(jr["end"], jr["committed"])
        first = -(-(jr["start"] - t0) // SLOT_US)
        last = (limit - t0) // SLOT_US
        if jr["status"] == "failed_node" or (last > first and _max_down_run(presence[jr["node"], first:last]) >= 5):
            expected_downtime.append(jr["job_id"])

    # ---------------------------------------------------------------- write small files
    files: list[str] = []
    counts: dict[str, int] = {}

    def write_events(name: str, evs: list[tuple[int, str, bytes]]) -> None:
        evs.sort(key=lambda x: (x[0], x[1]))
        with open(out / name, "wb") as fh:
            fh.write(b"".join(raw + b"\n" for _, _, raw in evs))
        files.append(name)

    node_events: list[tuple[int, str, bytes]] = []
    r_sc = _rng(seed, 13)
    for n in nodes_l:
        ev = {
            "event_id": f"reg-{n.node_id}",
            "event_type": "node.registered",
            "schema_version": 1,
            "node_id": n.node_id,
            "occurred_at": iso_us(n.reg_us),
            "wallet": n.wallet,
            "gpu_model": n.claimed,
            "gpu_count": n.claimed_count,
            "region": REGIONS[n.region],
            "ip": n.ip,
            "stake_base_units": n.stake,
        }
        if n.operator_id is not None:
            ev["operator_id"] = n.operator_id
        node_events.append((n.reg_us, ev["event_id"], _dumps(ev)))
    n_stake = 0
    for n in nodes_l:
        if r_sc.random() < 0.03:
            at = n.reg_us + int(r_sc.integers(HOUR_US // 4, max(HOUR_US // 4 + 1, t_end - n.reg_us)))
            if at >= t_end:
                continue
            ev = {
                "event_id": f"stk-{n.node_id}-1",
                "event_type": "node.stake_changed",
                "schema_version": 1,
                "node_id": n.node_id,
                "occurred_at": iso_us(at),
                "stake_base_units": int(n.stake * float(r_sc.uniform(1.1, 2.0))),
            }
            node_events.append((at, ev["event_id"], _dumps(ev)))
            n_stake += 1
    counts["node.registered"] = N
    counts["node.stake_changed"] = n_stake
    write_events("nodes.jsonl", node_events)
    counts["benchmark"] = len(bench_events)
    write_events("benchmarks.jsonl", bench_events)

    job_events: list[tuple[int, str, bytes]] = []
    for jr in job_rows:
        at = jr["end"] + jr["delay"]
        ev = {
            "event_id": "jc-" + jr["job_id"],
            "event_type": "job.completed",
            "schema_version": 1,
            "node_id": nodes_l[jr["node"]].node_id,
            "occurred_at": iso_us(at),
            "job_id": jr["job_id"],
            "buyer_id": jr["buyer"],
            "started_at": iso_us(jr["start"]),
            "ended_at": iso_us(jr["end"]),
            "committed_until": iso_us(jr["committed"]),
            "status": jr["status"],
            "gpu_hours": jr["gpu_hours"],
            "fee_base_units": jr["fee"],
        }
        job_events.append((at, ev["event_id"], _dumps(ev)))
    counts["job.completed"] = len(job_events)
    counts["appeal.upheld"] = len(appeals)
    write_events("jobs.jsonl", job_events + appeals)
    if progress:
        progress(0.05)

    # ---------------------------------------------------------------- pings, hour by hour
    r_pg = _rng(seed, 14)
    settings = PingSettings(CHECKERS, CHECKER_BATCHING)
    r_sync = _rng(seed, 27)
    grp_of = np.full(N, -1, dtype=np.int64)
    for gi, idxs in enumerate(sync_groups):
        grp_of[idxs] = gi
    pc = PingCounts()
    noise = PingNoise()
    node_series = pl.Series([n.node_id for n in nodes_l], dtype=pl.Utf8)
    starts = list(range(0, L, CHUNK_SLOTS))  # the last chunk holds the tail minutes
    fh = None
    cur_file = ""
    for ci, s0 in enumerate(starts):
        fidx = min(s0 // 60, H - 1) // HOURS_PER_FILE
        name = f"pings-{fidx:03d}.jsonl"
        if name != cur_file:
            if fh is not None:
                fh.close()
            fh = open(out / name, "wb")
            cur_file = name
            files.append(name)
            noise.by_file_malformed[name] = 0
            noise.by_file_duplicates[name] = 0
        s1 = min(s0 + CHUNK_SLOTS, L)
        sync = None
        if sync_groups:
            shape = (len(sync_groups), s1 - s0)
            sync = (grp_of, r_sync.integers(0, len(CHECKERS), shape), r_sync.integers(0, 60, shape))
        lines, single, _ = chunk_lines(
            presence, s0, s1, s1 == L, node_series, t0, abs_slot0, settings, r_pg, pc, rtt_base=rtt_base, sync=sync
        )
        n_dup = int(r_pg.integers(0, 3))
        n_bad = int(r_pg.integers(1 if ci == 0 else 0, 2))
        lines, d_, b_ = add_noise(lines, single, r_pg, n_dup, n_bad)
        noise.duplicates += d_
        noise.malformed += b_
        noise.by_file_duplicates[cur_file] += d_
        noise.by_file_malformed[cur_file] += b_
        pc.lines += lines.len()
        write_lines(fh, lines)  # type: ignore[arg-type]
        if progress:
            progress(0.05 + 0.95 * (ci + 1) / len(starts))
    if fh is not None:
        fh.close()
    counts["ping"] = pc.singles
    counts["ping.batch"] = pc.batches
    counts["ping.batch.inner"] = pc.inner

    # ---------------------------------------------------------------- truth
    plants.sort(
        key=lambda p: ({"farm": 0, "spoofer": 1, "outage": 2, "fleet": 3, "subnet": 4}.get(p["kind"], 9), p["node_ids"])
    )
    truth = {
        "seed": int(seed),
        "nodes": N,
        "hours": H,
        "plants": plants,
        "params": {
            "genesis": iso_us(GENESIS_US),
            "start_reward_epoch": int(start_reward_epoch),
            "reward_epochs": [int(start_reward_epoch), int(start_reward_epoch + H - 1)],
            "window_start": iso_us(t0),
            "window_end": iso_us(t_end),
            "tail_minutes": TAIL_SLOTS,
            "checkers": list(CHECKERS),
            "batching_checkers": [c for c, b in zip(CHECKERS, CHECKER_BATCHING) if b],
            "failed_node_share": failed_node_share,
            "malformed_lines": noise.malformed,
            "malformed_lines_by_file": noise.by_file_malformed,
            "duplicate_lines": noise.duplicates,
            "duplicate_lines_by_file": noise.by_file_duplicates,
            "ms_occurred_at_pings": pc.ms_form,
            "expected_downtime_job_ids": sorted(expected_downtime),
            "expected_fingerprint_fraud_node_ids": sorted(fraud_nodes),
            "sources": {
                "heartbeats": "alibaba/clusterdata v2026-GenAI_pod_gpu_duty_cycle_anon",
                "inventories": ["gpu-v2023 openb node list", "v2026 spot gpu node info"],
                "jobs": "gpu-v2023 openb pod list",
            },
        },
    }
    (out / "truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    files.append("truth.json")

    planted: dict[str, int] = {}
    for p in plants:
        planted[p["kind"]] = planted.get(p["kind"], 0) + 1
    return {
        "out_dir": str(out),
        "files": files,
        "events": counts,
        "lines": pc.lines + len(node_events) + len(bench_events) + len(job_events) + len(appeals),
        "malformed_lines": noise.malformed,
        "duplicate_lines": noise.duplicates,
        "planted": planted,
        "planted_nodes": {
            "farm": sum(len(m) for m in farm_members),
            "spoofer": len(spoofers),
            "fleet": sum(fleet_sizes),
            "subnet": sum(subnet_sizes),
            "outage": len({i for p in plants if p["kind"] == "outage" for i in p["node_ids"]}),
        },
        "reward_epochs": [int(start_reward_epoch), int(start_reward_epoch + H - 1)],
    }
