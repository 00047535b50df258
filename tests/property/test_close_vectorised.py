"""The close's vectorised forms held to their scalar references (payouts/ledger.py,
payouts/gather.py, §8, §9):

- the stake ledger over columns (`carry.prepare`'s deposits and balances, `get_stake_frame`, the
  same rows as the close gathers them with its nodes, `compute_stake_ledger_parts`) gives the
  entries of `compute_stake_ledger_entries` over the stake events and balances;
- the reward ledger over columns (`compute_ledger_parts`) gives those of `compute_ledger_entries`;
- entry ids hashed by the store as it writes them (`entry_id_sql`) and the refs of
  `compute_ledger_frame` are `compute_entry_id` (hashlib's sha256 of "<e>|<kind>|<subject>") and
  `compute_entry_ref`;
- the benchmarks `gather_slash_inputs` hands the rules (its SQL pre-selection of those that can
  be fraud) give the same fraud candidates as every benchmark with every registration.
"""

from __future__ import annotations

import hashlib

import numpy as np
import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings, strategies as st

import store.db as store
from payouts.allocation import allocate_pool
from payouts.carry import prepare
from payouts.gather import gather_epoch_inputs, gather_slash_inputs, get_stake_frame
from payouts.ledger import (
    ACCOUNT_STAKE,
    LEDGER_PARTS_SCHEMA,
    compute_ledger_entries,
    compute_ledger_frame,
    compute_ledger_parts,
    compute_stake_ledger_entries,
    compute_stake_ledger_parts,
    entry_id_sql,
)
from scoring.hardware import MODELS_BY_KEY
from scoring.ruleset import RULESET_V1 as CFG
from scoring.slashing import (
    RULE_DOWNTIME,
    STATUS_FINAL,
    STATUS_PROPOSED,
    BenchmarkFacts,
    Decision,
    RegistrationFacts,
    SlashInputs,
    SlashOutcome,
    get_fraud_candidates,
)
from scoring.timing import get_epoch_end_us

E = 5
END_US = get_epoch_end_us(E, CFG)
HOUR_US = CFG.reward_epoch_us
NODES = [f"n{i}" for i in range(6)] + ["ü-node", "n:colon"]


def memory_store():
    return store.connect(":memory:")


def insert_events(con, rows: list[tuple]) -> None:
    """rows: (event_id, event_type, node_id, occurred_at_us, payload dict)."""
    frame = pl.DataFrame(
        [(seq, eid, et, node, at, (at - CFG.genesis_us) // HOUR_US, False, orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode(), "x")
         for seq, (eid, et, node, at, p) in enumerate(rows)], orient="row",
        schema=[("arrival_seq", pl.Int64), ("event_id", pl.String), ("event_type", pl.String), ("node_id", pl.String),
                ("occurred_at_us", pl.Int64), ("reward_epoch", pl.Int64), ("late", pl.Boolean),
                ("payload", pl.String), ("digest", pl.String)])
    if rows:
        with store.registered(con, "test_events", frame):
            con.execute("INSERT INTO archive_events SELECT * FROM test_events")


def as_tuples(ledger: pl.DataFrame) -> list[tuple]:
    """The rows of a close's ledger frame as the store writes them (keys hashed by
    `entry_id_sql`), in the frame's order."""
    con = store.connect(":memory:")
    with store.registered(con, "ledger", ledger.with_row_index("pos")):
        return con.execute(f"SELECT {entry_id_sql()}, debit_account, credit_account, amount_base_units, reward_epoch,"
                           " ref FROM ledger ORDER BY pos").fetchall()


def ledger_parts_from_entries(entries) -> pl.DataFrame:
    """(kind, subject, …) parts of ledger tuples written by the scalar functions."""
    rows = []
    for entry_id, debit, credit, amount, e, ref in entries:
        _, _, kind, subject = ref.split(":", 3)
        rows.append((kind, subject, debit, credit, amount))
    return pl.DataFrame(rows, orient="row", schema=LEDGER_PARTS_SCHEMA)


stake_event = st.tuples(st.sampled_from(NODES), st.integers(0, 2 * (E + 2)), st.integers(0, 10**12),
                        st.sampled_from(["node.registered", "node.stake_changed"]))
decision = st.tuples(st.sampled_from(NODES), st.integers(0, 10**9), st.sampled_from(["final", "final_now", "proposed"]))


@settings(max_examples=60, deadline=None)
@given(events=st.lists(stake_event, max_size=24), balances=st.dictionaries(st.sampled_from(NODES), st.integers(0, 10**12)),
       decisions=st.lists(decision, max_size=6))
def test_the_stake_ledger_columns_give_the_scalar_entries(events, balances, decisions):
    rows, stake_events = [], {}
    for k, (node, half_hours, stake, kind) in enumerate(events):
        at = CFG.genesis_us + half_hours * HOUR_US // 2
        eid = f"s{k % 5}-{node}"  # repeated ids across nodes; ties in time broken by event_id
        if any(r[0] == eid for r in rows):
            eid += f"-{k}"
        rows.append((eid, kind, node, at, {"stake_base_units": stake}))
        stake_events.setdefault(node, []).append((at, eid, stake))
    ds = []
    for k, (node, amount, status) in enumerate(decisions):
        ds.append(Decision(f"d{k}", RULE_DOWNTIME, node, f"j{k}", CFG.genesis_us, (), amount, 0, 0, E - 1, E, "",
                           STATUS_PROPOSED if status == "proposed" else STATUS_FINAL,
                           None if status == "proposed" else (E if status == "final_now" else E - 1)))
    outcome = SlashOutcome(E, [], [], ds, {}, {})
    reference = compute_stake_ledger_entries(E, SlashInputs(E, stake_events=stake_events), outcome, balances, CFG)

    con = memory_store()
    insert_events(con, rows)
    ledger = pl.DataFrame(
        [(f"b-{n}", "external:stake_deposits", ACCOUNT_STAKE.format(node_id=n), b, E - 1, "r") for n, b in balances.items()],
        orient="row", schema=[("entry_id", pl.String), ("debit_account", pl.String), ("credit_account", pl.String),
                              ("amount_base_units", pl.Int64), ("reward_epoch", pl.Int64), ("ref", pl.String)])
    if balances:
        with store.registered(con, "test_ledger", ledger):
            con.execute("INSERT INTO ledger_entries SELECT * FROM test_ledger")
    prepare(con, E, 10**9, CFG)  # the state from the archive alone (nothing carried)
    frame = get_stake_frame(con)
    # the close reads the same rows with its nodes, in one query
    assert gather_epoch_inputs(con, E, 10**9, CFG, from_scratch=True).stake.equals(frame)
    got = compute_ledger_frame(E, compute_stake_ledger_parts(E, frame, outcome))
    assert as_tuples(got) == reference


@settings(max_examples=40, deadline=None)
@given(weights=st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 10**6), max_size=20),
       pools=st.tuples(st.integers(0, 10**15), st.integers(0, 10**15)))
