"""`epochal streams status`: what the workers last reported (consumer lag, rates, rejections,
the closer's watermark and last closed epoch), read from the status files each worker writes
into the segment folder every few seconds. Reads no Kafka offsets: on the development broker
those are wrong (ListOffsets), so lag comes from each worker's own fetch positions."""

from __future__ import annotations

import json
import time
from pathlib import Path


def read_status(seg_dir: Path) -> list[dict]:
    out = []
    if not seg_dir.is_dir():
        return out
    for p in sorted(seg_dir.glob("status-*.json")):
        try:
            st = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        st["age_s"] = round(time.time() - float(st.get("updated_at", 0)), 1)
        out.append(st)
    return out


def pending_segments(seg_dir: Path) -> int:
    return len(list(seg_dir.glob("*.parquet"))) if seg_dir.is_dir() else 0


def format_status(statuses: list[dict], pending: int) -> list[str]:
    lines = []
    for st in statuses:
        role = "closer" if st.get("closer") else "segments only"
        lines.append(f"worker {st['worker_id']} (pid {st.get('pid')}, {role}, group {st.get('group')}), "
                     f"reported {st['age_s']} s ago: consumed {st.get('consumed', 0):,} messages, "
                     f"{st.get('messages_per_s', 0):,.0f} msg/s, lag {st.get('lag_total', 0):,}, "
                     f"from_future {st.get('edge_rejected_from_future', 0):,}")
        s = st.get("store")
        if s:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted((s.get("rejected_by_reason") or {}).items()))
            lines.append(f"  store: last closed epoch {s.get('last_closed_epoch')}, watermark_us "
                         f"{s.get('watermark_us')}, inputs {s.get('inputs', 0):,} = accepted {s.get('accepted', 0):,}"
                         f" + duplicates {s.get('duplicates', 0):,} + rejected {s.get('rejected', 0):,}"
                         + (f" ({reasons})" if reasons else "")
                         + f", {st.get('pings_per_s', 0):,.0f} pings/s archived")
            for p, ps in (s.get("partitions") or {}).items():
                lines.append(f"  epochal.pings/{p}: max ping {ps.get('max_ping_us')}, "
                             f"{'idle' if ps.get('idle') else 'active'} ({ps.get('silent_s')} s since a delivery)")
    lines.append(f"segments waiting for the closer: {pending}")
    return lines
