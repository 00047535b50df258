"""Micro-batches from a faust stream that fill while the previous one is being handled.

faust's own `Stream.take_events(max_, within)` stops adding to its buffer while the caller
handles a batch, and afterwards waits the full `within` for the buffer to fill again unless it
reaches `max_`. A worker whose batch takes a second to archive therefore idled `within`
(0.5 s) after nearly every batch, with the next messages fetched and waiting (measured: 0.51 s
of a 7 s run of 6,000 `ping.batch` messages).

`take_batches` keeps faust's guarantees and changes only when a batch is handed out:
- events keep entering the buffer while the previous batch is handled (at most `max_` wait;
  the stream's own flow control holds back the rest), so a slow step is followed at once by
  everything that arrived during it;
- a batch is handed out as soon as the buffer is full, or its oldest event has waited
  `within`; a worker that has been idle hands the first message out after `within`;
- acks as faust's: automatic acks are off, and a batch's events are acknowledged only when
  the caller lets go of the batch (the next iteration, or the generator closing), never the
  events that arrived meanwhile. faust commits an offset only once its event is acknowledged,
  so the at-least-once contract of `streams.worker` holds unchanged.

It uses the same stream hooks `take_events` uses (a processor that fills the buffer, the
stream drained passively).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator


def take_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list]:
    agen = _take_batches(stream, max_, within)
    # as faust registers its own take generators: the stream closes what is left when it stops
    # (its acks, processor and enable_acks restored in `finally`), whatever the interpreter
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(agen)
    return agen


async def _take_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list]:
    loop = asyncio.get_running_loop()
    events: list = []
    first_at = [0.0]  # loop time the oldest buffered event arrived
    nonempty, full, room = asyncio.Event(), asyncio.Event(), asyncio.Event()
    room.set()

    async def add_to_buffer(value):
        while len(events) >= max_:  # never more than max_ waiting: wait until a batch is taken
            room.clear()
            if await stream.wait_for_stopped(room):
                return value
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_batches found no current event")
        if not events:
            first_at[0] = loop.time()
            nonempty.set()
        events.append(event)
        if len(events) >= max_:
            full.set()
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            if not events:
                await stream.wait_for_stopped(nonempty, timeout=1.0)
                continue
            left = within - (loop.time() - first_at[0])
            if len(events) < max_ and left > 0:
                await stream.wait_for_stopped(full, timeout=left)
                if len(events) < max_ and within - (loop.time() - first_at[0]) > 0:
                    continue  # (woken by a stop, or early)
            batch = events.copy()
            events.clear()
            nonempty.clear()
            full.clear()
            room.set()
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
