"""Slashing (ruleset §8; §10 "Downtime during a job", "Stake left", "Appeals after finality",
"Fingerprints", "Ban", "Decisions", "Jobs", "Slashes in P"): pure rules over event facts.

Two rules make decisions:
- `downtime_during_job`: the job's node has 5 or more consecutive non-up slots among the slots
  lying *wholly* inside `[started_at, min(ended_at, committed_until))`, or the job completed with
  status `failed_node`. Slots are numbered from genesis (slot k covers `[g + 60 s·k, g + 60 s·(k+1))`):
      first = ceil((started_at − g) / 60 s),   stop = floor((min(ended_at, committed_until) − g) / 60 s)
  and the window is slots first .. stop − 1 (empty when stop ≤ first). Slot k lies in epoch
  k // 60 at bit k % 60 of that epoch's slot bitmap; an epoch with no bitmap is all non-up.
  Subject: the `job_id`. Amount `min(floor(deposit / 3), stake_left)`. `decided_at` = the
  standing `job.completed`'s `occurred_at` (the first by `(occurred_at, event_id)`).
- `hardware_fraud`: a benchmark whose verdict (against the claim of the node's first
  registration) is `impossible`, or that reports a GPU fingerprint bound to another node (the
  fingerprint's first reporter by `(occurred_at, event_id)`). Subject `<node_id>|<benchmark
  event_id>`; one decision even when both hold. Amount: the whole stake left.

    decision_id = sha256("<rule>|<subject>") in lower-case hex

Stake left (integers of base units): `deposit` = `stake_base_units` of the latest
`node.registered` / `node.stake_changed` with `occurred_at ≤ decided_at` (ties by event_id; 0 when
none); stake_left = max(0, deposit − Σ amounts of the node's earlier decisions in
`(decided_at, decision_id)` order, except those overturned by an appeal with `occurred_at ≤
decided_at`).

Status: `proposed`; at the close of the finality epoch f, the first epoch (not before the one
whose close made the decision) with `end(f) ≥ decided_at + 24 h`, it becomes `overturned` when an
`appeal.upheld` naming it with `occurred_at < end(f)` had arrived by that close, else `final`.
Only final slashes move stake (the ledger, payouts/close.py).

Penalty and ban at the close of epoch e (every decision known at that close):
    P counts decisions with end(e) − 720 h ≤ decided_at < end(e) and no appeal with occurred_at < end(e)
    banned  iff some hardware_fraud decision has decided_at ≤ end(e) and no appeal with occurred_at ≤ end(e)
so an appeal that arrives after finality leaves the decision final but lifts the ban and P.

Readings of the spec that were not pinned word for word (each chosen as the most literal):
- When checks run. A downtime check runs at the close of its check epoch, the epoch containing
  max(ended_at, occurred_at) of the standing `job.completed`, or at the first later close after
  a `job.completed` of that job arrived (a late one). The up/non-up status of the window's slots
  is fixed once the check epoch has closed (recorded bitmaps; a late ping never makes a slot of
  a closed epoch up), so checking at a later close gives the same answer. A fraud check of a
  benchmark runs at the close of the epoch containing its decided_at (below), and again at any
  later close after new evidence arrived for it (the benchmark itself, the node's registration,
  or another benchmark sharing one of its fingerprints). A subject that already has a decision is
  never checked again; one with none may be decided at a later close by late evidence.
- The standing `job.completed` of a job is the first by (occurred_at, event_id) among those that
  had arrived by the close; its node is its envelope's node_id.
- decided_at of a fraud decision: the benchmark's occurred_at when it reuses a fingerprint (the
  benchmark alone completes that evidence); for an impossible verdict only, the later of the
  benchmark's and the node's registration's occurred_at (a benchmark before registration is
  judged against that claim "whenever that arrives", §10). Its evidence: the benchmark, the
  registration (for `impossible`), and the first reporters' benchmarks of reused fingerprints.
- The evidence of a downtime decision is the standing `job.completed`'s event_id (absent pings
  cannot be cited; the decision's `detail` names the first run of non-up slots).
- "Earlier decisions" for stake left are those known at the close that makes the new decision.
  An earlier decision counts as overturned for the cap when an appeal for it with
  `occurred_at ≤` the new decided_at was (or, being in time and already arrived, will be) the one
  that overturned it: a decision already final stays subtracted whatever its appeals.
- A decision made at a close whose epoch already ends ≥ decided_at + 24 h (very late evidence)
  is resolved (final or overturned) at that same close.
- An `appeal.upheld` names a decision by `decision_id` only; its envelope's node_id is not
  checked. Appeals count by their occurred_at, whatever their arrival, for ban and P (§10 text);
  for the status only those arrived by the finality close count.
- "720 epochs" for P is 720 h before end(e) (epochs are hours).
- Fingerprint binding counts every benchmark of any node (registered or not, whatever its
  verdict); reporting one's own bound fingerprint again is not fraud.
- The stake ledger (payouts/close.py `compute_stake_ledger_entries`): "only final slashes move
  stake" is read as: a slash enters the ledger (node:<id>:stake → treasury:slashed) at the close
  that makes it final, never while proposed; a final decision of amount 0 writes no entry. So
  that a node's stake account has a balance to keep ≥ 0, each close also brings the account to
  max(0, declared deposit at end(e) − Σ final slashes) with one deposit / withdrawal entry
  against `external:stake_deposits` (the declared deposit is gross, §10 "Stake left").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from scoring.hardware import VERDICT_IMPOSSIBLE, compute_hw_verdict
from scoring.jobs import JOB_FAILED_NODE
from scoring.invariants import invariant
from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.timing import compute_reward_epoch, get_epoch_end_us

RULE_DOWNTIME = "downtime_during_job"
RULE_FRAUD = "hardware_fraud"
RULES = (RULE_DOWNTIME, RULE_FRAUD)

STATUS_PROPOSED = "proposed"
STATUS_FINAL = "final"
STATUS_OVERTURNED = "overturned"
STATUSES = (STATUS_PROPOSED, STATUS_FINAL, STATUS_OVERTURNED)

JOB_STATUS_FAILED_NODE = JOB_FAILED_NODE


# ----------------------------------------------------------------------------------------
# facts (what the store or the stream hands the rules)
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobFacts:
    job_id: str
    node_id: str
    event_id: str
    occurred_at_us: int
    started_at_us: int
    ended_at_us: int
    committed_until_us: int
    status: str


@dataclass(frozen=True)
class BenchmarkFacts:
    event_id: str
    node_id: str
    occurred_at_us: int
    fingerprints: tuple[str, ...]
    fp32_tflops: float = 0.0
    mem_bandwidth_gbps: float = 0.0
    vram_gb: float = 0.0
    gpu_count: int = 0


@dataclass(frozen=True)
class RegistrationFacts:
    node_id: str
    event_id: str
    occurred_at_us: int
    gpu_model: str
    gpu_count: int


@dataclass(frozen=True)
class Decision:
    decision_id: str
    rule: str
    node_id: str
    subject: str
    decided_at_us: int
    evidence: tuple[str, ...]
    amount_base_units: int
    stake_deposit_base_units: int
    stake_left_base_units: int
    decided_in_epoch: int
    finality_epoch: int
    detail: str
    status: str = STATUS_PROPOSED
    resolved_in_epoch: int | None = None


@dataclass
class SlashInputs:
    """What one close knows for slashing: candidates to check and the state to decide with."""

    reward_epoch: int
    decisions: list[Decision] = field(default_factory=list)  # known before this close, status as of then
    jobs: list[JobFacts] = field(default_factory=list)  # standing job.completed of jobs to check
    benchmarks: list[BenchmarkFacts] = field(default_factory=list)  # benchmarks to check
    related_benchmarks: list[BenchmarkFacts] = field(default_factory=list)  # sharing a fingerprint with one
    registrations: dict[str, RegistrationFacts] = field(default_factory=dict)  # first registration per node
    stake_events: dict[str, list[tuple[int, str, int]]] = field(default_factory=dict)  # (at, event_id, stake)
    appeals: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # decision_id → (at, event_id)
    bitmaps: dict[str, dict[int, int]] = field(default_factory=dict)  # node → closed epoch → slot bitmap


@dataclass
class SlashOutcome:
    reward_epoch: int
    new_decisions: list[Decision]  # made at this close, with their status after it
    resolved: list[Decision]  # decisions made earlier whose status this close set
    decisions: list[Decision]  # every decision known after this close
    slash_count: dict[str, int]  # P's count per node with any decision
    banned: dict[str, bool]

    @property
    def finalized(self) -> list[Decision]:
        """Decisions that became final at this close (the ones that move stake now)."""
        e = self.reward_epoch
        return [d for d in self.decisions if d.status == STATUS_FINAL and d.resolved_in_epoch == e]


# ----------------------------------------------------------------------------------------
# identity
# ----------------------------------------------------------------------------------------

def compute_decision_id(rule: str, subject: str) -> str:
    return hashlib.sha256(f"{rule}|{subject}".encode()).hexdigest()


def decision_id_sql(rule: str, subject: str) -> str:
    """`compute_decision_id` of a VARCHAR SQL expression `subject` (DuckDB's sha256 of the
    UTF-8 bytes, lower-case hex); held to hashlib by tests/property/test_rule_twins.py."""
    invariant(rule in RULES, f"a known rule: {rule}")
    return f"sha256('{rule}|' || {subject})"


def compute_fraud_subject(node_id: str, benchmark_event_id: str) -> str:
    return f"{node_id}|{benchmark_event_id}"


def fraud_subject_sql(node_id: str, benchmark_event_id: str) -> str:
    """`compute_fraud_subject` of two VARCHAR SQL expressions."""
    return f"({node_id} || '|' || {benchmark_event_id})"


# ----------------------------------------------------------------------------------------
# downtime during a job
# ----------------------------------------------------------------------------------------

def compute_job_window_slots(started_at_us: int, ended_at_us: int, committed_until_us: int,
                             cfg: RulesetConfig = RULESET_V1) -> range:
    """Slots (numbered from genesis) lying wholly inside [started_at, min(ended_at, committed_until))."""
    g, s = cfg.genesis_us, cfg.slot_us
    limit = min(ended_at_us, committed_until_us)
    first = -((g - started_at_us) // s)  # ceil((started_at − g) / s)
    stop = (limit - g) // s  # floor: a slot ending after the limit is not wholly inside
    return range(first, max(first, stop))


def is_slot_up(bitmaps: Mapping[int, int], slot: int, cfg: RulesetConfig = RULESET_V1) -> bool:
    epoch, bit = divmod(slot, cfg.slots_per_epoch)
    return (int(bitmaps.get(epoch, 0)) >> bit) & 1 == 1


def compute_first_down_run(bitmaps: Mapping[int, int], slots: range,
                           cfg: RulesetConfig = RULESET_V1) -> int | None:
    """The first slot of the first run of ≥ downtime_min_gap_slots consecutive non-up slots.

    Stops at the first such run: a window over epochs with no bitmap ends within a few slots,
    so the work is bounded by the recorded bitmaps, not by the window's length."""
    need = cfg.downtime_min_gap_slots
    run = 0
    for slot in slots:
        if is_slot_up(bitmaps, slot, cfg):
            run = 0
            continue
        run += 1
        if run >= need:
            return slot - need + 1
    return None


