"""`epochal investigate farming`: suspect clusters with their evidence (contract.md
"Investigation output"). The logic lives in `analytics/`; this module reads the options, prints
the table and says where it wrote what."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from epochal.cli_common import DbOption, UserError, err, out, progress
from analytics.investigate import run
from analytics.report import table_rows, write_html, write_suspects
from analytics.source import SourceError, open_source
from analytics.quality import ablations as run_ablations, leak_timeline, load_truth, score

investigate_app = typer.Typer(no_args_is_help=True, help="Investigate the archive for farming and spoofing.")


@investigate_app.command("farming")
def farming(
    db: Optional[Path] = DbOption,
    published: Optional[Path] = typer.Option(None, "--published", help="Read this published folder instead of the store."),
    up_to_epoch: Optional[int] = typer.Option(None, "--up-to-epoch", help="Cut the archive at this closed epoch (default: the last)."),
    out_dir: Path = typer.Option(Path("investigation"), "--out", help="Folder for suspects.json and report.html."),
    min_score: float = typer.Option(0.5, "--min-score", help="A node is flagged in a cluster of at least this score (0–1)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="A simulation's truth.json: add quality figures and the leak timeline to the report."),
    ablations: bool = typer.Option(False, "--ablations", help="With --truth: also precision/recall with each signal left out."),
) -> None:
    """Suspect clusters (farms posing as independent nodes, spoofed hardware) with their evidence."""
    if not 0.0 <= min_score <= 1.0:
        raise UserError("--min-score must lie between 0 and 1")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a folder")
    if truth is not None and not truth.is_file():
        raise UserError(f"no truth file at {truth}")
    if ablations and truth is None:
        raise UserError("--ablations needs --truth")
    try:
        src = open_source(db, published, up_to_epoch)
    except SourceError as exc:
        raise UserError(str(exc)) from exc
    try:
        with progress("steps") as bar:
            task = bar.add_task("reading the archive and building signals", total=None)
            inv = run(src, min_score=min_score)
            quality = leak = abl = None
            if truth is not None:

                bar.update(task, description="scoring against the truth and running each epoch's cut")
                t = load_truth(truth)
                quality = score(inv, t)
                if ablations:
                    abl = run_ablations(src, t, min_score)
                leak = leak_timeline(src, t, min_score)
            bar.update(task, description="writing the report")
            out_dir.mkdir(parents=True, exist_ok=True)
            js = write_suspects(inv, out_dir)
            page = write_html(inv, out_dir, quality=quality, leak=leak, ablations=abl)
    finally:
        src.close()
    rows = table_rows(inv)
    flagged = [c for c in inv.clusters if c.score >= min_score]
    t = Table(title=f"suspect clusters up to reward epoch {inv.src.up_to_epoch} (score ≥ {min_score})")
    for h in ("cluster", "kind", "score", "strength", "nodes", "wallets", "signals", "rewards (base units)"):
        t.add_column(h)
    for r in rows:
        t.add_row(*r)
    out.print(t)
    if len(flagged) > len(rows):
        out.print(f"… and {len(flagged) - len(rows)} more in {js}")
    out.print(f"read the {inv.src.where}: {inv.features.n:,} nodes; {len(flagged)} cluster(s) flagged, "
              f"{len(inv.flagged()):,} nodes")
    if quality is not None:
        out.print("against the truth: " + json.dumps({k: quality[k] for k in ("precision", "recall", "lookalikes_flagged")}))
    out.print(f"wrote {js} and {page}")
    if not flagged:
        err.print("no cluster reached the minimum score")
