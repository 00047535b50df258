"""The live stream's ping watermark (ruleset §10), one figure per partition of `epochal.pings`.

Pure: no Kafka, no store, no clock of its own. The caller says which partitions exist, what
each delivered (its highest accepted ping time, if any) and when (a wall-clock time in
seconds, read by the caller); `current(now)` answers the watermark an epoch close may use:

    compute_watermark_us(min over the active partitions of that partition's highest ping time)

A partition is active unless it has delivered no message for `idle_s` (60 s) of wall-clock
time while another partition has (Flink's idleness, judged in processing time; the rules never
see this clock). A partition known but never heard from counts as active from the moment it
became known, so it holds the watermark back for `idle_s` before being left out. When every
partition is idle the watermark stays where it was. The answer never goes down: a closed
epoch stays closed, and a partition that comes back after idling cannot pull the figure back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from scoring.ruleset import RULESET_V1, RulesetConfig
from scoring.timing import compute_watermark_us

IDLE_S = 60.0


@dataclass
class PartitionState:
    max_ping_us: int | None  # highest accepted ping time delivered (None: no ping yet)
    last_delivery_s: float  # wall clock of the last delivery (or of becoming known)


class PartitionWatermark:
    def __init__(self, cfg: RulesetConfig = RULESET_V1, idle_s: float = IDLE_S) -> None:
        self.cfg = cfg
        self.idle_s = idle_s
        self.partitions: dict[int, PartitionState] = {}
        self._value: int | None = None

    # -- inputs ------------------------------------------------------------------------------
    def set_partitions(self, partitions: Iterable[int], now_s: float) -> None:
        """The partitions that exist now; a new one is active (and unknown) from `now_s`."""
        for p in partitions:
            if p not in self.partitions:
                self.partitions[p] = PartitionState(None, now_s)

    def restore(self, partition: int, max_ping_us: int | None, now_s: float) -> None:
        """A partition's highest ping time kept from an earlier run (a restart)."""
        st = self.partitions.setdefault(partition, PartitionState(None, now_s))
        if max_ping_us is not None and (st.max_ping_us is None or max_ping_us > st.max_ping_us):
            st.max_ping_us = max_ping_us

    def observe(self, partition: int, delivered_s: float, max_ping_us: int | None = None) -> None:
        """The partition delivered messages at `delivered_s`; `max_ping_us` is the highest
        accepted ping time among them (None when they held no accepted ping)."""
        st = self.partitions.get(partition)
        if st is None:
            st = self.partitions[partition] = PartitionState(None, delivered_s)
        if delivered_s > st.last_delivery_s:
            st.last_delivery_s = delivered_s
        if max_ping_us is not None and (st.max_ping_us is None or max_ping_us > st.max_ping_us):
            st.max_ping_us = max_ping_us

    # -- output ------------------------------------------------------------------------------
    def active(self, now_s: float) -> list[int]:
        return sorted(p for p, st in self.partitions.items() if now_s - st.last_delivery_s < self.idle_s)

    def current(self, now_s: float) -> int | None:
        """The watermark (µs, lateness already subtracted), or None before any is known."""
        act = self.active(now_s)
        if act:
            maxima = [self.partitions[p].max_ping_us for p in act]
            if all(m is not None for m in maxima):
                candidate = compute_watermark_us(min(maxima), self.cfg)  # type: ignore[type-var]
                if self._value is None or candidate > self._value:
                    self._value = candidate
        return self._value

    def snapshot(self, now_s: float) -> dict:
        act = set(self.active(now_s))
        return {
            "watermark_us": self._value,
            "partitions": {str(p): {"max_ping_us": st.max_ping_us, "idle": p not in act,
                                    "silent_s": round(now_s - st.last_delivery_s, 1)}
                           for p, st in sorted(self.partitions.items())},
        }
