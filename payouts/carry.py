"""The state a close carries forward, so that the next close reads what is new, not the history.

Every input of the close of e is a function of the events arrived by its cutoff c whose time is
before end(e) (ruleset §9). Both bounds only grow from one close to the next, so the events of
the close of e are those of the close of e − 1 plus

    Δ(e) = {arrival_seq ∈ (c', c], occurred_at < end(e)} ∪ {arrival_seq ≤ c', end(e − 1) ≤ occurred_at < end(e)}

(c' the previous close's cutoff). What the close derives from them is carried as state:

    typed events  every non-ping event's payload parsed once, by arrival (`carry_registrations`,
                  `carry_benchmarks` and `carry_fingerprints`, `carry_jobs`, `carry_stakes`,
                  `carry_appeals`): the slashing checks read typed columns, never JSON
    per node      (`carry_nodes`) the first registration (§10, whatever its time), the latest
                  benchmark before end(e), the declared stake deposit at
                  end(e), the job counts of J, the stake account's balance after the close
    per job       (`carry_standing`) the standing `job.completed`, so that a late report of a job
                  moves J from one standing completion to the other, never counts it twice
    figures       (engine_meta `carry`) the epoch and cutoff, the count and XOR digest of the
                  non-ping input events, the late events and the highest ping time by the cutoff

Each is combined with Δ(e) by the rules (and SQL twins) that define it: the latest and the first
are maxima and minima, counts and digests add up. Starting from nothing, Δ is every event, so the
state from scratch and the state carried forward are one computation (`epoch verify` recomputes
each epoch from scratch and compares with what the carried close wrote; tests/integration/
test_carry.py holds every close of a replay to its recomputation). `gather_epoch_inputs` starts
from the carried state when it is the previous epoch's, from nothing otherwise (verify, what-if,
a store first closed by an older engine); `write_epoch` advances it inside the close's transaction.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass

from scoring.hardware import latest_benchmark_sql
from scoring.invariants import invariant
from scoring.jobs import job_counts_sql, standing_job_sql
from scoring.registration import first_registration_sql
from scoring.ruleset import RulesetConfig
from scoring.slashing import latest_stake_event_sql, stake_deposit_sql
from scoring.timing import get_epoch_end_us
from store.db import get_meta, set_meta

CARRY_META = "carry"
KINDS = ("registrations", "benchmarks", "fingerprints", "jobs", "stakes", "appeals")
NODE_COLUMNS = ("node_id", "reg_event_id", "reg_arrival_seq", "registered_at_us", "wallet", "gpu_model", "gpu_count",
                "bench_event_id", "bench_at_us", "fp32_tflops", "mem_bandwidth_gbps", "vram_gb",
                "found_gpu_count", "deposit_at_us", "deposit_event_id", "deposit_base_units", "jobs_succeeded",
                "jobs_failed_node", "balance_base_units")
CARRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS carry_registrations (node_id VARCHAR, event_id VARCHAR, arrival_seq BIGINT,
    occurred_at_us BIGINT, wallet VARCHAR, gpu_model VARCHAR, gpu_count BIGINT);
CREATE TABLE IF NOT EXISTS carry_benchmarks (event_id VARCHAR, node_id VARCHAR, arrival_seq BIGINT,
    occurred_at_us BIGINT, fp32_tflops DOUBLE, mem_bandwidth_gbps DOUBLE, vram_gb DOUBLE, gpu_count BIGINT,
    fps VARCHAR[]);
CREATE TABLE IF NOT EXISTS carry_fingerprints (event_id VARCHAR, fp VARCHAR);
CREATE TABLE IF NOT EXISTS carry_jobs (job_id VARCHAR, node_id VARCHAR, event_id VARCHAR, arrival_seq BIGINT,
    occurred_at_us BIGINT, status VARCHAR, ended_approx HUGEINT, payload VARCHAR);
CREATE TABLE IF NOT EXISTS carry_stakes (node_id VARCHAR, event_id VARCHAR, arrival_seq BIGINT,
    occurred_at_us BIGINT, stake_base_units BIGINT);
CREATE TABLE IF NOT EXISTS carry_appeals (decision_id VARCHAR, event_id VARCHAR, arrival_seq BIGINT,
    occurred_at_us BIGINT);
CREATE TABLE IF NOT EXISTS carry_nodes (node_id VARCHAR, reg_event_id VARCHAR, reg_arrival_seq BIGINT,
    registered_at_us BIGINT, wallet VARCHAR, gpu_model VARCHAR, gpu_count BIGINT, bench_event_id VARCHAR, bench_at_us BIGINT,
    fp32_tflops DOUBLE, mem_bandwidth_gbps DOUBLE, vram_gb DOUBLE, found_gpu_count BIGINT, deposit_at_us BIGINT,
    deposit_event_id VARCHAR, deposit_base_units BIGINT, jobs_succeeded BIGINT, jobs_failed_node BIGINT,
    balance_base_units BIGINT);
CREATE TABLE IF NOT EXISTS carry_standing (job_id VARCHAR, event_id VARCHAR, occurred_at_us BIGINT,
    node_id VARCHAR, status VARCHAR);
"""