def compute_job_check_epoch(job: JobFacts, cfg: RulesetConfig = RULESET_V1) -> int:
    """The epoch whose close checks the job: the one containing max(ended_at, occurred_at)."""
    return compute_reward_epoch(max(job.ended_at_us, job.occurred_at_us), cfg)


def is_downtime_during_job(status: str, first_down_slot: int | None) -> bool:
    return (
        status == JOB_STATUS_FAILED_NODE  # the job failed because of the node
        or first_down_slot is not None  # 5+ consecutive non-up slots inside the window
    )


def compute_window_epochs(job: JobFacts, cfg: RulesetConfig = RULESET_V1) -> tuple[int, int] | None:
    """(first, last) epoch that the job's window touches, None for an empty window."""
    w = compute_job_window_slots(job.started_at_us, job.ended_at_us, job.committed_until_us, cfg)
    if not w:
        return None
    return w.start // cfg.slots_per_epoch, (w.stop - 1) // cfg.slots_per_epoch


# ----------------------------------------------------------------------------------------
# hardware fraud
# ----------------------------------------------------------------------------------------

def compute_fingerprint_owners(benchmarks: Iterable[BenchmarkFacts]) -> dict[str, BenchmarkFacts]:
    """Each fingerprint → the benchmark that reported it first, by (occurred_at, event_id)."""
    owners: dict[str, BenchmarkFacts] = {}
    for b in sorted(benchmarks, key=lambda b: (b.occurred_at_us, b.event_id)):
        for fp in b.fingerprints:
            owners.setdefault(fp, b)
    return owners


