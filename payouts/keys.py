"""The treasury's signer: a Solana keypair file (the CLI's JSON array of 64 bytes).

The key is read from a path and never printed or logged (only its public key is). A file that
its group or others may read (or write) is refused, as ssh refuses such a private key: whoever
reads it can empty the treasury. The in-process chain's default signer is made on first use,
with mode 0600, beside the treasury file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from solders.keypair import Keypair


class KeypairError(Exception):
    """A keypair file that cannot be used (one sentence, naming the file, never its content)."""


def load_keypair(path: Path) -> Keypair:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeypairError(f"no keypair file at {path}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeypairError(f"the keypair file {path} is readable by group or others; restrict it with chmod 600 {path}")
    try:
        raw = json.loads(Path(path).read_text())
        if not (isinstance(raw, list) and len(raw) == 64 and all(isinstance(b, int) and 0 <= b < 256 for b in raw)):
            raise ValueError
        return Keypair.from_bytes(bytes(raw))
    except (ValueError, UnicodeDecodeError):
        raise KeypairError(f"{path} is not a Solana keypair file (a JSON array of 64 numbers)") from None


def ensure_keypair(path: Path) -> Keypair:
    """Load the keypair at path, or create one there (mode 0600) if there is none."""
    if not Path(path).exists():
        kp = Keypair()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(list(bytes(kp)), fh)
    return load_keypair(path)
