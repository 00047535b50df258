"""Fault injection for the crash tests: a process that kills itself with SIGKILL at a named point.

`CrashHook(spec)` with `spec = "<point>:<n>"` (from an environment variable: the stream worker's
`EPOCHAL_STREAMS_CRASH`, the replay's `EPOCHAL_REPLAY_CRASH`) kills this process the n-th time it
reaches <point>. Unset, it does nothing. The points are named where they are called:

- the engine's ingest (`store.ingest.Ingestor`; a run is undone unless its last commit
  happened): after_ingest_open (the run's open mark committed, nothing of it written yet),
  after_ping_flush (a bounded batch of the run's pings committed, the run still open)
  and before_ingest_commit (every row of the run written and checked, its last COMMIT not reached);
- the replay (`epochal.replay`): after_ingest_commit, before_epoch_commit (inside a close's
  transaction), between_closes (after an epoch's commit) and before_checkpoint;
- the stream worker (`streams.worker`, `streams.closer`): after_consume (a micro-batch taken
  from Kafka, nothing of it durable, its offsets not committed), after_segment (a worker that is
  not the closer: its segment durable, the offsets not committed), before_archive_commit,
  after_archive_commit, before_close, between_closes and before_epoch_commit.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("epochal.crash")


class CrashHook:
    def __init__(self, spec: str | None) -> None:
        self.point, self.n = None, 0
        if spec:
            self.point, _, n = spec.partition(":")
            self.n = int(n or 1)
        self.hits = 0

    def __call__(self, point: str) -> None:
        if point == self.point:
            self.hits += 1
            if self.hits >= self.n:
                log.warning("crash hook: SIGKILL at %s (#%d)", point, self.hits)
                os.kill(os.getpid(), signal.SIGKILL)