def fingerprint_owners_sql(reports: str) -> str:
    """`compute_fingerprint_owners` per fingerprint `fp` of the relation `reports` (fp,
    node_id, event_id, occurred_at_us: one row per benchmark and fingerprint it reports): the
    owner's node_id and event_id."""
    return (f"SELECT fp, arg_min(node_id, (occurred_at_us, event_id)) AS owner_node,"
            f" arg_min(event_id, (occurred_at_us, event_id)) AS owner_event FROM {reports} GROUP BY fp")


def get_reused_fingerprints(bench: BenchmarkFacts, owners: Mapping[str, BenchmarkFacts]) -> list[tuple[str, BenchmarkFacts]]:
    """(fingerprint, first reporter) for each fingerprint of `bench` bound to another node."""
    out = []
    for fp in sorted(set(bench.fingerprints)):
        owner = owners.get(fp)
        if owner is not None and owner.node_id != bench.node_id:
            out.append((fp, owner))
    return out


def compute_benchmark_verdict(bench: BenchmarkFacts, reg: RegistrationFacts | None,
                              cfg: RulesetConfig = RULESET_V1) -> str:
    verdict, _ = compute_hw_verdict(reg.gpu_model if reg else None, reg.gpu_count if reg else None,
                                    bench.fp32_tflops, bench.mem_bandwidth_gbps, bench.vram_gb,
                                    bench.gpu_count, cfg)
    return verdict


