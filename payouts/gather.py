"""Gathering a close's inputs from the store (ruleset §9 "Inputs of a close"): store I/O only.

The inputs of the close of e are the archived events whose `arrival_seq` is at most the
epoch's `input_arrival_seq` (everything that had arrived when it closed), and the figures
recorded for earlier epochs (up slots, uptime ratio, streak, availability state, slashing
decisions and the stake ledger), which later epochs build on; a late ping never changes them.

Where a query applies a rule (the slot bitmap, the first registration, the latest benchmark,
the standing job, a decision id, a stake deposit, the watermark), it calls the rule's SQL twin
from scoring/ (each held to its scalar reference by a differential test); filters that only
narrow what is handed to the rules (the slashing candidates) say so where they are.

It reads what is new since the previous close and the state that close carried forward
(payouts/carry.py), or, when there is no such state (`epoch verify`, the what-if run, a store
first closed by an older engine), derives the same state from the archive. `gather_epoch_inputs`
takes any DuckDB connection with the store's tables: the store itself, or an in-memory database
loaded from a published folder.
"""

from __future__ import annotations


import orjson
import polars as pl

from payouts import carry
from payouts.epoch import EpochInputs
from scoring.events import time_to_us
from scoring.hardware import get_model
from scoring.jobs import standing_job_sql
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.slashing import (
    RULE_DOWNTIME,
    RULE_FRAUD,
    BenchmarkFacts,
    Decision,
    JobFacts,
    RegistrationFacts,
    SlashInputs,
    compute_job_check_epoch,
    compute_window_epochs,
    decision_id_sql,
    fingerprint_owners_sql,
    fraud_subject_sql,
)
from scoring.timing import (
    compute_reward_epoch,
    compute_reward_epoch_sql,
    compute_watermark_us,
    get_epoch_end_us,
    get_epoch_start_us,
)
from scoring.uptime import slot_bitmap_sql
from store.db import PING_DIGESTS_SINCE, fetch_polars, get_meta, registered


def get_watermark_us(con, cfg: RulesetConfig = RULESET_V1) -> int | None:
    """The archive's watermark (§10): from its highest accepted ping time (the carried one and
    the pings arrived since)."""
    state = carry.get_carry(con)
    lo = state.cutoff if state else -1
    newest = con.execute(f"SELECT max(occurred_at_us) FROM archive_pings WHERE arrival_seq > {lo}").fetchall()[0][0]
    highest = max((t for t in (newest, state.max_ping_us if state else None) if t is not None), default=None)
    return compute_watermark_us(highest, cfg)


def get_first_reward_epoch(con, cfg: RulesetConfig = RULESET_V1) -> int | None:
    """§10 First epoch: the config's, the one recorded by the first close, or the epoch of the
    earliest accepted event (a ping.batch envelope is not an event of a node)."""
    if cfg.first_reward_epoch is not None:
        return cfg.first_reward_epoch
    stored = get_meta(con, "first_reward_epoch")
    if stored is not None:
        return int(stored)
    earliest = con.execute(
        "SELECT least((SELECT min(occurred_at_us) FROM archive_pings),"
        " (SELECT min(occurred_at_us) FROM archive_events WHERE event_type <> 'ping.batch'))"
    ).fetchall()[0][0]
    return None if earliest is None else compute_reward_epoch(earliest, cfg)


# The first registration of every node arrived by the cutoff (§10), its fields typed (carried).
REGISTRATIONS_SQL = """
    SELECT node_id, reg_event_id AS event_id, reg_arrival_seq AS arrival_seq, registered_at_us, wallet, gpu_model,
           gpu_count
    FROM gather_nodes WHERE reg_event_id IS NOT NULL"""


