"""What the simulator draws its realism from: the real traces, or the profile derived from them.

Two sources give the same `Traces`, field for field:

- the packaged profile `trace_profile.npz` beside this module (the default: a fresh clone has no
  traces beside it), a few tens of KB holding exactly the figures the simulator samples from:
  the per-minute presence matrix of the duty-cycle trace's containers (bit-packed), the two GPU
  inventories in their sorted order, and the pod list's phases, GPU requests and times;
- the full traces in a folder (`data_dir`, `epochal simulate --traces DIR`, or
  `$EPOCHAL_DATA_DIR`), the files of alibaba/clusterdata listed in `REQUIRED`.

`python -m epochal.sim.profile --traces DIR --out FILE` derives the profile from the traces
(`derive_traces` then `write_profile`); a test holds the committed profile to what that derives
whenever the traces are present, and a simulation from either source is byte-identical.

The profile is a NumPy `.npz` written deterministically (sorted members, fixed timestamps,
deflate level 9), read with `allow_pickle=False`: data, never code.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

DUTY_CYCLE = "v2026-GenAI_pod_gpu_duty_cycle_anon.tar.gz"
OPENB_NODES = "gpu-v2023_csv_openb_node_list_all_node.csv"
OPENB_PODS = "gpu-v2023_csv_openb_pod_list_default.csv"
SPOT_NODES = "v2026-spot-gpu_node_info_df.csv"
REQUIRED = (DUTY_CYCLE, OPENB_NODES, OPENB_PODS, SPOT_NODES)

PROFILE = Path(__file__).with_name("trace_profile.npz")
PROFILE_FORMAT = 1  # bump when the members or their meaning change
POD_COLUMNS = ("phase", "num_gpu", "gpu_milli", "creation", "scheduled", "deletion")

SLOT_S = 60


def resolve_data_dir(data_dir: Path | str | None = None) -> Path | None:
    """The folder of full traces to read: the argument, else $EPOCHAL_DATA_DIR; None when
    neither is given (the simulator then reads the packaged profile)."""
    if data_dir is not None:
        p, said = Path(data_dir), "traces folder"
    elif os.environ.get("EPOCHAL_DATA_DIR"):
        p, said = Path(os.environ["EPOCHAL_DATA_DIR"]), "$EPOCHAL_DATA_DIR"
    else:
        return None
    if not p.is_dir():
        raise ValueError(f"{said} {p} not found (leave --traces and $EPOCHAL_DATA_DIR unset to use "
                         f"the packaged profile of the traces).")
    missing = [f for f in REQUIRED if not (p / f).is_file()]
    if missing:
        raise ValueError(f"{said} {p} lacks {', '.join(missing)}.")
    return p


@dataclass(frozen=True, eq=False)
class Traces:
    presence: np.ndarray  # (containers, slots) bool: container seen in that 60 s slot
    containers: tuple[str, ...]
    inventory_openb: tuple[tuple[str, int], ...]  # (model string, gpu count), CPU nodes skipped
    inventory_spot: tuple[tuple[str, int], ...]
    pods: dict[str, np.ndarray]  # phase (str), num_gpu, gpu_milli, creation, scheduled, deletion

    def differences(self, other: Traces) -> list[str]:
        """Names of the fields (and pod columns) that differ, with dtypes compared too."""
        diff = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "presence":
                same = a.dtype == b.dtype and np.array_equal(a, b)
            elif f.name == "pods":
                same = list(a) == list(b)
                diff += [f"pods.{k}" for k in a if k in b and not (a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]))]
            else:
                same = a == b
            if not same:
                diff.append(f.name)
        return diff


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


def derive_traces(data_dir: Path) -> Traces:
    """The simulator's figures read from the full traces in `data_dir`."""
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


