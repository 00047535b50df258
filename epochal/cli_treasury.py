"""The treasury's commands: `settle`, `treasury run|status|reconcile`, `epoch validate`.

They read the published folder and the treasury's own file, never the store (except `treasury
run`, which closes ready epochs when no other process holds the store), so they work while a
stream worker runs. The signer's key is read from --keypair (or, on the in-process chain, a key
kept beside the treasury file) and never printed; only its public key is.

Each command imports `epochal.treasury_app` when it runs, not at the top: the Solana runtime
and client, polars and APScheduler cost ~0.6 s of imports that no other command should pay.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from epochal.cli_common import DbOption, UserError, err, out, progress

treasury_app = typer.Typer(no_args_is_help=True, help="Validate and settle published epochs on Solana.")

TreasuryOption = typer.Option(None, "--treasury", help="The treasury's own file (default: <db>.treasury.duckdb).")
PublishOption = typer.Option(None, "--publish", help="The published folder (default: $EPOCHAL_PUBLISH, else <db>.published).")
ClusterOption = typer.Option(None, "--cluster", help="A Solana cluster's JSON-RPC URL (default: the in-process LiteSVM chain).")
KeypairOption = typer.Option(None, "--keypair", help="The treasury's signer, a Solana keypair file (mode 600).")


def settle(epoch: int = typer.Option(..., "--epoch", help="The reward epoch to pay."),
           db: Optional[Path] = DbOption, treasury: Optional[Path] = TreasuryOption,
           publish: Optional[Path] = PublishOption, cluster: Optional[str] = ClusterOption,
           keypair: Optional[Path] = KeypairOption,
           dry_run: bool = typer.Option(False, "--dry-run", help="Print the batches and the total; send and record nothing.")) -> None:
    """Pay an epoch's rewards on Solana, exactly once."""
    from epochal import treasury_app as ta  # see the module docstring

    cfg = ta.TreasuryConfig.resolve(db, treasury, publish, cluster, keypair)
    _published(ta, cfg, epoch)
    if dry_run:
        return _dry_run(ta, cfg, epoch)
    try:
        result = ta.settle_one(cfg, epoch, log=lambda m: err.print(m, soft_wrap=True))
    except ta.USER_ERRORS as exc:
        raise UserError(str(exc)) from exc
    if result.action == "already_settled":
        out.print(f"epoch {epoch} is already settled; nothing to do (treasury {cfg.treasury})")
        return
    if result.action == "blocked":
        raise UserError(f"epoch {epoch} is blocked and nothing of it was paid: {result.reason}")
    r = result.report
    out.print(f"settled epoch {epoch}: {r.total_base_units:,} base units to {r.recipients:,} wallets in "
              f"{r.batches} transaction(s) on {cfg.cluster or 'the in-process chain'}")
    if r.batch_sizes:
        out.print(f"  transfers per transaction: {min(r.batch_sizes)}..{max(r.batch_sizes)}; "
                  f"largest transaction {max(r.tx_bytes):,} bytes (limit 1,232)")
    if r.new_accounts:
        out.print(f"  opened {r.new_accounts:,} token accounts for new recipients: {r.rent_lamports:,} lamports of rent")
    out.print(f"  treasury: {cfg.treasury}")


def _published(ta, cfg, n: int) -> None:
    if n not in ta.list_epochs(cfg.publish):
        raise UserError(f"epoch {n} is not published in {cfg.publish} (close it, or run `epochal epoch publish`)")


def _dry_run(ta, cfg, n: int) -> None:
    try:
        v, plan, batches, new_accounts = ta.dry_run(cfg, n)
    except ta.USER_ERRORS as exc:
        raise UserError(str(exc)) from exc
    if not v.success:
        raise UserError(f"epoch {n} does not validate ({', '.join(c.name for c in v.failed)}); nothing would be paid")
    table = Table(title=f"epoch {n}: dry run (nothing sent or recorded)")
    for h in ("batch", "recipients", "amount (base units)"):
        table.add_column(h)
    for b, batch in enumerate(batches):
        table.add_row(str(b), f"{len(batch):,}", f"{sum(t.amount_base_units for t in batch):,}")
    out.print(table)
    out.print(f"total {plan.total_base_units:,} base units to {len(plan.transfers):,} wallets in {len(batches)} "
              f"transaction(s); {new_accounts:,} new token accounts to open; manifest {v.manifest_sha256}")


