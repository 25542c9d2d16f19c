"""The one source of the current time (UTC, timezone-aware); tests may shift it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utcnow() -> datetime:
    """Current UTC time, timezone-aware."""
    return datetime.now(UTC) + _offset


def shift(delta: timedelta) -> None:
    """Move the clock (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Undo every shift (tests only)."""
    global _offset
    _offset = timedelta(0)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; naive values (from SQLite) are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
