"""`epochal whatif`: closed epochs recomputed under another ruleset from the archive, compared
with what was recorded, the store only read."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import polars as pl
import pytest

from analytics.whatif import WhatIfError, load_ruleset, run_whatif, write_outputs
from epochal.replay import replay
from eventkit import SPEC, EventKit, honest_network
from store.db import connect

H100 = SPEC["H100"]


@pytest.fixture(scope="module")
def closed_store(tmp_path_factory):
    """Eight hours of a small network (a node with a short outage, one unknown model, one
    unregistered), closed: epochs 0..7."""
    tmp = tmp_path_factory.mktemp("whatif")
    kit = EventKit()
    honest_network(kit, hours=8)
    kit.register("n-late", "H100", gpus=2, at_min=65)  # registers in epoch 1: streak_short for 5 h
    kit.benchmark("n-late", 66, H100[0] * 0.95, H100[1] * 0.95, 79.0, gpus=2)
    kit.pings("n-late", range(66, 8 * 60 + 10))
    kit.job("n-late", "job-late", 70, 200)
    db = tmp / "s.duckdb"
    replay([kit.write(tmp / "events.jsonl")], db)
    return db


def ruleset(tmp_path, text: str):
    path = tmp_path / "v2.toml"
    path.write_text(text)
    return path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_parameters_under_a_new_version_reproduce_every_recorded_epoch(closed_store, tmp_path):
    before = digest(closed_store)
    w = run_whatif(closed_store, load_ruleset(ruleset(tmp_path, 'ruleset_version = "copy"\n')), 2, 7)
    assert w.epochs["reward_epoch"].to_list() == list(range(2, 8))
    assert w.epochs["whatif_allocated"].to_list() == w.epochs["baseline_allocated"].to_list()
    assert (w.deltas["delta"] == 0).all() and w.deltas.height > 0
    for c in ("eligible", "reputation", "rep_availability", "streak_slots", "weight"):
        assert w.deltas[f"baseline_{c}"].equals(w.deltas[f"whatif_{c}"], null_equal=True), c
    assert w.eligibility.height == 0 and w.movers.height == 0
    assert digest(closed_store) == before  # nothing written to the store


def test_a_shorter_streak_requirement_moves_rewards_and_says_why(closed_store, tmp_path):
    before = digest(closed_store)
    cfg = load_ruleset(ruleset(tmp_path, 'ruleset_version = "short-streak"\nmin_streak_slots = 60\n'))
    w = run_whatif(closed_store, cfg, 1, 7)
    # Σ rewards + unallocated = emission in every epoch, on both sides
    assert (w.epochs["whatif_allocated"] + w.epochs["whatif_unallocated"] == w.epochs["emission"]).all()
    assert (w.epochs["baseline_allocated"] + w.epochs["baseline_unallocated"] == w.epochs["emission"]).all()
    gains = w.eligibility.filter(pl.col("change") == "gains")
    assert gains["why"].to_list() == ["streak_short"] and gains["nodes"].to_list() == [3]
    # epochs 1..3 paid nobody (every streak short): now they do, and nobody loses
    assert w.epochs["baseline_allocated"].to_list()[:3] == [0, 0, 0] and (w.epochs["whatif_allocated"] > 0).all()
    top = w.movers.filter(pl.col("side") == "gainer")
    assert set(top["node_id"]) == {"n-h100", "n-late", "n-4090"} and w.movers.height == 3
    assert top["moved_by"].str.starts_with("eligibility: streak_short → eligible in ").all()
    assert w.by_pool_model["delta"].sum() == (w.epochs["whatif_allocated"] - w.epochs["baseline_allocated"]).sum()
    # per pool (class): what moved, and each side's pool = allocated + unallocated
    assert w.by_pool["pool"].to_list() == ["community", "enterprise"]
    assert w.by_pool["delta"].sum() == w.by_pool_model["delta"].sum() and (w.by_pool["delta"] > 0).all()
    for side in ("baseline", "whatif"):
        assert (w.by_pool[f"{side}_allocated"] + w.by_pool[f"{side}_unallocated"] == w.by_pool[f"{side}_pool"]).all()
    assert w.by_pool["whatif_pool"].sum() == w.epochs["emission"].sum()
    parquet, page = write_outputs(w, tmp_path / "out")
    assert pl.read_parquet(parquet).equals(w.deltas)
    text = page.read_text()
    assert "<svg" in text and "n-late" in text and "short-streak" in text
    assert digest(closed_store) == before


def test_an_allocation_that_loses_a_base_unit_stops_the_what_if(closed_store, tmp_path, monkeypatch):
    """Σ rewards + unallocated = emission is asserted in every what-if epoch: an allocator that
    drops a base unit (neither paid nor unallocated) stops the run, and the store is untouched."""
    import payouts.steps.allocation as step
    from scoring.invariants import InvariantViolation

    real = step.allocate_pool_np

    def leaky(pool_amount, node_ids, weights):
        shares, unallocated = real(pool_amount, node_ids, weights)
        if len(shares) and shares.sum() > 0:
            shares = shares.copy()
            shares[int(shares.argmax())] -= 1
        return shares, unallocated

    before = digest(closed_store)
    monkeypatch.setattr(step, "allocate_pool_np", leaky)
    cfg = load_ruleset(ruleset(tmp_path, 'ruleset_version = "leaky"\nmin_streak_slots = 60\n'))
    with pytest.raises(InvariantViolation, match="emission"):
        run_whatif(closed_store, cfg, 1, 3)
    assert digest(closed_store) == before


def test_a_mover_is_explained_by_its_own_component_or_by_the_pool_share(closed_store, tmp_path):
    """Shorter streaks over epochs 5..7: n-late earns one epoch more in n-h100's pool, and
    n-h100, whose own weight did not move, loses by the pool share. With reputation weight moved
    from A to J as well, n-h100's own weight falls too, and A (its largest move that way) is named."""
    def movers(text):
        w = run_whatif(closed_store, load_ruleset(ruleset(tmp_path, text)), 5, 7)
        h100 = w.deltas.filter(pl.col("node_id") == "n-h100")
        return dict(zip(w.movers["node_id"], w.movers["moved_by"])), h100

    why, h100 = movers('ruleset_version = "short-streak"\nmin_streak_slots = 60\n')
    assert why["n-late"].startswith("eligibility: streak_short → eligible in 1 epoch")
    assert why["n-h100"] == "pool share (other nodes' weights moved)"
    assert h100["baseline_weight"].equals(h100["whatif_weight"])
    why, h100 = movers('ruleset_version = "jobs-heavy"\nmin_streak_slots = 60\n'
                       'rep_weight_availability = 0.1\nrep_weight_jobs = 0.6\n')
    assert (h100["whatif_weight"] < h100["baseline_weight"]).all()
    assert why["n-h100"].startswith("A (availability): -") and why["n-h100"].endswith(" points of R on average")


