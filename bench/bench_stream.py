"""Stream budget (issue 5): one worker's pings/s when checkers send `ping.batch` messages of
500 pings, against a bare aiokafka consumer that reads and orjson-decodes the same messages in
the same run. Prints both figures and the ratio. Not a timed test.

    .venv/bin/python bench/bench_stream.py [--messages 6000] [--bootstrap HOST:PORT] [--worker-batch N]

Without --bootstrap it starts its own Tansu broker on a free loopback port (memory only) and
stops it at the end. The worker figure is archived pings over the time from the worker's first
micro-batch's first message reaching the worker's stream (group join excluded, the fetch of
the first micro-batch included) to the end of its last micro-batch: staging through the engine's
ingest (fast path + reference parser), the archive commit, the per-partition watermark and
every epoch close the data allows, and the output topics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import ensure_topics, free_port, start_broker, stop_process, wait_for_broker  # noqa: E402

GENESIS_MS = 1767225600000
BATCH = 500
WORKER_ARGS = os.environ.get("WORKER_ARGS", "").split()  # experiments: extra worker options


def make_batches(n_messages: int, nodes: int, checkers: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of `n_messages` ping.batch messages; time advances so epochs close."""
    out = []
    round_ms = 60_000  # each round of checkers covers one minute of event time: epochs close as it runs
    for m in range(n_messages):
        chk = f"checker-{m % checkers}"
        base = GENESIS_MS + (m // checkers) * round_ms
        first = (m * BATCH) % nodes
        pings = [{"node_id": f"node-{(first + i) % nodes:05d}", "occurred_at": base + i * 7,
                  "reachable": (i % 17) != 0, "rtt_ms": 20.0 + (i % 50)} for i in range(BATCH)]
        ev = {"event_id": f"pb-{m}", "event_type": "ping.batch", "schema_version": 1, "node_id": chk,
              "occurred_at": base, "checker_id": chk, "pings": pings}
        out.append((chk.encode(), orjson.dumps(ev)))
    return out


def publish(bootstrap: str, msgs) -> float:
    from kafka import KafkaProducer

    t0 = time.perf_counter()
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1 << 20,
                      max_request_size=8 << 20)
    for k, v in msgs:
        p.send("epochal.pings", key=k, value=v)
    p.flush(600)
    p.close()
    return time.perf_counter() - t0


async def bare_consumer(bootstrap: str, expect: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer("epochal.pings", bootstrap_servers=bootstrap, group_id=None,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await c.start()
    try:
        n_msgs = n_pings = 0
        t_first = None
        deadline = time.monotonic() + 300
        while n_msgs < expect and time.monotonic() < deadline:
            batches = await c.getmany(timeout_ms=1000, max_records=10_000)
            for _tp, records in batches.items():
                for r in records:
                    if t_first is None:
                        t_first = time.perf_counter()
                    obj = orjson.loads(r.value)
                    n_pings += len(obj["pings"])
                    n_msgs += 1
        return n_pings, time.perf_counter() - (t_first or time.perf_counter())
    finally:
        await c.stop()


def run_worker(bootstrap: str, work: Path, expect_pings: int, worker_batch: int | None = None
               ) -> tuple[int, float, dict]:
    db = work / "bench.duckdb"
    seg = work / "segments"
    cmd = [sys.executable, "-c", "from epochal.cli import main; main()", "streams", "worker", "--bootstrap",
           bootstrap, "--db", str(db), "--segments", str(seg), "--group", "bench", "--worker-id", "bench",
           "--status-every", "0.5"] + (["--batch", str(worker_batch)] if worker_batch else []) + WORKER_ARGS
    log = open(work / "worker.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        st: dict = {}
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                st = json.loads((seg / "status-bench.json").read_text())
            except (OSError, ValueError):
                continue
            if st.get("store", {}).get("pings_archived", 0) >= expect_pings and st.get("last_batch_done_at"):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited ({proc.returncode}); see {work / 'worker.log'}")
        pings = st["store"]["pings_archived"]
        return pings, st["last_batch_done_at"] - (st.get("first_message_at") or st["first_batch_at"]), st
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=6000, help="ping.batch messages of 500 pings")
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--checkers", type=int, default=8)
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--worker-batch", type=int, default=None,
                    help="the worker's --batch (messages per micro-batch); default: the worker's own default")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    broker = None
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            port = free_port()
            broker = start_broker(port, log_path=work / "tansu.log")
            bootstrap = f"127.0.0.1:{port}"
            wait_for_broker(bootstrap, 30, broker)
        ensure_topics(bootstrap, 4)
        msgs = make_batches(args.messages, args.nodes, args.checkers)
        total = args.messages * BATCH
        mb = sum(len(v) for _k, v in msgs) / 1e6
        t_pub = publish(bootstrap, msgs)
        print(f"published {args.messages:,} ping.batch messages ({total:,} pings, {mb:.0f} MB) in {t_pub:.1f} s")
        bare_pings, bare_s = asyncio.run(bare_consumer(bootstrap, args.messages))
        bare_rate = bare_pings / bare_s if bare_s > 0 else float("nan")
        print(f"bare aiokafka consumer + orjson: {bare_pings:,} pings in {bare_s:.2f} s = {bare_rate:,.0f} pings/s")
        w_pings, w_s, st = run_worker(bootstrap, work, total, args.worker_batch)
        w_rate = w_pings / w_s if w_s > 0 else float("nan")
        print(f"epochal streams worker: {w_pings:,} pings archived in {w_s:.2f} s = {w_rate:,.0f} pings/s "
              f"(epochs closed: {st['store'].get('closed_this_run')})")
        cpu = st.get("cpu_s_at", {})
        if "first_message" in cpu and "last_batch_done" in cpu:
            cpu_s = cpu["last_batch_done"] - cpu["first_message"]
            print(f"worker process CPU over that time: {cpu_s:.2f} s ({cpu_s / w_s:.2f} cores busy on average, "
                  f"of {os.cpu_count()})")
        print(f"ratio worker / bare consumer: {w_rate / bare_rate:.1%}")
        print(json.dumps({"worker_pings_per_s": round(w_rate), "bare_pings_per_s": round(bare_rate),
                          "ratio": round(w_rate / bare_rate, 4), "messages": args.messages, "batch": BATCH}))
    finally:
        if broker is not None:
            stop_process(broker)
        shutil.rmtree(work, ignore_errors=True) if not os.environ.get("KEEP") else print(f"kept {work}")


if __name__ == "__main__":
    main()
