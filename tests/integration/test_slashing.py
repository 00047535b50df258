"""Slashing end to end (ruleset §8, §10): hand-built event sequences through replay and close.

Times are minutes after genesis; a node is pinged at second 7 of every minute it is up, so
minute m is slot m (epoch m // 60). Each scenario also checks that every closed epoch
recomputes identically from the archive (`epoch verify`), decisions included.
"""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from epochal.replay import replay
from store.db import connect
from epochal.verify import verify_epoch
from eventkit import SPEC, EventKit, ms
from scoring.slashing import compute_decision_id

STAKE = 3_000_000
H100 = SPEC["H100"]


def node(kit: EventKit, name: str, hours: int, down: set[int] = frozenset(), stake: int = STAKE) -> None:
    """A verified H100 registered at genesis, up every minute of `hours` (+10 min) but `down`."""
    kit.register(name, "H100", gpus=1, stake=stake)
    kit.benchmark(name, 1, H100[0] * 0.95, H100[1] * 0.95, H100[2] * 0.98, fingerprints=[f"fp-{name}"])
    kit.pings(name, [m for m in range(0, hours * 60 + 10) if m not in down])


def run(kit: EventKit, tmp_path, name: str = "s") -> duckdb.DuckDBPyConnection:
    db = tmp_path / f"{name}.duckdb"
    report = replay([kit.write(tmp_path / f"{name}.jsonl")], db)
    assert report.counts.rejected == 0
    con = connect(db)
    for (e,) in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall():
        assert verify_epoch(con, e) == [], e
    return con


def decisions(con) -> dict[str, tuple]:
    rows = con.execute("SELECT subject, rule, node_id, amount_base_units, decided_at_us, status, evidence"
                       " FROM slash_decisions ORDER BY subject").fetchall()
    return {r[0]: r[1:] for r in rows}


def score(con, e: int, node_id: str) -> tuple:
    return con.execute("SELECT eligible, ineligible_reason, slash_count, rep_penalty, banned FROM node_epoch_scores"
                       " WHERE reward_epoch = ? AND node_id = ?", [e, node_id]).fetchone()


def down(first: int, n: int) -> set[int]:
    return set(range(first, first + n))


def test_a_4_slot_gap_is_not_slashed_and_a_5_slot_gap_is(tmp_path):
    kit = EventKit()
    node(kit, "four", 4, down(100, 4))
    node(kit, "five", 4, down(100, 5))
    kit.job("four", "job-four", 90, 120)
    kit.job("five", "job-five", 90, 120)
    d = decisions(run(kit, tmp_path))
    assert set(d) == {"job-five"}
    rule, node_id, amount, decided_at_us, status, evidence = d["job-five"]
    assert (rule, node_id, amount, status, evidence) == ("downtime_during_job", "five", STAKE // 3, "proposed",
                                                         ["job-job-five"])
    assert decided_at_us == ms(120) * 1000


def test_only_slots_wholly_inside_the_window_count_at_the_start(tmp_path):
    kit = EventKit()
    # slots 100..104 are down; a job starting at 100.5 holds only slots 101.. wholly: 4 down slots
    node(kit, "late-start", 4, down(100, 5))
    kit.job("late-start", "job-late-start", 100.5, 130)
    node(kit, "on-time", 4, down(100, 5))
    kit.job("on-time", "job-on-time", 100, 130)
    # the gap straddles the start: 96..100 down, job from 98: slots 98, 99, 100 only
    node(kit, "straddle", 4, down(96, 5))
    kit.job("straddle", "job-straddle", 98, 130)
    assert set(decisions(run(kit, tmp_path))) == {"job-on-time"}


def test_only_slots_wholly_inside_the_window_count_at_the_end_and_committed_until(tmp_path):
    kit = EventKit()
    # slots 115..119 down
    node(kit, "end-cut", 4, down(115, 5))
    kit.job("end-cut", "job-end-cut", 90, 119.5)  # slot 119 is not wholly inside: 4 slots
    node(kit, "end-whole", 4, down(115, 5))
    kit.job("end-whole", "job-end-whole", 90, 120)
    node(kit, "committed-cut", 4, down(115, 5))
    kit.job("committed-cut", "job-committed-cut", 90, 130, committed_until_min=119.5)
    node(kit, "committed-before", 4, down(115, 10))
    kit.job("committed-before", "job-committed-before", 90, 130, committed_until_min=110)
    node(kit, "straddle-end", 4, down(117, 10))  # down 117..126, job to 121: 117..120 = 4 slots
    kit.job("straddle-end", "job-straddle-end", 90, 121)
    node(kit, "across-epochs", 4, down(58, 5))  # 58, 59 | 60, 61, 62: one run across the epoch boundary
    kit.job("across-epochs", "job-across-epochs", 30, 90)
    assert set(decisions(run(kit, tmp_path))) == {"job-end-whole", "job-across-epochs"}


