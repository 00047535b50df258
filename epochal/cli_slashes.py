"""`epochal slashes list` / `epochal slashes show ID`: slashing decisions with their evidence
(contract.md "Command line"), so a supplier or support person can see exactly why."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import orjson
import typer
from rich.table import Table

import store.db as store
from epochal.cli_common import DbOption, UserError, out
from scoring.slashing import STATUSES
from scoring.timing import format_us

slashes_app = typer.Typer(no_args_is_help=True, help="Slashing decisions with their evidence.")


@slashes_app.command("list")
def slashes_list(db: Optional[Path] = DbOption,
                 node: Optional[str] = typer.Option(None, "--node", help="Only this node's decisions."),
                 status: Optional[str] = typer.Option(None, "--status", help="proposed, final or overturned.")) -> None:
    """List slashing decisions, newest first."""
    if status is not None and status not in STATUSES:
        raise UserError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
    con = store.connect(db, create=False, read_only=True)
    try:
        rows = con.execute(
            "SELECT decision_id, node_id, rule, amount_base_units, decided_at_us, status, len(evidence)"
            " FROM slash_decisions WHERE ($node IS NULL OR node_id = $node) AND ($status IS NULL OR status = $status)"
            " ORDER BY decided_at_us DESC, decision_id", {"node": node, "status": status}).fetchall()
    finally:
        con.close()
    if not rows:
        out.print("no slashing decisions" + (f" for node {node}" if node else "")
                  + (f" with status {status}" if status else ""))
        return
    t = Table(title=f"{len(rows)} slashing decision(s)")
    for h in ("decision_id", "node", "rule", "amount (base units)", "decided_at", "status", "evidence"):
        t.add_column(h)
    for r in rows:
        t.add_row(r[0], r[1], r[2], f"{r[3]:,}", format_us(r[4]), r[5], f"{r[6]} event(s)")
    out.print(t)


@slashes_app.command("show")
def slashes_show(decision_id: str = typer.Argument(..., metavar="ID"), db: Optional[Path] = DbOption) -> None:
    """One decision, its status history and every evidence event in full, from the archive."""
    con = store.connect(db, create=False, read_only=True)
    try:
        cur = con.execute("SELECT * FROM slash_decisions WHERE decision_id = ?", [decision_id])
        row = cur.fetchone()
        if row is None:
            raise UserError(f"no slashing decision {decision_id} in {store.resolve_db_path(db)}")
        d = dict(zip([c[0] for c in cur.description], row))
        evidence = con.execute(
            "SELECT event_id, event_type, node_id, occurred_at_us, payload FROM archive_events"
            " WHERE event_id IN (SELECT unnest(evidence) FROM slash_decisions WHERE decision_id = ?)",
            [decision_id]).fetchall()
        appeals = con.execute(
            "SELECT event_id, event_type, node_id, occurred_at_us, payload FROM archive_events"
            " WHERE event_type = 'appeal.upheld' AND payload ->> '$.decision_id' = ? ORDER BY occurred_at_us, event_id",
            [decision_id]).fetchall()
    finally:
        con.close()
    t = Table(title=f"slashing decision {decision_id}", show_header=False)
    for k in ("rule", "subject", "node_id", "amount_base_units", "stake_deposit_base_units", "stake_left_base_units",
              "decided_at_us", "status", "decided_in_epoch", "finality_epoch", "resolved_in_epoch", "detail",
              "ruleset_version"):
        v = d.get(k)
        if k == "decided_at_us" and v is not None:
            t.add_row("decided_at", f"{format_us(v)} ({v} µs)")
        else:
            t.add_row(k, "-" if v is None else (f"{v:,}" if isinstance(v, int) and "epoch" not in k else str(v)))
    out.print(t)
    by_id = {r[0]: r for r in evidence}
    out.print("evidence:")
    for event_id in d["evidence"]:
        r = by_id.get(event_id)
        if r is None:
            out.print(f"  {event_id}: (not in the archive)")
            continue
        out.print(f"  {r[0]} ({r[1]} of {r[2]} at {format_us(r[3])}):")
        out.print("    " + orjson.dumps(orjson.loads(r[4]), option=orjson.OPT_SORT_KEYS).decode(), soft_wrap=True)
    if appeals:
        out.print("appeals upheld:")
        for r in appeals:
            out.print(f"  {r[0]} ({r[1]} of {r[2]} at {format_us(r[3])}):")
            out.print("    " + r[4], soft_wrap=True)
