"""`epochal epoch publish` and `epochal epoch verify N --published DIR`: the published folder.

The folder itself (layout, files, columns, the manifest) is `store/published.py`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

import store.db as store
from epochal.cli_common import DbOption, PublishOption, UserError, err, out
from epochal.verify_published import verify_published_epoch
from store.published import publish_pending, published_root


def print_published(epochs: list[int], root: Path | None) -> None:
    """One line: which epochs a command published, and where."""
    if root is None:
        return
    if epochs:
        span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}..{epochs[-1]}"
        out.print(f"published {len(epochs)} epoch(s) {span} into {root}")
    else:
        out.print(f"published folder {root}: nothing new to publish")


def publish_command(db: Optional[Path] = DbOption, publish: Optional[Path] = PublishOption) -> None:
    """Publish every closed epoch not yet in the published folder (an older store, a lost folder)."""
    con = store.connect(db, create=False, read_only=True)
    root = published_root(db, publish)
    try:
        epochs = publish_pending(con, root)
    finally:
        con.close()
    print_published(epochs, root)


def verify_from_folder(reward_epoch: int, folder: Path) -> None:
    """`epochal epoch verify N --published DIR`: re-derive epoch N from the folder alone (no store)."""
    if not folder.is_dir():
        raise UserError(f"no published folder at {folder}")
    try:
        differences = verify_published_epoch(folder, reward_epoch)
    except LookupError as exc:
        raise UserError(str(exc)) from exc
    if differences:
        err.print(f"epoch {reward_epoch} as published in {folder} does NOT match its re-derivation from the folder:",
                  soft_wrap=True)
        for d in differences[:50]:
            err.print(f"  - {d}", soft_wrap=True)
        if len(differences) > 50:
            err.print(f"  … and {len(differences) - 50} more", soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"epoch {reward_epoch} verified from {folder} alone: every file matches its manifest, and the close "
              "re-derived from the published inputs gives every published row and the manifest hash")
