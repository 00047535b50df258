"""`epochal demo`: the command line of the demo (the stages live in `epochal/demo.py`).

Each stage gets a rich progress bar of its own on stderr (on a terminal), and prints one line of
what it did on stdout as it ends. A failing stage ends the demo with one sentence naming the stage
and why, on stderr, and exit 1; the traceback of an unexpected error goes to `DIR/demo-error.log`
for whoever debugs it, never to the screen.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from epochal.cli_common import TracesOption, UserError, check_listen, err, out, trace_source
from epochal.demo import DEMO_STAGES, DemoRun, StageFailed, clear_previous_outputs, run_stages, serve_explorer


HOST = "127.0.0.1"  # the explorer listens on this machine only


class _BarMeter:
    """A stage's meter shown as one task of a rich Progress."""
    def __init__(self, bar: Progress, task, title: str) -> None:
        self.bar, self.task, self.title = bar, task, title

    def total(self, n: int | None) -> None:
        self.bar.update(self.task, total=n)

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def note(self, text: str) -> None:
        self.bar.update(self.task, description=f"{self.title}: {text}")


def _stage_progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False, disable=not err.is_terminal)


def demo(out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Folder for everything the demo writes."),
         nodes: int = typer.Option(300, "--nodes", help="Simulated nodes."),
         hours: int = typer.Option(12, "--hours", help="Simulated hours (reward epochs)."),
         seed: int = typer.Option(7, "--seed", min=0, max=2**63 - 1, help="Random seed."),
         traces: Optional[Path] = TracesOption,
         serve: bool = typer.Option(False, "--serve", help="Then serve the buyer API and node explorer on localhost."),
         port: int = typer.Option(8000, "--port", help="Port for --serve.")) -> None:
    """The main job on the embedded default: simulate a network, replay it, close and publish every
    epoch, verify each from the published folder, write a report; with --serve, serve the explorer."""
    if nodes < 1 or hours < 1:
        raise UserError("--nodes and --hours must be at least 1")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a folder")
    if serve:  # a taken port is said now, not after the stages
        if not 0 < port < 65536:
            raise UserError(f"--port must be between 1 and 65535, not {port}")
        check_listen(HOST, port)
    run = DemoRun(out_dir=out_dir, nodes=nodes, hours=hours, seed=seed, traces=traces, source=trace_source(traces))
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_previous_outputs(run)
    log = out_dir / "demo-error.log"
    log.unlink(missing_ok=True)
    stages = list(DEMO_STAGES)

    with _stage_progress() as bar:
        def meter_for(number, stage):
            title = f"{number}/{len(stages)} {stage.title}"
            return _BarMeter(bar, bar.add_task(title, total=None), title)

        def done(number, stage, line, seconds):
            out.print(f"{number}. {line} [{seconds:.1f} s]")

        try:
            run_stages(run, stages, meter_for=meter_for, on_done=done)
        except StageFailed as exc:
            if exc.unexpected:  # a bug or a broken part, not a check that did not hold: keep the traceback
                log.write_text("".join(traceback.format_exception(exc.__cause__)))
                raise UserError(f"{exc} (traceback in {log})") from exc
            raise UserError(str(exc)) from exc
    total = sum(s for *_, s in run.summaries)
    out.print(f"done in {total:.0f} s. Wrote:")
    for what, path in run.written():
        out.print(f"  {what}: {path}")
    if serve:
        n = len(stages) + 1
        try:
            serve_explorer(run, HOST, port, lambda url: out.print(
                f"{n}. serving the buyer API and node explorer at {url} (API: {url}nodes, {url}epochs, "
                f"{url}openapi.json); Ctrl-C stops it"))
        except OSError as exc:
            raise UserError(f"demo stage {n} (serve) failed: {exc}") from exc
