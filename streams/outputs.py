"""The output topics (`epochal.scores`, `epochal.slashes`, `epochal.rejected`), written with
kafka-python (acks=all, batching). Published after the store commit: at least once, keyed so
that a reader can keep the latest per key (node, decision, rejected message)."""

from __future__ import annotations

import logging

import orjson

log = logging.getLogger("epochal.streams")


def _json(obj) -> bytes:
    return orjson.dumps(obj, default=str)


class OutputSink:
    def __init__(self, bootstrap: str, prefix: str = "") -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                      batch_size=256 << 10, max_request_size=4 << 20,
                                      client_id="epochal-worker-outputs")
        self.topics = {k: prefix + f"epochal.{k}" for k in ("scores", "slashes", "rejected")}
        self.sent = {k: 0 for k in self.topics}

    def _send(self, kind: str, key: str | None, value: dict) -> None:
        self.producer.send(self.topics[kind], key=key.encode() if key else None, value=_json(value))
        self.sent[kind] += 1

    def rejected(self, msg, reason: str, detail: str | None, event_id: str | None, event_type: str | None) -> None:
        value = {"reason": reason, "detail": detail, "event_id": event_id, "event_type": event_type,
                 "topic": msg.topic if msg else None, "partition": msg.partition if msg else None,
                 "offset": msg.offset if msg else None,
                 "raw": (msg.value or b"").decode("utf-8", "replace") if msg else None}
        key = f"{msg.topic}/{msg.partition}@{msg.offset}" if msg else event_id
        self._send("rejected", key, value)

    def score(self, node_id: str, snapshot: dict) -> None:
        self._send("scores", node_id, snapshot)

    def slash(self, node_id: str, decision: dict) -> None:
        self._send("slashes", node_id, decision)

    def flush(self, timeout: float = 30.0) -> None:
        self.producer.flush(timeout)

    def close(self) -> None:
        try:
            self.producer.flush(10)
        finally:
            self.producer.close(10)
