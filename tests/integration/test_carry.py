"""The state a close carries forward (payouts/carry.py) gives the closes it would give from scratch.

The same events, archived and closed hour by hour as the live stream does (late events
included), twice: once carrying the state from close to close, once with the carried state
dropped before every close (each close then derives it from the archive). The outputs must be
identical, and `epoch verify` (which never reads the carried state) must find nothing.
"""

from __future__ import annotations

import pytest

from epochal.verify import verify_epoch
from eventkit import SPEC, EventKit, honest_network
from payouts import carry
from payouts.carry import CARRY_META, get_carry
from payouts.close import close_ready_epochs
from scoring.slashing import compute_decision_id
from store.db import connect
from store.ingest import Ingestor
from tablecheck import output_tables

H100 = SPEC["H100"]


def events() -> list[dict]:
    kit = EventKit()
    honest_network(kit, hours=30)
    for n in ("n-a", "n-b", "n-c"):
        kit.register(n, "H100", gpus=1, at_min=5)
        kit.benchmark(n, 6, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=[f"fp-{n}"])
        kit.pings(n, [m for m in range(5, 30 * 60 + 10) if not (n == "n-c" and 400 <= m < 407)])
    for k in range(40):  # jobs all along, some failing, one reported twice (the earlier report arriving late)
        node = ("n-a", "n-b", "n-c")[k % 3]
        kit.job(node, f"job-{k}", 40 * k + 10, 40 * k + 30, status="failed_node" if k % 9 == 4 else "succeeded")
    kit.job("n-b", "job-7", 280, 300, status="failed_node", at_min=289, event_id="job-7-earlier")
    kit.benchmark("n-b", 700, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["fp-n-a"], event_id="b-copy")
    kit.benchmark("n-c", 900, H100[0] * 1.4, H100[1] * 0.95, 79.0, event_id="b-fast")  # impossible
    kit.stake_changed("n-a", 600, 9_000_000)
    kit.stake_changed("n-b", 1200, 1_000_000)
    kit.appeal("n-a", compute_decision_id("downtime_during_job", "job-4"), 500)
    kit.benchmark("n-a", 1300, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["fp-n-a"], event_id="b-again")
    return kit.events


