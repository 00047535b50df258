"""A small kit to write event fixtures inline, as short readable documents.

    kit = EventKit()
    kit.register("n1", "H100", gpus=8)
    kit.pings("n1", minutes=range(0, 360))
    kit.benchmark("n1", at_min=1, fp32=60.0, bw=3000.0, vram=80.0)
    kit.write(tmp_path / "events.jsonl")

Times are minutes after genesis unless given otherwise; ids are deterministic.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import base58
import orjson

GENESIS_MS = 1767225600000  # 2026-01-01T00:00:00Z


def wallet_for(name: str) -> str:
    return base58.b58encode(hashlib.sha256(name.encode()).digest()).decode()


def ms(minute: float) -> int:
    return GENESIS_MS + int(minute * 60_000)


class EventKit:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def add(self, event: dict) -> dict:
        self.events.append(event)
        return event

    def register(self, node: str, model: str, gpus: int = 1, at_min: float = -1, stake: int = 3_000_000,
                 event_id: str | None = None, **extra) -> dict:
        # at_min = -1: one minute before genesis would be rejected, so registrations default to
        # genesis itself (epoch 0) - callers wanting "before epoch 1" use at_min < 60.
        at = ms(max(at_min, 0))
        return self.add(dict(event_id=event_id or f"reg-{node}", event_type="node.registered", schema_version=1,
                             node_id=node, occurred_at=at, wallet=wallet_for(node), gpu_model=model,
                             gpu_count=gpus, region="eu-west", ip="10.0.0.1", stake_base_units=stake, **extra))

    def benchmark(self, node: str, at_min: float, fp32: float, bw: float, vram: float, gpus: int = 1,
                  fingerprints: list[str] | None = None, event_id: str | None = None, model: str = "x") -> dict:
        return self.add(dict(event_id=event_id or f"bench-{node}-{at_min}", event_type="benchmark",
                             schema_version=1, node_id=node, occurred_at=ms(at_min), gpu_model=model,
                             gpu_count=gpus, fp32_tflops=fp32, mem_bandwidth_gbps=bw, vram_gb=vram,
                             gpu_fingerprints=fingerprints if fingerprints is not None
                             else [f"fp-{node}-{i}" for i in range(gpus)],
                             download_mbps=900.0, upload_mbps=400.0, ip="10.0.0.1"))

    def pings(self, node: str, minutes, reachable: bool = True, second: int = 7, checker: str = "chk-1") -> None:
        for m in minutes:
            self.add(dict(event_id=f"ping-{node}-{m}-{second}", event_type="ping", schema_version=1, node_id=node,
                          occurred_at=ms(m) + second * 1000, checker_id=checker, reachable=reachable, rtt_ms=20.5))

    def job(self, node: str, job_id: str, start_min: float, end_min: float, status: str = "succeeded",
            committed_until_min: float | None = None, at_min: float | None = None, event_id: str | None = None) -> dict:
        return self.add(dict(event_id=event_id or f"job-{job_id}", event_type="job.completed", schema_version=1,
                             node_id=node, occurred_at=ms(at_min if at_min is not None else end_min),
                             job_id=job_id, buyer_id="buyer-1", started_at=ms(start_min), ended_at=ms(end_min),
                             committed_until=ms(committed_until_min if committed_until_min is not None else end_min),
                             status=status, gpu_hours=1.0, fee_base_units=1000))

    def stake_changed(self, node: str, at_min: float, stake: int, event_id: str | None = None) -> dict:
        return self.add(dict(event_id=event_id or f"stake-{node}-{at_min}", event_type="node.stake_changed",
                             schema_version=1, node_id=node, occurred_at=ms(at_min), stake_base_units=stake))

    def appeal(self, node: str, decision_id: str, at_min: float, event_id: str | None = None) -> dict:
        return self.add(dict(event_id=event_id or f"appeal-{decision_id[:12]}-{at_min}", event_type="appeal.upheld",
                             schema_version=1, node_id=node, occurred_at=ms(at_min), decision_id=decision_id))

    def lines(self) -> list[bytes]:
        return [orjson.dumps(e) for e in self.events]

    def write(self, path: Path, lines: list[bytes] | None = None) -> Path:
        path.write_bytes(b"".join(line + b"\n" for line in (lines if lines is not None else self.lines())))
        return path


def shuffled(lines: list[bytes], seed: int) -> list[bytes]:
    out = list(lines)
    random.Random(seed).shuffle(out)
    return out


# The specs of Appendix A for a few models, to write verified benchmarks.
SPEC = {
    "H100": (66.91, 3360.0, 80.0),
    "RTX 4090": (82.58, 1010.0, 24.0),
    "T4": (8.141, 320.0, 16.0),
    "A100": (19.49, 2040.0, 80.0),
}


def honest_network(kit: EventKit, hours: int = 8) -> None:
    """Four nodes: an H100 box, a 4090 with a short outage, an unknown model, an unregistered one."""
    kit.register("n-h100", "NVIDIA H100 80GB HBM3", gpus=8)
    kit.benchmark("n-h100", 1, *[x * 0.95 for x in SPEC["H100"][:2]], SPEC["H100"][2] * 0.98, gpus=8)
    kit.register("n-4090", "NVIDIA GeForce RTX 4090", gpus=1)
    kit.benchmark("n-4090", 1, *[x * 0.97 for x in SPEC["RTX 4090"][:2]], 23.9)
    kit.register("n-anon", "GPU-series-1", gpus=2)
    kit.benchmark("n-anon", 1, 10.0, 100.0, 16.0, gpus=2)
    minutes = range(0, hours * 60 + 10)
    kit.pings("n-h100", minutes)
    kit.pings("n-4090", [m for m in minutes if not 200 <= m < 203])
    kit.pings("n-anon", [m for m in minutes if m % 7 != 3])
    kit.pings("n-ghost", range(30, 90))
    kit.job("n-h100", "job-1", 10, 100)
    kit.job("n-h100", "job-2", 110, 130, status="failed_user")
