"""Event-time helpers: integer microseconds since the Unix epoch <-> RFC 3339 strings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

GENESIS_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SLOT_US = 60_000_000
HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_us(us: int) -> str:
    """RFC 3339 with `Z` and exactly six fractional digits."""
    dt = _EPOCH + timedelta(microseconds=int(us))
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}Z"


def minute_prefix(us: int) -> str:
    """`YYYY-MM-DDTHH:MM:` of the minute containing `us` (to which `SS.ffffffZ` is appended)."""
    dt = _EPOCH + timedelta(microseconds=int(us))
    return f"{dt:%Y-%m-%dT%H:%M}:"


def parse_occurred_at(value: str | int) -> int:
    """Microseconds since the Unix epoch of an `occurred_at` (RFC 3339 string or epoch ms)."""
    if isinstance(value, bool):
        raise TypeError("occurred_at must be a string or an integer")
    if isinstance(value, int):
        return value * 1000
    s = value.replace("Z", "+00:00")
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError("occurred_at needs an offset")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