def gather_epoch_inputs(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1,
                        from_scratch: bool = False, carried=carry.READ_BASE) -> EpochInputs:
    """The inputs of the close of `e` with the events arrived by `cutoff_seq`; `from_scratch`:
    never from the carried state (`epoch verify` checks the carried closes against it);
    `carried`: the store's carried state when the caller knows it (`carry.get_base`)."""
    base = carry.get_base(con, e, cutoff_seq, from_scratch, carried)
    after, quiet = carry.measure(con, e, cutoff_seq, base, cfg)
    carry.prepare(con, e, cutoff_seq, cfg, base=base, quiet=quiet)
    end_us = get_epoch_end_us(e, cfg)
    params = {"e": e, "cutoff": cutoff_seq, "end": end_us}
    # One row per node scored (pinged in e, with another event in e, or registered by end(e))
    # or with a stake event or a stake account (`get_stake_frame`'s rows), in one query: fetched
    # in node_id order, each row flagged, the pings counted for the digest below.
    frame = fetch_polars(con, f"""
        WITH pings AS (
            SELECT node_id, {slot_bitmap_sql("slot", "reachable")} AS slot_bitmap, count(*) AS pings
            FROM archive_pings WHERE reward_epoch = $e AND arrival_seq <= $cutoff
            GROUP BY node_id
        ), ev AS (
            SELECT DISTINCT node_id FROM archive_events
            WHERE reward_epoch = $e AND arrival_seq <= $cutoff AND event_type <> 'ping.batch'
        ), ids AS (
            SELECT node_id, pings.slot_bitmap, pings.pings FROM pings FULL JOIN ev USING (node_id)
        ), n AS (
            SELECT *, reg_event_id IS NOT NULL AND registered_at_us < $end AS reg, {STAKED_SQL} AS staked
            FROM gather_nodes
        )
        SELECT node_id,
               coalesce(ids.slot_bitmap, 0::UBIGINT) AS slot_bitmap,
               if(n.reg, n.registered_at_us, NULL) AS registered_at_us,
               if(n.reg, n.wallet, NULL) AS wallet,
               if(n.reg, n.gpu_model, NULL) AS gpu_model,
               if(n.reg, n.gpu_count, NULL) AS claimed_gpu_count,
               n.bench_event_id, n.bench_at_us,
               n.fp32_tflops, n.mem_bandwidth_gbps, n.vram_gb, n.found_gpu_count,
               n.jobs_succeeded, n.jobs_failed_node,
               prev.streak_slots AS prev_streak, prev.streak_prev_up AS prev_up,
               prev.avail_num AS prev_num, prev.avail_den AS prev_den,
               coalesce(ids.pings, 0) AS pings,
               ids.node_id IS NOT NULL OR coalesce(n.reg, false) AS scored,
               coalesce(n.staked, false) AS staked,
               {STAKE_COLUMNS_SQL.format(n="n.")}
        FROM ids FULL JOIN n USING (node_id)
        LEFT JOIN (SELECT * FROM node_epoch_scores WHERE reward_epoch = $e - 1) prev USING (node_id)
        WHERE ids.node_id IS NOT NULL OR n.reg OR n.staked
        ORDER BY node_id
    """, params)
    # (most closes score every staked node and stake every scored one: no filter then)
    stake = frame.select("node_id", "deposit_base_units", "balance_base_units")
    if not frame["staked"].all():
        stake = stake.filter(frame["staked"])
    if not frame["scored"].all():
        frame = frame.filter(pl.col("scored"))
    nodes = frame.drop("pings", "scored", "staked", "deposit_base_units", "balance_base_units")
    # the ping digests' figures and what the slashing gather looks for, in one statement
    *stored, any_jobs, any_appeals, any_decisions = con.execute(
        f"SELECT * FROM ({PING_DIGESTS_SQL}), (SELECT {SLASH_EXISTS_SQL})",
        {"e": e, "cutoff": cutoff_seq, "since": PING_DIGESTS_SINCE}).fetchall()[0]
    digest = get_input_digest(con, e, cutoff_seq, after, int(frame["pings"].sum()), from_scratch, tuple(stored))

    # Availability history for registered nodes with no carried state (first close after
    # their registration): their recorded per-epoch uptime ratios.
    history: dict[str, dict[int, float]] = {}
    needs = nodes["registered_at_us"].is_not_null() & nodes["prev_den"].is_null()
    if needs.any():
        first = nodes.filter(needs)
        with registered(con, "close_first", first.select("node_id", "registered_at_us")):
            rows = con.execute(f"""
                SELECT s.node_id, s.reward_epoch, s.uptime_ratio
                FROM node_epoch_scores s JOIN close_first c USING (node_id)
                WHERE s.reward_epoch < $e
                  AND s.reward_epoch >= {compute_reward_epoch_sql("c.registered_at_us", cfg)}
            """, {"e": e}).fetchall()
        for node_id, k, u in rows:
            history.setdefault(node_id, {})[k] = u

    return EpochInputs(
        reward_epoch=e,
        input_arrival_seq=cutoff_seq,
        input_event_count=digest[0],
        input_events_digest=digest[1],
        watermark_us=compute_watermark_us(after.max_ping_us, cfg) or 0,
        late_events=after.late,
        nodes=nodes,
        uptime_history=history,
        slashing=_gather_slash_inputs(con, e, cutoff_seq, cfg, quiet and base is not None,
                                      base.cutoff if base is not None else None,
                                      (any_jobs, any_appeals, any_decisions)),
        stake=stake,
        carry=carry.CarryStep(base, after, quiet and base is not None),
    )


