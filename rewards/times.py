"""Times that come from outside (an order's occurred_at, a broadcast's scheduled_at, a segment's dates). Pure.

Read one way everywhere: ISO 8601 as Python reads it; a time without an offset (and a bare date, at midnight) is
the shop's local time (rules.timezone); "Z" is UTC. `within` also keeps a time in a window around now, so that a
year 9999 or 1970 is refused before anything is written instead of crashing half-way (a year 10000 expiry) or
being paid as if it were real.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

# how far the clock of the server that reports something may run ahead of ours (and a request spend in transit)
CLOCK_SKEW = timedelta(minutes=5)


class TimeRefused(ValueError):
    """Not an ISO 8601 time, or outside the window asked for; str() says which, for the caller's message."""


def parse(value: object, tz: tzinfo) -> datetime:
    """An aware datetime; a value without an offset is in `tz`."""
    if not isinstance(value, str):
        raise TimeRefused("must be an ISO 8601 date or date-time string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TimeRefused(f"is not an ISO 8601 date or date-time: {value[:40]!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def epoch_ms(value: object, tz: tzinfo) -> int:
    """parse(), as epoch milliseconds."""
    try:
        return int(parse(value, tz).timestamp() * 1000)
    except (OverflowError, OSError) as exc:  # year 1 in a zone east of UTC, and the like
        raise TimeRefused(f"is out of range: {str(value)[:40]!r}") from exc


def within(value: object, tz: tzinfo, now_ms: int, *, past: timedelta, future: timedelta) -> int:
    """epoch_ms(), refused unless it lies from `past` before now to `future` after it."""
    at = epoch_ms(value, tz)
    earliest, latest = now_ms - _ms(past), now_ms + _ms(future)
    if not earliest <= at <= latest:
        raise TimeRefused(f"must lie between {_iso(earliest, tz)} and {_iso(latest, tz)} "
                          f"({_span(past)} ago to {_span(future)} ahead)")
    return at


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def _iso(at_ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz).isoformat(timespec="seconds")


def _span(span: timedelta) -> str:
    if span.days:
        return f"{span.days} days"
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} minutes"