def test_a_failed_node_job_with_a_gap_gives_one_decision(tmp_path):
    kit = EventKit()
    node(kit, "n1", 4, down(100, 8))
    kit.job("n1", "job-1", 90, 120, status="failed_node")
    kit.job("n1", "job-1", 90, 120, status="failed_node", at_min=125, event_id="job-1-again")  # a second report
    node(kit, "n2", 4)
    kit.job("n2", "job-2", 90, 120, status="failed_node")  # no gap: failed_node alone decides
    con = run(kit, tmp_path)
    d = decisions(con)
    assert set(d) == {"job-1", "job-2"}
    assert d["job-1"][5] == ["job-job-1"]  # the first job.completed stands
    assert con.execute("SELECT count(*) FROM slash_decisions WHERE node_id = 'n1'").fetchone()[0] == 1
    detail = con.execute("SELECT detail FROM slash_decisions WHERE subject = 'job-1'").fetchone()[0]
    assert "failed_node" in detail and "non-up slots" in detail


def test_a_reused_fingerprint_is_fraud_of_the_later_reporter_only(tmp_path):
    kit = EventKit()
    node(kit, "first", 3)
    node(kit, "second", 3)
    kit.benchmark("first", 20, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-X"], event_id="b-first")
    kit.benchmark("second", 30, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-X", "gpu-Y"],
                  event_id="b-second")
    kit.benchmark("first", 40, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-X"], event_id="b-first-2")
    # a tie in occurred_at: the smaller event_id binds
    kit.benchmark("first", 50, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-Z"], event_id="b-z-2")
    kit.benchmark("second", 50, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-Z"], event_id="b-z-1")
    con = run(kit, tmp_path)
    d = decisions(con)
    assert set(d) == {"second|b-second", "first|b-z-2"}
    rule, node_id, amount, decided_at_us, status, evidence = d["second|b-second"]
    assert (rule, node_id, amount, decided_at_us) == ("hardware_fraud", "second", STAKE, ms(30) * 1000)
    assert evidence == ["b-second", "b-first"]
    assert compute_decision_id("hardware_fraud", "second|b-second") in {
        r[0] for r in con.execute("SELECT decision_id FROM slash_decisions").fetchall()}


def test_a_late_earlier_report_of_another_node_rebinds_a_fingerprint_and_its_older_reports_become_fraud(tmp_path):
    # Closes 0..3: node a reports gpu-X at minutes 60 and 120 (bound to a) and re-benchmarks
    # gpu-W, its own only, at 150; nothing is fraud.
    kit = EventKit()
    node(kit, "a", 4)
    node(kit, "b", 4)
    kit.benchmark("a", 60, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-X", "gpu-W"], event_id="b-a-60")
    kit.benchmark("a", 120, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-X"], event_id="b-a-120")
    kit.benchmark("a", 150, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-W"], event_id="b-a-150")
    con = run(kit, tmp_path)
    assert decisions(con) == {}
    con.close()
    # Arriving later: b's report of gpu-X dated minute 30 binds it to b, so a's two older reports of
    # it (archived and closed before, in an earlier run) are fraud at this close; a's new report of
    # gpu-W, only ever a's, is not, nor are a's older reports of it through gpu-W.
    late = EventKit()
    late.benchmark("b", 30, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-X"], event_id="b-b-30")
    late.benchmark("a", 250, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["gpu-W"], event_id="b-a-250")
    late.pings("a", range(4 * 60 + 10, 5 * 60 + 10))
    late.pings("b", range(4 * 60 + 10, 5 * 60 + 10))
    report = replay([late.write(tmp_path / "late.jsonl")], tmp_path / "s.duckdb")
    assert [r.reward_epoch for r in report.closed] == [4]
    con = connect(tmp_path / "s.duckdb")
    d = decisions(con)
    assert set(d) == {"a|b-a-60", "a|b-a-120"}
    for subject, at in (("a|b-a-60", 60), ("a|b-a-120", 120)):
        rule, node_id, amount, decided_at_us, status, evidence = d[subject]
        assert (rule, node_id, decided_at_us, evidence) == ("hardware_fraud", "a", ms(at) * 1000,
                                                            [subject.split("|")[1], "b-b-30"])
    assert con.execute("SELECT DISTINCT decided_in_epoch FROM slash_decisions").fetchall() == [(4,)]
    for e in range(5):
        assert verify_epoch(con, e) == [], e


def test_an_impossible_benchmark_takes_the_whole_stake_and_bans_until_an_upheld_appeal(tmp_path):
    kit = EventKit()
    node(kit, "n1", 7)
    kit.benchmark("n1", 70, H100[0] * 1.5, H100[1], 80.0, fingerprints=["fp-n1"], event_id="b-fast")
    kit.benchmark("n1", 190, H100[0] * 0.95, H100[1] * 0.95, 79.0, fingerprints=["fp-n1"], event_id="b-honest")
    did = compute_decision_id("hardware_fraud", "n1|b-fast")
    kit.appeal("n1", did, 200)
    con = run(kit, tmp_path)
    rule, node_id, amount, decided_at_us, status, evidence = decisions(con)["n1|b-fast"]
    assert (rule, amount, evidence) == ("hardware_fraud", STAKE, ["b-fast", "reg-n1"])
    assert score(con, 0, "n1")[:3] == (False, "not_registered", 0)  # decided in epoch 1
    assert score(con, 1, "n1") == (False, "banned", 1, 0.5, True)
    assert score(con, 2, "n1") == (False, "banned", 1, 0.5, True)
    # the appeal (03:20) lifts the ban and P from epoch 3 on; the node earns again once its streak allows
    assert score(con, 3, "n1")[1:] == ("streak_short", 0, 1.0, False)
    assert score(con, 4, "n1") == (True, None, 0, 1.0, False)


def finality_network(appeal_at_min: float | None, hours: int = 29) -> tuple[EventKit, str]:
    kit = EventKit()
    node(kit, "n1", hours, down(100, 5))
    kit.job("n1", "job-1", 90, 120)  # decided at 02:00; + 24 h = 26:00 = end(25): final at the close of 25
    did = compute_decision_id("downtime_during_job", "job-1")
    if appeal_at_min is not None:
        kit.appeal("n1", did, appeal_at_min)
    return kit, did


def test_an_appeal_one_hour_before_finality_overturns(tmp_path):
    kit, did = finality_network(25 * 60)
    con = run(kit, tmp_path)
    assert con.execute("SELECT status, finality_epoch, resolved_in_epoch FROM slash_decisions").fetchone() == \
        ("overturned", 25, 25)
    assert score(con, 24, "n1")[2:4] == (1, 0.5)  # proposed; the appeal (25:00) is not before end(24)
    assert score(con, 25, "n1")[2:4] == (0, 1.0)  # overturned: P lifted
    assert con.execute("SELECT count(*) FROM ledger_entries WHERE ref LIKE '%:slash:%'").fetchone()[0] == 0


def test_an_appeal_one_hour_too_late_leaves_the_slash_final_but_lifts_p(tmp_path):
    kit, did = finality_network(27 * 60)
    con = run(kit, tmp_path)
    assert con.execute("SELECT status, resolved_in_epoch FROM slash_decisions").fetchone() == ("final", 25)
    assert score(con, 25, "n1")[2:4] == (1, 0.5)
    assert score(con, 26, "n1")[2:4] == (1, 0.5)  # appeal at 27:00 is not < end(26) = 27:00
    assert score(con, 27, "n1")[2:4] == (0, 1.0)
    slash = con.execute("SELECT debit_account, credit_account, amount_base_units, reward_epoch FROM ledger_entries"
                        " WHERE ref LIKE '%:slash:%'").fetchall()
    assert slash == [("node:n1:stake", "treasury:slashed", STAKE // 3, 25)]


def test_an_appeal_arriving_after_the_finality_close_leaves_it_final(tmp_path):
    kit, did = finality_network(None)
    con = run(kit, tmp_path)
    con.close()
    late = EventKit()
    late.appeal("n1", did, 25 * 60)  # in time by occurred_at, but it arrives after the close of 25
    late.pings("n1", range(29 * 60 + 10, 30 * 60 + 10))
    replay([late.write(tmp_path / "late.jsonl")], tmp_path / "s.duckdb")
    con = connect(tmp_path / "s.duckdb")
    assert con.execute("SELECT status FROM slash_decisions").fetchone()[0] == "final"
    assert score(con, 29, "n1")[2:4] == (0, 1.0)  # but P is lifted at the next close
    for e in (25, 29):
        assert verify_epoch(con, e) == []


def test_stake_changes_cap_later_decisions_and_a_decision_at_zero_stake_still_counts(tmp_path):
    kit = EventKit()
    node(kit, "n1", 28, down(70, 5) | down(130, 5))
    kit.job("n1", "job-1", 60, 90)  # deposit 3,000,000: floor(/3) = 1,000,000
    kit.stake_changed("n1", 100, 1_200_000)
    kit.job("n1", "job-2", 120, 150)  # floor(1,200,000 / 3) = 400,000, but 200,000 left
    kit.benchmark("n1", 170, H100[0] * 2, H100[1], 80.0, fingerprints=["fp-n1"], event_id="b-fast")  # 0 left
    kit.job("n1", "job-3", 180, 210, status="failed_node")  # a second offence at stake 0
    con = run(kit, tmp_path)
    rows = con.execute("SELECT subject, amount_base_units, stake_deposit_base_units, stake_left_base_units"
                       " FROM slash_decisions ORDER BY decided_at_us").fetchall()
    assert rows == [("job-1", 1_000_000, 3_000_000, 3_000_000), ("job-2", 200_000, 1_200_000, 200_000),
                    ("n1|b-fast", 0, 1_200_000, 0), ("job-3", 0, 1_200_000, 0)]
    assert score(con, 3, "n1")[2:4] == (4, 0.0625)
    # the ledger: deposit, withdrawal to the new declared deposit, then only final slashes move stake
    stake = con.execute("""
        SELECT reward_epoch, debit_account, credit_account, amount_base_units FROM ledger_entries
        WHERE debit_account LIKE 'node:n1:stake' OR credit_account LIKE 'node:n1:stake'
        ORDER BY reward_epoch, ref""").fetchall()
    assert stake == [
        (0, "external:stake_deposits", "node:n1:stake", 3_000_000),
        (1, "node:n1:stake", "external:stake_deposits", 1_800_000),
        (25, "node:n1:stake", "treasury:slashed", 1_000_000),
        (26, "node:n1:stake", "treasury:slashed", 200_000),
    ]
    assert con.execute("SELECT status, count(*) FROM slash_decisions GROUP BY 1 ORDER BY 1").fetchall() == \
        [("final", 4)]  # job-3 (03:30) is final at the close of 27


def test_decided_at_keeps_the_exact_microsecond(tmp_path):
    kit = EventKit()
    node(kit, "n1", 3)
    ev = kit.job("n1", "job-1", 30, 60, status="failed_node")
    ev["occurred_at"] = "2026-01-01T01:00:00.123456789Z"
    con = run(kit, tmp_path)
    us, ts = con.execute("SELECT decided_at_us, epoch_us(decided_at) FROM slash_decisions").fetchone()
    assert us == ts == ms(60) * 1000 + 123456


def test_slashes_list_and_show_print_the_decision_and_its_evidence(tmp_path):
    kit = EventKit()
    node(kit, "n1", 3, down(100, 5))
    kit.job("n1", "job-1", 90, 120)
    node(kit, "n2", 3)
    kit.job("n2", "job-2", 30, 60, status="failed_node")
    run(kit, tmp_path).close()
    db = str(tmp_path / "s.duckdb")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "epochal.cli", "slashes", *args, "--db", db],
                              capture_output=True, text=True)

    listed = cli("list", "--node", "n1")
    assert listed.returncode == 0, listed.stderr
    did = compute_decision_id("downtime_during_job", "job-1")
    assert did[:12] in listed.stdout and "n2" not in listed.stdout
    assert "no slashing decisions" in cli("list", "--status", "final").stdout
    shown = cli("show", did)
    assert shown.returncode == 0, shown.stderr
    assert '"job_id":"job-1"' in shown.stdout and "non-up slots" in shown.stdout
    for bad in (cli("show", "nope"), cli("list", "--status", "bogus")):
        assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_late_evidence_is_decided_at_the_next_close(tmp_path):
    kit = EventKit()
    node(kit, "n1", 4, down(100, 5))
    node(kit, "n2", 4)
    con = run(kit, tmp_path)
    con.close()
    late = EventKit()
    late.job("n1", "job-1", 90, 120)  # its check epoch (1) closed long ago
    late.benchmark("n2", 30, H100[0] * 2, H100[1], 80.0, fingerprints=["fp-n2"], event_id="b-late")
    late.pings("n1", range(4 * 60 + 10, 5 * 60 + 10))
    report = replay([late.write(tmp_path / "late.jsonl")], tmp_path / "s.duckdb")
    assert [r.reward_epoch for r in report.closed] == [4]
    con = connect(tmp_path / "s.duckdb")
    rows = con.execute("SELECT subject, decided_in_epoch, decided_at_us FROM slash_decisions ORDER BY 1").fetchall()
    assert rows == [("job-1", 4, ms(120) * 1000), ("n2|b-late", 4, ms(30) * 1000)]
    assert score(con, 3, "n2")[4] is False and score(con, 4, "n2")[1:] == ("banned", 1, 0.5, True)
    for e in range(5):
        assert verify_epoch(con, e) == []
    # a second replay of the same files decides nothing twice
    replay([late.write(tmp_path / "late.jsonl")], tmp_path / "s.duckdb")
    assert con.execute("SELECT count(*) FROM slash_decisions").fetchone()[0] == 2