@treasury_app.command("run")
def treasury_run(db: Optional[Path] = DbOption, treasury: Optional[Path] = TreasuryOption,
                 publish: Optional[Path] = PublishOption, cluster: Optional[str] = ClusterOption,
                 keypair: Optional[Path] = KeypairOption,
                 every: float = typer.Option(30.0, "--every", help="Seconds between steps."),
                 steps: Optional[int] = typer.Option(None, "--steps", help="Stop after this many steps (default: run until SIGTERM)."),
                 no_close: bool = typer.Option(False, "--no-close", help="Never close epochs, even when no other process holds the store.")) -> None:
    """The scheduler that closes, validates and settles epochs as they become ready."""
    from epochal import treasury_app as ta  # see the module docstring

    cfg = ta.TreasuryConfig.resolve(db, treasury, publish, cluster, keypair)
    if every <= 0:
        raise UserError("--every must be more than 0 seconds")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("epochal.treasury").setLevel(logging.INFO)  # a line per step; the libraries' own only when they warn
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: maximum number of running instances" is the design
    try:
        runner = ta.TreasuryRunner(cfg, every_s=every, embedded=not no_close)
        runner.run(max_steps=steps)
    except ta.USER_ERRORS as exc:
        raise UserError(str(exc)) from exc
    out.print(f"treasury stopped after {runner.steps} step(s); state in {cfg.treasury}")


@treasury_app.command("status")
def treasury_status(db: Optional[Path] = DbOption, treasury: Optional[Path] = TreasuryOption,
                    publish: Optional[Path] = PublishOption) -> None:
    """Where every epoch stands: published, validated, settled, blocked and why."""
    from epochal import treasury_app as ta  # see the module docstring

    cfg = ta.TreasuryConfig.resolve(db, treasury, publish)
    try:
        rows, store_read = ta.status(cfg)
    except ta.USER_ERRORS as exc:
        raise UserError(str(exc)) from exc
    if not rows:
        out.print(f"no closed or published epoch for {cfg.db} and nothing in {cfg.treasury}")
        return
    t = Table(title=f"treasury {cfg.treasury}")
    for h in ("epoch", "closed", "published", "validation", "status", "batches", "allocated (base units)", "why"):
        t.add_column(h)
    for s in rows:
        t.add_row(str(s.reward_epoch), "?" if s.closed is None else ("yes" if s.closed else "no"),
                  "yes" if s.published else "no", s.validated, s.status, s.batches,
                  "-" if s.amount_base_units is None else f"{s.amount_base_units:,}", s.reason or "")
    out.print(t)
    if not store_read:
        out.print(f"(the store {cfg.db} is held by another process: epochs it closed and did not publish yet are not listed)")
    counts: dict[str, int] = {}
    for s in rows:
        counts[s.status] = counts.get(s.status, 0) + 1
    out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@treasury_app.command("reconcile")
def treasury_reconcile(epoch: Optional[int] = typer.Option(None, "--epoch", help="Only this epoch's recipients and batches."),
                       db: Optional[Path] = DbOption, treasury: Optional[Path] = TreasuryOption,
                       cluster: Optional[str] = ClusterOption) -> None:
    """Every recipient's on-chain balance against its settled rewards, every batch against its rows (exit 1 on a difference)."""
    from epochal import treasury_app as ta  # see the module docstring

    cfg = ta.TreasuryConfig.resolve(db, treasury, None, cluster)
    try:
        with progress("batches") as bar:
            task = bar.add_task("reconciling", total=None)
            result = ta.reconcile_chain(cfg, epoch, progress=lambda i: bar.update(task, completed=i))
    except ta.USER_ERRORS as exc:
        raise UserError(str(exc)) from exc
    scope = f"epoch {epoch}" if epoch is not None else "every epoch"
    if result.differences:
        err.print(f"reconcile ({scope}): {len(result.differences)} difference(s):")
        for d in result.differences[:50]:
            err.print(f"  - {d}", soft_wrap=True)  # one line each, whatever the terminal's width (grep-able)
        if len(result.differences) > 50:
            err.print(f"  … and {len(result.differences) - 50} more")
        raise typer.Exit(1)
    out.print(f"reconciled {scope}: {result.recipients:,} recipients' balances equal their settled rewards; "
              f"{result.batches:,} batches ({result.transfers:,} transfers) equal their rows on "
              f"{cfg.cluster or 'the in-process chain'}")


def epoch_validate(reward_epoch: int, db: Optional[Path], publish: Optional[Path], treasury: Optional[Path]) -> None:
    """Run the validation suite that gates settlement and print each expectation's result."""
    from epochal import treasury_app as ta  # see the module docstring

    cfg = ta.TreasuryConfig.resolve(db, treasury, publish)
    _published(ta, cfg, reward_epoch)
    v, recorded = ta.validate_and_record(cfg, reward_epoch)
    t = Table(title=f"epoch {reward_epoch}: validation of {cfg.publish}")
    for h in ("expectation", "result", "detail"):
        t.add_column(h)
    for c in v.checks:
        t.add_row(c.name, "pass" if c.success else "FAIL", c.detail)
    out.print(t)
    out.print(f"manifest {v.manifest_sha256}; "
              + (f"recorded in {cfg.treasury}" if recorded else "not recorded (a treasury process holds the file)"))
    if not v.success:
        err.print(f"epoch {reward_epoch} FAILED validation: {', '.join(c.name for c in v.failed)}")
        raise typer.Exit(1)
    out.print(f"epoch {reward_epoch} passed all {len(v.checks)} expectations")
