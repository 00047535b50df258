"""The `epochal` command line (contract.md "Command line").

A user's mistake (a wrong path, flag or number) ends in one sentence on stderr and a non-zero
exit, never a traceback. Commands say what they did and where they wrote it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from typer._click import exceptions as click_exceptions  # typer >= 0.20 ships its own copy of click

import store.db as store
from epochal.cli_common import DbOption, PublishOption, TracesOption, UserError, err, out, progress, trace_source
from epochal.cli_demo import demo
from epochal.cli_investigate import investigate_app
from epochal.cli_published import print_published, publish_command, verify_from_folder
from epochal.cli_serve import serve
from epochal.cli_slashes import slashes_app
from epochal.cli_streams import streams_app
from epochal.cli_treasury import TreasuryOption, epoch_validate, settle, treasury_app
from epochal.cli_whatif import whatif
from epochal.replay import replay as run_replay
from epochal.sim import simulate as run_simulation
from epochal.verify import verify_epoch
from payouts.close import close_ready_epochs
from scoring.events import time_to_us
from scoring.ruleset import RULESET_V1
from scoring.timing import format_us, get_epoch_start_us
from store.db import StoreError, resolve_db_path
from store.published import Publisher, published_root
from store.sources import SourceError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="epochal: fair, provable rewards for a decentralised GPU network.")
epoch_app = typer.Typer(no_args_is_help=True, help="Close, show and verify reward epochs.")
node_app = typer.Typer(no_args_is_help=True, help="Scores of one node.")
app.add_typer(epoch_app, name="epoch")
app.add_typer(node_app, name="node")
app.add_typer(streams_app, name="streams")
app.add_typer(slashes_app, name="slashes")
app.command("demo")(demo)
epoch_app.command("publish")(publish_command)
app.command("serve")(serve)
app.add_typer(investigate_app, name="investigate")
app.add_typer(treasury_app, name="treasury")
app.command("settle")(settle)
app.command("whatif")(whatif)


# Limits on numbers a user types (a number past them is a mistake, said in one sentence, never a
# database error): an epoch number fits any time the contract can write (years up to 9999 are
# ~7·10^7 hourly epochs), and a listing is at most a million rows.
MAX_REWARD_EPOCH = 2**31 - 1
MAX_LISTED_ROWS = 1_000_000
MAX_SEED = 2**63 - 1  # the simulator's random generators take 64-bit seeds


def _arrival_us(value: Optional[str]) -> Optional[int]:
    """--arrived-at: an RFC 3339 time with an offset, or epoch milliseconds (the contract's forms)."""
    if value is None:
        return None

    try:
        return time_to_us(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise UserError(f"--arrived-at must be an RFC 3339 time with an offset (e.g. 2027-01-01T00:00:00Z)"
                        f" or epoch milliseconds: {exc}") from exc


@app.command()
def replay(paths: List[Path] = typer.Argument(..., help="Event files (.jsonl) or folders of them."),
           db: Optional[Path] = DbOption, publish: Optional[Path] = PublishOption,
           arrived_at: Optional[str] = typer.Option(
               None, "--arrived-at", metavar="TIME",
               help="The arrival time of every event (RFC 3339 or epoch ms; default: now). Events dated more"
                    " than 5 min after it are rejected from_future; pin it to replay recorded files reproducibly.")
           ) -> None:
    """Process event files in the embedded engine, close every epoch that is ready, publish it."""
    arrived_us = _arrival_us(arrived_at)
    with progress() as bar:
        task = bar.add_task("reading events", total=None)
        report = run_replay(paths, db, progress=lambda n: bar.advance(task, n), arrived_at_us=arrived_us,
                            on_closed=lambda r: bar.update(task, description=f"closed epoch {r.reward_epoch}"),
                            publish=publish)
    c = report.counts
    out.print(f"read {len(report.files)} file(s): {c.inputs:,} inputs = {c.accepted:,} accepted + "
              f"{c.duplicates:,} exact duplicates + {c.rejected:,} rejected"
              + (f" ({c.blank_lines:,} blank lines skipped)" if c.blank_lines else ""))
    if c.by_reason:
        out.print("rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in c.by_reason.items()))
    if c.by_reason.get("from_future"):
        out.print(f"from_future: dated more than 5 min after the arrival time {format_us(report.arrived_at_us)}"
                  + ("" if arrived_at else " (the replay's start; --arrived-at TIME pins it)"))
    if c.late:
        out.print(f"late (for epochs already closed, archived, not counted there): {c.late:,}")
    if report.closed:
        first, last = report.closed[0].reward_epoch, report.closed[-1].reward_epoch
        paid = sum(r.epoch_row["allocated_base_units"] for r in report.closed)
        out.print(f"closed {len(report.closed)} epoch(s) {first}..{last}, {paid:,} base units allocated")
    else:
        out.print("no epoch is ready to close (the ping watermark has not passed one)")
    out.print(f"store: {resolve_db_path(db)}")
    print_published(report.published, report.publish_root)


@app.command()
def simulate(nodes: int = typer.Option(..., "--nodes", help="Number of nodes."),
             hours: int = typer.Option(..., "--hours", help="Hours (reward epochs) to simulate."),
             seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Random seed."),
             out_dir: Path = typer.Option(..., "--out", help="Folder for the event files and truth.json."),
             traces: Optional[Path] = TracesOption) -> None:
    """Write realistic event files and truth.json (planted farms, spoofers, outages)."""
    if nodes < 1 or hours < 1:
        raise UserError("--nodes and --hours must be at least 1")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a folder")
    source = trace_source(traces)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        summary = run_simulation(nodes, hours, seed, out_dir, data_dir=traces)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    out.print(f"simulated {nodes:,} nodes over {hours} h (seed {seed}) from {source} into {out_dir}")
    if isinstance(summary, dict):
        for k, v in summary.items():
            if isinstance(v, (int, str)):
                out.print(f"  {k}: {v:,}" if isinstance(v, int) else f"  {k}: {v}")


@epoch_app.command("close")
def epoch_close(db: Optional[Path] = DbOption, publish: Optional[Path] = PublishOption) -> None:
    """Close every epoch the ping watermark has passed, in order, and publish it."""
    con = store.connect(db, create=False)
    root = published_root(db, publish)
    publisher = Publisher(con, root)
    try:
        publisher.start()  # an epoch closed but not published yet (a crash) is published too
        results = close_ready_epochs(con, on_closed=lambda r: publisher.closed(r.reward_epoch))
        published = publisher.finish()
    finally:
        publisher.close()
        con.close()
    if not results:
        out.print("no epoch is ready to close")
    for r in results:
        out.print(f"closed epoch {r.reward_epoch}: {r.epoch_row['allocated_base_units']:,} allocated, "
                  f"{r.epoch_row['eligible_nodes']:,} eligible, manifest {r.epoch_row['manifest_sha256'][:16]}…")
    print_published(published, root)


@epoch_app.command("show")
def epoch_show(reward_epoch: int = typer.Argument(..., metavar="N", min=0, max=MAX_REWARD_EPOCH),
               db: Optional[Path] = DbOption,
               top: int = typer.Option(10, "--top", min=0, max=MAX_LISTED_ROWS,
                                       help="How many top earners to list.")) -> None:
    """Print one closed epoch: emission, pools, top earners, why nodes were ineligible."""
    con = store.connect(db, create=False, read_only=True)
    try:
        row = con.execute("SELECT * FROM reward_epochs WHERE reward_epoch = ?", [reward_epoch]).fetchone()
        if row is None:
            raise UserError(f"epoch {reward_epoch} is not closed in {store.resolve_db_path(db)}")
        cols = [d[0] for d in con.description]
        ep = dict(zip(cols, row))
        earners = con.execute(
            "SELECT r.node_id, r.pool, r.amount_base_units, s.up_slots, s.streak_slots, s.reputation, s.weight"
            " FROM epoch_rewards r JOIN node_epoch_scores s USING (reward_epoch, node_id)"
            " WHERE reward_epoch = ? ORDER BY amount_base_units DESC, node_id LIMIT ?", [reward_epoch, top]).fetchall()
        reasons = con.execute(
            "SELECT ineligible_reason, count(*) FROM node_epoch_scores WHERE reward_epoch = ? AND NOT eligible"
            " GROUP BY 1 ORDER BY 2 DESC, 1", [reward_epoch]).fetchall()
    finally:
        con.close()
    t = Table(title=f"reward epoch {reward_epoch} (from {format_us(get_epoch_start_us(reward_epoch, RULESET_V1))})",
              show_header=False)
    for k in ("emission_base_units", "enterprise_pool", "community_pool", "allocated_base_units",
              "unallocated_base_units", "eligible_nodes", "scored_nodes", "manifest_sha256", "ruleset_version",
              "input_event_count", "closed_at"):
        v = ep[k]
        t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    out.print(t)
    if earners:
        te = Table(title="top earners")
        for h in ("node", "pool", "amount (base units)", "up slots", "streak", "reputation", "weight"):
            te.add_column(h)
        for r in earners:
            te.add_row(r[0], r[1], f"{r[2]:,}", str(r[3]), str(r[4]), str(r[5]), f"{r[6]:,}")
        out.print(te)
    if reasons:
        tr = Table(title="ineligible nodes by first failing reason")
        tr.add_column("reason")
        tr.add_column("nodes")
        for reason, n in reasons:
            tr.add_row(reason, f"{n:,}")
        out.print(tr)


@epoch_app.command("verify")
def epoch_verify(reward_epoch: int = typer.Argument(..., metavar="N", min=0, max=MAX_REWARD_EPOCH),
                 db: Optional[Path] = DbOption,
                 published: Optional[Path] = typer.Option(
                     None, "--published", help="Re-derive the epoch from this published folder alone (no store).")
                 ) -> None:
    """Recompute one closed epoch from the archive alone and compare it with what was written."""
    if published is not None:
        return verify_from_folder(reward_epoch, published)

    con = store.connect(db, create=False, read_only=True)  # verifying only reads
    try:
        differences = verify_epoch(con, reward_epoch)
    except LookupError as exc:
        raise UserError(str(exc)) from exc
    finally:
        con.close()
    if differences:
        err.print(f"epoch {reward_epoch} does NOT match its recomputation:", soft_wrap=True)
        for d in differences[:50]:
            err.print(f"  - {d}", soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"epoch {reward_epoch} verified: recomputed from the archive, manifest and every row identical")


@epoch_app.command("validate")
def epoch_validate_cmd(reward_epoch: int = typer.Argument(..., metavar="N"), db: Optional[Path] = DbOption,
                       publish: Optional[Path] = PublishOption, treasury: Optional[Path] = TreasuryOption) -> None:
    """Run the validation suite that gates settlement; print each expectation's result (exit 1 on a failure)."""
    epoch_validate(reward_epoch, db, publish, treasury)


@node_app.command("show")
def node_show(node_id: str = typer.Argument(..., metavar="ID"), db: Optional[Path] = DbOption,
              last: int = typer.Option(48, "--last", min=1, max=MAX_LISTED_ROWS,
                                       help="How many of the latest epochs to list.")) -> None:
    """A node's scores per epoch with every component and, where it earned nothing, why."""
    con = store.connect(db, create=False, read_only=True)
    try:
        rows = con.execute(
            "SELECT s.reward_epoch, s.up_slots, s.streak_slots, s.hw_verdict, s.reputation, s.rep_availability,"
            " s.rep_jobs, s.rep_hardware, s.rep_tenure, s.rep_penalty, s.eligible, s.ineligible_reason, s.weight,"
            " coalesce(r.amount_base_units, 0), s.gpu_model_claimed, s.gpu_count, s.wallet"
            " FROM node_epoch_scores s LEFT JOIN epoch_rewards r USING (reward_epoch, node_id)"
            " WHERE s.node_id = ? ORDER BY s.reward_epoch DESC LIMIT ?", [node_id, last]).fetchall()
    finally:
        con.close()
    if not rows:
        raise UserError(f"node {node_id} has no scores in {store.resolve_db_path(db)}")
    model, count, wallet = rows[0][14], rows[0][15], rows[0][16]
    out.print(f"node {node_id}: claims {count or '?'} × {model or '(not registered)'}, wallet {wallet or '-'}")
    t = Table()
    for h in ("epoch", "up", "streak", "hw", "R", "A", "J", "H", "T", "P", "paid (base units)", "why not paid"):
        t.add_column(h)

    def f(x):
        return "-" if x is None else f"{x:.3f}"

    for r in reversed(rows):
        why = "" if r[13] > 0 else (r[11] or ("weight 0" if r[10] else ""))
        t.add_row(str(r[0]), str(r[1]), str(r[2]), r[3], "-" if r[4] is None else str(r[4]), f(r[5]), f(r[6]),
                  f(r[7]), f(r[8]), f(r[9]), f"{r[13]:,}", why)
    out.print(t)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="epochal")
    except click_exceptions.UsageError as exc:
        msg = exc.format_message().strip().rstrip(".")
        sub = exc.ctx.command_path.partition(" ")[2] if exc.ctx else ""
        where = f" (see epochal {sub} --help)".replace("  ", " ") if exc.ctx else ""
        err.print(f"epochal: {msg}{where}.", soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err.print("epochal: aborted.")
        sys.exit(130)
    except (UserError, StoreError, SourceError) as exc:
        err.print(f"epochal: {str(exc).rstrip('.')}.", soft_wrap=True)  # one full stop, whoever wrote it
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