def arrival_hour(ev: dict) -> int:
    """When the event arrives: in its hour, but a few come late (after their epoch closed)."""
    from eventkit import GENESIS_MS

    t = ev["occurred_at"] if isinstance(ev["occurred_at"], int) else 0
    hour = max(0, (t - GENESIS_MS) // 3_600_000)
    if ev["event_id"] in ("job-7-earlier", "stake-n-b-1200", "b-copy") or ev["event_id"].startswith("ping-n-c-40"):
        hour += 3
    return hour


def grow(db, carry: bool, reconnect: bool = False) -> None:
    """`reconnect`: every hour on a fresh connection (as a replay or a restarted worker closes:
    a quiet close then has no view or temp table of an earlier close to lean on)."""
    import orjson

    con = connect(db)
    by_hour: dict[int, list[bytes]] = {}
    for ev in events():
        by_hour.setdefault(arrival_hour(ev), []).append(orjson.dumps(ev))
    for h in range(max(by_hour) + 1):
        ing = Ingestor(con)
        ing.stage_lines(by_hour.get(h, []), f"hour-{h}")
        ing.commit()
        if not carry:
            con.execute("DELETE FROM engine_meta WHERE key = ?", [CARRY_META])
        close_ready_epochs(con)
        if reconnect:
            con.close()
            con = connect(db)
    con.close()


QUIET: list[bool] = []  # per close of the carried run: quiet (no event but pings in its Δ)?


def grow_recording(db, quiet: list[bool], **kwargs) -> None:
    """`grow` with the carried state, noting of each close whether it was quiet."""
    real = carry.measure

    def measure(*args, **kw):
        figures, q = real(*args, **kw)
        quiet.append(q)
        return figures, q

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(carry, "measure", measure)
        grow(db, carry=True, **kwargs)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("carry")
    grow_recording(tmp / "carried.duckdb", QUIET)
    grow(tmp / "scratch.duckdb", carry=False)
    return tmp / "carried.duckdb", tmp / "scratch.duckdb"


def test_carried_closes_on_fresh_connections_equal_closes_from_scratch(stores, tmp_path):
    """Each hour's close on a connection of its own: a quiet close after a restart (no d_ table,
    no carried views made earlier on the connection) with jobs in the store gives what a close
    from scratch gives."""
    _, scratch = stores
    quiet: list[bool] = []
    grow_recording(tmp_path / "reconnected.duckdb", quiet, reconnect=True)
    assert any(quiet) and not all(quiet)
    assert output_tables(tmp_path / "reconnected.duckdb") == output_tables(scratch)


def test_carried_closes_equal_closes_from_scratch(stores):
    carried, scratch = stores
    got, want = output_tables(carried), output_tables(scratch)
    assert len(got["reward_epochs"]) == 30
    assert len(got["slash_decisions"]) >= 3 and any(r for r in got["ledger_entries"] if "stake" in r[-1])
    assert got == want


def test_the_carried_run_has_quiet_closes_and_others(stores):
    """The comparison above covers both kinds of carried close: quiet ones (`carry.prepare` makes
    no table of Δ, the slashing gather checks no benchmark) and the others."""
    assert len(QUIET) == 30 and 3 <= sum(QUIET) <= 27, QUIET


def test_every_carried_close_verifies_from_the_archive(stores):
    con = connect(stores[0])
    assert get_carry(con).epoch == 29
    late = con.execute("SELECT count(*) FROM archive_pings WHERE late").fetchall()[0][0]
    assert late > 0
    for (e,) in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall():
        assert verify_epoch(con, e) == [], e
    con.close()


def test_the_carried_job_counts_and_latest_benchmarks_are_the_scalar_rules(stores):
    """J's counts and the latest benchmark of every score row, against `get_standing_job`,
    `compute_job_counts` and `get_latest_benchmark` over the archived events each close saw."""
    import orjson

    from scoring.hardware import get_latest_benchmark
    from scoring.jobs import compute_job_counts, get_standing_job
    from scoring.ruleset import RULESET_V1
    from scoring.timing import get_epoch_end_us

    con = connect(stores[0])
    events = [(t, eid, node, seq, orjson.loads(p)) for t, eid, node, seq, p in con.execute(
        "SELECT occurred_at_us, event_id, node_id, arrival_seq, payload FROM archive_events"
        " WHERE event_type IN ('job.completed', 'benchmark')").fetchall()]
    cutoffs = dict(con.execute("SELECT reward_epoch, input_arrival_seq FROM reward_epochs").fetchall())
    rows = con.execute("SELECT reward_epoch, node_id, jobs_succeeded, jobs_failed_node, benchmark_event_id"
                       " FROM node_epoch_scores").fetchall()
    con.close()
    checked = 0
    for e, node, s, f, bench in rows:
        end, cutoff = get_epoch_end_us(e, RULESET_V1), cutoffs[e]
        seen = [ev for ev in events if ev[3] <= cutoff]
        jobs: dict[str, list] = {}
        for t, eid, n, _, p in seen:
            if "job_id" in p:
                jobs.setdefault(p["job_id"], []).append((t, eid, n, p["status"]))
        standing = [st for st in (get_standing_job(cs, end) for cs in jobs.values()) if st is not None]
        assert (s or 0, f or 0) == compute_job_counts([st[3] for st in standing if st[2] == node]), (e, node)
        latest = get_latest_benchmark([(t, eid) for t, eid, n, _, p in seen if n == node and "job_id" not in p], end)
        assert bench == (latest[1] if latest else None), (e, node)
        checked += 1
    assert checked > 100