def typed_select(kind: str, where: str) -> str:
    """The typed rows of one kind of archived event, for the events selected by `where` (over
    archive_events): the payload's fields extracted once, as the rules read them."""
    if kind == "registrations":
        return f"""
            SELECT node_id, event_id, arrival_seq, occurred_at_us, x[1] AS wallet, x[2] AS gpu_model,
                   x[3]::BIGINT AS gpu_count
            FROM (SELECT *, json_extract_string(payload, ['$.wallet', '$.gpu_model', '$.gpu_count']) AS x
                  FROM archive_events WHERE event_type = 'node.registered' AND {where})"""
    if kind == "benchmarks":
        return f"""
            SELECT event_id, node_id, arrival_seq, occurred_at_us, x[1]::DOUBLE AS fp32_tflops,
                   x[2]::DOUBLE AS mem_bandwidth_gbps, x[3]::DOUBLE AS vram_gb, x[4]::BIGINT AS gpu_count,
                   json_extract_string(payload, '$.gpu_fingerprints[*]') AS fps
            FROM (SELECT *, json_extract_string(payload, ['$.fp32_tflops', '$.mem_bandwidth_gbps', '$.vram_gb',
                                                          '$.gpu_count']) AS x
                  FROM archive_events WHERE event_type = 'benchmark' AND {where})"""
    if kind == "fingerprints":  # over the typed benchmarks, each (benchmark, fingerprint) once
        return f"SELECT DISTINCT event_id, unnest(fps) AS fp FROM ({where})"
    if kind == "jobs":
        return f"""
            SELECT payload ->> '$.job_id' AS job_id, node_id, event_id, arrival_seq, occurred_at_us,
                   payload ->> '$.status' AS status,
                   CASE WHEN json_type(payload, '$.ended_at') IN ('UBIGINT', 'BIGINT')
                        THEN (payload ->> '$.ended_at')::HUGEINT * 1000
                        ELSE epoch_us(try_cast(payload ->> '$.ended_at' AS TIMESTAMPTZ)) END AS ended_approx,
                   payload
            FROM archive_events WHERE event_type = 'job.completed' AND {where}"""
    if kind == "stakes":
        return f"""
            SELECT node_id, event_id, arrival_seq, occurred_at_us,
                   (payload ->> '$.stake_base_units')::BIGINT AS stake_base_units
            FROM archive_events WHERE event_type IN ('node.registered', 'node.stake_changed') AND {where}"""
    if kind == "appeals":
        return f"""
            SELECT payload ->> '$.decision_id' AS decision_id, event_id, arrival_seq, occurred_at_us
            FROM archive_events WHERE event_type = 'appeal.upheld' AND {where}"""
    raise ValueError(kind)


