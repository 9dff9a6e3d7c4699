"""Dates as Search Console reports them: ``YYYY-MM-DD`` in Pacific Time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gscsync.errors import ConfigError

PACIFIC = ZoneInfo("America/Los_Angeles")
HISTORY_MONTHS = 16


def pacific_today(now: datetime | None = None) -> date:
    """Today's date in Pacific Time (``now`` defaults to the system clock)."""
    now = now or datetime.now(UTC)
    return now.astimezone(PACIFIC).date()


def months_before(day: date, months: int) -> date:
    """``day`` moved back by whole months, the day clamped to the month's length."""
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    for dom in range(day.day, 27, -1):
        try:
            return date(year, month, dom)
        except ValueError:
            continue
    return date(year, month, min(day.day, 28))


def earliest_served(today: date) -> date:
    """The oldest day the API still serves: about 16 months back."""
    return months_before(today, HISTORY_MONTHS)


def iso_utc(epoch: float) -> str:
    """Epoch seconds as UTC ISO-8601, to the second."""
    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat()


def parse_date(text: str, name: str) -> date:
    """``YYYY-MM-DD`` or ConfigError naming ``name``."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name} {text!r} is not a date; write YYYY-MM-DD") from None


def days(start: date, end: date) -> Iterator[date]:
    """Every day from ``start`` through ``end``, oldest first."""
    for n in range((end - start).days + 1):
        yield start + timedelta(days=n)