def is_hardware_fraud(verdict: str, reused: Sequence) -> bool:
    return (
        verdict == VERDICT_IMPOSSIBLE  # faster than the claimed card can be
        or len(reused) > 0  # a GPU already bound to another node
    )


def compute_fraud_decided_at_us(bench: BenchmarkFacts, reg: RegistrationFacts | None, reused: Sequence) -> int:
    if reused or reg is None:
        return bench.occurred_at_us
    return max(bench.occurred_at_us, reg.occurred_at_us)


# ----------------------------------------------------------------------------------------
# stake and amounts
# ----------------------------------------------------------------------------------------

def compute_stake_deposit(stake_events: Iterable[tuple[int, str, int]], at_us: int) -> int:
    """The declared gross deposit: the latest (occurred_at, event_id) event with occurred_at ≤ at."""
    best = None
    for ev in stake_events:
        if ev[0] <= at_us and (best is None or ev[:2] > best[:2]):
            best = ev
    return 0 if best is None else int(best[2])


def latest_stake_event_sql(column: str, at_us: str) -> str:
    """A DuckDB aggregate over one node's stake events (a group with occurred_at_us and event_id):
    `column` of the latest, by (occurred_at, event_id), with occurred_at_us ≤ `at_us` (NULL when none)."""
    return f"arg_max({column}, (occurred_at_us, event_id)) FILTER (occurred_at_us <= {at_us})"


def stake_deposit_sql(stake: str, at_us: str) -> str:
    """`compute_stake_deposit` as a DuckDB aggregate over one node's stake events: `stake` of the
    latest event with occurred_at_us ≤ `at_us` (`latest_stake_event_sql`), 0 when none."""
    return f"coalesce({latest_stake_event_sql(stake, at_us)}, 0)"


def compute_stake_left(deposit: int, earlier: Iterable[tuple[int, int | None]], decided_at_us: int) -> int:
    """deposit − Σ earlier amounts not overturned by an appeal with occurred_at ≤ decided_at, ≥ 0.

    `earlier`: (amount, overturned_at_us or None) of the node's earlier decisions."""
    taken = sum(a for a, overturned_at in earlier if overturned_at is None or overturned_at > decided_at_us)
    return max(0, deposit - taken)


