"""What every `epochal` command module shares: the consoles, the user-error type, common options.

The command modules (`cli.py` and the `cli_*.py` beside it) import this module and never each
other, except that `cli.py` registers the others' Typer apps: imports point one way.

Nothing read from data or typed by a user is ever interpreted as rich markup: both consoles have
markup off, so a node id such as `[/x]` prints as itself.
"""

from __future__ import annotations

import socket
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

out = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, markup=False)

DbOption = typer.Option(None, "--db", help="The store (default: $EPOCHAL_DB, else ./epochal.duckdb).")
TracesOption = typer.Option(None, "--traces", metavar="DIR",
                            help="Folder of the full alibaba-clusterdata traces for the simulator "
                                 "(default: $EPOCHAL_DATA_DIR, else the profile packaged with epochal).")
PublishOption = typer.Option(None, "--publish",
                             help="The published folder (default: $EPOCHAL_PUBLISH, else <db>.published).")


class UserError(Exception):
    """A mistake of the caller, reported in one sentence on stderr with a non-zero exit."""


def check_listen(host: str, port: int) -> None:
    """A taken port or an address not of this machine, said in one sentence before anything loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, _type, _proto, _name, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def trace_source(traces) -> str:
    """What the simulator will read, in words: the full traces (`--traces`, else $EPOCHAL_DATA_DIR)
    or the profile packaged with epochal; a user mistake when the named traces are unusable."""
    from epochal.sim import resolve_data_dir  # the simulator loads numpy and its profile: only when asked

    try:
        d = resolve_data_dir(traces)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    return "the packaged trace profile" if d is None else f"the traces in {d}"


def progress(unit: str = "lines") -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    TextColumn("{task.completed:,} " + unit, markup=False),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)
