"""Every time conversion in one place: ISO-8601 strings, epoch seconds, calendar days (all UTC).

The registry stores times as ISO-8601 strings (``2026-04-30T12:00:00Z``) and version validity as
epoch seconds; ``FOREVER`` is the "valid until" of a document's current version.
"""
from __future__ import annotations

from datetime import UTC, date, datetime

#: Sentinel "valid until" for the current version of a document (epoch seconds, year 2100).
FOREVER = 4102444800
_DAY = 86400


def utcnow() -> datetime:
    """Now, in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime) -> str:
    """``2026-04-30T12:00:00Z``."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as ISO-8601 (UTC, seconds)."""
    return iso(utcnow())


def iso_of_epoch(seconds: float) -> str:
    """Epoch seconds as ``2026-04-30T12:00:00Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minute_of_epoch(seconds: float) -> str:
    """Epoch seconds as ``2026-04-30 12:00`` (for tables)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def parse_when(value: str) -> int:
    """ISO-8601 date or date-time -> epoch seconds (a bare date means the last second of that day, UTC)."""
    value = value.strip()
    try:
        if len(value) == 10:
            dt = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return int(dt.timestamp()) + _DAY - 1
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD or an ISO-8601 date-time)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def epoch_of_iso(value: str | None) -> float | None:
    """An ISO-8601 date-time (as the registry stores them) -> epoch seconds; None when empty."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def date_ts(value: str | None, end_of_day: bool = False) -> int:
    """Epoch seconds of an ISO date or date-time; a bare date means its start (or its end); 0 when unknown."""
    value = (value or "").strip()
    if not value:
        return 0
    try:
        ts = parse_when(value)
    except ValueError:
        return 0
    return ts - (_DAY - 1) if len(value) == 10 and not end_of_day else ts


def day_of(value: str | None) -> date | None:
    """The calendar day an ISO date or date-time starts with, or None."""
    value = (value or "").strip()
    if len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def day_of_epoch(seconds: int) -> date:
    """The UTC calendar day of epoch seconds."""
    return datetime.fromtimestamp(int(seconds), tz=UTC).date()


def datetime_of_epoch(seconds: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (for libraries that take one, such as APScheduler)."""
    return datetime.fromtimestamp(seconds, UTC)
