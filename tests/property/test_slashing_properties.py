"""Slashing properties (ruleset §8, preamble): the decision set and the ledger do not depend on
the order of lines, their split into files or exact duplicates; the ledger balances in every
epoch and no node's stake account is ever below 0."""

from __future__ import annotations

import random

import duckdb
from hypothesis import HealthCheck, given, settings, strategies as st

from epochal.replay import replay
from eventkit import SPEC, EventKit
from scoring.slashing import compute_decision_id
from tablecheck import output_tables, replayed_tables

H100 = SPEC["H100"]
HOURS = 27


def slashing_network(seed: int) -> EventKit:
    """Four nodes with gaps, jobs (some failed_node), fingerprint reuse, an impossible benchmark,
    stake changes and appeals, all early enough that the decisions become final by epoch 26."""
    rng = random.Random(seed)
    kit = EventKit()
    for i in range(4):
        name = f"n{i}"
        kit.register(name, "H100", stake=rng.choice([0, 999, 3_000_000, 10**15]))
        kit.benchmark(name, 1, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=[f"fp-{i}"])
        gaps = set()
        for _ in range(rng.randint(0, 3)):
            first = rng.randint(30, 170)
            gaps |= set(range(first, first + rng.randint(3, 7)))
        kit.pings(name, [m for m in range(0, HOURS * 60 + 10) if m not in gaps])
        for j in range(rng.randint(0, 3)):
            start = rng.randint(20, 150)
            end = start + rng.randint(5, 40)
            status = rng.choice(["succeeded", "succeeded", "failed_node", "failed_user"])
            kit.job(name, f"{name}-job{j}", start + rng.random(), end + rng.random(), status=status,
                    committed_until_min=end + rng.choice([-10, 0, 10]))
            if rng.random() < 0.4:
                did = compute_decision_id("downtime_during_job", f"{name}-job{j}")
                kit.appeal(name, did, rng.choice([end + 60, 24 * 60 + end - 30, 24 * 60 + end + 90]))
        if rng.random() < 0.5:
            kit.stake_changed(name, rng.randint(10, 160), rng.choice([0, 500, 5_000_000]))
    reuse_from, reuse_by = rng.sample(range(4), 2)
    kit.benchmark(f"n{reuse_by}", rng.randint(2, 100), H100[0] * 0.95, H100[1] * 0.95, 79.0,
                  fingerprints=[f"fp-{reuse_from}"], event_id="b-reuse")
    kit.benchmark(f"n{rng.randrange(4)}", rng.randint(2, 100), H100[0] * 3, H100[1], 80.0,
                  fingerprints=["fp-fast"], event_id="b-fast")
    return kit


KIT = slashing_network(11)  # final and overturned downtime, fraud, a withdrawal, non-zero amounts
LINES = KIT.lines()
_reference: dict = {}


def reference_tables(tmp_dir):
    tables = replayed_tables(KIT, tmp_dir, _reference)
    assert tables["slash_decisions"], "the reference network makes decisions"
    return tables


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), files=st.integers(1, 3), dup_share=st.sampled_from([0.0, 0.1, 0.5]))
def test_shuffled_split_and_duplicated_lines_give_identical_decisions_and_ledger(tmp_path_factory, seed, files,
                                                                                  dup_share):
    expected = reference_tables(tmp_path_factory.mktemp("ref"))
    tmp = tmp_path_factory.mktemp("inv")
    rng = random.Random(seed)
    lines = list(LINES) + [line for line in LINES if rng.random() < dup_share]
    rng.shuffle(lines)
    paths = [KIT.write(tmp / f"part-{i}.jsonl", lines[i::files]) for i in range(files)]
    rng.shuffle(paths)
    replay(paths, tmp / "s.duckdb")
    got = output_tables(tmp / "s.duckdb")
    assert got["slash_decisions"] == expected["slash_decisions"]
    assert got["ledger_entries"] == expected["ledger_entries"]
    assert got == expected


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_the_ledger_balances_every_epoch_and_no_stake_goes_below_zero(tmp_path_factory, seed):
    tmp = tmp_path_factory.mktemp("ledger")
    kit = slashing_network(seed)
    replay([kit.write(tmp / "events.jsonl")], tmp / "s.duckdb")
    con = duckdb.connect(str(tmp / "s.duckdb"), read_only=True)
    epochs = [r[0] for r in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall()]
    assert epochs == list(range(HOURS))
    balances: dict[str, int] = {}
    for e in epochs:
        entries = con.execute("SELECT debit_account, credit_account, amount_base_units FROM ledger_entries"
                              " WHERE reward_epoch = ? ORDER BY ref", [e]).fetchall()
        debits: dict[str, int] = {}
        credits: dict[str, int] = {}
        for debit, credit, amount in entries:
            assert amount > 0
            debits[debit] = debits.get(debit, 0) + amount
            credits[credit] = credits.get(credit, 0) + amount
            balances[debit] = balances.get(debit, 0) - amount
            balances[credit] = balances.get(credit, 0) + amount
        assert sum(debits.values()) == sum(credits.values())
        assert all(v >= 0 for k, v in balances.items() if k.endswith(":stake")), (e, balances)
    final = dict(con.execute("SELECT node_id, sum(amount_base_units) FROM slash_decisions WHERE status = 'final'"
                             " GROUP BY 1").fetchall())
    assert balances.get("treasury:slashed", 0) == sum(final.values())
    moved = con.execute("SELECT count(*) FROM ledger_entries WHERE credit_account = 'treasury:slashed'").fetchone()[0]
    assert moved == con.execute("SELECT count(*) FROM slash_decisions WHERE status = 'final'"
                                " AND amount_base_units > 0").fetchone()[0]
    # no decision's amount is more than the stake it was capped by
    assert con.execute("SELECT count(*) FROM slash_decisions WHERE amount_base_units > stake_left_base_units"
                       " OR stake_left_base_units > stake_deposit_base_units").fetchone()[0] == 0
