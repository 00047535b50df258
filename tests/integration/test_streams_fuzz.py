"""Fuzz on the live path: hostile messages (tests/hostile.py) sent over a real Tansu broker to a
running `epochal streams worker`, beside a small simulated network published first.

The broker is this module's own (the contract's topics of the session's broker hold the other
stream tests' messages, which every consumer group reads from the start). One worker runs for
the whole module; each hypothesis example publishes its lines (each on the topic its event type
names, else one drawn, keyed by its node_id when it has one) and waits until the worker has
archived every offset. Per example: the worker is still alive (a poison pill would end it on
every restart), and its counts grew by exactly the messages sent (inputs = accepted + exact
duplicates + rejected). After the last example the worker is stopped and the store checked:
every input counted once, nothing accepted twice, every closed epoch verifies.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest_streams import WorkerProc, archived_all, run_broker, wait_until
from hostile import Context, check_store, hostile_lines

pytestmark = [pytest.mark.slow]

GENESIS_MS = 1767225600000
HOURS = 6
# the worker judges from_future by the wall clock: hostile times are inside the network's hours,
# before genesis, or more than a year after now (never in between, where a correct engine would
# accept them and close empty epochs up to them)
_CTX = Context([], [], GENESIS_MS, GENESIS_MS + HOURS * 3_600_000, int(time.time() * 1000) + 400 * 86_400_000)
TOPICS = ["epochal.nodes", "epochal.pings", "epochal.jobs", "epochal.benchmarks"]
MAX_MESSAGE_BYTES = 512 << 10  # a broker's default limit is ~1 MB: a larger message is refused at send


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    yield from run_broker(tmp_path_factory, "fuzz-broker")


class Run:
    def __init__(self, bootstrap: str, worker: WorkerProc, producer) -> None:
        self.bootstrap, self.worker, self.producer = bootstrap, worker, producer
        self.offsets: dict[str, int] = {}
        self.sent = 0
        self.counts = (0, 0, 0, 0)

    def send(self, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        from streams.publish import publish

        rep = publish([], self.bootstrap, producer=self.producer, extra=messages)
        for k, v in rep.last_offsets.items():
            self.offsets[k] = max(self.offsets.get(k, -1), v)
        self.sent += len(messages)

    def wait_archived(self) -> dict:
        st = wait_until(lambda: (lambda s: s if archived_all(s, self.offsets) else None)(self.worker.status()),
                        90, "the worker to archive every message sent", [self.worker], every=0.2)
        return st["store"]


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory):
    from epochal.sim import simulate
    from streams.publish import iter_messages, make_producer

    d = tmp_path_factory.mktemp("fuzz-stream")
    sim = d / "sim"
    sim.mkdir()
    simulate(16, HOURS, 11, sim)  # enough nodes (keys) that every partition of epochal.pings has pings
    producer = make_producer(broker)
    worker = WorkerProc(broker, d / "s.duckdb", "g-fuzz", "fuzz", d, batch=500)
    r = Run(broker, worker, producer)
    try:
        r.send(list(iter_messages(sorted(sim.glob("*.jsonl")), time_order=True)))
        s = r.wait_archived()
        r.counts = (s["inputs"], s["accepted"], s["duplicates"], s["rejected"])
        assert s["inputs"] == r.sent
        # the network's epochs close before the hostile messages come (which then also arrive late)
        wait_until(lambda: last_closed(worker) >= 3, 60, "the network's epochs to close", [worker])
        yield r
    finally:
        producer.close(10)
        if worker.alive():
            worker.kill9()


def last_closed(worker: WorkerProc) -> int:
    closed = ((worker.status() or {}).get("store") or {}).get("last_closed_epoch")
    return -1 if closed is None else closed


def _route(line: bytes, fallback: str) -> tuple[str, bytes | None]:
    from streams.publish import route

    topic, key, _t = route(line, fallback)
    return topic or fallback, key


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(lines=hostile_lines(_CTX, 30), fallback=st.sampled_from(TOPICS))
def test_hostile_messages_on_the_real_broker(run, lines, fallback):
    lines = [line for line in lines if len(line) <= MAX_MESSAGE_BYTES]
    if not lines:
        return
    run.send([(*_route(line, fallback), line) for line in lines])
    s = run.wait_archived()
    assert run.worker.alive(), run.worker.tail()
    counts = (s["inputs"], s["accepted"], s["duplicates"], s["rejected"])
    grew = tuple(a - b for a, b in zip(counts, run.counts))
    run.counts = counts
    assert grew[0] == len(lines), (grew, len(lines))  # every message is one input, an empty one too
    assert grew[0] == grew[1] + grew[2] + grew[3]


def test_after_the_fuzz_the_store_verifies(run):
    assert run.worker.stop() == 0, run.worker.tail()
    check_store(Path(run.worker.db), run.sent)
    import duckdb

    con = duckdb.connect(str(run.worker.db), read_only=True)
    closed = con.execute("SELECT count(*) FROM reward_epochs").fetchall()[0][0]
    con.close()
    assert closed >= 3  # the network's epochs closed (and verified) around the hostile messages
