"""`epochal whatif`: closed epochs recomputed under another ruleset, compared with what was
recorded (analytics/whatif.py); nothing is written to the store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import polars as pl
import typer
from rich.table import Table

import store.db as store
from analytics.whatif import WhatIf, WhatIfError, load_ruleset, run_whatif, write_outputs
from epochal.cli_common import DbOption, UserError, out, progress


def whatif(ruleset: Path = typer.Option(..., "--ruleset", metavar="FILE",
                                        help="TOML file: RulesetConfig parameters and a ruleset_version of its own."),
           first: int = typer.Option(..., "--from", metavar="A", help="First closed epoch to recompute."),
           last: int = typer.Option(..., "--to", metavar="B", help="Last closed epoch to recompute."),
           db: Optional[Path] = DbOption,
           published: Optional[Path] = typer.Option(None, "--published", metavar="DIR",
                                                    help="Read the published folder instead of the store"
                                                         " (while a writer holds it)."),
           out_dir: Optional[Path] = typer.Option(None, "--out", metavar="DIR",
                                                  help="Write per-node deltas (Parquet) and an HTML summary here.")
           ) -> None:
    """Recompute closed epochs A..B under another ruleset and show what moves (the store is only read)."""
    try:
        cfg = load_ruleset(ruleset)
        with progress("epochs") as bar:
            task = bar.add_task(f"recomputing epochs {first}..{last} under {cfg.ruleset_version}", total=None)
            w = run_whatif(None if published is not None else store.resolve_db_path(db), cfg, first, last,
                           progress=lambda e: bar.update(task, description=f"recomputed epoch {e}"),
                           published=published)
    except WhatIfError as exc:
        raise UserError(str(exc)) from exc
    print_report(w)
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"{out_dir} exists and is not a folder")
        parquet, page = write_outputs(w, out_dir)
        out.print(f"per-node deltas: {parquet}")
        out.print(f"summary: {page}")


def _rows(title: str, frame: pl.DataFrame) -> None:
    t = Table(title=title)
    for c in frame.columns:
        t.add_column(c)
    for row in frame.rows():
        t.add_row(*("-" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
                    for v in row))
    out.print(t)


def print_report(w: WhatIf) -> None:
    e = w.epochs
    out.print(f"what-if {w.ruleset_version} against {w.baseline_version}, epochs {w.first}..{w.last}: allocated "
              f"{e['baseline_allocated'].sum():,} → {e['whatif_allocated'].sum():,} base units, unallocated "
              f"{e['baseline_unallocated'].sum():,} → {e['whatif_unallocated'].sum():,} "
              f"(Σ rewards + unallocated = emission in every epoch, both sides)")
    _rows("per pool (class): the pool, allocated and unallocated, recorded and what-if (base units)", w.by_pool)
    moved = w.by_pool_model.filter(pl.col("delta") != 0)
    if moved.height:
        _rows("rewards per pool and GPU model that move (base units)", moved)
    else:
        out.print("no pool or GPU model's rewards move")
    if w.eligibility.height:
        _rows("eligibility gained and lost, by reason", w.eligibility)
    else:
        out.print("no node gains or loses eligibility")
    if w.movers.height:
        _rows("top gainers and losers", w.movers)
