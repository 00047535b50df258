"""Loading the real traces the simulator draws its realism from (read-only, at run time)."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

DUTY_CYCLE = "v2026-GenAI_pod_gpu_duty_cycle_anon.tar.gz"
OPENB_NODES = "gpu-v2023_csv_openb_node_list_all_node.csv"
OPENB_PODS = "gpu-v2023_csv_openb_pod_list_default.csv"
SPOT_NODES = "v2026-spot-gpu_node_info_df.csv"
REQUIRED = (DUTY_CYCLE, OPENB_NODES, OPENB_PODS, SPOT_NODES)

SLOT_S = 60


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """Argument, else $EPOCHAL_DATA_DIR, else <repo>/../shared/data/alibaba-clusterdata."""
    if data_dir is not None:
        p = Path(data_dir)
    elif os.environ.get("EPOCHAL_DATA_DIR"):
        p = Path(os.environ["EPOCHAL_DATA_DIR"])
    else:
        repo = Path(__file__).resolve().parents[2]
        p = repo.parent / "shared" / "data" / "alibaba-clusterdata"
    if not p.is_dir():
        raise ValueError(f"data directory {p} not found (pass data_dir or set EPOCHAL_DATA_DIR).")
    missing = [f for f in REQUIRED if not (p / f).is_file()]
    if missing:
        raise ValueError(f"data directory {p} lacks {', '.join(missing)}.")
    return p


@dataclass(frozen=True)
class Traces:
    presence: np.ndarray  # (containers, slots) bool: container seen in that 60 s slot
    containers: tuple[str, ...]
    inventory_openb: tuple[tuple[str, int], ...]  # (model string, gpu count), CPU nodes skipped
    inventory_spot: tuple[tuple[str, int], ...]
    pods: dict[str, np.ndarray]  # phase (str), num_gpu, gpu_milli, creation, scheduled, deletion


def load_presence(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-container presence per minute slot from the duty-cycle trace (57 s samples)."""
    with tarfile.open(path) as tf:
        member = next(m for m in tf.getmembers() if m.isfile() and m.name.endswith(".csv"))
        raw = tf.extractfile(member).read()  # type: ignore[union-attr]
    df = pl.read_csv(io.BytesIO(raw), columns=["timestamp_anon", "container_ip"])
    t0 = df["timestamp_anon"].min()
    df = df.with_columns(((pl.col("timestamp_anon") - t0) // SLOT_S).cast(pl.Int64).alias("slot"))
    containers = tuple(sorted(df["container_ip"].unique().to_list()))
    idx = pl.DataFrame({"container_ip": list(containers), "ci": np.arange(len(containers))})
    df = df.join(idx, on="container_ip", how="left")
    n_slots = int(df["slot"].max()) + 1
    m = np.zeros((len(containers), n_slots), dtype=bool)
    m[df["ci"].to_numpy(), df["slot"].to_numpy()] = True
    return m, containers


@lru_cache(maxsize=4)
def _load(data_dir: str) -> Traces:
    d = Path(data_dir)
    presence, containers = load_presence(d / DUTY_CYCLE)
    ob = pl.read_csv(d / OPENB_NODES).filter(pl.col("gpu") > 0).sort("sn")
    inv_openb = tuple(zip(ob["model"].to_list(), ob["gpu"].to_list()))
    sp = pl.read_csv(d / SPOT_NODES).sort("node_name")
    inv_spot = tuple(zip(sp["gpu_model"].to_list(), sp["gpu_capacity_num"].to_list()))
    pods = pl.read_csv(d / OPENB_PODS).filter(pl.col("num_gpu") > 0).sort("name")
    pod_arrays = {
        "phase": pods["pod_phase"].to_numpy().astype(str),
        "num_gpu": pods["num_gpu"].to_numpy().astype(np.int64),
        "gpu_milli": pods["gpu_milli"].fill_null(1000).to_numpy().astype(np.int64),
        "creation": pods["creation_time"].fill_null(-1).to_numpy().astype(np.int64),
        "scheduled": pods["scheduled_time"].fill_null(-1).to_numpy().astype(np.int64),
        "deletion": pods["deletion_time"].fill_null(-1).to_numpy().astype(np.int64),
    }
    presence.setflags(write=False)
    return Traces(presence, containers, inv_openb, inv_spot, pod_arrays)


def load_traces(data_dir: Path | str | None = None) -> Traces:
    return _load(str(resolve_data_dir(data_dir).resolve()))
