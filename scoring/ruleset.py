"""Ruleset v1: every parameter of the rules, in one frozen, versioned object.

Spec: ../shared/spec/ruleset-v1.md. A change of any value here is a new ruleset version,
never an edit of this one; `RULESET_V1.params_sha256` is recorded beside every closed epoch
so that an archive can be re-derived with exactly the parameters that closed it.

Readings of the spec that were not pinned word for word (each chosen as the most literal):
- Streak state before the first epoch is "streak 0, previous slot not up", so a non-up slot 0
  of the first epoch resets (to 0) rather than pends (§2, §10 "run the slots forward").
- Exact duplicate = the same validated event, compared field by field, where `occurred_at`
  keeps its written form (an RFC 3339 string and the equal epoch-milliseconds integer are two
  different JSON values, so they conflict) and numbers compare by value (JSON does not tell
  5 from 5.0), and a missing optional field equals an explicit null. Invalid lines never take an id: a valid event after an invalid one with the same
  id is accepted, not a conflict.
- Unknown fields in an event are a `schema` rejection (the models are strict).
- `A` for a node registered before the first closed epoch runs from its registration epoch,
  with u = 0 for every epoch before the first (§10).
- A ping of a node that never registered still makes its slots up and gets it a score row (§10);
  its reputation and components are null.
- `from_future` (§10 as amended 2026-12-07) judges the latest event time a line carries: its
  `occurred_at` and, for a `ping.batch`, every inner ping's (each is a ping event); a job's
  `started_at`, `ended_at` and `committed_until` are not event times. Exactly 5 min after the
  arrival is allowed, later is not. A replay reads the clock once, at its start: every line of
  it arrives then. It is the parser's last check, so a line wrong in another way keeps that reason.
- A job's window (§10, amended): `started_at` before genesis is `before_genesis` (checked after
  `occurred_at`), `ended_at < started_at` is `invalid_window`; `ended_at = started_at` is an empty
  window, not an invalid one, and a `committed_until` before `started_at` only empties the window.
- One namespace of ids (contract): a batch's inner id `B:i` is an event id like any other. Of a
  plain ping (or any event) and an inner ping with one id, the first read stands; the second is an
  exact duplicate when both are the same ping, else a conflict. A batch whose inner ping repeats an
  earlier ping exactly stands without that ping (it is not archived twice), so that a re-sent ping
  and its batch give the same archive in either order; a batch whose inner ping conflicts is
  rejected whole (`conflicting_duplicate`), as one invalid inner ping rejects it.
- A blank line of an event file (whitespace only, any length) is layout, not an input; a Kafka
  message is an input whatever it holds (an empty one is rejected `invalid_json`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal


@dataclass(frozen=True)
class RulesetConfig:
    ruleset_version: str = "2026.1"

    # §1 time
    genesis: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)
    reward_epoch_duration_s: int = 3600  # 2**0 h (= 3600 s)
    slot_duration_s: int = 60
    slots_per_epoch: int = 60  # 3600 s / 60 s
    first_reward_epoch: int | None = None

    # §2 streak
    streak_reset_gap_slots: int = 2  # two consecutive non-up slots reset; one pends

    # §3 hardware
    hw_impossible_ratio: float = 1.10
    hw_mismatch_ratio: float = 0.60
    hw_vram_min_fraction: float = 0.9
    hw_freshness_s: int = 24 * 3600

    # §4 reputation
    rep_weight_availability: float = 0.40
    rep_weight_jobs: float = 0.30
    rep_weight_hardware: float = 0.20
    rep_weight_tenure: float = 0.10
    rep_scale: int = 1000
    availability_half_life_epochs: int = 168  # 7 days of hourly epochs
    tenure_full_hours: int = 720  # 30 days
    penalty_base: float = 0.5
    penalty_window_epochs: int = 720

    # §5 eligibility
    min_streak_slots: int = 300  # 5 h
    min_up_slots: int = 1

    # §6 emission
    token_decimals: int = 6
    total_supply_tokens: int = 500_000_000
    annual_inflation: str = "0.08"
    epochs_per_year: int = 8760  # 365 * 24
    emission_decay_per_epoch: str = "1.3886952e-5"
    emission_decimal_digits: int = 50
    enterprise_share_bps: int = 9500  # of 10000

    # §8 slashing
    downtime_min_gap_slots: int = 5
    downtime_stake_divisor: int = 3
    finality_delay_s: int = 24 * 3600

    # §9 close
    allowed_lateness_s: int = 300

    # §10 ingest bounds
    max_line_bytes: int = 1 << 20  # 1 MiB
    max_batch_pings: int = 10_000
    max_future_skew_s: int = 300
    max_gpu_count: int = 64
    max_id_chars: int = 128
    max_base_units: int = 2**63 - 1

    model_table_version: str = "A.v1"

    # Derived constants, fixed here once so that every path uses the same binary64 value.
    availability_decay: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "availability_decay", 2.0 ** (-1.0 / self.availability_half_life_epochs)
        )

    @property
    def genesis_us(self) -> int:
        return int(self.genesis.timestamp()) * 1_000_000

    @property
    def reward_epoch_us(self) -> int:
        return self.reward_epoch_duration_s * 1_000_000

    @property
    def slot_us(self) -> int:
        return self.slot_duration_s * 1_000_000

    @property
    def emission_base(self) -> Decimal:
        return Decimal(self.total_supply_tokens)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["genesis"] = self.genesis.isoformat()
        return out

    @property
    def params_sha256(self) -> str:
        """Hash of every parameter and of the model table, so an archive names its rules."""
        from scoring.hardware import MODEL_TABLE

        doc = {"params": self.as_dict(), "model_table": [m.as_row() for m in MODEL_TABLE]}
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


RULESET_V1 = RulesetConfig()
