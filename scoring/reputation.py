"""Reputation (ruleset §4): an integer 0–1000 with every component reported beside it.

    R = round(1000 · (0.40·A + 0.30·J + 0.20·H + 0.10·T) · P)      (round half to even)

evaluated left to right in IEEE binary64, exactly as written:
    x = 0.40*A;  x = x + 0.30*J;  x = x + 0.20*H;  x = x + 0.10*T;  R = round((1000*x)*P)

- A, availability: bias-corrected EWMA of per-epoch uptime_ratio u since the registration
  epoch, half-life 168 epochs, in the running form num = d·num + u, den = d·den + 1
  (d = 2^(−1/168), fixed once in the ruleset config); A = num / den. Epochs before the first
  closed epoch, and epochs of the node with no row, count u = 0.
- J = (s + 1) / (s + f + 2): s succeeded, f failed_node jobs (first job.completed per job_id),
  occurred_at < end(e).
- H = hw_ratio of the latest benchmark when the node is hardware-verified, else 0.
- T = min(1, hours_since_registration / 720), hours = (end(e) − registered_at) / 3600 s.
- P = 0.5 ^ (decisions counted by §10 "Slashes in P").

Scalar functions are the reference; each `_np` function is its vectorised twin used by the
close over many nodes, held to the scalar one by a differential test (tests/property:
test_reputation_properties.py, test_rule_twins.py; numpy ufuncs round each operation in
binary64 exactly like Python floats; no fused multiply-add).
"""

from __future__ import annotations

import numpy as np

from scoring.ruleset import RULESET_V1, RulesetConfig


def compute_availability_step(num: float, den: float, uptime_ratio: float, cfg: RulesetConfig = RULESET_V1) -> tuple[float, float]:
    d = cfg.availability_decay
    return d * num + uptime_ratio, d * den + 1.0


def compute_availability_step_np(num: np.ndarray, den: np.ndarray, uptime_ratio: np.ndarray,
                                 cfg: RulesetConfig = RULESET_V1) -> tuple[np.ndarray, np.ndarray]:
    d = cfg.availability_decay
    return d * num + uptime_ratio, d * den + 1.0


def compute_availability_state(history: dict[int, float], first_epoch: int, stop_epoch: int,
                               cfg: RulesetConfig = RULESET_V1) -> tuple[float, float]:
    """(num, den) after the epochs first_epoch .. stop_epoch − 1 from the start (0, 0), with u =
    history[k], 0 where none is recorded (an epoch of the node that never closed, §10)."""
    num, den = 0.0, 0.0
    for k in range(first_epoch, stop_epoch):
        num, den = compute_availability_step(num, den, history.get(k, 0.0), cfg)
    return num, den


def compute_availability(num: float, den: float) -> float:
    return num / den


def compute_availability_np(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return num / den


def compute_jobs_score(succeeded: int, failed_node: int) -> float:
    return (succeeded + 1) / (succeeded + failed_node + 2)


def compute_jobs_score_np(succeeded: np.ndarray, failed_node: np.ndarray) -> np.ndarray:
    # int64 sums, then one correctly rounded division of two exact binary64 values, as int / int
    # (exact while the counts stay below 2^53)
    s, f = succeeded.astype(np.int64), failed_node.astype(np.int64)
    return (s + 1) / (s + f + 2)


def compute_hardware_score(hardware_verified: bool, hw_ratio: float | None) -> float:
    """H: the hw_ratio of the latest benchmark when the node is hardware-verified, else 0."""
    return float(hw_ratio) if hardware_verified else 0.0


def compute_hardware_score_np(hardware_verified: np.ndarray, hw_ratio: np.ndarray) -> np.ndarray:
    """`compute_hardware_score` over arrays (`hw_ratio` NaN where there is none)."""
    return np.where(hardware_verified, np.nan_to_num(hw_ratio, nan=0.0), 0.0)


def compute_tenure(epoch_end_us: int, registered_at_us: int, cfg: RulesetConfig = RULESET_V1) -> float:
    hours = (epoch_end_us - registered_at_us) / 3_600_000_000
    return min(1.0, hours / cfg.tenure_full_hours)


def compute_penalty(slash_count: int, cfg: RulesetConfig = RULESET_V1) -> float:
    return cfg.penalty_base**slash_count


def compute_penalty_np(slash_count: np.ndarray, cfg: RulesetConfig = RULESET_V1) -> np.ndarray:
    """`compute_penalty` of each distinct count (the scalar rule itself), spread over the array."""
    counts, index = np.unique(np.asarray(slash_count, dtype=np.int64), return_inverse=True)
    table = np.array([compute_penalty(int(c), cfg) for c in counts], dtype=np.float64)
    return table[index.reshape(-1)] if len(counts) else np.zeros(0, dtype=np.float64)


def compute_reputation(A: float, J: float, H: float, T: float, P: float, cfg: RulesetConfig = RULESET_V1) -> int:
    x = cfg.rep_weight_availability * A
    x = x + cfg.rep_weight_jobs * J
    x = x + cfg.rep_weight_hardware * H
    x = x + cfg.rep_weight_tenure * T
    return round(cfg.rep_scale * x * P)


def compute_reputation_np(A, J, H, T, P, cfg: RulesetConfig = RULESET_V1) -> np.ndarray:
    x = cfg.rep_weight_availability * np.asarray(A, dtype=np.float64)
    x = x + cfg.rep_weight_jobs * np.asarray(J, dtype=np.float64)
    x = x + cfg.rep_weight_hardware * np.asarray(H, dtype=np.float64)
    x = x + cfg.rep_weight_tenure * np.asarray(T, dtype=np.float64)
    return np.rint(float(cfg.rep_scale) * x * np.asarray(P, dtype=np.float64)).astype(np.int64)


def compute_tenure_np(epoch_end_us: int, registered_at_us: np.ndarray, cfg: RulesetConfig = RULESET_V1) -> np.ndarray:
    # int64 difference then one correctly rounded division, like Python's int / int
    # (exact while the difference stays below 2^53 µs, about 285 years).
    diff = (np.int64(epoch_end_us) - registered_at_us.astype(np.int64)).astype(np.float64)
    hours = diff / 3_600_000_000.0
    return np.minimum(1.0, hours / float(cfg.tenure_full_hours))