# (covered, pings, digest) of the ping digests the ingest wrote for epoch $e by the cutoff;
# covered: they cover every ping of the store
PING_DIGESTS_SQL = """
    SELECT (SELECT value FROM engine_meta WHERE key = $since) IS NOT DISTINCT FROM '0',
           coalesce(sum(pings), 0), coalesce(bit_xor(digest), 0::UHUGEINT)::VARCHAR
    FROM archive_ping_digests WHERE reward_epoch = $e AND last_arrival_seq <= $cutoff"""


def get_input_digest(con, e: int, cutoff_seq: int, after: carry.Carry, pings: int,
                     from_scratch: bool = False, stored: tuple | None = None) -> tuple[int, str]:
    """(count, digest) of the close's inputs (§9: the epoch's pings and every other event before
    end(e), arrived by the cutoff; digest = XOR of md5(event_id) as 32 hex digits): the pings'
    part from the digests the ingest wrote with them, when they cover the store's every ping and
    count the epoch's `pings` (else, and `from_scratch`, hashed here), the rest carried.
    `stored`: `PING_DIGESTS_SQL`'s row when the caller read it."""
    count = digest = None
    if not from_scratch:
        covered, count, digest = stored if stored is not None else con.execute(
            PING_DIGESTS_SQL, {"e": e, "cutoff": cutoff_seq, "since": PING_DIGESTS_SINCE}).fetchall()[0]
        if not covered:
            count = digest = None
    if count is None or int(count) != pings:
        count, digest = con.execute("""
            SELECT count(*), coalesce(bit_xor(md5_number(event_id)), 0::UHUGEINT)::VARCHAR FROM archive_pings
            WHERE reward_epoch = $e AND arrival_seq <= $cutoff
        """, {"e": e, "cutoff": cutoff_seq}).fetchall()[0]
    return int(count) + after.events_count, f"{int(digest) ^ after.events_digest:032x}"


def get_previous_cutoff(con, e: int) -> int:
    """The arrival cutoff of the close of e − 1 (−1 when e is the first): what is new since."""
    row = con.execute("SELECT input_arrival_seq FROM reward_epochs WHERE reward_epoch = ?", [e - 1]).fetchall()
    return int(row[0][0]) if row else -1


# The nodes with a stake event or a stake account (over gather_nodes), and their two figures.
STAKED_SQL = "deposit_event_id IS NOT NULL OR coalesce(balance_base_units, 0) <> 0"
STAKE_COLUMNS_SQL = ("coalesce({n}deposit_base_units, 0)::BIGINT AS deposit_base_units,"
                     " coalesce({n}balance_base_units, 0)::BIGINT AS balance_base_units")


def get_stake_frame(con) -> pl.DataFrame:
    """Per node with a stake event or a stake account: the declared deposit at end(e) (the latest
    `node.registered` / `node.stake_changed` with occurred_at < end(e), 0 when none) and the
    stake account's balance after the closes before e (of `carry.prepare`'s gather_nodes). The
    close reads these rows with its nodes (`gather_epoch_inputs`, one query)."""
    return fetch_polars(con, f"""
        SELECT node_id, {STAKE_COLUMNS_SQL.format(n="")} FROM gather_nodes WHERE {STAKED_SQL} ORDER BY node_id
    """)


