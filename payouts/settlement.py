"""The settlement plan: what each wallet is owed, cut into batches of transfers (pure, no I/O).

The treasury pays differences, not amounts, as Helium's distributor does: a wallet is owed its
cumulative entitlement (Σ of its `epoch_rewards.amount_base_units` over the epochs the treasury
has settled, plus the one it is settling) minus what is already paid to it (Σ of its confirmed
transfers, plus any transfer recorded and not yet known to have failed). A repeated run, or a run
resumed after a crash, therefore finds nothing owed for what was paid, and can never pay twice.
Each wallet is paid once per plan, the sum of its nodes' rewards (one wallet may own many nodes).

Guarantees (pinned by property tests of the same names in tests/property/test_settlement_properties.py):
- conservation: Σ planned == Σ entitlement − Σ paid, and the batches hold exactly the plan
- never_negative: every planned transfer is > 0; a wallet paid more than its entitlement is a
  broken invariant (the run stops before anything is sent), never a negative transfer
- each_wallet_once_per_batch (and once per plan)
- batches_fit: every batch passes the caller's `fits` (the transaction's size and account limits),
  and each batch but the last is maximal: the next transfer would not have fitted
- pays_differences_not_amounts: planning again after a plan was paid finds nothing owed
Money is Python integers of base units throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from scoring.invariants import invariant


@dataclass(frozen=True)
class Transfer:
    wallet: str
    amount_base_units: int


@dataclass(frozen=True)
class SettlementPlan:
    reward_epoch: int
    transfers: tuple[Transfer, ...]  # one per owed wallet, in wallet (byte) order
    entitlement_base_units: int  # Σ entitlement of the wallets considered
    paid_base_units: int  # Σ already paid to them

    @property
    def total_base_units(self) -> int:
        return sum(t.amount_base_units for t in self.transfers)


def compute_entitlements(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(wallet, amount_base_units) rows, e.g. every node's reward of the epochs counted → per wallet."""
    out: dict[str, int] = {}
    for wallet, amount in rows:
        amount = int(amount)
        invariant(amount >= 0, f"a reward is never negative ({wallet}: {amount})")
        out[wallet] = out.get(wallet, 0) + amount
    return out


def compute_owed(entitlements: Mapping[str, int], paid: Mapping[str, int]) -> dict[str, int]:
    """owed(w) = entitlement(w) − paid(w), for the wallets owed something (> 0)."""
    for wallet, amount in paid.items():
        invariant(amount >= 0, f"a paid total is never negative ({wallet}: {amount})")
        invariant(amount <= entitlements.get(wallet, 0),
                  f"wallet {wallet} was paid {amount} base units, more than its entitlement "
                  f"{entitlements.get(wallet, 0)}")
    owed = {w: e - paid.get(w, 0) for w, e in entitlements.items()}
    return {w: a for w, a in owed.items() if a > 0}


def plan_settlement(reward_epoch: int, entitlements: Mapping[str, int], paid: Mapping[str, int]) -> SettlementPlan:
    """The transfers that bring every wallet's paid total up to its entitlement."""
    owed = compute_owed(entitlements, paid)
    transfers = tuple(Transfer(w, owed[w]) for w in sorted(owed, key=lambda w: w.encode()))
    entitled = sum(entitlements.values())
    already = sum(paid.get(w, 0) for w in entitlements)
    plan = SettlementPlan(reward_epoch, transfers, entitled, already)
    check_plan(plan)
    return plan


def check_plan(plan: SettlementPlan) -> None:
    """The plan's money invariants, checked before anything is recorded or sent."""
    invariant(all(t.amount_base_units > 0 for t in plan.transfers), "every planned transfer is > 0")
    invariant(len({t.wallet for t in plan.transfers}) == len(plan.transfers), "each wallet once per plan")
    invariant(plan.total_base_units == plan.entitlement_base_units - plan.paid_base_units,
              "Σ planned == Σ entitlement − Σ paid")


def split_batches(transfers: Sequence[Transfer], fits: Callable[[Sequence[Transfer]], bool]) -> list[tuple[Transfer, ...]]:
    """Greedy batches in the given order: each takes transfers while `fits` holds for it.

    `fits` must hold for any single transfer (else no batch could carry it) and be monotone
    (a batch that fits still fits without its last transfer), as a transaction's size is."""
    batches: list[tuple[Transfer, ...]] = []
    current: list[Transfer] = []
    for t in transfers:
        if current and fits(current + [t]):
            current.append(t)
            continue
        if current:
            batches.append(tuple(current))
        invariant(fits([t]), f"a single transfer to {t.wallet} does not fit in a transaction")
        current = [t]
    if current:
        batches.append(tuple(current))
    check_batches(transfers, batches)
    return batches


def check_batches(transfers: Sequence[Transfer], batches: Sequence[Sequence[Transfer]]) -> None:
    invariant([t for b in batches for t in b] == list(transfers), "the batches hold exactly the plan, in order")
    for b in batches:
        invariant(len({t.wallet for t in b}) == len(b), "each wallet once per batch")
        invariant(all(t.amount_base_units > 0 for t in b), "every transfer of a batch is > 0")
