"""Emission and pools (ruleset §6).

    emission(e) = floor(500_000_000 · 10^6 · (0.08 / 8760) · (1 − 1.3886952e-5)^e)

evaluated with `decimal` at 50 significant digits, left to right as written (§10 "Emission"),
never with binary floats. Pools: enterprise = floor(emission · 9500 / 10000), community = the rest.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Context, Decimal

from scoring.ruleset import RULESET_V1, RulesetConfig


def compute_emission(reward_epoch: int, cfg: RulesetConfig = RULESET_V1) -> int:
    if reward_epoch < 0:
        raise ValueError("reward_epoch must be >= 0")
    ctx = Context(prec=cfg.emission_decimal_digits)
    D = Decimal
    value = ctx.multiply(D(cfg.total_supply_tokens), ctx.power(D(10), cfg.token_decimals))
    value = ctx.multiply(value, ctx.divide(D(cfg.annual_inflation), D(cfg.epochs_per_year)))
    decay = ctx.subtract(D(1), D(cfg.emission_decay_per_epoch))
    value = ctx.multiply(value, ctx.power(decay, reward_epoch))
    return int(value.to_integral_value(rounding=ROUND_FLOOR, context=ctx))


def compute_pools(emission_base_units: int, cfg: RulesetConfig = RULESET_V1) -> tuple[int, int]:
    enterprise = emission_base_units * cfg.enterprise_share_bps // 10_000
    return enterprise, emission_base_units - enterprise
