"""What every `epochal` command module shares: the consoles, the user-error type, common options.

The command modules (`cli.py` and the `cli_*.py` beside it) import this module and never each
other, except that `cli.py` registers the others' Typer apps: imports point one way.

Nothing read from data or typed by a user is ever interpreted as rich markup: both consoles have
markup off, so a node id such as `[/x]` prints as itself. Nor does it reach the terminal as control
characters: every string the consoles render (printed, or a table's cell) goes through `shown`,
which writes C0/C1 control characters (but newline) and Unicode bidi overrides as
escapes (`\\x1b`, `\\u202e`), so an id cannot clear the screen, recolour the output or hide
part of a line, and a character rich would silently drop (`\\x07`) or expand (a tab, into
spaces) stays visible. Emoji codes
(`:smile:`) print as typed.
"""

from __future__ import annotations

import re
import socket
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from epochal.sim import resolve_data_dir

_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def shown(text: str) -> str:
    """`text` as the consoles show it: control characters and bidi overrides as escapes."""
    return _UNPRINTABLE.sub(_escape, text)


class SafeConsole(Console):
    """A rich console that renders every string through `shown` (see the module's docstring)."""

    def render_str(self, text: str, **kwargs):  # type: ignore[override]
        return super().render_str(shown(text), **kwargs)


out = SafeConsole(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 150)
err = SafeConsole(stderr=True, highlight=False, markup=False, emoji=False)

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