@dataclass(frozen=True)
class Carry:
    """The carried figures after the close of `epoch` with the events arrived by `cutoff`."""

    epoch: int
    cutoff: int
    events_count: int  # the input events that are not pings (nor ping.batch envelopes) before end(epoch)
    events_digest: int  # their XOR of md5(event_id), an unsigned 128-bit integer
    late: int  # late events (pings and others) arrived by the cutoff
    max_ping_us: int | None  # the highest ping time arrived by the cutoff

    def as_json(self) -> str:
        return json.dumps({"epoch": self.epoch, "cutoff": self.cutoff, "events_count": self.events_count,
                           "events_digest": str(self.events_digest), "late": self.late,
                           "max_ping_us": self.max_ping_us})


def get_carry(con) -> Carry | None:
    """The carried state of this store, None when there is none."""
    raw = get_meta(con, CARRY_META)
    if raw is None:
        return None
    d = json.loads(raw)
    return Carry(d["epoch"], d["cutoff"], d["events_count"], int(d["events_digest"]), d["late"], d["max_ping_us"])


@dataclass(frozen=True)
class CarryStep:
    """What one close adds to the state it started from (the temp tables of `prepare`)."""

    base: Carry | None  # the carried state it started from (None: from nothing)
    after: Carry  # the state after it
    quiet: bool = False  # Δ(e) has no event but pings: `prepare` made no d_/next_ tables, the state moves by stakes only


READ_BASE = object()  # `prepare`'s and `get_base`'s default: read the base from the store


def get_base(con, e: int, cutoff: int, from_scratch: bool = False, known=READ_BASE) -> Carry | None:
    """The carried state the close of e with the events arrived by `cutoff` starts from: the
    store's when it is the previous epoch's (and not past the cutoff), else None (from nothing).
    `known`: the store's carried state when the caller knows it (the close it committed just
    before on this connection left it), not read again."""
    base = None if from_scratch else get_carry(con) if known is READ_BASE else known
    if base is not None and not (base.epoch == e - 1 and base.cutoff <= cutoff):
        base = None
    return base