@pytest.mark.parametrize("text,words", [
    ('ruleset_version = "x"\nmin_streak = 60\n', "unknown ruleset parameter 'min_streak'"),
    ('ruleset_version = "x"\nmin_streak_slots = "sixty"\n', "min_streak_slots must be an integer"),
    ('ruleset_version = "2026.1"\n', "is the version of the ruleset in force"),
    ('min_streak_slots = 60\n', "needs a ruleset_version of its own"),
    ('ruleset_version = "x"\nrep_weight_jobs = 0.5\n', "sum to 1"),
    ('ruleset_version = "x"\nslot_duration_s = 30\n', "cannot change over an existing archive"),
    ('ruleset_version = "x"\nmin_streak_slots = \n', "is not a TOML file"),
])
def test_a_bad_ruleset_file_is_one_sentence(tmp_path, text, words):
    with pytest.raises(WhatIfError, match=words):
        load_ruleset(ruleset(tmp_path, text))


def test_epochs_not_closed_or_reversed_are_refused(closed_store, tmp_path):
    cfg = load_ruleset(ruleset(tmp_path, 'ruleset_version = "x"\n'))
    with pytest.raises(WhatIfError, match=r"epochs 5\.\.9 are not all closed in the store \(epochs 0\.\.7 are closed\)"):
        run_whatif(closed_store, cfg, 5, 9)
    with pytest.raises(WhatIfError, match="comes after"):
        run_whatif(closed_store, cfg, 4, 3)


def test_a_version_that_already_closed_epochs_is_refused(tmp_path):
    kit = EventKit()
    honest_network(kit, hours=2)
    db = tmp_path / "s.duckdb"
    replay([kit.write(tmp_path / "e.jsonl")], db)
    con = connect(db)
    con.execute("UPDATE reward_epochs SET ruleset_version = 'v2-trial' WHERE reward_epoch = 0")
    con.close()
    with pytest.raises(WhatIfError, match="already closed epochs"):
        run_whatif(db, load_ruleset(ruleset(tmp_path, 'ruleset_version = "v2-trial"\n')), 1, 1)


def test_the_command_line_prints_the_report_and_refuses_mistakes_in_one_sentence(closed_store, tmp_path):
    good = ruleset(tmp_path, 'ruleset_version = "short-streak"\nmin_streak_slots = 60\n')
    run = lambda *args: subprocess.run([sys.executable, "-m", "epochal.cli", "whatif", *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    ok = run("--ruleset", str(good), "--from", "1", "--to", "7", "--db", str(closed_store), "--out", str(tmp_path / "o"))
    assert ok.returncode == 0, ok.stderr
    assert "per pool (class)" in ok.stdout and "eligibility gained and lost" in ok.stdout and "n-late" in ok.stdout and "summary:" in ok.stdout
    bad = ruleset(tmp_path, 'ruleset_version = "x"\nnope = 1\n')
    no = run("--ruleset", str(bad), "--from", "1", "--to", "7", "--db", str(closed_store))
    assert no.returncode == 1 and "Traceback" not in no.stderr
    assert no.stderr.strip().count("\n") == 0 and "unknown ruleset parameter 'nope'" in no.stderr


def test_the_published_folder_gives_the_same_what_if_as_the_store(closed_store, tmp_path):
    """While a writer holds the store, the what-if reads the published folder (the replay
    published every epoch it closed) and finds exactly what it finds in the store."""
    from store.published import published_root

    cfg = load_ruleset(ruleset(tmp_path, 'ruleset_version = "short-streak"\nmin_streak_slots = 60\n'))
    from_store = run_whatif(closed_store, cfg, 1, 7)
    holder = connect(closed_store)  # a writer holds the store
    try:
        from_folder = run_whatif(None, cfg, 1, 7, published=published_root(closed_store))
    finally:
        holder.close()
    assert from_folder.deltas.equals(from_store.deltas) and from_folder.epochs.equals(from_store.epochs)
    assert from_folder.movers.equals(from_store.movers)
