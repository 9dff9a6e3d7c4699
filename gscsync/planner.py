"""Which days to fetch: pure functions over the ledger, the clock and the API's word.

Planning happens in two steps. :func:`candidate_days` uses the ledger and today's date
to name the days worth asking about; the freshness probe (one ``dataState: all``
request grouped by date over those days) then says which of them are final, and
:func:`plan_days` keeps the final ones (and, with ``GSCSYNC_DATA_STATE=all``, the fresh
ones that have data).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from gscsync.dates import days


@dataclass(frozen=True)
class Finality:
    """What the API says about a range of days."""

    final_through: date | None  # newest final day, None if none is known
    fresh_through: date | None  # newest non-final day that has data, if any


def candidate_days(
    *,
    today: date,
    window: int,
    ledger: Mapping[date, str],
    earliest: date,
) -> list[date]:
    """Days ``sync`` should ask about, oldest first.

    Every day of the trailing ``window`` (ending today) not stored final, every earlier
    day not stored final that the ledger knows (failed or fresh), and, when the newest
    final day stored is older than the window, every day since it (catch-up after an
    outage). Never a day before ``earliest`` or after ``today``.
    """
    window_start = max(today - timedelta(days=window - 1), earliest)
    wanted: set[date] = set()
    if window_start <= today:
        wanted.update(d for d in days(window_start, today) if ledger.get(d) != "final")
    wanted.update(d for d, s in ledger.items() if s != "final" and earliest <= d <= today)
    finals = [d for d, s in ledger.items() if s == "final"]
    if finals:
        newest_final = max(finals)
        gap_start = max(newest_final + timedelta(days=1), earliest)
        if gap_start < window_start:
            wanted.update(
                d
                for d in days(gap_start, window_start - timedelta(days=1))
                if ledger.get(d) != "final"
            )
    return sorted(wanted)


def finality(row_dates: Collection[date], first_incomplete: date | None) -> Finality:
    """Read the probe: ``first_incomplete_date`` if present, else the newest date with data."""
    if first_incomplete is not None:
        fresh = [d for d in row_dates if d >= first_incomplete]
        return Finality(first_incomplete - timedelta(days=1), max(fresh) if fresh else None)
    return Finality(max(row_dates) if row_dates else None, None)


def plan_days(
    candidates: Collection[date], fin: Finality, *, data_state: str
) -> list[tuple[date, bool]]:
    """``(day, fresh)`` for every candidate to fetch, newest first."""
    out: list[tuple[date, bool]] = []
    for day in candidates:
        if fin.final_through is not None and day <= fin.final_through:
            out.append((day, False))
        elif (
            data_state == "all"
            and fin.fresh_through is not None
            and (fin.final_through is None or day > fin.final_through)
            and day <= fin.fresh_through
        ):
            out.append((day, True))
    out.sort(reverse=True)
    return out
