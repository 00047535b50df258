"""Ruleset preamble: in a replay, the same events in any order, with any number of exact
duplicates, give the same scores, rewards, epochs and ledger, bit for bit."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from epochal.replay import replay
from eventkit import EventKit, honest_network
from tablecheck import output_tables, replayed_tables

KIT = EventKit()
honest_network(KIT, hours=7)
# a second registration that loses to the first by occurred_at, and a late-ish benchmark
KIT.register("n-4090", "RTX 3060", at_min=5, event_id="reg-n-4090-second")
LINES = KIT.lines()
_reference: dict = {}


def reference_tables(tmp_dir):
    return replayed_tables(KIT, tmp_dir, _reference)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), files=st.integers(1, 4), dup_share=st.sampled_from([0.0, 0.05, 0.3]),
       flush_rows=st.sampled_from([1_000_000, 97, 5000]))
def test_shuffled_split_and_duplicated_inputs_give_identical_outputs(tmp_path_factory, seed, files, dup_share,
                                                                      flush_rows):
    # flush_rows: pings are archived in batches while files are read; small batches put
    # duplicates and their originals in different flushes
    import store.ingest

    store.ingest.FLUSH_PING_ROWS = flush_rows
    tmp = tmp_path_factory.mktemp("inv")
    expected = reference_tables(tmp_path_factory.mktemp("ref"))
    rng = random.Random(seed)
    lines = list(LINES) + [l for l in LINES if rng.random() < dup_share]
    rng.shuffle(lines)
    paths = []
    for i in range(files):
        part = lines[i::files]
        paths.append(KIT.write(tmp / f"part-{i}.jsonl", part))
    rng.shuffle(paths)
    db = tmp / "s.duckdb"
    report = replay(paths, db)
    assert report.counts.adds_up()
    assert report.counts.rejected == 1  # the second registration, whatever the order
    store.ingest.FLUSH_PING_ROWS = 1_000_000
    assert output_tables(db) == expected


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_conservation_holds_in_every_closed_epoch(tmp_path_factory, seed):
    rng = random.Random(seed)
    kit = EventKit()
    n = rng.randint(1, 6)
    for i in range(n):
        model = rng.choice(["H100", "RTX 4090", "T4", "A100"])
        from eventkit import SPEC

        f, b, v = SPEC[model]
        gpus = rng.randint(1, 8)
        kit.register(f"n{i}", model, gpus=gpus)
        kit.benchmark(f"n{i}", 1, f * rng.uniform(0.5, 1.2), b * rng.uniform(0.5, 1.2), v,
                      gpus=gpus if rng.random() < 0.8 else gpus + 1)
        kit.pings(f"n{i}", [m for m in range(0, 8 * 60 + 6) if rng.random() < 0.97])
    tmp = tmp_path_factory.mktemp("cons")
    db = tmp / "s.duckdb"
    report = replay([kit.write(tmp / "e.jsonl")], db)
    for r in report.closed:
        row = r.epoch_row
        assert row["allocated_base_units"] + row["unallocated_base_units"] == row["emission_base_units"]
        assert (r.rewards["amount_base_units"] > 0).all()
