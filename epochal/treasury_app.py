"""The treasury as an application: its files, its signer, its cluster, and the scheduler loop.

`epochal treasury run` is an APScheduler 3.x `BackgroundScheduler` with one interval job, the
step (`max_instances=1`, `coalesce=True`: a step that overran is not queued twice):
1. embedded mode: if no other process holds the store, close the epochs the watermark passed and
   publish them (store/published.py); if a stream worker holds it, leave that to the worker;
2. every published epoch not yet settled, in ascending order (one left half paid first):
   validate (or reuse a validation of the same bytes), then settle; a blocked epoch is recorded
   with its reason and skipped (it is never paid while it fails), later ones proceed.
A cluster that does not answer (`ChainUnavailable`) ends the step; the job is rescheduled with
exponential backoff (2 s, 4 s, … up to `max_backoff_s`) and back to the interval after a step
that succeeds. One treasury per file (`TreasuryLock`, held for the whole run: a second
`treasury run` or `settle` on the same files refuses to start). SIGTERM/SIGINT: the step in
progress stops at the next batch boundary (its epoch resumes next run), the scheduler shuts
down, exit 0. Each step logs a line per action to stderr.

The treasury file is opened for a step and closed after it, so `treasury status` and
`treasury reconcile` can read it between steps.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
from apscheduler.schedulers.background import BackgroundScheduler
from solders.keypair import Keypair

import store.db as store
from payouts.chain import LITESVM, Chain, ChainUnavailable, LiteSVMChain, RpcChain
from payouts.close import close_ready_epochs
from payouts.keys import KeypairError, ensure_keypair, load_keypair
from payouts.treasury import CrashHook, SettlementStopped, Treasury
from payouts.treasury_db import SCHEMA, TreasuryError, TreasuryLock, connect, get_meta
from payouts.treasury_ops import (EpochOutcome, EpochStatus, Reconciliation, pending_epochs, reconcile,
                                  record_validation, settle_published, treasury_status)
from payouts.validation import Validation, validate_epoch
from store.db import StoreError, resolve_db_path
from store.published import list_epochs, publish_pending, published_root  # list_epochs: for the commands

log = logging.getLogger("epochal.treasury")

# what a command reports as one sentence (a user's file, key, lock or cluster), never a traceback
USER_ERRORS = (TreasuryError, KeypairError, SettlementStopped, ChainUnavailable, StoreError, ValueError, LookupError)


class Stopping(Exception):
    """SIGTERM arrived: the step ends at a batch boundary."""


@dataclass
class TreasuryConfig:
    db: Path
    treasury: Path
    publish: Path
    cluster: str | None = None  # None: the in-process chain
    keypair: Path | None = None

    @classmethod
    def resolve(cls, db=None, treasury=None, publish=None, cluster=None, keypair=None) -> "TreasuryConfig":
        dbp = resolve_db_path(db)
        return cls(dbp, Path(treasury) if treasury else Path(str(dbp) + ".treasury.duckdb"),
                   published_root(dbp, publish), cluster, Path(keypair) if keypair else None)

    def signer(self) -> Keypair:
        """--keypair FILE; on the in-process chain, by default a key kept beside the treasury file."""
        if self.keypair is not None:
            return load_keypair(self.keypair)
        if self.cluster is not None:
            raise ValueError("--cluster needs --keypair FILE (the treasury's signer on that cluster)")
        return ensure_keypair(Path(str(self.treasury) + ".keypair.json"))

    def chain(self, con, *, read_only: bool = False) -> Chain:
        return RpcChain(self.cluster) if self.cluster else LiteSVMChain(con, read_only=read_only)


def settle_many(cfg: TreasuryConfig, epochs: list[int], log=None) -> list[EpochOutcome]:
    """Validate and settle published epochs in the given order, under the treasury's lock, with
    the treasury file opened (and the in-process chain loaded) once."""
    signer = cfg.signer()
    with TreasuryLock(cfg.treasury):
        con = connect(cfg.treasury)
        chain = None
        try:
            chain = cfg.chain(con)
            treasury = Treasury(con, chain, signer, log=log)
            return [settle_published(treasury, cfg.publish, n) for n in epochs]
        finally:
            if chain is not None:
                chain.close()
            con.close()


def settle_one(cfg: TreasuryConfig, n: int, log=None) -> EpochOutcome:
    """`epochal settle --epoch N`."""
    return settle_many(cfg, [n], log)[0]


def dry_run(cfg: TreasuryConfig, n: int):
    """(validation, plan, batches, token accounts to open) of epoch n; writes and sends nothing."""
    v = validate_epoch(cfg.publish, n)
    if not v.success:
        return v, None, [], 0
    if cfg.treasury.exists():
        con = connect(cfg.treasury, read_only=True)
    else:  # a first run: an empty treasury in memory
        con = duckdb.connect()
        con.execute(SCHEMA)
    chain = None
    try:
        chain = cfg.chain(con, read_only=True)
        # the signer is needed for its public key (the treasury's accounts); a first dry run may have none yet
        has_key = cfg.keypair is not None or Path(str(cfg.treasury) + ".keypair.json").exists()
        signer = cfg.signer() if has_key else Keypair()
        plan, batches, new_accounts = Treasury(con, chain, signer).dry_run(v.rewards)
        return v, plan, batches, new_accounts
    finally:
        if chain is not None:
            chain.close()
        con.close()


def closed_in_store(db: Path) -> list[int] | None:
    """The epochs the store has closed, or None when another process holds it (DuckDB lets no
    other process open a file being written)."""
    if not db.exists():
        return []
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        return [e for (e,) in con.execute("SELECT reward_epoch FROM reward_epochs ORDER BY 1").fetchall()]
    except duckdb.Error:
        return []
    finally:
        con.close()


def status(cfg: TreasuryConfig) -> tuple[list[EpochStatus], bool]:
    """(every epoch's status, whether the store could be read for its closed epochs)."""
    closed = closed_in_store(cfg.db)
    con = connect(cfg.treasury, read_only=True) if cfg.treasury.exists() else None
    try:
        return treasury_status(con, cfg.publish, closed), closed is not None
    finally:
        if con is not None:
            con.close()


def reconcile_chain(cfg: TreasuryConfig, n: int | None, progress=None) -> Reconciliation:
    if not cfg.treasury.exists():
        raise TreasuryError(f"no treasury at {cfg.treasury} (nothing was settled yet)")
    con = connect(cfg.treasury, read_only=True)
    chain = None
    try:
        settles_on = get_meta(con, "cluster")
        wanted = cfg.cluster or LITESVM
        if settles_on is not None and settles_on != wanted:  # another cluster's balances say nothing of these rows
            raise TreasuryError(f"the treasury {cfg.treasury} settles on {settles_on}, not {wanted}"
                                " (reconcile it against the cluster it paid on)")
        if n is not None and not con.execute("SELECT count(*) FROM treasury_epochs WHERE reward_epoch = ?"
                                             " AND status IN ('settling', 'settled')", [n]).fetchall()[0][0]:
            raise TreasuryError(f"epoch {n} was never settled in {cfg.treasury}; nothing to reconcile")
        chain = cfg.chain(con, read_only=True)
        return reconcile(con, chain, n, progress=progress)
    finally:
        if chain is not None:
            chain.close()
        con.close()


def settlement_rows(cfg: TreasuryConfig) -> list[dict]:
    """Every batch in the treasury's file, in order: reward_epoch, batch, signature, status,
    recipients, amount_base_units, memo (what a report shows of each transaction)."""
    con = connect(cfg.treasury, read_only=True)
    try:
        cur = con.execute("SELECT reward_epoch, batch, signature, status, recipients, amount_base_units, memo"
                          " FROM settlements ORDER BY reward_epoch, batch")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


def validate_and_record(cfg: TreasuryConfig, n: int) -> tuple[Validation, bool]:
    """Validate epoch n; record the result unless a treasury process holds the file (it records its own)."""
    v = validate_epoch(cfg.publish, n)
    try:
        with TreasuryLock(cfg.treasury):
            con = connect(cfg.treasury, wait_s=2.0)
            try:
                record_validation(con, v)
            finally:
                con.close()
        return v, True
    except TreasuryError:
        return v, False


def close_embedded(cfg: TreasuryConfig) -> list[int]:
    """Close and publish ready epochs when no other process holds the store; [] when one does."""
    if not cfg.db.exists():
        return []
    try:
        con = store.connect(cfg.db, create=False)
    except StoreError:
        return []  # a stream worker (or another writer) holds it: it closes and publishes itself
    try:
        closed = [r.reward_epoch for r in close_ready_epochs(con)]
        publish_pending(con, cfg.publish)
    finally:
        con.close()
    return closed


class TreasuryRunner:
    def __init__(self, cfg: TreasuryConfig, *, every_s: float = 30.0, max_backoff_s: float = 300.0,
                 embedded: bool = True):
        self.cfg = cfg
        self.every_s = every_s
        self.max_backoff_s = max_backoff_s
        self.embedded = embedded
        self.stop = threading.Event()
        self.failures = 0
        self.signer = cfg.signer()
        self.steps = 0
        self.env_crash = CrashHook(os.environ.get("EPOCHAL_TREASURY_CRASH"))

    def check_stop(self, _point: str = "") -> None:
        if self.stop.is_set():
            raise Stopping()

    def step(self) -> bool:
        """One pass; True when it finished without a cluster error."""
        self.steps += 1
        if self.embedded:
            closed = close_embedded(self.cfg)
            if closed:
                log.info("closed and published epochs %s", ", ".join(map(str, closed)))
        con = connect(self.cfg.treasury)
        chain = None
        try:
            chain = self.cfg.chain(con)
            treasury = Treasury(con, chain, self.signer, log=log.info, crash=self._between)
            pending = pending_epochs(con, self.cfg.publish)
            if pending:
                treasury.setup()  # the cluster first: when it does not answer, the step ends here
            for n in pending:
                self.check_stop()
                out = settle_published(treasury, self.cfg.publish, n)  # logs its validation, then its batches
                if out.action == "blocked":
                    log.warning("epoch %d blocked: %s", n, out.reason)
                elif out.action == "settled":
                    r = out.report
                    log.info("epoch %d settled: %s base units to %s wallets in %d transactions",
                             n, f"{r.total_base_units:,}", f"{r.recipients:,}", r.batches)
            return True
        except ChainUnavailable as exc:
            log.warning("cluster error: %s", exc)
            return False
        except SettlementStopped as exc:
            log.warning("settlement stopped: %s (resumed next step)", exc)
            return True
        except Stopping:
            log.info("stopping: the current epoch resumes on the next run")
            return True
        finally:
            if chain is not None:
                chain.close()
            con.close()

    def _between(self, point: str) -> None:
        self.env_crash(point)
        if point == "between_batches":
            self.check_stop()

    def job(self, scheduler) -> None:
        ok = self.step()
        if ok:
            if self.failures:
                log.info("cluster answers again: back to a step every %ss", self.every_s)
                scheduler.reschedule_job("treasury-step", trigger="interval", seconds=self.every_s)
            self.failures = 0
            return
        self.failures += 1
        delay = min(self.max_backoff_s, 2.0 ** self.failures)
        log.info("retrying in %.0f s (attempt %d)", delay, self.failures)
        scheduler.reschedule_job("treasury-step", trigger="interval", seconds=self.every_s,
                                 start_date=datetime.now(timezone.utc) + timedelta(seconds=delay))

    def run(self, *, max_steps: int | None = None) -> None:
        with TreasuryLock(self.cfg.treasury):
            scheduler = BackgroundScheduler(timezone="UTC")
            scheduler.add_job(self._job_or_stop, "interval", seconds=self.every_s, id="treasury-step",
                              args=[scheduler, max_steps], max_instances=1, coalesce=True,
                              next_run_time=datetime.now(timezone.utc))
            previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
            log.info("treasury running on %s every %ss (treasury %s, published %s)",
                     self.cfg.cluster or "the in-process chain", self.every_s, self.cfg.treasury, self.cfg.publish)
            scheduler.start()
            try:
                while not self.stop.wait(0.2):
                    pass
            finally:
                scheduler.shutdown(wait=True)  # lets a step in progress reach its batch boundary
                for s, h in previous.items():
                    signal.signal(s, h)
            log.info("treasury stopped after %d step(s)", self.steps)

    def _job_or_stop(self, scheduler, max_steps) -> None:
        self.job(scheduler)
        if max_steps is not None and self.steps >= max_steps:
            self.stop.set()

    def _on_signal(self, signum, _frame) -> None:
        log.info("%s received: stopping after the current batch", signal.Signals(signum).name)
        self.stop.set()
