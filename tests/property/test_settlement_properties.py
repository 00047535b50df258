"""The guarantees listed in payouts/settlement.py's docstring, one property each."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.settlement import (Transfer, compute_entitlements, compute_owed, plan_settlement,
                                split_batches)
from scoring.invariants import InvariantViolation

wallets = st.text("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", min_size=1, max_size=6)
amounts = st.one_of(st.integers(0, 1000), st.integers(0, 10**15))
reward_rows = st.lists(st.tuples(wallets, amounts), max_size=40)


@st.composite
def entitled_and_paid(draw):
    """Entitlements and a paid total per wallet that never exceeds its entitlement."""
    ent = compute_entitlements(draw(reward_rows))
    paid = {w: draw(st.integers(0, e)) for w, e in ent.items() if draw(st.booleans())}
    return ent, paid


def fits_of(limit):
    return lambda batch: len(batch) <= limit


def weighted_fits(limit):
    # a monotone size function, as a transaction's byte size is: each transfer costs by its digits
    return lambda batch: sum(len(str(t.amount_base_units)) + len(t.wallet) for t in batch) <= limit


@settings(max_examples=300)
@given(entitled_and_paid(), st.integers(1, 7))
def test_conservation(ep, limit):
    ent, paid = ep
    plan = plan_settlement(3, ent, paid)
    assert plan.total_base_units == sum(ent.values()) - sum(paid.values())
    batches = split_batches(plan.transfers, fits_of(limit))
    assert sum(t.amount_base_units for b in batches for t in b) == plan.total_base_units
    assert [t for b in batches for t in b] == list(plan.transfers)


@given(entitled_and_paid())
def test_never_negative(ep):
    ent, paid = ep
    plan = plan_settlement(3, ent, paid)
    assert all(t.amount_base_units > 0 for t in plan.transfers)


@given(reward_rows, st.data())
def test_never_negative_a_wallet_paid_more_than_entitled_stops_the_plan(rows, data):
    ent = compute_entitlements(rows)
    if not ent:
        return
    w = data.draw(st.sampled_from(sorted(ent)))
    with pytest.raises(InvariantViolation):
        plan_settlement(3, ent, {w: ent[w] + data.draw(st.integers(1, 10**6))})


@given(entitled_and_paid(), st.integers(1, 7))
def test_each_wallet_once_per_batch(ep, limit):
    ent, paid = ep
    plan = plan_settlement(3, ent, paid)
    assert len({t.wallet for t in plan.transfers}) == len(plan.transfers)
    for b in split_batches(plan.transfers, fits_of(limit)):
        assert len({t.wallet for t in b}) == len(b)


@settings(max_examples=200)
@given(entitled_and_paid(), st.integers(13, 60))
def test_batches_fit(ep, limit):
    ent, paid = ep
    plan = plan_settlement(3, ent, paid)
    fits = weighted_fits(limit)
    single = [t for t in plan.transfers if fits([t])]
    batches = split_batches(single, fits)
    for i, b in enumerate(batches):
        assert fits(b)
        if i + 1 < len(batches):  # maximal: the next transfer would not have fitted
            assert not fits(list(b) + [batches[i + 1][0]])


@given(entitled_and_paid())
def test_pays_differences_not_amounts(ep):
    ent, paid = ep
    plan = plan_settlement(3, ent, paid)
    after = dict(paid)
    for t in plan.transfers:
        after[t.wallet] = after.get(t.wallet, 0) + t.amount_base_units
    assert plan_settlement(3, ent, after).transfers == ()
    assert compute_owed(ent, after) == {}


def test_a_transfer_too_big_for_any_batch_is_a_broken_invariant():
    with pytest.raises(InvariantViolation):
        split_batches([Transfer("a", 1)], lambda b: False)


def test_a_wallet_with_many_nodes_is_paid_once_their_sum():
    ent = compute_entitlements([("W", 5), ("V", 2), ("W", 7)])
    plan = plan_settlement(9, ent, {"V": 2})
    assert plan.transfers == (Transfer("W", 12),)
