"""Hourly data (``GSCSYNC_HOURLY``, off by default): the hours of the days the API serves
hourly (about the last 10 Pacific days, ``dataState: hourly_all``), stored in
``hourly_totals`` and ``search_analytics_hourly``, refetched by each ``sync`` until the
day is complete, and kept after Google stops serving it.

Per site and search type: one request for the hourly totals of the days still open (its
``first_incomplete_hour`` says which hours may change), and one detail request over the
same days grouped by hour and the type's dimensions, paged to the end. A day is complete
when every hour of it is before the first incomplete hour; without that marker (its
absence proves nothing) only days at least three days old count as complete.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gscsync.api.answers import InvalidAnswer, one_line
from gscsync.api.client import DAILY_ROW_CAP, GscClient
from gscsync.errors import (
    AccessRefused,
    ApiError,
    AuthError,
    QuotaExceeded,
    Tripped,
    Unauthorized,
)
from gscsync.logs import scrub
from gscsync.models import HOURLY, SEARCH_TYPES, DayTask, HourData, HourRow, RunReport, Totals
from gscsync.pool import call_abandonable
from gscsync.store import Store

log = logging.getLogger("gscsync")

PACIFIC = ZoneInfo("America/Los_Angeles")
HOURLY_DAYS = 10  # the API serves hourly data for about the last 10 days
ASSUMED_COMPLETE_LAG = 3  # without a marker, days this old are taken as complete
_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00:00[+-][0-9]{2}:[0-9]{2}")


def hourly_days(today: date, done: set[str]) -> list[str]:
    """The days the API serves hourly that are not stored complete, oldest first."""
    first = today - timedelta(days=HOURLY_DAYS - 1)
    every = [(first + timedelta(days=n)).isoformat() for n in range(HOURLY_DAYS)]
    return [d for d in every if d not in done]


def _pacific(value: str) -> datetime | None:
    """An hour key as an aware datetime when it is Pacific time with its own offset (both
    of a DST change's repeated hour are), else None."""
    if not _HOUR.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    local = moment.astimezone(PACIFIC)
    return moment if local.replace(tzinfo=None) == moment.replace(tzinfo=None) else None


def _hour(value: str, days: set[str]) -> str:
    """A checked hour key: ISO-8601 on the hour in Pacific time, on one of ``days``."""
    if _pacific(value) is None or value[:10] not in days:
        raise InvalidAnswer(
            f"hour key is not a Pacific hour of {min(days)} to {max(days)}: {one_line(value, 40)}"
        )
    return value


def _first_incomplete(metadata: dict[str, object], now: datetime) -> date | None:
    """The Pacific day of the first incomplete hour, when the marker is a Pacific hour not
    after now (a marker in the future would freeze partial hours as final)."""
    raw = metadata.get("first_incomplete_hour", metadata.get("firstIncompleteHour"))
    moment = _pacific(raw) if isinstance(raw, str) else None
    if moment is None or moment > now:
        return None
    return moment.date()


def fetch_hours(
    client: GscClient,
    site: str,
    search_type: str,
    days: Sequence[str],
    today: date,
    now: datetime | None = None,
) -> list[HourData]:
    """The hourly data of ``days`` (consecutive, oldest first): one HourData per day."""
    wanted = set(days)
    base = {
        "startDate": days[0],
        "endDate": days[-1],
        "type": search_type,
        "dataState": "hourly_all",
    }
    answer = client.query(site, {**base, "dimensions": ["hour"]})
    totals: dict[str, dict[str, Totals]] = {d: {} for d in days}
    for r in answer.rows:  # a row repeated across pages (ties) is kept once
        hour = _hour(r.keys[0], wanted)
        totals[hour[:10]][hour] = Totals(r.clicks, r.impressions, r.ctr, r.position)
    marker = _first_incomplete(answer.metadata, now or datetime.now(PACIFIC))
    dims = ["hour", *SEARCH_TYPES[search_type].dimensions[1:]]
    at = {d: n for n, d in enumerate(dims)}
    rows: dict[str, dict[tuple[str, ...], HourRow]] = {d: {} for d in days}
    served = dict.fromkeys(days, 0)
    for page in client.pages(site, {**base, "dimensions": dims}):
        for r in page.rows:
            hour = _hour(r.keys[0], wanted)
            query, page_, country, device = (
                r.keys[at[d]] if d in at else "" for d in ("query", "page", "country", "device")
            )
            rows[hour[:10]][(hour, query, page_, country, device)] = HourRow(
                hour, query, page_, country, device, r.clicks, r.impressions, r.ctr, r.position
            )
            served[hour[:10]] += 1
    out = []
    for day in days:
        if marker is not None:
            complete = date.fromisoformat(day) < min(marker, today)
        else:
            complete = date.fromisoformat(day) <= today - timedelta(days=ASSUMED_COMPLETE_LAG)
        out.append(
            HourData(
                site,
                search_type,
                day,
                sorted(totals[day].items()),
                list(rows[day].values()),
                complete,
                served[day] >= DAILY_ROW_CAP,
            )
        )
    return out


def sync_hourly(
    store: Store,
    client: GscClient,
    sites: Sequence[str],
    search_types: Sequence[str],
    today: date,
    report: RunReport,
    stop: threading.Event | None = None,
    deadline: float | None = None,
) -> None:
    """Every site and type: the hourly days not stored complete. A failure fails its
    site and type's days alone; a quota answer, a stop or the deadline ends the pass (and
    says so in the report, as the engine does), without waiting for a request in flight."""
    stop = stop or threading.Event()
    for site in sites:
        if site in report.denied_sites:
            continue
        for stype in search_types:
            ledger = store.report_ledger(site, stype)
            done = {d for (r, d), e in ledger.items() if r == HOURLY and e.status == "final"}
            days = hourly_days(today, done)
            if not days:
                continue
            try:
                fetched = call_abandonable(
                    lambda: fetch_hours(client, site, stype, days, today),  # noqa: B023
                    stop,
                    deadline,
                    report,
                )
            except QuotaExceeded as exc:
                report.stopped = "quota"
                log.warning("hourly data: %s; the rest is fetched by the next sync", exc)
                return
            except Tripped:
                report.stopped = "breaker"
                return
            except Unauthorized as exc:
                raise AuthError(f"the API refused the access token: {exc}") from None
            except AccessRefused:
                raise
            except (ApiError, ValueError) as exc:
                message = scrub(f"hourly data: {exc}")
                log.error("%s %s: %s", site, stype, message)
                for day in days:
                    store.mark_report_failed(DayTask(site, stype, day), HOURLY, message)
                    report.day_failed(DayTask(site, stype, day), message)
                continue
            if fetched is None:  # stopped or past the deadline: report.stopped says which
                return
            for data in fetched:
                store.write_hours(data)
                report.day_written(DayTask(site, stype, data.date), len(data.rows))
            report.requests = client.requests