# ---------------------------------------------------------------------------- the profile file
def _category(values) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct strings, uint8 codes into them)."""
    vocab, codes = np.unique(np.asarray(list(values), dtype=str), return_inverse=True)
    if vocab.size > 255:
        raise ValueError(f"{vocab.size} distinct values do not fit a uint8 code.")
    return vocab, codes.astype(np.uint8)


def _small_int(a: np.ndarray) -> np.ndarray:
    """The narrowest signed integer type that holds `a` exactly (widened back on reading)."""
    a = np.asarray(a, dtype=np.int64)
    for t in (np.int8, np.int16, np.int32):
        info = np.iinfo(t)
        if a.size == 0 or (a.min() >= info.min and a.max() <= info.max):
            return a.astype(t)
    return a


def profile_arrays(t: Traces) -> dict[str, np.ndarray]:
    """The members of the profile file for `t` (compact dtypes, no Python objects)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array([PROFILE_FORMAT], dtype=np.int64),
        "presence_shape": np.array(t.presence.shape, dtype=np.int64),
        "presence_bits": np.packbits(t.presence, axis=1),
        "containers": np.array(t.containers, dtype="S"),
    }
    for name, inv in (("openb", t.inventory_openb), ("spot", t.inventory_spot)):
        vocab, codes = _category(m for m, _ in inv)
        arrays[f"inventory_{name}_models"] = vocab
        arrays[f"inventory_{name}_model"] = codes
        arrays[f"inventory_{name}_gpus"] = _small_int(np.array([c for _, c in inv], dtype=np.int64))
    if tuple(t.pods) != POD_COLUMNS:
        raise ValueError(f"pod columns {tuple(t.pods)} are not {POD_COLUMNS}.")
    vocab, codes = _category(t.pods["phase"])
    arrays["pods_phases"] = vocab
    arrays["pods_phase"] = codes
    for k in POD_COLUMNS[1:]:
        arrays[f"pods_{k}"] = _small_int(t.pods[k])
    return arrays


def write_profile(t: Traces, path: Path) -> Path:
    """Write `t` as a profile file, the same bytes for the same figures (fixed member order and
    timestamps); written to a temporary name then renamed."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, a in sorted(profile_arrays(t).items()):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path


def read_profile(path: Path = PROFILE) -> Traces:
    """The `Traces` a profile file holds (the same dtypes as `derive_traces` gives)."""
    with np.load(Path(path), allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    if int(a["format"][0]) != PROFILE_FORMAT:
        raise ValueError(f"profile {path} has format {int(a['format'][0])}, this code reads {PROFILE_FORMAT}.")
    rows, slots = (int(x) for x in a["presence_shape"])
    presence = np.unpackbits(a["presence_bits"], axis=1, count=slots).astype(bool)
    presence.setflags(write=False)
    if presence.shape != (rows, slots):
        raise ValueError(f"profile {path}: presence is {presence.shape}, expected {(rows, slots)}.")
    containers = tuple(c.decode() for c in a["containers"].tolist())

    def inventory(name: str) -> tuple[tuple[str, int], ...]:
        models = a[f"inventory_{name}_models"].tolist()
        return tuple((models[m], g) for m, g in zip(a[f"inventory_{name}_model"].tolist(),
                                                    a[f"inventory_{name}_gpus"].tolist()))

    phases = a["pods_phases"]
    pods = {"phase": phases[a["pods_phase"]].astype(str)}
    pods |= {k: a[f"pods_{k}"].astype(np.int64) for k in POD_COLUMNS[1:]}
    return Traces(presence, containers, inventory("openb"), inventory("spot"), pods)


@lru_cache(maxsize=4)
def _load(data_dir: str | None) -> Traces:
    return read_profile(PROFILE) if data_dir is None else derive_traces(Path(data_dir))


def load_traces(data_dir: Path | str | None = None) -> Traces:
    """The full traces in `data_dir` (or $EPOCHAL_DATA_DIR), else the packaged profile."""
    d = resolve_data_dir(data_dir)
    return _load(None if d is None else str(d.resolve()))
