"""Every vectorised (numpy) or SQL twin of a rule gives what its scalar reference gives.

One test per twin, named after the rule; inputs drawn by hypothesis around the rule's
boundaries. SQL twins run in an in-memory DuckDB, as the ingest, the close and the live path
run them. (The streak's twin is held in test_streak_properties.py, the hardware verdicts' and
the reputation's in their own property files, the ledger's in test_close_vectorised.py.)
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from hypothesis import given, settings, strategies as st

from payouts.ledger import compute_entry_id, compute_entry_ref, compute_ledger_frame, entry_id_sql
from scoring import eligibility, hardware, jobs, registration, reputation, slashing, timing, uptime
from scoring.ruleset import RULESET_V1 as CFG

HOUR_US = CFG.reward_epoch_us
G = CFG.genesis_us
times = st.one_of(st.integers(G - 3 * HOUR_US, G + 1000 * HOUR_US),
                  st.integers(G - 1, G + 1), st.integers(-(2**62), 2**62),
                  st.integers(-10**5, 10**6).map(lambda k: G + k * CFG.slot_us - 1))
ids = st.text(alphabet="ab:|é", min_size=1, max_size=4)


def sql(query: str, **frames) -> list[tuple]:
    con = duckdb.connect()
    for name, frame in frames.items():
        con.register(name, frame)
    return con.execute(query).fetchall()


@settings(max_examples=60, deadline=None)
@given(ts=st.lists(times, min_size=1, max_size=30))
def test_reward_epoch_and_slot_twins(ts):
    frame = pl.DataFrame({"t": ts}, schema={"t": pl.Int64})
    got = sql(f"SELECT {timing.compute_reward_epoch_sql('t', CFG)}, {timing.compute_slot_sql('t', CFG)} FROM f",
              f=frame)
    assert got == [(timing.compute_reward_epoch(t, CFG), timing.compute_slot(t, CFG)) for t in ts]
    assert timing.compute_reward_epoch_np(np.array(ts, dtype=np.int64), CFG).tolist() == \
        [timing.compute_reward_epoch(t, CFG) for t in ts]


pings = st.lists(st.tuples(st.sampled_from(["n1", "n2", "é"]), st.integers(0, 59), st.booleans()), max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows=pings)
def test_slot_bitmap_twin(rows):
    frame = pl.DataFrame(rows, orient="row", schema=[("node_id", pl.String), ("slot", pl.Int16),
                                                     ("reachable", pl.Boolean)])
    got = dict(sql(f"SELECT node_id, {uptime.slot_bitmap_sql()} FROM f GROUP BY node_id", f=frame))
    want = {n: uptime.compute_slot_bitmap([(s, r) for m, s, r in rows if m == n]) for n, _, _ in rows}
    assert got == want


@settings(max_examples=60, deadline=None)
@given(bitmaps=st.lists(st.integers(0, 2**60 - 1), max_size=20))
def test_up_slots_and_uptime_ratio_twins(bitmaps):
    up = uptime.compute_up_slots_np(np.array(bitmaps, dtype=np.uint64))
    assert up.tolist() == [uptime.compute_up_slots(b) for b in bitmaps]
    assert uptime.compute_uptime_ratio_np(up, CFG).tolist() == [uptime.compute_uptime_ratio(int(u), CFG) for u in up]


# (occurred_at, event_id) with ties in time, so the event_id decides
keyed = st.tuples(st.integers(G, G + 5 * HOUR_US).map(lambda t: t - t % (HOUR_US // 2)), ids)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["n1", "n2"]), keyed), max_size=12, unique_by=lambda r: r[1][1]),
       end=st.one_of(st.none(), st.integers(G, G + 5 * HOUR_US)))
def test_latest_benchmark_twin(rows, end):
    frame = pl.DataFrame([(n, e, t) for n, (t, e) in rows], orient="row",
                         schema=[("node_id", pl.String), ("event_id", pl.String), ("occurred_at_us", pl.Int64)])
    got = dict(sql(hardware.latest_benchmark_sql("f", None if end is None else str(end)), f=frame))
    want = {}
    for n in {n for n, _ in rows}:
        latest = hardware.get_latest_benchmark([k for m, k in rows if m == n], end)
        if latest is not None:
            want[n] = latest[1]
    assert got == want


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["n1", "n2", "n3"]), keyed), max_size=12, unique_by=lambda r: r[1][1]))
def test_first_registration_twin(rows):
    frame = pl.DataFrame([(n, e, t) for n, (t, e) in rows], orient="row",
                         schema=[("node_id", pl.String), ("event_id", pl.String), ("occurred_at_us", pl.Int64)])
    got = {n: (e, t) for n, e, t in sql(registration.first_registration_sql("f"), f=frame)}
    want = {}
    for n in {n for n, _ in rows}:
        t, e = registration.get_first_registration([k for m, k in rows if m == n])
        want[n] = (e, t)
    assert got == want


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["j1", "j2"]), keyed, st.sampled_from(["n1", "n2"]),
                               st.sampled_from(["succeeded", "failed_node", "failed_buyer"])),
                     max_size=12, unique_by=lambda r: r[1][1]),
       end=st.one_of(st.none(), st.integers(G, G + 5 * HOUR_US)))
def test_standing_job_and_job_counts_twins(rows, end):
    frame = pl.DataFrame([(j, e, t, n, s) for j, (t, e), n, s in rows], orient="row",
                         schema=[("job_id", pl.String), ("event_id", pl.String), ("occurred_at_us", pl.Int64),
                                 ("node_id", pl.String), ("status", pl.String)])
    standing = jobs.standing_job_sql("f", None if end is None else str(end))
    got = {n: (s, f) for n, s, f in sql(
        f"SELECT c.node_id, {jobs.job_counts_sql('c.status')} FROM ({standing}) JOIN f c USING (job_id, event_id)"
        " GROUP BY c.node_id", f=frame)}
    by_node: dict[str, list[str]] = {}
    for j in {j for j, *_ in rows}:
        first = jobs.get_standing_job([(t, e, n, s) for k, (t, e), n, s in rows if k == j], end)
        if first is not None:
            by_node.setdefault(first[2], []).append(first[3])
    assert got == {n: jobs.compute_job_counts(ss) for n, ss in by_node.items()}


@settings(max_examples=40, deadline=None)
@given(subjects=st.lists(st.text(max_size=10), max_size=6), nodes=st.lists(st.text(max_size=6), min_size=6, max_size=6))
def test_decision_id_twins(subjects, nodes):
    frame = pl.DataFrame({"s": subjects, "n": nodes[:len(subjects)]}, schema={"s": pl.String, "n": pl.String})
    got = sql(f"SELECT {slashing.decision_id_sql(slashing.RULE_DOWNTIME, 's')},"
              f" {slashing.decision_id_sql(slashing.RULE_FRAUD, slashing.fraud_subject_sql('n', 's'))} FROM f", f=frame)
    assert got == [(slashing.compute_decision_id(slashing.RULE_DOWNTIME, s),
                    slashing.compute_decision_id(slashing.RULE_FRAUD, slashing.compute_fraud_subject(n, s)))
                   for s, n in zip(subjects, nodes)]


@settings(max_examples=60, deadline=None)
@given(benches=st.lists(st.tuples(keyed, st.sampled_from(["n1", "n2"]),
                                  st.sets(st.sampled_from(["fp1", "fp2", "fp3"]), min_size=1)),
                        max_size=8, unique_by=lambda b: b[0][1]))
def test_fingerprint_owner_twin(benches):
    facts = [slashing.BenchmarkFacts(e, n, t, tuple(sorted(fps))) for (t, e), n, fps in benches]
    frame = pl.DataFrame([(fp, b.node_id, b.event_id, b.occurred_at_us) for b in facts for fp in b.fingerprints],
                         orient="row", schema=[("fp", pl.String), ("node_id", pl.String), ("event_id", pl.String),
                                               ("occurred_at_us", pl.Int64)])
    got = {fp: (n, e) for fp, n, e in sql(slashing.fingerprint_owners_sql("f"), f=frame)}
    owners = slashing.compute_fingerprint_owners(facts)
    assert got == {fp: (b.node_id, b.event_id) for fp, b in owners.items()}


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["n1", "n2"]), keyed, st.integers(0, 10**12)), max_size=10,
                     unique_by=lambda r: r[1][1]),
       at=st.integers(G, G + 5 * HOUR_US))
def test_stake_deposit_twin(rows, at):
    frame = pl.DataFrame([(n, e, t, s) for n, (t, e), s in rows], orient="row",
                         schema=[("node_id", pl.String), ("event_id", pl.String), ("occurred_at_us", pl.Int64),
                                 ("stake", pl.Int64)])
    got = dict(sql(f"SELECT node_id, {slashing.stake_deposit_sql('stake', str(at))} FROM f GROUP BY node_id", f=frame))
    assert got == {n: slashing.compute_stake_deposit([(t, e, s) for m, (t, e), s in rows if m == n], at)
                   for n, _, _ in rows}


@settings(max_examples=60, deadline=None)
@given(nodes=st.lists(st.tuples(
    st.one_of(st.none(), st.integers(G - HOUR_US, G + 10 * HOUR_US)), st.booleans(), st.booleans(),
    st.integers(0, 400), st.integers(0, 60), st.sampled_from([0, 1, 100, 400])), max_size=20),
    start=st.integers(G, G + 10 * HOUR_US))
def test_eligibility_and_weight_twins(nodes, start):
    reg = [r for r, *_ in nodes]
    arr = lambda k, dt: np.array([x[k] for x in nodes], dtype=dt)  # noqa: E731
    registered = np.array([r is not None for r in reg], dtype=bool)
    reasons = eligibility.get_ineligible_reasons_np(
        registered, np.array([r or 0 for r in reg], dtype=np.int64), start, arr(1, bool), arr(2, bool),
        arr(3, np.int64), arr(4, np.int64), CFG)
    want = [eligibility.get_ineligible_reason(r, start, b, h, s, u, CFG) for r, b, h, s, u, _ in nodes]
    assert reasons.tolist() == want
    eligible = np.equal(reasons, None)
    weights = eligibility.compute_weights_np(eligible, arr(4, np.int64), np.full(len(nodes), 10000, np.int64),
                                             np.full(len(nodes), 8, np.int64), arr(5, np.int64))
    assert weights.tolist() == [eligibility.compute_weight(u, 10000, 8, rep) if w is None else 0
                                for (_, _, _, _, u, rep), w in zip(nodes, want)]


@settings(max_examples=60, deadline=None)
@given(benches=st.lists(st.tuples(st.booleans(), st.integers(G, G + 60 * HOUR_US),
                                  st.sampled_from(list(hardware.MODELS_BY_KEY) + ["none"]),
                                  st.floats(0.0, 2.0), st.floats(0.0, 2.0)), max_size=20),
       end=st.integers(G, G + 60 * HOUR_US))
def test_freshness_verdict_column_and_hardware_score_twins(benches, end):
    has = np.array([b[0] for b in benches], dtype=bool)
    at = np.array([b[1] for b in benches], dtype=np.int64)
    verdicts = np.array([hardware.VERDICT_VERIFIED if b[3] > 0.7 else hardware.VERDICT_MISMATCH for b in benches],
                        dtype=object)
    ratio = np.array([b[4] if v == hardware.VERDICT_VERIFIED else np.nan for b, v in zip(benches, verdicts)])
    fresh = hardware.is_benchmark_fresh_np(at, end, CFG)
    assert fresh.tolist() == [hardware.is_benchmark_fresh(int(t), end, CFG) for t in at]
    column = hardware.compute_hw_verdict_column_np(has, verdicts, fresh)
    assert column.tolist() == [hardware.compute_hw_verdict_column(v if h else None, f)
                               for h, v, f in zip(has, verdicts, fresh)]
    verified = hardware.is_hardware_verified_np(column)
    assert verified.tolist() == [hardware.is_hardware_verified(c) for c in column]
    assert reputation.compute_hardware_score_np(verified, ratio).tolist() == \
        [reputation.compute_hardware_score(v, None if np.isnan(r) else r) for v, r in zip(verified, ratio)]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.floats(0, 200, allow_nan=False), st.floats(0.5, 200, allow_nan=False),
                               st.sampled_from([k / 60 for k in range(61)]), st.integers(0, 10**6),
                               st.integers(0, 10**6), st.integers(0, 30)), max_size=20))
def test_availability_jobs_and_penalty_twins(rows):
    num, den, u = (np.array([r[k] for r in rows], dtype=np.float64) for k in range(3))
    s, f, p = (np.array([r[k] for r in rows], dtype=np.int64) for k in range(3, 6))
    got_num, got_den = reputation.compute_availability_step_np(num, den, u, CFG)
    want = [reputation.compute_availability_step(a, b, c, CFG) for a, b, c in zip(num, den, u)]
    assert list(zip(got_num.tolist(), got_den.tolist())) == want
    assert reputation.compute_availability_np(got_num, got_den).tolist() == \
        [reputation.compute_availability(a, b) for a, b in want]
    assert reputation.compute_jobs_score_np(s, f).tolist() == [reputation.compute_jobs_score(a, b) for a, b in zip(s, f)]
    assert reputation.compute_penalty_np(p, CFG).tolist() == [reputation.compute_penalty(int(c), CFG) for c in p]


@settings(max_examples=40, deadline=None)
@given(e=st.integers(0, 10**6), rows=st.lists(st.tuples(st.sampled_from(["reward", "fund", "slash"]),
                                                         st.text(max_size=12)), max_size=10))
def test_entry_id_and_ref_twins(e, rows):
    parts = pl.DataFrame([(k, s, "a", "b", 1) for k, s in rows], orient="row",
                         schema=[("kind", pl.String), ("subject", pl.String), ("debit_account", pl.String),
                                 ("credit_account", pl.String), ("amount_base_units", pl.Int64)])
    frame = compute_ledger_frame(e, parts)
    got = sql(f"SELECT {entry_id_sql()}, ref FROM f", f=frame)
    assert got == [(compute_entry_id(e, k, s), compute_entry_ref(e, k, s)) for k, s in rows]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 10**6), st.text(min_size=1, max_size=6),
                               st.sampled_from(["enterprise", "community"]), st.integers(1, 2**63 - 1),
                               st.text(max_size=6)), max_size=12, unique_by=lambda r: r[1]))
def test_manifest_twin(rows):
    from payouts.epoch import REWARD_SCHEMA
    from payouts.manifest import compute_manifest_sha256, compute_manifest_sha256_frame

    frame = pl.DataFrame(rows, orient="row", schema=REWARD_SCHEMA)
    assert compute_manifest_sha256_frame(frame) == compute_manifest_sha256(rows)
