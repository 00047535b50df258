"""Hardware knowledge of the simulator: the ruleset's Appendix A model table (v1), alias
normalisation, the §3 verdict, and the names GPUs report themselves under.

The simulator deliberately keeps its own copy of Appendix A (it is the *ground truth* a
simulated node's figures are scattered around, and tests use it to check planted verdicts
independently of the scoring engine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    key: str
    klass: str  # "enterprise" | "community"
    multiplier_milli: int
    fp32_tflops: float
    bw_gbps: float
    mem_gb: float
    aliases: tuple[str, ...]


# Appendix A, model table v1 (ruleset 2026.1).
APPENDIX_A: tuple[Spec, ...] = (
    Spec("H200", "enterprise", 12000, 66.91, 4890.0, 141.0, ("H200", "H200 SXM", "H200 SXM 141GB")),
    Spec("H100", "enterprise", 10000, 66.91, 3360.0, 80.0,
         ("H100", "H100 SXM", "H100 SXM5", "H100 SXM5 80GB", "H100 80GB HBM3")),
    Spec("H100-PCIE", "enterprise", 8500, 51.22, 2040.0, 80.0, ("H100 PCIE", "H100 PCIE 80GB")),
    Spec("H800", "enterprise", 9000, 59.3, 3360.0, 80.0, ("H800", "H800 SXM5", "H800 SXM5 80GB")),
    Spec("A100-80G", "enterprise", 6000, 19.49, 2040.0, 80.0,
         ("A100", "A100 SXM4", "A100 80GB", "A100 SXM4 80GB")),
    Spec("A100-40G", "enterprise", 5000, 19.49, 1560.0, 40.0, ("A100 40GB", "A100 SXM4 40GB")),
    Spec("A100-PCIE", "enterprise", 5500, 19.49, 1940.0, 80.0, ("A100 PCIE", "A100 PCIE 80GB")),
    Spec("A800", "enterprise", 5500, 19.49, 2040.0, 80.0, ("A800", "A800 SXM4 80GB")),
    Spec("L40S", "enterprise", 4000, 91.61, 864.0, 48.0, ("L40S",)),
    Spec("L40", "enterprise", 3500, 90.52, 864.0, 48.0, ("L40",)),
    Spec("A10", "enterprise", 1500, 31.24, 600.2, 24.0, ("A10", "A10 PCIE")),
    Spec("A10G", "enterprise", 1500, 31.52, 600.2, 24.0, ("A10G",)),
    Spec("L4", "enterprise", 1200, 30.29, 300.1, 24.0, ("L4",)),
    Spec("V100-32G", "enterprise", 1500, 15.67, 898.0, 32.0, ("V100 32GB", "V100M32", "V100 SXM2 32GB")),
    Spec("V100-16G", "enterprise", 1200, 16.35, 1130.0, 16.0,
         ("V100", "V100 16GB", "V100M16", "V100 SXM2 16GB")),
    Spec("T4", "enterprise", 400, 8.141, 320.0, 16.0, ("T4",)),
    Spec("P100", "enterprise", 350, 9.526, 732.2, 16.0, ("P100", "P100 PCIE 16GB")),
    Spec("RTX-A6000", "community", 2000, 38.71, 768.0, 48.0, ("RTX A6000", "A6000")),
    Spec("RTX-4090", "community", 1000, 82.58, 1010.0, 24.0, ("RTX 4090", "4090")),
    Spec("RTX-4080", "community", 700, 48.74, 716.8, 16.0, ("RTX 4080",)),
    Spec("RTX-3090", "community", 600, 35.58, 936.2, 24.0, ("RTX 3090",)),
    Spec("RTX-3080", "community", 450, 29.77, 760.3, 10.0, ("RTX 3080",)),
    Spec("RTX-4070", "community", 250, 29.15, 504.2, 12.0, ("RTX 4070",)),
    Spec("RTX-3060", "community", 150, 12.74, 360.0, 12.0, ("RTX 3060", "RTX 3060 12GB")),
)

SPECS: dict[str, Spec] = {s.key: s for s in APPENDIX_A}
ALIASES: dict[str, str] = {a: s.key for s in APPENDIX_A for a in s.aliases}

# Anonymised series of the real inventories: NOT in Appendix A (they must stay unknown_model).
# Their hidden "true" figures are only used to scatter benchmark numbers plausibly.
HIDDEN: dict[str, tuple[float, float, float]] = {
    "G2": (14.2, 448.0, 24.0),
    "G3": (35.6, 936.0, 24.0),
    "GPU-series-1": (60.0, 2000.0, 96.0),
    "GPU-series-2": (98.0, 3350.0, 80.0),
}

_DROP = {"NVIDIA", "GEFORCE", "TESLA"}
_GB = re.compile(r"(\d+) GB")


def normalise(model: str) -> str:
    """Appendix A alias normalisation, steps (1)–(6)."""
    s = model.upper().replace("-", " ").replace("_", " ")
    s = " ".join(w for w in s.split() if w not in _DROP)
    s = _GB.sub(r"\1GB", s)
    return s.strip()


def lookup(model: str) -> Spec | None:
    key = ALIASES.get(normalise(model))
    return SPECS[key] if key else None


def true_figures(true_model: str) -> tuple[float, float, float]:
    """(fp32 TFLOPS, bandwidth GB/s, memory GB) of a real card: Appendix A key or hidden series."""
    if true_model in SPECS:
        s = SPECS[true_model]
        return s.fp32_tflops, s.bw_gbps, s.mem_gb
    return HIDDEN[true_model]


def verdict(claimed_model: str, claimed_count: int, fp32: float, bw: float, vram: float,
            found_count: int) -> str:
    """Ruleset §3 verdict of one benchmark against the registration claim."""
    spec = lookup(claimed_model)
    if spec is None:
        return "unknown_model"
    r_f = fp32 / spec.fp32_tflops
    r_b = bw / spec.bw_gbps
    if r_f > 1.10 or r_b > 1.10:
        return "impossible"
    if r_f < 0.60 or r_b < 0.60 or vram < 0.9 * spec.mem_gb or found_count != claimed_count:
        return "mismatch"
    return "verified"


# What a card calls itself (nvidia-smi style), by true model key.
REPORTED_NAME: dict[str, str] = {
    "H200": "NVIDIA H200",
    "H100": "NVIDIA H100 80GB HBM3",
    "H100-PCIE": "NVIDIA H100 PCIe",
    "H800": "NVIDIA H800",
    "A100-80G": "NVIDIA A100-SXM4-80GB",
    "A100-40G": "NVIDIA A100-SXM4-40GB",
    "A100-PCIE": "NVIDIA A100 80GB PCIe",
    "A800": "NVIDIA A800-SXM4-80GB",
    "L40S": "NVIDIA L40S",
    "L40": "NVIDIA L40",
    "A10": "NVIDIA A10",
    "A10G": "NVIDIA A10G",
    "L4": "NVIDIA L4",
    "V100-32G": "Tesla V100-SXM2-32GB",
    "V100-16G": "Tesla V100-SXM2-16GB",
    "T4": "Tesla T4",
    "P100": "Tesla P100-PCIE-16GB",
    "RTX-A6000": "NVIDIA RTX A6000",
    "RTX-4090": "NVIDIA GeForce RTX 4090",
    "RTX-4080": "NVIDIA GeForce RTX 4080",
    "RTX-3090": "NVIDIA GeForce RTX 3090",
    "RTX-3080": "NVIDIA GeForce RTX 3080",
    "RTX-4070": "NVIDIA GeForce RTX 4070",
    "RTX-3060": "NVIDIA GeForce RTX 3060",
    "G2": "G2",
    "G3": "G3",
    "GPU-series-1": "GPU-series-1",
    "GPU-series-2": "GPU-series-2",
}

# Inventory strings of the real traces -> true model key.
INVENTORY_MODEL: dict[str, str] = {
    "T4": "T4",
    "P100": "P100",
    "V100M16": "V100-16G",
    "V100M32": "V100-32G",
    "A10": "A10",
    "G2": "G2",
    "G3": "G3",
    "A100-SXM4-80GB": "A100-80G",
    "A800-SXM4-80GB": "A800",
    "H800": "H800",
    "GPU-series-1": "GPU-series-1",
    "GPU-series-2": "GPU-series-2",
}

# Ways operators spell a claim, by true model key (the inventory spelling is used as is).
CLAIM_SPELLINGS: dict[str, tuple[str, ...]] = {
    "RTX-4090": ("NVIDIA GeForce RTX 4090", "RTX 4090", "GeForce RTX 4090", "rtx-4090", "4090"),
    "RTX-4080": ("NVIDIA GeForce RTX 4080", "RTX 4080", "GeForce_RTX_4080"),
    "RTX-3090": ("NVIDIA GeForce RTX 3090", "RTX 3090", "geforce rtx 3090"),
    "RTX-3080": ("NVIDIA GeForce RTX 3080", "RTX 3080"),
    "RTX-4070": ("NVIDIA GeForce RTX 4070", "RTX 4070"),
    "RTX-3060": ("NVIDIA GeForce RTX 3060", "RTX 3060 12GB", "RTX-3060"),
    "RTX-A6000": ("NVIDIA RTX A6000", "RTX A6000", "A6000"),
    "H100": ("H100", "NVIDIA H100 80GB HBM3", "H100-SXM5-80GB"),
    "A100-80G": ("A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", "A100 80GB"),
    "A100-40G": ("A100-SXM4-40GB", "A100 40GB"),
    "T4": ("T4", "Tesla T4", "NVIDIA Tesla T4"),
    "H800": ("H800", "NVIDIA H800"),
    "A800": ("A800-SXM4-80GB", "NVIDIA A800-SXM4-80GB"),
    "A10": ("A10", "NVIDIA A10"),
}

# Consumer share for the community pool: (model key, weight).
CONSUMER_MIX: tuple[tuple[str, float], ...] = (
    ("RTX-4090", 0.32),
    ("RTX-3090", 0.20),
    ("RTX-4070", 0.12),
    ("RTX-3060", 0.10),
    ("RTX-4080", 0.10),
    ("RTX-3080", 0.09),
    ("RTX-A6000", 0.07),
)
CONSUMER_COUNTS: tuple[tuple[int, float], ...] = ((1, 0.55), (2, 0.22), (4, 0.16), (8, 0.07))


def price_per_gpu_hour_base_units(true_model: str) -> int:
    """A plausible market price in token base units (6 decimals) per GPU-hour."""
    spec = SPECS.get(true_model)
    milli = spec.multiplier_milli if spec else 800
    return 150_000 + milli * 300
