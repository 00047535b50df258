"""`epochal streams status`: what the workers last reported (consumer lag, rates, rejections,
the closer's watermark and last closed epoch), read from the status files each worker writes
into the segment folder every few seconds. Reads no Kafka offsets: on the development broker
those are wrong (ListOffsets), so lag comes from each worker's own fetch positions."""

from __future__ import annotations

import json
import time
from pathlib import Path


def read_status(seg_dir: Path, kind: str = "status") -> list[dict]:
    """The workers' status files (`status-<worker>.json`), or with kind="live" their live
    Table processes' (`live-<worker>.json`)."""
    out = []
    if not seg_dir.is_dir():
        return out
    for p in sorted(seg_dir.glob(f"{kind}-*.json")):
        try:
            st = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        st["age_s"] = round(time.time() - float(st.get("updated_at", 0)), 1)
        out.append(st)
    return out


def pending_segments(seg_dir: Path) -> int:
    return len(list(seg_dir.glob("*.parquet"))) if seg_dir.is_dir() else 0


def format_status(statuses: list[dict], pending: int, live: list[dict] | None = None) -> list[str]:
    lines = []
    live_of = {st.get("worker_id"): st for st in live or ()}
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
            if s.get("publish_root"):
                lines.append(f"  published folder {s['publish_root']}: through epoch {s.get('last_published_epoch')}")
            for p, ps in (s.get("partitions") or {}).items():
                lines.append(f"  epochal.pings/{p}: max ping {ps.get('max_ping_us')}, "
                             f"{'idle' if ps.get('idle') else 'active'} ({ps.get('silent_s')} s since a delivery)")
        lv = live_of.pop(st.get("worker_id"), None)
        if lv:
            lines.append(_live_line(lv))
    for lv in live_of.values():  # a live process whose worker wrote no status (yet)
        lines.append(_live_line(lv))
    lines.append(f"segments waiting for the closer: {pending}")
    return lines


def _live_line(lv: dict) -> str:
    return (f"  live Table (pid {lv.get('pid')}, group {lv.get('group')}), reported {lv.get('age_s')} s ago: "
            f"{lv.get('messages', 0):,} node-slots messages, {lv.get('node_updates', 0):,} node updates applied "
            f"through archive seq {lv.get('applied_through_seq')}, {lv.get('snapshots', 0):,} live snapshots "
            f"published, {lv.get('pending_nodes', 0):,} nodes pending, busy {lv.get('busy_s', 0)} s")
