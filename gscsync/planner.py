"""Every "which days": pure functions over the ledger, the clock and the API's word.

Planning happens in two steps. :func:`candidate_days` uses the ledger and today's date
to name the days worth asking about; the freshness probe (one ``dataState: all``
request grouped by date over those days) then says which of them are final, and
:func:`plan_days` keeps the final ones (and, with ``GSCSYNC_DATA_STATE=all``, the fresh
ones that have data).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from gscsync.dates import days, earliest_served
from gscsync.errors import ConfigError
from gscsync.models import Chunk, DataState, DayTask, Job, JobAppearance, Totals

# When a site refuses access before we learn which days are final, the days at least
# this old are recorded as failed (Google finalises days within 2-3 days).
ASSUMED_FINAL_LAG = 3

# by day: a sync_days status, or "reports": the detail is final, a report table is not
Ledger = Mapping[date, str]
LedgerOf = Callable[[str, str], Ledger]  # (site, search type) -> the ledger


@dataclass(frozen=True)
class Finality:
    """What the API says about a range of days."""

    final_through: date | None  # newest final day, None if none is known
    fresh_through: date | None  # newest non-final day that has data, if any


def candidate_days(
    *,
    today: date,
    window: int,
    ledger: Ledger,
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
    finals = [d for d, s in ledger.items() if s in ("final", "reports")]  # the detail
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
    candidates: Collection[date], fin: Finality, *, data_state: DataState
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


def day_task(job: Job, day: date, fresh: bool) -> DayTask:
    """A day to fetch: its detail unless stored final (a fresh day never is), and the
    report tables not stored final."""
    detail_final, reports_final = job.stored.get(day, (False, frozenset()))
    if fresh or not detail_final:
        return DayTask(job.site_url, job.search_type, day.isoformat(), fresh, True, job.reports)
    wanted = tuple(r for r in job.reports if r not in reports_final)
    return DayTask(job.site_url, job.search_type, day.isoformat(), fresh, False, wanted)


def assumed_final(candidates: Sequence[date], today: date) -> list[date]:
    """Days to record as failed when the finality probe itself fails: those old enough."""
    cutoff = today - timedelta(days=ASSUMED_FINAL_LAG)
    return [d for d in candidates if d <= cutoff]


def sync_jobs(
    sites: Sequence[str],
    search_types: Sequence[str],
    ledger_of: LedgerOf,
    *,
    today: date,
    window: int,
) -> list[Job]:
    """Every site × search type with the days ``sync`` should ask about."""
    earliest = earliest_served(today)
    return [
        Job(
            site,
            stype,
            candidate_days(
                today=today, window=window, ledger=ledger_of(site, stype), earliest=earliest
            ),
        )
        for site in sites
        for stype in search_types
    ]


def backfill_range(today: date, start: date | None, end: date | None) -> tuple[date, date]:
    """The backfill range, defaulted and checked against what the API serves."""
    earliest = earliest_served(today)
    valid = f"the API serves {earliest} through {today} (Pacific Time)"
    if start is not None and start > today:
        raise ConfigError(f"--start {start} is in the future; {valid}")
    start = start or earliest
    end = end or today
    if end > today:
        raise ConfigError(f"--end {end} is in the future; {valid}")
    if start < earliest:
        raise ConfigError(f"--start {start} is older than the API keeps; {valid}")
    if start > end:
        raise ConfigError(f"--end {end} is before --start {start}; {valid}")
    return start, end


def backfill_jobs(
    sites: Sequence[str],
    search_types: Sequence[str],
    ledger_of: LedgerOf,
    *,
    first: date,
    last: date,
    force: bool,
) -> list[Job]:
    """Every site × search type with the days of the range not final (all with ``force``)."""
    out = []
    for site in sites:
        for stype in search_types:
            ledger = ledger_of(site, stype)
            wanted = [d for d in days(first, last) if force or ledger.get(d) != "final"]
            out.append(Job(site, stype, wanted))
    return out


ROW_LIMIT = 25_000  # rows per page: a packed request fits in one
BIG_IMPRESSIONS = 5_000  # a lone day with more impressions may be large: memory budget


def pack(
    days: Sequence[tuple[DayTask, Totals]],
    bounds: Mapping[str, int] | None,
    appearance: JobAppearance | None = None,
    *,
    limit: int = ROW_LIMIT,
) -> list[Chunk]:
    """Chunks of consecutive days whose detail-row bounds add up to at most ``limit``.

    ``bounds`` maps a day to its page-aggregated impressions, an upper bound on its detail
    rows (each row has at least one impression). A day without a bound, or over ``limit``,
    is a chunk of its own; so is every day when ``bounds`` is None (nothing to pack by).
    ``appearance``, the job's search appearance being fetched, travels with the days.
    """

    def chunk(days: Sequence[tuple[DayTask, Totals]], big: bool = False) -> Chunk:
        site, stype = days[0][0].site_url, days[0][0].search_type
        return Chunk(site, stype, tuple(days), big, appearance)

    chunks: list[Chunk] = []
    run: list[tuple[DayTask, Totals]] = []
    total = 0

    def flush() -> None:
        nonlocal total
        if run:
            chunks.append(chunk(run))
            run.clear()
        total = 0

    for task, totals in sorted(days, key=lambda d: d[0].date):
        bound = bounds.get(task.date) if bounds is not None else None
        if bound is None or bound > limit:
            flush()
            big = bound is None and totals.impressions >= BIG_IMPRESSIONS or bound is not None
            chunks.append(chunk([(task, totals)], big))
            continue
        if run and (
            date.fromisoformat(task.date) - date.fromisoformat(run[-1][0].date) != timedelta(1)
            or task.fresh != run[-1][0].fresh
            or (task.detail, task.reports) != (run[-1][0].detail, run[-1][0].reports)
            or total + bound > limit
        ):
            flush()
        run.append((task, totals))
        total += bound
    flush()
    return chunks


class Estimate(NamedTuple):
    """What a backfill of one site and type will likely cost, before any request."""

    site_url: str
    search_type: str
    days: int  # days to fetch
    low: int  # requests at the least (the probe; every day empty)
    high: int  # requests expected from the stored history, or at most without it
    rows_per_day: float | None  # the stored final days' mean, when known


APPEARANCES = 5  # appearance requests a range usually costs (a listing and one each)


def estimate(
    site: str,
    search_type: str,
    days: int,
    size: tuple[float, float] | None,
    reports: int,
    *,
    limit: int = ROW_LIMIT,
) -> Estimate:
    """Requests for ``days`` days. ``size``: the stored final days' mean detail rows and
    mean impressions (which bound a day's rows when days are packed), giving the packed
    chunks (each a detail page and its empty page, ``reports`` report tables at about 1.5
    each) plus the probe, the sizing and the appearance requests; without history, the
    most it can cost (every day its own chunk)."""
    rows = size[0] if size is not None else None
    if not days:
        return Estimate(site, search_type, 0, 0, 0, rows)
    fixed = 1 + (1 + APPEARANCES if days > 1 else 1)
    per_chunk = 2 + 1.5 * reports
    if size is None:
        chunks = days
    elif size[1] >= limit:  # days that are not packed: each alone, paged
        chunks = days
        per_chunk += int(size[0] // limit)
    else:
        chunks = max(1, -(-days // max(1, int(limit // max(size[1], 1.0)))))
    return Estimate(site, search_type, days, 1, fixed + round(chunks * per_chunk), rows)