def _decision_from_row(row: dict, e: int) -> Decision:
    """A stored decision as it stood after the close of e − 1."""
    resolved = row["resolved_in_epoch"]
    settled = resolved is not None and resolved < e
    return Decision(
        decision_id=row["decision_id"], rule=row["rule"], node_id=row["node_id"], subject=row["subject"],
        decided_at_us=row["decided_at_us"], evidence=tuple(row["evidence"]),
        amount_base_units=row["amount_base_units"], stake_deposit_base_units=row["stake_deposit_base_units"],
        stake_left_base_units=row["stake_left_base_units"], decided_in_epoch=row["decided_in_epoch"],
        finality_epoch=row["finality_epoch"], detail=row["detail"],
        status=row["status"] if settled else "proposed", resolved_in_epoch=resolved if settled else None,
    )


def gather_slash_inputs(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1) -> SlashInputs:
    """What the close of e needs for §8: the decisions made before it, the jobs and benchmarks to
    check now (their check epoch is e, or evidence for them arrived since the previous close),
    and the stake events, appeals and recorded slot bitmaps to decide them with."""
    carry.prepare(con, e, cutoff_seq, cfg)
    return _gather_slash_inputs(con, e, cutoff_seq, cfg)


# Whether any job, any appeal, any decision before epoch $e is known (over `carry.prepare`'s g_*)
SLASH_EXISTS_SQL = """EXISTS (SELECT 1 FROM g_jobs), EXISTS (SELECT 1 FROM g_appeals),
    EXISTS (SELECT 1 FROM slash_decisions WHERE decided_in_epoch < $e)"""


def _gather_slash_inputs(con, e: int, cutoff_seq: int, cfg: RulesetConfig = RULESET_V1,
                         quiet: bool = False, prev: int | None = None,
                         exists: tuple[bool, bool, bool] | None = None) -> SlashInputs:
    """`gather_slash_inputs` over the typed events of `carry.prepare` (g_*).

    A quiet close (`carry.prepare`: no event but pings arrived since the previous close, and
    none arrived before falls in epoch e) has no benchmark to check: every reason to look at
    one again (below: it occurred in epoch e, it or a registration of its node arrived since the
    previous close, or its node registered in epoch e, or another benchmark arrived since
    reports one of its fingerprints) is an event that would make the close not quiet. Nor are
    jobs looked for when no job was ever reported, nor appeals when none was. `prev`: the
    previous close's cutoff when the caller knows it (the carried state's), else read.
    `exists`: `SLASH_EXISTS_SQL`'s row when the caller read it.

    Of the benchmarks to check, only those that can be fraud are handed to the rules: those
    reporting a fingerprint first reported by another node, or whose ratio to the claimed model's
    spec reaches the impossible bound (less a relative 1e-9, so this is a superset of what the
    scalar rule finds, which then decides each one). A benchmark outside it cannot give a
    decision (`get_fraud_candidates` skips it), so the outcome is the same; the registrations and
    stake events handed over are those of the nodes the rules can decide on."""
    start_us, end_us = get_epoch_start_us(e, cfg), get_epoch_end_us(e, cfg)
    prev = get_previous_cutoff(con, e) if prev is None else prev
    p = {"e": e, "prev": prev, "start": start_us, "end": end_us}
    any_jobs, any_appeals, any_decisions = exists if exists is not None else \
        con.execute(f"SELECT {SLASH_EXISTS_SQL}", {"e": e}).fetchall()[0]
    decisions = []
    if any_decisions:
        cur = con.execute("SELECT * FROM slash_decisions WHERE decided_in_epoch < $e ORDER BY decision_id", {"e": e})
        cols = [d[0] for d in cur.description]
        decisions = [_decision_from_row(dict(zip(cols, r)), e) for r in cur.fetchall()]
    jobs = _gather_jobs(con, e, p, cfg, quiet) if any_jobs else []
    benchmarks: list[BenchmarkFacts] = []
    related: list[BenchmarkFacts] = []
    if not quiet or jobs:
        con.execute(f"CREATE OR REPLACE TEMP TABLE close_reg AS {REGISTRATIONS_SQL}")
    if not quiet:
        benchmarks, related = _gather_benchmarks(con, p, cfg)

    # The recorded slot bitmaps of the closed epochs the candidates' windows touch.
    bitmaps: dict[str, dict[int, int]] = {}
    spans = [(j.node_id, *w) for j in jobs if (w := compute_window_epochs(j, cfg)) is not None]
    if spans:
        with registered(con, "close_job_spans", pl.DataFrame(
                spans, orient="row", schema=[("node_id", pl.String), ("lo", pl.Int64), ("hi", pl.Int64)])):
            for node_id, k, bm in con.execute("""
                SELECT DISTINCT s.node_id, s.reward_epoch, s.slot_bitmap
                FROM node_epoch_scores s JOIN close_job_spans w
                  ON s.node_id = w.node_id AND s.reward_epoch BETWEEN w.lo AND w.hi
                WHERE s.reward_epoch < $e
            """, {"e": e}).fetchall():
                bitmaps.setdefault(node_id, {})[int(k)] = int(bm)

    # Registrations and stake events of the nodes the rules may decide on at this close.
    subjects = sorted({b.node_id for b in benchmarks} | {j.node_id for j in jobs})
    registrations: dict[str, RegistrationFacts] = {}
    stake_events: dict[str, list[tuple[int, str, int]]] = {}
    if subjects:
        with registered(con, "close_subjects", pl.DataFrame({"node_id": subjects}, schema={"node_id": pl.String})):
            for node_id, event_id, at, model, count in con.execute("""
                SELECT node_id, event_id, registered_at_us, gpu_model, gpu_count FROM close_reg
                WHERE node_id IN (SELECT node_id FROM close_subjects)
            """).fetchall():
                registrations[node_id] = RegistrationFacts(node_id, event_id, at, model, int(count))
            for node_id, event_id, at, stake in con.execute("""
                SELECT node_id, event_id, occurred_at_us, stake_base_units FROM g_stakes
                WHERE node_id IN (SELECT node_id FROM close_subjects)
                ORDER BY node_id, occurred_at_us, event_id
            """).fetchall():
                stake_events.setdefault(node_id, []).append((at, event_id, int(stake)))

    appeals: dict[str, list[tuple[int, str]]] = {}
    for decision_id, at, event_id in con.execute(
            "SELECT decision_id, occurred_at_us, event_id FROM g_appeals ORDER BY 1, 2, 3").fetchall() \
            if any_appeals else []:
        appeals.setdefault(decision_id, []).append((at, event_id))

    return SlashInputs(e, decisions, jobs, benchmarks, related, registrations, stake_events, appeals, bitmaps)