# The connections whose g_ views and gather_nodes are the carried tables themselves (a quiet
# close made them and no other close replaced them since): the next quiet close keeps them.
# Temporary views are the connection's own, outside any transaction (a close gathers before
# its write transaction begins), and die with it.
_carried_views: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def prepare(con, e: int, cutoff: int, cfg: RulesetConfig, from_scratch: bool = False, *,
            base=READ_BASE, quiet: bool = False) -> Carry | None:
    """The temp tables and views of the close of e with the events arrived by `cutoff`, over
    the carried state when it is the previous epoch's (returned), else over nothing (None):
      d_<kind>      the typed events arrived since the state's cutoff: what the close appends
      g_<kind>      every typed event arrived by the cutoff (carried ∪ d_)
      w_<kind>      the typed events of Δ(e)
      next_standing the standing completion of each job of Δ(e) where it changes
      next_nodes    per node touched by Δ(e): the carried figures combined with Δ(e)
      gather_nodes  per node: next_nodes, else the carried row
    `base`: the state to start from when the caller read it (`get_base`). `quiet` (the caller
    found, by `get_figures`, that no event but pings arrived since the base and none of the
    base's falls in epoch e): Δ(e) has no typed event, so d_, w_ and next_ would all be empty
    and the g_ views and gather_nodes are the carried tables themselves; only those are made
    (the close of an hour of pings costs a few statements, not some forty).
    """
    if base is READ_BASE:
        base = get_base(con, e, cutoff, from_scratch)
    if quiet and base:
        if not _carried_views.get(con):  # (made by the quiet close before on this connection)
            for kind in KINDS:
                con.execute(f"CREATE OR REPLACE TEMP VIEW g_{kind} AS SELECT * FROM main.carry_{kind}")
            con.execute("CREATE OR REPLACE TEMP VIEW gather_nodes AS SELECT * FROM main.carry_nodes")
            _carried_views[con] = True
        return base
    _carried_views.pop(con, None)
    lo = base.cutoff if base else -1
    prev_end = get_epoch_end_us(base.epoch, cfg) if base else None
    end = get_epoch_end_us(e, cfg)
    for kind in KINDS:
        if kind == "fingerprints":
            con.execute(f"CREATE OR REPLACE TEMP TABLE d_fingerprints AS {typed_select(kind, 'SELECT * FROM d_benchmarks')}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE d_{kind} AS "
                        + typed_select(kind, f"arrival_seq > {lo} AND arrival_seq <= {int(cutoff)}"))
        carried = f"SELECT * FROM main.carry_{kind} UNION ALL " if base else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW g_{kind} AS {carried}SELECT * FROM d_{kind}")
        if kind != "fingerprints":
            # Δ(e): the arrivals since the base (d_, every row of which arrived after it) and the
            # carried rows (all arrived by its cutoff) whose time falls in e, each on its own so
            # that the carried table's zone maps on occurred_at_us skip the rest of the history.
            window = (f" UNION ALL SELECT * FROM main.carry_{kind}"
                      f" WHERE occurred_at_us >= {prev_end} AND occurred_at_us < {end}" if base else "")
            con.execute(f"CREATE OR REPLACE TEMP VIEW w_{kind} AS SELECT * FROM d_{kind}"
                        f" WHERE occurred_at_us < {end}{window}")
    if base:
        nodes, standing = "main.carry_nodes", "main.carry_standing"
    else:  # from nothing: every node's stake balance from the ledger of the closes before e
        nodes = f"""(SELECT node_id, NULL::VARCHAR AS reg_event_id, NULL::BIGINT AS reg_arrival_seq,
                 NULL::BIGINT AS registered_at_us, NULL::VARCHAR AS wallet, NULL::VARCHAR AS gpu_model,
                 NULL::BIGINT AS gpu_count, NULL::VARCHAR AS bench_event_id, NULL::BIGINT AS bench_at_us,
                 NULL::DOUBLE AS fp32_tflops, NULL::DOUBLE AS mem_bandwidth_gbps, NULL::DOUBLE AS vram_gb,
                 NULL::BIGINT AS found_gpu_count, NULL::BIGINT AS deposit_at_us, NULL::VARCHAR AS deposit_event_id,
                 0::BIGINT AS deposit_base_units, 0::BIGINT AS jobs_succeeded, 0::BIGINT AS jobs_failed_node,
                 balance_base_units FROM ({stake_balances_sql(e)}))"""
        standing = ("(SELECT NULL::VARCHAR AS job_id, NULL::VARCHAR AS event_id, NULL::BIGINT AS occurred_at_us,"
                    " NULL::VARCHAR AS node_id, NULL::VARCHAR AS status WHERE false)")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE next_standing AS
        WITH delta AS ({standing_job_sql("w_jobs")}
        ), delta_rows AS (
            SELECT d.job_id, j.event_id, j.occurred_at_us, j.node_id, j.status
            FROM delta d JOIN w_jobs j USING (job_id, event_id)
        ), old AS (
            SELECT * FROM {standing} WHERE job_id IN (SELECT job_id FROM delta)
        ), candidates AS (
            SELECT * FROM old UNION ALL SELECT * FROM delta_rows
        ), new AS ({standing_job_sql("candidates")})
        SELECT n.job_id, c.event_id, c.occurred_at_us, c.node_id, c.status,
               o.node_id AS old_node_id, o.status AS old_status, o.event_id IS NULL AS is_new
        FROM new n JOIN candidates c USING (job_id, event_id) LEFT JOIN old o USING (job_id)
        WHERE o.event_id IS NULL OR o.event_id <> n.event_id
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE next_nodes AS
        WITH now_standing AS (  -- the counts the new standing completions add
            SELECT node_id, {job_counts_sql("status")} FROM next_standing GROUP BY node_id
        ), no_longer AS (  -- and those of the completions they replace
            SELECT old_node_id AS node_id, {job_counts_sql("old_status")}
            FROM next_standing WHERE NOT is_new GROUP BY old_node_id
        ), moves AS (
            SELECT node_id, jobs_succeeded AS s, jobs_failed_node AS f FROM now_standing
            UNION ALL SELECT node_id, -jobs_succeeded, -jobs_failed_node FROM no_longer
        ), jobs AS (
            SELECT node_id, sum(s)::BIGINT AS s, sum(f)::BIGINT AS f FROM moves GROUP BY node_id
        ), touched AS (
            SELECT node_id FROM jobs UNION SELECT node_id FROM w_benchmarks WHERE occurred_at_us < {end}
            UNION SELECT node_id FROM w_stakes UNION SELECT node_id FROM d_registrations
            {"" if base else "UNION SELECT node_id FROM " + nodes}
        ), old AS (
            SELECT c.* FROM {nodes} c WHERE node_id IN (SELECT node_id FROM touched)
        ), reg_cand AS (
            SELECT node_id, reg_event_id AS event_id, reg_arrival_seq AS arrival_seq, registered_at_us AS occurred_at_us,
                   wallet, gpu_model, gpu_count FROM old WHERE reg_event_id IS NOT NULL
            UNION ALL
            SELECT node_id, event_id, arrival_seq, occurred_at_us, wallet, gpu_model, gpu_count FROM d_registrations
        ), reg AS (
            SELECT r.* FROM ({first_registration_sql("reg_cand")}) f
            JOIN reg_cand r ON r.node_id = f.node_id AND r.event_id = f.event_id
        ), bench_cand AS (
            SELECT node_id, bench_event_id AS event_id, bench_at_us AS occurred_at_us, fp32_tflops,
                   mem_bandwidth_gbps, vram_gb, found_gpu_count AS gpu_count
            FROM old WHERE bench_event_id IS NOT NULL
            UNION ALL
            SELECT node_id, event_id, occurred_at_us, fp32_tflops, mem_bandwidth_gbps, vram_gb, gpu_count
            FROM w_benchmarks
        ), latest AS ({latest_benchmark_sql("bench_cand")}
        ), bench AS (
            SELECT b.* FROM latest JOIN bench_cand b USING (node_id, event_id)
        ), stake_cand AS (
            SELECT node_id, deposit_event_id AS event_id, deposit_at_us AS occurred_at_us,
                   deposit_base_units AS stake FROM old WHERE deposit_event_id IS NOT NULL
            UNION ALL SELECT node_id, event_id, occurred_at_us, stake_base_units FROM w_stakes
        ), dep AS (
            SELECT node_id, {stake_deposit_sql("stake", str(end - 1))} AS deposit,
                   {latest_stake_event_sql("occurred_at_us", str(end - 1))} AS at_us,
                   {latest_stake_event_sql("event_id", str(end - 1))} AS event_id
            FROM stake_cand GROUP BY node_id
        )
        SELECT t.node_id,
               reg.event_id AS reg_event_id, reg.arrival_seq AS reg_arrival_seq, reg.occurred_at_us AS registered_at_us,
               reg.wallet, reg.gpu_model, reg.gpu_count,
               bench.event_id AS bench_event_id, bench.occurred_at_us AS bench_at_us, bench.fp32_tflops,
               bench.mem_bandwidth_gbps, bench.vram_gb, bench.gpu_count AS found_gpu_count,
               dep.at_us AS deposit_at_us, dep.event_id AS deposit_event_id,
               coalesce(dep.deposit, 0)::BIGINT AS deposit_base_units,
               (coalesce(old.jobs_succeeded, 0) + coalesce(jobs.s, 0))::BIGINT AS jobs_succeeded,
               (coalesce(old.jobs_failed_node, 0) + coalesce(jobs.f, 0))::BIGINT AS jobs_failed_node,
               coalesce(old.balance_base_units, 0)::BIGINT AS balance_base_units
        FROM touched t LEFT JOIN old USING (node_id) LEFT JOIN reg USING (node_id) LEFT JOIN bench USING (node_id)
        LEFT JOIN dep USING (node_id) LEFT JOIN jobs USING (node_id)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW gather_nodes AS
        SELECT * FROM next_nodes
        {f"UNION ALL SELECT * FROM {nodes} WHERE node_id NOT IN (SELECT node_id FROM next_nodes)" if base else ""}
    """)
    return base


def stake_balances_sql(e: int) -> str:
    """(node_id, balance_base_units) of every node's stake account after the closes before e,
    from the ledger."""
    return f"""
        SELECT substr(account, 6, length(account) - 11) AS node_id, sum(amount)::BIGINT AS balance_base_units
        FROM (
            SELECT credit_account AS account, amount_base_units::HUGEINT AS amount FROM ledger_entries
            WHERE reward_epoch < {int(e)} AND credit_account LIKE 'node:%:stake'
            UNION ALL
            SELECT debit_account, -amount_base_units::HUGEINT FROM ledger_entries
            WHERE reward_epoch < {int(e)} AND debit_account LIKE 'node:%:stake')
        GROUP BY account"""


def get_figures(con, e: int, cutoff: int, base: Carry | None, cfg: RulesetConfig) -> Carry:
    """The carried figures after the close of e: the non-ping events before end(e) (count, XOR
    digest), the late events and the highest ping time by the cutoff — the base's plus Δ's."""
    return measure(con, e, cutoff, base, cfg)[0]


def measure(con, e: int, cutoff: int, base: Carry | None, cfg: RulesetConfig) -> tuple[Carry, bool]:
    """`get_figures`, and whether the close is quiet (`prepare`): over a base, no event but pings
    arrived since its cutoff and none arrived before falls in epoch e (one statement)."""
    lo = base.cutoff if base else -1
    end = get_epoch_end_us(e, cfg)
    new = f"arrival_seq > {lo} AND arrival_seq <= {int(cutoff)}"
    window = (f"OR (arrival_seq <= {lo} AND occurred_at_us >= {get_epoch_end_us(base.epoch, cfg)}"
              f" AND occurred_at_us < {end})" if base else "")
    # (nothing arrived since the base: no late event and no ping to read)
    arrivals = f"""(SELECT count(*) FROM archive_pings WHERE late AND {new})
                 + (SELECT count(*) FROM archive_events WHERE late AND {new}),
               (SELECT max(occurred_at_us) FROM archive_pings WHERE {new})""" if cutoff > lo else "0, NULL"
    count, digest, moved, late, max_ping = con.execute(f"""
        WITH delta AS (
            SELECT event_id, occurred_at_us, arrival_seq FROM archive_events
            WHERE event_type <> 'ping.batch' AND (({new}) {window})
        )
        SELECT count(*) FILTER (occurred_at_us < {end}),
               coalesce(bit_xor(md5_number(event_id)) FILTER (occurred_at_us < {end}), 0::UHUGEINT)::VARCHAR,
               count(*), {arrivals}
        FROM delta
    """).fetchall()[0]
    quiet = base is not None and moved == 0
    if base:
        count, digest = base.events_count + count, base.events_digest ^ int(digest)
        late = base.late + late
        max_ping = base.max_ping_us if max_ping is None else max_ping if base.max_ping_us is None else \
            max(base.max_ping_us, max_ping)
    return Carry(e, int(cutoff), int(count), int(digest), int(late), max_ping), quiet


def advance(con, e: int, step: CarryStep, stake_moved: bool = True) -> None:
    """Inside the close's transaction, after the ledger of e is written: the carried state
    becomes the state after the close of e (the temp tables of `prepare` on this connection,
    which started from `step.base`; a quiet close made none, and moves the stake balances only).
    `stake_moved`: False when the caller knows the close wrote no stake entry."""
    if step.base is None:  # from nothing: what `prepare` read from nothing replaces anything carried
        con.execute(CARRY_SCHEMA)
        for kind in KINDS:
            con.execute(f"DELETE FROM carry_{kind}")
        con.execute("DELETE FROM carry_nodes")
        con.execute("DELETE FROM carry_standing")
    if not step.quiet:
        for kind in KINDS:
            con.execute(f"INSERT INTO carry_{kind} SELECT * FROM d_{kind}")
        # (a job new to the carried state has no row there to replace: only the others are looked for)
        if con.execute("SELECT count(*) FROM next_standing WHERE NOT is_new").fetchall()[0][0]:
            con.execute("DELETE FROM carry_standing WHERE job_id IN (SELECT job_id FROM next_standing WHERE NOT is_new)")
        con.execute("INSERT INTO carry_standing SELECT job_id, event_id, occurred_at_us, node_id, status"
                    " FROM next_standing")
    if step.quiet and not stake_moved:  # no row changes
        set_meta(con, CARRY_META, step.after.as_json())
        return
    # the rows that change: the nodes Δ(e) touched (none when quiet) and the stake accounts this
    # close moved, read back from the ledger
    cols = ", ".join(NODE_COLUMNS[:-1])
    touched = "SELECT * FROM next_nodes UNION ALL " if not step.quiet else ""
    not_touched = "AND node_id NOT IN (SELECT node_id FROM next_nodes)" if not step.quiet else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE next_rows AS
        WITH moves AS (
            SELECT substr(account, 6, length(account) - 11) AS node_id, sum(amount)::BIGINT AS moved
            FROM (
                SELECT credit_account AS account, amount_base_units AS amount FROM ledger_entries
                WHERE reward_epoch = {int(e)} AND credit_account LIKE 'node:%:stake'
                UNION ALL
                SELECT debit_account, -amount_base_units FROM ledger_entries
                WHERE reward_epoch = {int(e)} AND debit_account LIKE 'node:%:stake')
            GROUP BY account
        ), rows AS (
            {touched}SELECT * FROM carry_nodes
            WHERE node_id IN (SELECT node_id FROM moves) {not_touched}
        )
        SELECT {cols}, (coalesce(r.balance_base_units, 0) + coalesce(b.moved, 0))::BIGINT AS balance_base_units
        FROM rows r FULL JOIN moves b USING (node_id)
    """)
    rows, negative = con.execute(
        "SELECT count(*), count(*) FILTER (balance_base_units < 0) FROM next_rows").fetchall()[0]
    invariant(negative == 0, f"no node stake account is below 0 after epoch {e} (its balance carried, plus the"
                             " moves of this close read back from the ledger)")
    if rows:
        con.execute("DELETE FROM carry_nodes WHERE node_id IN (SELECT node_id FROM next_rows)")
        con.execute("INSERT INTO carry_nodes SELECT * FROM next_rows")
    set_meta(con, CARRY_META, step.after.as_json())


def build(con, e: int, cutoff: int, cfg: RulesetConfig) -> Carry:
    """The state the close of `e` with the events arrived by `cutoff` leaves, derived from the
    archive alone and stored (its own stake entries aside: none are written here). For a store
    whose closes were written without it (the close benchmark's store, built in SQL)."""
    prepare(con, e, cutoff, cfg, from_scratch=True)
    after = get_figures(con, e, cutoff, None, cfg)
    con.execute("BEGIN TRANSACTION")
    try:
        advance(con, e, CarryStep(None, after))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return after
