"""The log of the live path: one logger, `epochal.streams`, on stderr, for the worker and its
live Table's process alike."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("epochal.streams")


def setup_logging() -> None:
    """INFO on stderr (DEBUG with $EPOCHAL_STREAMS_DEBUG), one line per record, not propagated."""
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(asctime)s [epochal.streams] %(levelname)s %(message)s"))
    log.handlers[:] = [h]
    log.setLevel(logging.DEBUG if os.environ.get("EPOCHAL_STREAMS_DEBUG") else logging.INFO)
    log.propagate = False