def _gather_jobs(con, e: int, p: dict, cfg: RulesetConfig, quiet: bool = False) -> list[JobFacts]:
    """The standing completions whose downtime check is due at the close of e (over g_jobs; the
    arrivals since the previous close in d_jobs, made by `carry.prepare` unless the close is quiet:
    then none arrived)."""
    # Jobs: the standing job.completed per job_id among those arrived; those with no decision
    # yet whose check epoch may be e (max(ended_at, occurred_at) in epoch e: ended_at as DuckDB
    # reads it, give or take a second) or with a completion arrived since the previous close. A
    # superset: `compute_job_check_epoch` decides below, on the exact times. (A job whose check
    # epoch closed before, with nothing new, was checked then and gets the same answer now.)
    # Only the jobs with an event that could meet these are looked at.
    margin_us = 1_000_000
    rows = con.execute(f"""
        WITH maybe AS (  -- each condition alone, so that the typed events' zone maps skip the rest
            {"" if quiet else "SELECT job_id FROM d_jobs WHERE arrival_seq > $prev UNION"}
            SELECT job_id FROM g_jobs WHERE occurred_at_us >= $start
            UNION SELECT job_id FROM g_jobs WHERE ended_approx >= $start - $margin AND ended_approx < $end + $margin
            UNION SELECT job_id FROM g_jobs WHERE ended_approx IS NULL
        ), jc AS MATERIALIZED (  -- (not the payloads: every report of a job is read, the few kept below)
            SELECT job_id, node_id, event_id, arrival_seq, occurred_at_us, ended_approx FROM g_jobs
            WHERE job_id IN (SELECT job_id FROM maybe)
        ), standing AS ({standing_job_sql("jc")}
        ), arrivals AS (
            SELECT job_id, max(arrival_seq) AS last_arrival FROM jc GROUP BY job_id
        ), approx AS (
            SELECT jc.*, arrivals.last_arrival
            FROM standing JOIN jc USING (job_id, event_id) JOIN arrivals USING (job_id)
        )
        SELECT job_id, node_id, event_id, occurred_at_us, arrival_seq FROM approx
        WHERE {decision_id_sql(RULE_DOWNTIME, "job_id")} NOT IN
              (SELECT decision_id FROM slash_decisions WHERE decided_in_epoch < $e)
          AND (last_arrival > $prev OR occurred_at_us >= $start OR ended_approx IS NULL
               OR (ended_approx >= $start - $margin AND ended_approx < $end + $margin))
        ORDER BY job_id
    """, {**{k: p[k] for k in ("e", "prev", "start", "end")}, "margin": margin_us}).fetchall()

    # The payloads of those completions, read by their arrivals' range (the typed events' zone
    # maps skip the rest of the history).
    payloads: dict[tuple[str, int], str] = {}
    if rows:
        keys = pl.DataFrame([(r[2], r[4]) for r in rows], orient="row",
                            schema=[("event_id", pl.String), ("arrival_seq", pl.Int64)])
        with registered(con, "close_job_rows", keys):
            payloads = {(event_id, seq): payload for event_id, seq, payload in con.execute("""
                SELECT j.event_id, j.arrival_seq, j.payload FROM g_jobs j JOIN close_job_rows USING (event_id, arrival_seq)
                WHERE j.arrival_seq BETWEEN $lo AND $hi
            """, {"lo": int(keys["arrival_seq"].min()), "hi": int(keys["arrival_seq"].max())}).fetchall()}
    jobs = []
    for job_id, node_id, event_id, occurred_at_us, arrival_seq in rows:
        pl_ = orjson.loads(payloads[(event_id, arrival_seq)])
        job = JobFacts(job_id, node_id, event_id, occurred_at_us, time_to_us(pl_["started_at"]),
                       time_to_us(pl_["ended_at"]), time_to_us(pl_["committed_until"]), pl_["status"])
        if compute_job_check_epoch(job, cfg) <= e:
            jobs.append(job)

    return jobs


