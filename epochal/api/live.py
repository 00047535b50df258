"""Live snapshots of open epochs, followed on `epochal.scores` (README "Live per-node state").

The stream worker's live Table process publishes, per node and kept reward epoch, a snapshot
(kind `live`: reward_epoch, node_id, up_slots, uptime_ratio, streak_slots, hw_verdict, pings,
last_ping_us) computed by the rules of `scoring/`; the closer publishes one `epoch_closed`
record per node when an epoch closes. This follower reads the topic from its beginning with a
plain consumer (no group, nothing committed: it only reads), keeps each node's latest snapshot
of each epoch, and the API shows those of epochs not yet published, marked provisional. A
published epoch always wins: snapshots of epochs at or below the last published one are pruned.

The consumer runs on its own thread and never blocks a request; a broker that is down or slow
only leaves the provisional part empty (`status()` says so).
"""

from __future__ import annotations

import logging
import threading
import time

import orjson

log = logging.getLogger("epochal.api")

TOPIC = "epochal.scores"
FIELDS = ("reward_epoch", "up_slots", "uptime_ratio", "streak_slots", "hw_verdict", "pings", "last_ping_us")


class LiveFollower:
    def __init__(self, bootstrap: str, topic: str = TOPIC) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._nodes: dict[str, dict[int, tuple]] = {}  # node → epoch → FIELDS values
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published_through = -1  # epochs at or below it are served from the folder
        self.messages = 0
        self.live_messages = 0
        self.closed_through = -1  # the highest epoch_closed seen on the topic
        self.connected = False
        self.error: str | None = None
        self.last_message_at: float | None = None

    # -- reading ---------------------------------------------------------------------------
    def open_epochs(self, node_id: str) -> list[dict]:
        """The node's snapshots of epochs after the last published one, oldest first."""
        with self._lock:
            per = self._nodes.get(node_id)
            items = sorted(per.items()) if per else []
        return [dict(zip(FIELDS, v), provisional=True) for e, v in items if e > self.published_through]

    def latest_open(self, node_id: str) -> dict | None:
        rows = self.open_epochs(node_id)
        return rows[-1] if rows else None

    def set_published_through(self, epoch: int | None) -> None:
        if epoch is None or epoch <= self.published_through:
            return
        self.published_through = epoch
        with self._lock:
            for node in list(self._nodes):
                per = self._nodes[node]
                for e in [e for e in per if e <= epoch]:
                    del per[e]
                if not per:
                    del self._nodes[node]

    def status(self) -> dict:
        with self._lock:
            nodes = len(self._nodes)
        return {"bootstrap": self.bootstrap, "topic": self.topic, "connected": self.connected,
                "messages": self.messages, "live_messages": self.live_messages, "nodes_with_open_epochs": nodes,
                "closed_through": self.closed_through if self.closed_through >= 0 else None,
                "last_message_at": self.last_message_at, "error": self.error}

    def apply(self, value: bytes) -> None:
        """One record of the topic (bad records are skipped: this is a view, not the archive)."""
        try:
            m = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(m, dict):
            return
        self.messages += 1
        kind = m.get("kind")
        try:
            e = int(m["reward_epoch"])
            node = str(m["node_id"])
        except (KeyError, TypeError, ValueError):
            return
        if kind == "epoch_closed":
            self.closed_through = max(self.closed_through, e)
            return
        if kind != "live" or e <= self.published_through:
            return
        self.live_messages += 1
        with self._lock:
            self._nodes.setdefault(node, {})[e] = tuple(m.get(k) for k in FIELDS)

    # -- the consumer thread ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="epochal-api-live", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # the broker went away: say so, retry after a pause
                self.connected = False
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("live snapshots from %s: %s", self.bootstrap, self.error)
                self._stop.wait(2.0)

    def _consume(self) -> None:
        from kafka import KafkaConsumer, TopicPartition  # the Kafka client only when --bootstrap is given

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None,
                                 client_id="epochal-api", request_timeout_ms=15000)
        try:
            parts = None
            while not self._stop.is_set():
                parts = consumer.partitions_for_topic(self.topic)
                if parts:
                    break
                self._stop.wait(1.0)
            if not parts:
                return
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            # from the beginning: the development broker's ListOffsets(latest) cannot be trusted,
            # and snapshots of open epochs are what the topic's recent records hold anyway
            consumer.seek_to_beginning(*tps)
            self.connected, self.error = True, None
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=500, max_records=5000)
                for records in batch.values():
                    for r in records:
                        self.apply(r.value)
                    if records:
                        self.last_message_at = time.time()
        finally:
            consumer.close()