def test_the_reward_ledger_columns_give_the_scalar_entries(weights, pools):
    node_ids = sorted(weights, key=str.encode)
    pool_of = np.array(["enterprise" if hash(n) % 2 else "community" for n in node_ids], dtype=object)
    allocations, amounts = {}, np.zeros(len(node_ids), dtype=np.int64)
    for name, amount in (("enterprise", pools[0]), ("community", pools[1])):
        idx = [i for i in range(len(node_ids)) if pool_of[i] == name]
        allocations[name] = allocate_pool(amount, {node_ids[i]: weights[node_ids[i]] for i in idx})
        for i in idx:
            amounts[i] = allocations[name].shares[node_ids[i]]
    paid = np.flatnonzero(amounts > 0)
    rewards = [(E, node_ids[i], pool_of[i], int(amounts[i]), "w") for i in paid]
    unallocated = {name: a.unallocated_base_units for name, a in allocations.items()}
    reference = compute_ledger_entries(E, pools[0], pools[1], rewards, unallocated)
    parts = compute_ledger_parts({"enterprise": pools[0], "community": pools[1]}, node_ids, pool_of, amounts,
                                 unallocated)
    assert as_tuples(compute_ledger_frame(E, parts)) == reference


@settings(max_examples=40, deadline=None)
@given(e=st.integers(-5, 10**6), subjects=st.lists(st.text(max_size=12), max_size=10))
def test_entry_ids_are_the_sha256_of_epoch_kind_and_subject(e, subjects):
    entries = [(hashlib.sha256(f"{e}|reward|{s}".encode()).hexdigest(), "a", "b", 1, e, f"reward_epoch:{e}:reward:{s}")
               for s in subjects]
    assert as_tuples(compute_ledger_frame(e, ledger_parts_from_entries(entries))) == entries


H100 = MODELS_BY_KEY["H100"]
# ratios around the impossible bound (1.10), both sides of it, and ordinary ones
RATIOS = [0.95, 1.0, 1.1, float(np.nextafter(1.1, 2)), float(np.nextafter(1.1, 0)), 1.1 * (1 - 1e-10), 1.2, 3.0]
bench = st.tuples(st.sampled_from(NODES[:5]), st.integers(0, 2 * E + 3), st.sampled_from(RATIOS),
                  st.sampled_from(RATIOS), st.lists(st.sampled_from([f"fp{i}" for i in range(6)]), max_size=3))
claim = st.sampled_from(["H100", "NVIDIA H100 80GB HBM3", "RTX 4090", "not a card", None])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(benches=st.lists(bench, max_size=12), claims=st.lists(claim, min_size=5, max_size=5))
def test_the_benchmarks_handed_to_the_rules_give_the_fraud_of_all_benchmarks(benches, claims):
    rows, regs, facts = [], {}, []
    for node, c in zip(NODES[:5], claims):
        if c is not None:
            at = CFG.genesis_us + (hash(node) % 3) * HOUR_US
            rows.append((f"reg-{node}", "node.registered", node, at,
                         {"gpu_model": c, "gpu_count": 1, "stake_base_units": 100, "wallet": "w"}))
            regs[node] = RegistrationFacts(node, f"reg-{node}", at, c, 1)
    for k, (node, half_hours, rf, rb, fps) in enumerate(benches):
        at = CFG.genesis_us + half_hours * HOUR_US // 2
        fp32, bw = H100.spec_fp32_tflops * rf, H100.spec_bw_gbps * rb
        rows.append((f"b{k}", "benchmark", node, at, {"fp32_tflops": fp32, "mem_bandwidth_gbps": bw, "vram_gb": 80.0,
                                                      "gpu_count": 1, "gpu_fingerprints": fps}))
        facts.append(BenchmarkFacts(f"b{k}", node, at, tuple(fps), fp32, bw, 80.0, 1))
    con = memory_store()
    insert_events(con, rows)
    got = gather_slash_inputs(con, E, 10**9, CFG)  # no close before: every benchmark is checked
    reference = SlashInputs(E, benchmarks=[b for b in facts if b.occurred_at_us < END_US], related_benchmarks=facts,
                            registrations=regs)
    assert get_fraud_candidates(got, CFG) == get_fraud_candidates(reference, CFG)
