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
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from decimal import Decimal

from scoring.models import MODEL_TABLE


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
        doc = {"params": self.as_dict(), "model_table": [m.as_row() for m in MODEL_TABLE]}
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


# Parameters the archive itself was built with (each event's reward epoch and slot, the ingest's
# bounds, the streak's reset gap the code implements): a ruleset that changes one of them cannot
# be evaluated over an existing archive (the what-if run refuses it).
ARCHIVE_PARAMETERS = ("genesis", "reward_epoch_duration_s", "slot_duration_s", "slots_per_epoch",
                      "first_reward_epoch", "streak_reset_gap_slots", "allowed_lateness_s", "max_line_bytes",
                      "max_batch_pings", "max_future_skew_s", "max_gpu_count", "max_id_chars", "max_base_units",
                      "model_table_version")


def check_ruleset(cfg: RulesetConfig) -> list[str]:
    """The relations between the parameters that the rules rely on, as sentences for each one
    that does not hold (empty when the config is consistent). tests/unit/test_ruleset_constants.py
    holds RULESET_V1 to them; the what-if run checks a proposed ruleset with them."""
    problems = []

    def need(cond: bool, why: str) -> None:
        if not cond:
            problems.append(why)

    # §1 time
    need(cfg.genesis.tzinfo is not None and cfg.genesis.utcoffset().total_seconds() == 0
         and cfg.genesis.microsecond == 0, "genesis must be a whole second in UTC")
    need(cfg.slot_duration_s > 0 and cfg.reward_epoch_duration_s > 0, "durations must be positive")
    need(cfg.slots_per_epoch * cfg.slot_duration_s == cfg.reward_epoch_duration_s,
         "slots_per_epoch × slot_duration_s must equal reward_epoch_duration_s")
    need(0 < cfg.slots_per_epoch <= 63, "slots_per_epoch must be 1..63 (an epoch's slots are the bits of a BIGINT)")
    # §2 streak
    need(cfg.streak_reset_gap_slots == 2, "streak_reset_gap_slots must be 2 (the streak rule resets on two)")
    # §3 hardware
    need(0 < cfg.hw_mismatch_ratio < 1 < cfg.hw_impossible_ratio,
         "hw_mismatch_ratio must lie in (0, 1) and hw_impossible_ratio above 1")
    need(0 < cfg.hw_vram_min_fraction <= 1, "hw_vram_min_fraction must lie in (0, 1]")
    need(cfg.hw_freshness_s >= 0, "hw_freshness_s must be >= 0")
    # §4 reputation
    weights = (cfg.rep_weight_availability, cfg.rep_weight_jobs, cfg.rep_weight_hardware, cfg.rep_weight_tenure)
    need(all(w >= 0 for w in weights) and sum(Decimal(repr(w)) for w in weights) == 1,
         "the four reputation weights must be >= 0 and sum to 1")
    need(cfg.rep_scale > 0, "rep_scale must be positive")
    need(cfg.availability_half_life_epochs > 0, "availability_half_life_epochs must be positive")
    need(cfg.tenure_full_hours > 0, "tenure_full_hours must be positive")
    need(0 < cfg.penalty_base <= 1, "penalty_base must lie in (0, 1]")
    need(cfg.penalty_window_epochs >= 0, "penalty_window_epochs must be >= 0")
    # §5 eligibility
    need(cfg.min_streak_slots >= 0, "min_streak_slots must be >= 0")
    need(0 <= cfg.min_up_slots <= cfg.slots_per_epoch, "min_up_slots must lie in 0..slots_per_epoch")
    # §6 emission and pools
    need(cfg.token_decimals >= 0 and cfg.total_supply_tokens >= 0, "supply and decimals must be >= 0")
    need(cfg.epochs_per_year * cfg.reward_epoch_duration_s == 365 * 24 * 3600,
         "epochs_per_year × reward_epoch_duration_s must be 365 days")
    try:
        inflation, decay = Decimal(cfg.annual_inflation), Decimal(cfg.emission_decay_per_epoch)
        need(inflation >= 0, "annual_inflation must be >= 0")
        need(0 <= decay < 1, "emission_decay_per_epoch must lie in [0, 1)")
    except ArithmeticError:
        problems.append("annual_inflation and emission_decay_per_epoch must be decimal numbers")
    need(cfg.emission_decimal_digits >= 28, "emission_decimal_digits must be at least 28")
    need(0 <= cfg.enterprise_share_bps <= 10_000, "enterprise_share_bps must lie in 0..10000 (the pools split the emission)")
    # §8 slashing
    need(cfg.downtime_min_gap_slots >= 1 and cfg.downtime_stake_divisor >= 1,
         "downtime_min_gap_slots and downtime_stake_divisor must be >= 1")
    need(cfg.finality_delay_s >= 0, "finality_delay_s must be >= 0")
    # §9, §10
    need(0 <= cfg.allowed_lateness_s < cfg.reward_epoch_duration_s, "allowed_lateness_s must be shorter than an epoch")
    need(cfg.max_base_units == 2**63 - 1, "max_base_units must be 2^63 − 1 (amounts are BIGINT)")
    return problems


RULESET_V1 = RulesetConfig()


class RulesetError(ValueError):
    """A proposed ruleset that cannot be used, in one sentence."""


def ruleset_from_mapping(values: dict, base: RulesetConfig = RULESET_V1) -> RulesetConfig:
    """A ruleset from parameter values (e.g. a TOML file's), every other parameter as in `base`.
    It must name a `ruleset_version` of its own; an unknown key, a value of the wrong type, a
    parameter the archive was built with, or a broken relation (`check_ruleset`) is a
    `RulesetError` saying which."""
    hints = typing.get_type_hints(RulesetConfig)
    settable = {f.name for f in fields(RulesetConfig) if f.init}
    for key in values:
        if key not in settable:
            derived = " (it is derived from the others)" if key in hints else ""
            raise RulesetError(f"unknown ruleset parameter {key!r}{derived}")
    version = values.get("ruleset_version")
    if not isinstance(version, str) or not version.strip():
        raise RulesetError("the ruleset needs a ruleset_version of its own (a non-empty string)")
    if version == base.ruleset_version:
        raise RulesetError(f"ruleset_version {version!r} is the version of the ruleset in force; give this one its own")
    clean = {}
    for key, value in values.items():
        want = hints[key]
        if want is datetime:
            if isinstance(value, str):
                try:
                    value = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise RulesetError(f"{key} must be an RFC 3339 time, not {value!r}") from None
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise RulesetError(f"{key} must be a time with its UTC offset, not {value!r}")
        elif want in (int, int | None):
            if not (isinstance(value, int) and not isinstance(value, bool)):
                raise RulesetError(f"{key} must be an integer, not {value!r}")
        elif want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RulesetError(f"{key} must be a number, not {value!r}")
            value = float(value)
        elif want is str and not isinstance(value, str):
            raise RulesetError(f"{key} must be a string, not {value!r}")
        clean[key] = value
    cfg = replace(base, **clean)
    fixed = [k for k in ARCHIVE_PARAMETERS if getattr(cfg, k) != getattr(base, k)]
    if fixed:
        raise RulesetError(f"{fixed[0]} cannot change over an existing archive (its events were archived with it)")
    problems = check_ruleset(cfg)
    if problems:
        raise RulesetError(problems[0])
    return cfg
