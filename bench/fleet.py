"""The benchmark fleet: which GPU model each node claims, and benchmarks that verify it.

Node `i` claims `MODELS[i % len(MODELS)]` with `gpu_count` from its model's choices; its
benchmarks report 95 % of the Appendix A figures (so the verdict is `verified`, hw_ratio 0.95)
and the GPUs it claimed. Both pools get nodes (enterprise and community), so allocation does
real work in each. Wallets are valid base58 Solana keys; a small set is shared among nodes
(operators owning many nodes), because encoding a million of them in Python would dominate
the set-up of the close benchmark.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import base58

GENESIS_MS = 1767225600000  # 2026-01-01T00:00:00Z (RULESET_V1.genesis)
GENESIS_US = GENESIS_MS * 1000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000


@dataclass(frozen=True)
class Model:
    claim: str  # the string a node claims at registration
    spec: tuple[float, float, float]  # Appendix A: fp32 TFLOPS, bandwidth GB/s, memory GB
    gpu_counts: tuple[int, ...]


MODELS = (
    Model("NVIDIA H100 80GB HBM3", (66.91, 3360.0, 80.0), (8, 4)),
    Model("NVIDIA A100-SXM4-80GB", (19.49, 2040.0, 80.0), (8, 4, 2)),
    Model("NVIDIA L40S", (91.61, 864.0, 48.0), (4, 2)),
    Model("Tesla T4", (8.141, 320.0, 16.0), (1, 2)),
    Model("NVIDIA GeForce RTX 4090", (82.58, 1010.0, 24.0), (1, 2)),
    Model("NVIDIA GeForce RTX 3090", (35.58, 936.2, 24.0), (1,)),
    Model("RTX A6000", (38.71, 768.0, 48.0), (1, 2)),
)

N_WALLETS = 4096


def wallet(k: int) -> str:
    return base58.b58encode(hashlib.sha256(f"bench-wallet-{k}".encode()).digest()).decode()


def wallets(n: int = N_WALLETS) -> list[str]:
    return [wallet(k) for k in range(n)]


def node_id(i: int) -> str:
    return f"node-{i:07d}"


def model_of(i: int) -> tuple[int, Model, int]:
    """(model index, model, gpu_count) of node i."""
    m = i % len(MODELS)
    model = MODELS[m]
    return m, model, model.gpu_counts[(i // len(MODELS)) % len(model.gpu_counts)]


def bench_figures(model: Model) -> tuple[float, float, float]:
    fp32, bw, mem = model.spec
    return round(fp32 * 0.95, 3), round(bw * 0.95, 2), mem


def registered_event(i: int, at_ms: int, wallet_str: str) -> dict:
    _, model, gpus = model_of(i)
    nid = node_id(i)
    return dict(event_id=f"reg-{nid}", event_type="node.registered", schema_version=1, node_id=nid,
                occurred_at=at_ms, wallet=wallet_str, gpu_model=model.claim, gpu_count=gpus,
                region="eu-west", ip="10.0.0.1", stake_base_units=3_000_000)


def benchmark_event(i: int, at_ms: int, event_id: str) -> dict:
    _, model, gpus = model_of(i)
    nid = node_id(i)
    fp32, bw, vram = bench_figures(model)
    return dict(event_id=event_id, event_type="benchmark", schema_version=1, node_id=nid, occurred_at=at_ms,
                gpu_model=model.claim, gpu_count=gpus, fp32_tflops=fp32, mem_bandwidth_gbps=bw, vram_gb=vram,
                gpu_fingerprints=[f"fp-{nid}-{g}" for g in range(gpus)], download_mbps=900.0,
                upload_mbps=400.0, ip="10.0.0.1")
