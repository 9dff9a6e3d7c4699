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
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from gscsync.api.answers import InvalidAnswer, one_line
from gscsync.api.client import ClientClosed, GscClient
from gscsync.errors import (
    AccessRefused,
    ApiError,
    AuthError,
    QuotaExceeded,
    Unauthorized,
)
from gscsync.logs import scrub
from gscsync.models import HOURLY, SEARCH_TYPES, DayTask, HourData, HourRow, RunReport, Totals
from gscsync.store import Store

log = logging.getLogger("gscsync")

HOURLY_DAYS = 10  # the API serves hourly data for about the last 10 days
ASSUMED_COMPLETE_LAG = 3  # without a marker, days this old are taken as complete
HOUR_CAP = 50_000  # rows a day the API serves for one grouped request
_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00:00[+-][0-9]{2}:[0-9]{2}")


def hourly_days(today: date, done: set[str]) -> list[str]:
    """The days the API serves hourly that are not stored complete, oldest first."""
    first = today - timedelta(days=HOURLY_DAYS - 1)
    every = [(first + timedelta(days=n)).isoformat() for n in range(HOURLY_DAYS)]
    return [d for d in every if d not in done]


def _hour(value: str, days: set[str]) -> str:
    """A checked hour key: ISO-8601 on the hour with an offset, on one of ``days``."""
    if not _HOUR.fullmatch(value) or value[:10] not in days:
        raise InvalidAnswer(
            f"hour key is not an hour of {min(days)} to {max(days)}: {one_line(value, 40)}"
        )
    datetime.fromisoformat(value)  # a real date and time (ValueError otherwise)
    return value


def _first_incomplete(metadata: dict[str, object]) -> datetime | None:
    raw = metadata.get("first_incomplete_hour", metadata.get("firstIncompleteHour"))
    if not isinstance(raw, str) or not _HOUR.fullmatch(raw):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def fetch_hours(
    client: GscClient, site: str, search_type: str, days: Sequence[str], today: date
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
    totals: dict[str, list[tuple[str, Totals]]] = {d: [] for d in days}
    for r in answer.rows:
        hour = _hour(r.keys[0], wanted)
        totals[hour[:10]].append((hour, Totals(r.clicks, r.impressions, r.ctr, r.position)))
    marker = _first_incomplete(answer.metadata)
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
            complete = date.fromisoformat(day) < marker.date()
        else:
            complete = date.fromisoformat(day) <= today - timedelta(days=ASSUMED_COMPLETE_LAG)
        out.append(
            HourData(
                site,
                search_type,
                day,
                sorted(totals[day]),
                list(rows[day].values()),
                complete,
                served[day] >= HOUR_CAP,
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
) -> None:
    """Every site and type: the hourly days not stored complete. A failure fails its
    site and type's days alone; a quota answer, a stop or the deadline ends the pass."""
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
                fetched = fetch_hours(client, site, stype, days, today)
            except (QuotaExceeded, ClientClosed) as exc:
                log.warning("hourly data: %s; the rest is fetched by the next sync", exc)
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
                    report.failures.append((DayTask(site, stype, day), message))
                report.days_failed += len(days)
                continue
            for data in fetched:
                store.write_hours(data)
                report.days_ok += 1
                report.rows_written += len(data.rows)
            report.requests = client.requests