def compute_downtime_amount(deposit: int, stake_left: int, cfg: RulesetConfig = RULESET_V1) -> int:
    return min(deposit // cfg.downtime_stake_divisor, stake_left)


def compute_fraud_amount(stake_left: int) -> int:
    return stake_left


# ----------------------------------------------------------------------------------------
# status, ban, penalty
# ----------------------------------------------------------------------------------------

def compute_finality_epoch(decided_at_us: int, decided_in_epoch: int, cfg: RulesetConfig = RULESET_V1) -> int:
    """The first epoch f ≥ decided_in_epoch with end(f) ≥ decided_at + 24 h."""
    t = decided_at_us + cfg.finality_delay_s * 1_000_000
    f = -((cfg.genesis_us - t) // cfg.reward_epoch_us) - 1  # ceil((t − g) / epoch) − 1
    return max(f, decided_in_epoch)


def is_overturned(appeal_times_us: Iterable[int], finality_epoch_end_us: int) -> bool:
    return any(t < finality_epoch_end_us for t in appeal_times_us)


def compute_status(finality_epoch: int, reward_epoch: int, appeal_times_us: Iterable[int],
                   cfg: RulesetConfig = RULESET_V1) -> str:
    """A proposed decision's status after the close of `reward_epoch`."""
    if reward_epoch < finality_epoch:
        return STATUS_PROPOSED
    if is_overturned(appeal_times_us, get_epoch_end_us(finality_epoch, cfg)):
        return STATUS_OVERTURNED
    return STATUS_FINAL


def compute_overturned_at_us(d: Decision, appeal_times_us: Iterable[int], cfg: RulesetConfig = RULESET_V1) -> int | None:
    """When `d` was overturned (its first in-time appeal), None when it is or will be final."""
    if d.status == STATUS_FINAL:
        return None
    end_f = get_epoch_end_us(d.finality_epoch, cfg)
    in_time = [t for t in appeal_times_us if t < end_f]
    return min(in_time) if in_time else None


def is_banned_by(decided_at_us: int, appeal_times_us: Iterable[int], epoch_end_us: int) -> bool:
    return (
        decided_at_us <= epoch_end_us  # banned from decided_at on
        and not any(t <= epoch_end_us for t in appeal_times_us)  # until an upheld appeal
    )


def is_counted_in_penalty(decided_at_us: int, appeal_times_us: Iterable[int], epoch_end_us: int,
                          cfg: RulesetConfig = RULESET_V1) -> bool:
    window_us = cfg.penalty_window_epochs * cfg.reward_epoch_us
    return (
        epoch_end_us - window_us <= decided_at_us < epoch_end_us  # decided in the last 720 epochs
        and not any(t < epoch_end_us for t in appeal_times_us)  # not lifted by an appeal
    )


def compute_slash_count(decisions: Iterable[Decision], appeals: Mapping[str, Sequence[tuple[int, str]]],
                        epoch_end_us: int, cfg: RulesetConfig = RULESET_V1) -> int:
    return sum(
        is_counted_in_penalty(d.decided_at_us, [a[0] for a in appeals.get(d.decision_id, ())], epoch_end_us, cfg)
        for d in decisions
    )


def is_banned(decisions: Iterable[Decision], appeals: Mapping[str, Sequence[tuple[int, str]]],
              epoch_end_us: int) -> bool:
    return any(
        is_banned_by(d.decided_at_us, [a[0] for a in appeals.get(d.decision_id, ())], epoch_end_us)
        for d in decisions if d.rule == RULE_FRAUD
    )


# ----------------------------------------------------------------------------------------
# one close
# ----------------------------------------------------------------------------------------

def get_downtime_candidates(inputs: SlashInputs, current_bitmaps: Mapping[str, int],
                            cfg: RulesetConfig = RULESET_V1) -> list[tuple[JobFacts, str]]:
    """(job, detail) for each job checked at this close that has downtime."""
    e = inputs.reward_epoch
    out = []
    for job in sorted(inputs.jobs, key=lambda j: j.job_id):
        if compute_job_check_epoch(job, cfg) > e:
            continue  # its check epoch has not closed yet
        bitmaps = dict(inputs.bitmaps.get(job.node_id, {}))
        if job.node_id in current_bitmaps:
            bitmaps[e] = int(current_bitmaps[job.node_id])
        window = compute_job_window_slots(job.started_at_us, job.ended_at_us, job.committed_until_us, cfg)
        first_down = compute_first_down_run(bitmaps, window, cfg)
        if not is_downtime_during_job(job.status, first_down):
            continue
        parts = []
        if job.status == JOB_STATUS_FAILED_NODE:
            parts.append("job completed with status failed_node")
        if first_down is not None:
            parts.append(f"{cfg.downtime_min_gap_slots}+ consecutive non-up slots from slot {first_down}"
                         f" (epoch {first_down // cfg.slots_per_epoch}, slot {first_down % cfg.slots_per_epoch})")
        span = f"window slots {window.start}..{window.stop - 1}" if window else "no whole slot in the window"
        out.append((job, "; ".join(parts) + "; " + span))
    return out


def get_fraud_candidates(inputs: SlashInputs, cfg: RulesetConfig = RULESET_V1) -> list[tuple[BenchmarkFacts, int, tuple[str, ...], str]]:
    """(benchmark, decided_at, evidence, detail) for each benchmark found fraudulent at this close."""
    end_e = get_epoch_end_us(inputs.reward_epoch, cfg)
    owners = compute_fingerprint_owners(inputs.related_benchmarks + inputs.benchmarks)
    out = []
    for b in sorted(inputs.benchmarks, key=lambda b: (b.node_id, b.event_id)):
        reg = inputs.registrations.get(b.node_id)
        verdict = compute_benchmark_verdict(b, reg, cfg)
        reused = get_reused_fingerprints(b, owners)
        if not is_hardware_fraud(verdict, reused):
            continue
        decided_at = compute_fraud_decided_at_us(b, reg, reused)
        if decided_at >= end_e:
            continue  # completed by a registration in a later epoch: decided at that close
        evidence = [b.event_id]
        parts = []
        if verdict == VERDICT_IMPOSSIBLE:
            evidence.append(reg.event_id)
            parts.append(f"verdict impossible against the claimed {reg.gpu_model!r}")
        for fp, owner in reused:
            if owner.event_id not in evidence:
                evidence.append(owner.event_id)
            parts.append(f"fingerprint {fp} bound to node {owner.node_id} by benchmark {owner.event_id}")
        out.append((b, decided_at, tuple(evidence), "; ".join(parts)))
    return out


def process_slashing(inputs: SlashInputs, current_bitmaps: Mapping[str, int],
                     cfg: RulesetConfig = RULESET_V1) -> SlashOutcome:
    """One close of slashing: new decisions (amounts capped), status changes, P counts, bans.

    Pure: the same inputs give the same outcome, whatever their order."""
    e = inputs.reward_epoch
    end_e = get_epoch_end_us(e, cfg)
    known = {d.decision_id: d for d in inputs.decisions}
    appeals = {k: sorted(v) for k, v in inputs.appeals.items()}

    def appeal_times(decision_id: str) -> list[int]:
        return [a[0] for a in appeals.get(decision_id, ())]

    # Drafts: (decided_at, decision_id) order, so that each cap sees the earlier decisions.
    drafts = []
    for job, detail in get_downtime_candidates(inputs, current_bitmaps, cfg):
        did = compute_decision_id(RULE_DOWNTIME, job.job_id)
        drafts.append((job.occurred_at_us, did, RULE_DOWNTIME, job.node_id, job.job_id, (job.event_id,), detail))
    for b, decided_at, evidence, detail in get_fraud_candidates(inputs, cfg):
        subject = compute_fraud_subject(b.node_id, b.event_id)
        did = compute_decision_id(RULE_FRAUD, subject)
        drafts.append((decided_at, did, RULE_FRAUD, b.node_id, subject, evidence, detail))

    new: list[Decision] = []
    for decided_at, did, rule, node_id, subject, evidence, detail in sorted(drafts, key=lambda d: (d[0], d[1])):
        if did in known:
            continue  # nothing decides twice
        deposit = compute_stake_deposit(inputs.stake_events.get(node_id, ()), decided_at)
        earlier = [
            (d.amount_base_units, compute_overturned_at_us(d, appeal_times(d.decision_id), cfg))
            for d in known.values()
            if d.node_id == node_id and (d.decided_at_us, d.decision_id) < (decided_at, did)
        ]
        left = compute_stake_left(deposit, earlier, decided_at)
        amount = compute_downtime_amount(deposit, left, cfg) if rule == RULE_DOWNTIME else compute_fraud_amount(left)
        d = Decision(did, rule, node_id, subject, decided_at, evidence, amount, deposit, left, e,
                     compute_finality_epoch(decided_at, e, cfg), detail)
        known[did] = d
        new.append(d)

    # Status: every proposed decision whose finality epoch is this one (or earlier) resolves now.
    resolved = []
    for did in sorted(known):
        d = known[did]
        if d.status != STATUS_PROPOSED:
            continue
        status = compute_status(d.finality_epoch, e, appeal_times(did), cfg)
        if status != STATUS_PROPOSED:
            d = replace(d, status=status, resolved_in_epoch=e)
            known[did] = d
            if d.decided_in_epoch != e:
                resolved.append(d)
    new = [known[d.decision_id] for d in new]

    by_node: dict[str, list[Decision]] = {}
    for d in known.values():
        by_node.setdefault(d.node_id, []).append(d)
    slash_count = {n: compute_slash_count(ds, appeals, end_e, cfg) for n, ds in by_node.items()}
    banned = {n: is_banned(ds, appeals, end_e) for n, ds in by_node.items()}
    decisions = sorted(known.values(), key=lambda d: d.decision_id)
    return SlashOutcome(e, new, resolved, decisions, slash_count, banned)