def _shared_fingerprints_sql(fps: str) -> str:
    """The fingerprints of the relation `fps` (column fp) that more than one node reported (over
    g_fingerprints and g_benchmarks): the only ones whose binding (§9: to the first reporter) can
    be another node's than a report's own."""
    return ("SELECT f.fp FROM g_fingerprints f JOIN g_benchmarks b USING (event_id)"
            f" WHERE f.fp IN (SELECT fp FROM {fps}) GROUP BY f.fp HAVING min(b.node_id) <> max(b.node_id)")


def _gather_benchmarks(con, p: dict, cfg: RulesetConfig) -> tuple[list[BenchmarkFacts], list[BenchmarkFacts]]:
    """The benchmarks that can be fraud at the close of e, and the benchmarks sharing one of their
    fingerprints (over g_benchmarks, g_fingerprints and close_reg)."""
    # Benchmarks with no decision yet, occurred before end(e), with something to decide now.
    # The reasons that need a look at the history (a benchmark arrived since the previous close,
    # all of which are in d_benchmarks: a carried state is that close's; a registration arrived
    # since or in epoch e) are tested first on the small relations, and the history is read for
    # those that hold only.
    new_benchmarks, new_regs = con.execute("""
        SELECT EXISTS (SELECT 1 FROM d_benchmarks WHERE arrival_seq > $prev),
               EXISTS (SELECT 1 FROM close_reg
                       WHERE arrival_seq > $prev OR (registered_at_us >= $start AND registered_at_us < $end))
    """, {k: p[k] for k in ("prev", "start", "end")}).fetchall()[0]
    reasons = ["SELECT event_id FROM g_benchmarks WHERE occurred_at_us >= $start"]
    if new_benchmarks:
        reasons += ["SELECT event_id FROM d_benchmarks WHERE arrival_seq > $prev", "SELECT event_id FROM old_sharing"]
    if new_regs:
        reasons.append("""SELECT b.event_id FROM g_benchmarks b JOIN close_reg reg USING (node_id)
                  WHERE reg.arrival_seq > $prev OR (reg.registered_at_us >= $start AND reg.registered_at_us < $end)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE slash_bench_cand AS
        WITH new_fp AS (  -- the fingerprints of the benchmarks arrived since the previous close
            SELECT DISTINCT fp FROM d_fingerprints
            WHERE event_id IN (SELECT event_id FROM d_benchmarks WHERE arrival_seq > $prev)
        ), new_shared AS (  -- those reported by more than one node (new reports included): a
            -- fingerprint only ever reported by one node is bound to it whichever report is first,
            -- so its older reports need no new look
            {_shared_fingerprints_sql("new_fp")}
        ), old_sharing AS (  -- older benchmarks reporting one of them (a new first reporter may bind it)
            SELECT DISTINCT f.event_id FROM g_fingerprints f JOIN new_shared USING (fp) JOIN g_benchmarks b USING (event_id)
            WHERE b.arrival_seq <= $prev
        ), maybe AS (  -- each condition alone, so that the typed events' zone maps skip the rest
            {" UNION ".join(reasons)}
        )
        SELECT b.event_id FROM g_benchmarks b
        WHERE b.event_id IN (SELECT event_id FROM maybe) AND b.occurred_at_us < $end
          AND {decision_id_sql(RULE_FRAUD, fraud_subject_sql("b.node_id", "b.event_id"))} NOT IN
              (SELECT decision_id FROM slash_decisions WHERE decided_in_epoch < $e)
    """, {k: p[k] for k in ("e", "prev", "start", "end")})
    if not con.execute("SELECT EXISTS (SELECT 1 FROM slash_bench_cand)").fetchall()[0][0]:
        return [], []  # no candidate: none can be fraud, none shares a fingerprint with one
    # The claimed models of the candidates' nodes, normalised once per distinct claim (§3).
    claims = [r[0] for r in con.execute(
        "SELECT DISTINCT gpu_model FROM close_reg WHERE gpu_model IS NOT NULL").fetchall()]
    specs = [(c, m.spec_fp32_tflops, m.spec_bw_gbps) for c in claims if (m := get_model(c)) is not None]
    with registered(con, "close_claim_spec", pl.DataFrame(specs, orient="row", schema=[
            ("claim", pl.String), ("spec_fp32", pl.Float64), ("spec_bw", pl.Float64)])):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE slash_bench_sus AS
            WITH cand_fp AS (
                SELECT event_id, fp FROM g_fingerprints WHERE event_id IN (SELECT event_id FROM slash_bench_cand)
            ), multi AS ({_shared_fingerprints_sql("cand_fp")}
            ), reports AS (  -- (the owners of those only: a node re-benchmarking its own GPUs
                -- reports the same fingerprints every time, and their history is not read)
                SELECT f.fp, b.node_id, b.event_id, b.occurred_at_us
                FROM g_fingerprints f JOIN g_benchmarks b USING (event_id) WHERE f.fp IN (SELECT fp FROM multi)
            ), shared AS ({fingerprint_owners_sql("reports")}
            ), reused AS (
                SELECT DISTINCT cf.event_id FROM cand_fp cf JOIN shared s USING (fp) JOIN g_benchmarks b USING (event_id)
                WHERE s.owner_node <> b.node_id
            )
            SELECT c.event_id FROM slash_bench_cand c JOIN g_benchmarks b USING (event_id)
            LEFT JOIN close_reg reg USING (node_id) LEFT JOIN close_claim_spec s ON s.claim = reg.gpu_model
            WHERE c.event_id IN (SELECT event_id FROM reused)
               OR coalesce(b.fp32_tflops / s.spec_fp32 >= $lim OR b.mem_bandwidth_gbps / s.spec_bw >= $lim, false)
        """, {"lim": cfg.hw_impossible_ratio * (1 - 1e-9)})

    def bench_facts(where: str) -> list[BenchmarkFacts]:
        return [BenchmarkFacts(event_id, node_id, at, tuple(fps), float(fp32), float(bw), float(vram), int(count))
                for event_id, node_id, at, fps, fp32, bw, vram, count in con.execute(f"""
                    SELECT event_id, node_id, occurred_at_us, fps, fp32_tflops, mem_bandwidth_gbps, vram_gb, gpu_count
                    FROM g_benchmarks WHERE {where} ORDER BY event_id""").fetchall()]

    benchmarks = bench_facts("event_id IN (SELECT event_id FROM slash_bench_sus)")
    related = bench_facts("""event_id IN (SELECT event_id FROM g_fingerprints WHERE fp IN (
        SELECT fp FROM g_fingerprints WHERE event_id IN (SELECT event_id FROM slash_bench_sus)))""") \
        if benchmarks else []

    return benchmarks, related
