"""`streams.take.take_batches`, run by a real faust agent on an in-memory channel (faust's own
test context; no broker involved, none is needed for when a batch is handed out)."""

from __future__ import annotations

import asyncio
import time

import faust

from streams.take import take_batches


def _run(max_: int, within: float, slow_first_s: float, script):
    app = faust.App("t-take", broker="kafka://127.0.0.1:1", store="memory://")
    channel = app.channel()
    got: list[tuple[list, float, list, list]] = []
    previous: list = []

    @app.agent(channel)
    async def agent(stream):
        async for batch in take_batches(stream, max_, within):
            # (values, when, this batch's events acked yet?, the previous batch's acked?)
            got.append(([e.value for e in batch], time.monotonic(), [e.message.acked for e in batch],
                        [e.message.acked for e in previous]))
            previous[:] = batch
            if len(got) == 1:
                await asyncio.sleep(slow_first_s)
            yield len(batch)

    async def main():
        async with agent.test_context() as a:
            t0 = time.monotonic()
            await script(a)
            return t0

    t0 = asyncio.run(main())
    return [(values, when - t0, acked, prev_acked) for values, when, acked, prev_acked in got]


def test_the_next_batch_fills_while_one_is_handled_and_acks_follow_the_batch():
    async def script(a):
        await a.put(0, wait=False)
        await asyncio.sleep(0.05)
        for i in range(1, 5):
            await a.put(i, wait=False)
        await asyncio.sleep(1.85)
        await a.put(5, wait=False)  # at ~1.9 s, to an idle worker
        await asyncio.sleep(1.0)

    got = _run(max_=3, within=0.6, slow_first_s=0.8, script=script)
    assert [values for values, *_ in got] == [[0, 1, 2], [3, 4], [5]]
    (_, t1, acked1, _), (_, t2, acked2, prev2), (_, t3, acked3, prev3) = got
    assert t1 < 0.5  # full: handed out at once, not after `within`
    # 3 and 4 arrived while the first batch was handled; their oldest had waited `within` by
    # the time it ended (~0.85 s), so they came at once (faust's take_events waits 0.6 s more)
    assert 0.8 <= t2 < 1.15, t2
    assert t3 - 1.9 >= 0.55, t3  # an idle worker's first message waits `within`
    # a batch is acknowledged when the caller lets go of it, never before, never a later one
    assert not any(acked1 + acked2 + acked3)
    assert all(prev2) and all(prev3)


def test_never_more_than_max_in_a_batch():
    async def script(a):
        for i in range(10):
            await a.put(i, wait=False)
        await asyncio.sleep(0.8)

    got = _run(max_=4, within=0.2, slow_first_s=0.2, script=script)
    assert [values for values, *_ in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
