"""Event sources on disk: the paths a user names → the files a run reads, or one clear sentence.

Light on purpose (no numpy, polars or DuckDB): the command line imports it at start-up to report
`SourceError` as a user's mistake.
"""

from __future__ import annotations

import os
from pathlib import Path


class SourceError(Exception):
    """An event file that cannot be read (missing, a broken link, a folder where a file belongs,
    no permission): the caller's mistake, reported in one sentence; a run it was part of stores
    nothing."""


def shown_path(path) -> str:
    """A path as text that can be stored and printed: a file name that is not UTF-8 (Python
    keeps its bytes as lone surrogates) shows its undecodable bytes as U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the *.jsonl files in it, in name order (not its
    sub-folders). Raises `SourceError` for a path that does not exist, a broken link, or a
    sub-folder named like an event file (read it by naming it)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise SourceError(f"no such file or folder: {shown_path(p)}"
                              + (" (a broken link)" if p.is_symlink() else ""))
        if not p.is_dir():
            out.append(p)
            continue
        for f in sorted(p.glob("*.jsonl")):
            if f.is_dir():
                raise SourceError(f"{shown_path(f)} is a folder inside the folder {shown_path(p)}: only a folder's"
                                  f" own .jsonl files are read (name {shown_path(f)} to read it)")
            if not f.exists():
                raise SourceError(f"cannot read {shown_path(f)}: a broken link")
            out.append(f)
    return out


def check_readable(files: list[Path]) -> None:
    """Every file can be opened for reading (checked before a store is touched)."""
    for f in files:
        try:
            with open(f, "rb"):
                pass
        except OSError as exc:
            raise SourceError(f"cannot read {shown_path(f)}: {exc.strerror or exc}") from exc
