"""The requests for one job: which sites, the finality probe, and one day's fetch.

Each function asks the API through a :class:`GscClient`, whose answers arrive checked
against their request by :mod:`gscsync.api.answers` (a row that breaks the contract is a
BadResponse, never a stored row), and turns them into the plain data of
:mod:`gscsync.models`. What each search type allows comes from the one table,
:data:`gscsync.models.SEARCH_TYPES`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from gscsync.api.answers import ApiRow, first_incomplete_date, iso_day, one_line
from gscsync.api.client import DAILY_ROW_CAP, ClientClosed, GscClient
from gscsync.errors import (
    AccessRefused,
    ApiError,
    NoAccessibleSite,
    PermissionDenied,
    QuotaExceeded,
    Unauthorized,
)
from gscsync.models import (
    DETAIL_DIMENSIONS,
    SEARCH_TYPES,
    AppearanceRow,
    Chunk,
    DayData,
    DayTask,
    DetailRow,
    JobAppearance,
    Packing,
    Totals,
)
from gscsync.planner import Finality, finality
from gscsync.pool import Shared, fan_out
from gscsync.reports import fetch_reports
from gscsync.split import Rows, Split, split_capped

log = logging.getLogger("gscsync")


# How many requests wait in a row on each kind of request: when more requests wait than
# the concurrency admits, the client serves the longest chain first (api/slots.py). A
# probe heads its job (sizing, detail page, its empty page); a sizing, the detail pages; an
# appearance listing, its empty page and then the request for each appearance; a detail
# page, the next page. Everything else ends its chain (0).
FOLLOW_PROBE, FOLLOW_SIZING, FOLLOW_LISTING, FOLLOW_DETAIL = 3, 2, 2, 1


def dimensions_for(search_type: str) -> list[str]:
    """Detail dimensions the API allows for ``search_type``."""
    return list(SEARCH_TYPES[search_type].dimensions)


@dataclass
class Probe:
    """The freshness probe's answer: finality and per-day totals."""

    finality: Finality
    totals: dict[str, Totals]


def resolve_sites(configured: Sequence[str], client: GscClient) -> list[str]:
    """The configured properties, or every property the credentials can read."""
    if configured:
        return list(configured)
    sites = [s.url for s in client.list_sites() if s.has_data_access]
    if not sites:
        raise NoAccessibleSite(
            "the credentials can read no Search Console property; add the service account's "
            "client_email as a user of each property (Settings > Users and permissions)"
        )
    return sites


@cache
def _detail_positions(dims: tuple[str, ...]) -> tuple[int, int, int, int]:
    """Where query, page, country and device are among ``dims`` (-1: not requested)."""
    at = {d: i for i, d in enumerate(dims)}
    q, p, c, d = (at.get(name, -1) for name in DETAIL_DIMENSIONS[1:])
    return q, p, c, d


def to_detail(
    row: ApiRow, dims: Sequence[str], strings: dict[str, str] | None = None
) -> tuple[tuple[str, ...], DetailRow]:
    """A checked API row as (key, detail row); dimensions not requested are ``''``.

    With ``strings``, each distinct value is held once: a capped day repeats the same
    queries, pages, countries and devices tens of thousands of times.
    """
    q, p, c, d = _detail_positions(dims if isinstance(dims, tuple) else tuple(dims))
    k = row.keys
    key = (
        k[q] if q >= 0 else "",
        k[p] if p >= 0 else "",
        k[c] if c >= 0 else "",
        k[d] if d >= 0 else "",
    )
    if strings is not None:
        a, b, e, f = (strings.setdefault(v, v) for v in key)
        key = (a, b, e, f)
    return key, DetailRow(*key, row.clicks, row.impressions, row.ctr, row.position)


def _metrics(row: ApiRow) -> Totals:
    return Totals(row.clicks, row.impressions, row.ctr, row.position)


def _date_totals(
    client: GscClient, site_url: str, body: dict[str, Any], start: date, end: date
) -> tuple[dict[str, Totals], dict[str, Any]]:
    """Totals by date of one date-grouped request (its date keys checked to be days of the
    range), and its metadata."""
    span = (end - start).days + 1
    result = client.query(site_url, body, complete=lambda n: n >= span, follows=FOLLOW_PROBE)
    totals = {row.keys[0]: _metrics(row) for row in result.rows}
    return totals, result.metadata


def read_marker(metadata: dict[str, Any], today: date) -> date | None:
    """The freshness marker, if present and believable: exactly ``YYYY-MM-DD``, a real day,
    no later than tomorrow. Anything else is as good as absent (the caller then asks
    ``dataState: final``), never read leniently: a misread marker would make fresh days
    final."""
    raw = first_incomplete_date(metadata)
    day = iso_day(raw)
    if raw is not None and day is None:
        log.warning("ignoring a freshness marker that is not a date (%s)", one_line(repr(raw), 40))
    return day if day is not None and day <= today + timedelta(days=1) else None


def probe(client: GscClient, site_url: str, search_type: str, start: date, end: date) -> Probe:
    """Finality and daily totals: one ``dataState: all`` request grouped by date.

    When its ``first_incomplete_date`` marker is missing or unusable, the same request with
    ``dataState: final`` names the newest final day (Google documents the marker as present
    only when the range holds incomplete data; its absence proves nothing).
    """
    body = {
        "startDate": start.isoformat(),
        "endDate": end.isoformat(),
        "dimensions": ["date"],
        "type": search_type,
        "dataState": "all",
    }
    totals, metadata = _date_totals(client, site_url, body, start, end)
    marker = read_marker(metadata, end)
    if marker is not None or not totals:
        return Probe(finality([date.fromisoformat(d) for d in totals], marker), totals)
    final, _ = _date_totals(client, site_url, {**body, "dataState": "final"}, start, end)
    final_through = max(map(date.fromisoformat, final)) if final else None
    fresh = [
        d for d in map(date.fromisoformat, totals) if final_through is None or d > final_through
    ]
    return Probe(Finality(final_through, max(fresh) if fresh else None), {**totals, **final})


def size_job(
    client: GscClient, packing: Packing, side: threading.Semaphore | None = None
) -> tuple[dict[str, Totals], JobAppearance | None]:
    """For the days of one job: the by-page totals of each day (one request; their
    impressions bound the day's detail rows, since a detail row has at least one
    impression), returned as soon as they are in; and the search appearance of the days
    that want their detail, for the whole range the two-step way, started beside the
    sizing on a thread of ``side``'s (when one is free) and left running: the detail
    requests need not wait for it."""
    first, last = packing.days[0][0], packing.days[-1][0]
    body = {
        "startDate": first.date,
        "endDate": last.date,
        "dimensions": ["date"],
        "type": first.search_type,
        "dataState": "all" if any(t.fresh for t, _ in packing.days) else "final",
        "aggregationType": "byPage",
    }
    start, end = date.fromisoformat(first.date), date.fromisoformat(last.date)
    span = (end - start).days + 1
    days = [t.date for t, _ in packing.days if t.detail]
    pending = None
    if days:
        base = {k: v for k, v in body.items() if k not in ("dimensions", "aggregationType")}
        base.update(startDate=days[0], endDate=days[-1])
        pending = Shared(functools.partial(appearances, client, first.site_url, days, base), side)
    sized = client.query(
        first.site_url, body, complete=lambda n: n >= span, follows=FOLLOW_SIZING
    ).rows
    return {row.keys[0]: _metrics(row) for row in sized}, pending


def _detail(
    client: GscClient, site: str, body: dict[str, Any], days: Sequence[str], cap: int | None
) -> tuple[dict[str, Rows], dict[str, int], int]:
    """Detail rows by day of one query (paged to the end), rows served by day, and pages."""
    dims = tuple(body["dimensions"])
    rows: dict[str, Rows] = {d: {} for d in days}
    served = dict.fromkeys(days, 0)
    pages = 0
    strings: dict[str, str] = {}
    for page in client.pages(site, body, cap=cap, follows=FOLLOW_DETAIL):
        pages += 1
        for api_row in page.rows:  # reduced page by page: the JSON goes at once
            day = rows.get(api_row.keys[0])
            if day is None:
                continue  # answers are checked to hold only days of the range
            key, row = to_detail(api_row, dims, strings)
            day[key] = row  # ties across pages can repeat a row: keep one
            served[api_row.keys[0]] += 1
    return rows, served, pages


def fetch_chunk(client: GscClient, chunk: Chunk, split_budget: int = 0) -> list[DayData]:
    """Every detail and appearance row of the chunk's days: one detail query over its range
    (paged to the end), the appearances the cheapest way, and the report tables the days
    want; one DayData per day. A lone day at the row cap is refetched as disjoint slices
    within ``split_budget`` requests. A chunk whose detail is stored final already (its
    days want only report tables) asks for those alone."""
    first, last = chunk.days[0][0], chunk.days[-1][0]
    base = {
        "startDate": first.date,
        "endDate": last.date,
        "type": chunk.search_type,
        "dataState": "all" if first.fresh else "final",
    }
    days = [t.date for t, _ in chunk.days]
    if first.detail:
        data = _detail_days(client, chunk, base, days, split_budget)
    else:
        data = [DayData(task=t, totals=totals, detail=False) for t, totals in chunk.days]
    if first.reports:
        seen = None
        if first.detail:
            seen = {a.appearance for d in data for a in d.appearance}
        totals = {t.date: day_totals for t, day_totals in chunk.days}
        try:
            fetched = fetch_reports(client, chunk.site_url, base, days, first.reports, seen, totals)
        except (QuotaExceeded, ClientClosed, PermissionDenied, Unauthorized, AccessRefused):
            raise  # about the run or the site: the chunk's days wait as a whole
        except ApiError as exc:
            if not first.detail:
                raise  # nothing else came: the days fail as they are
            for day in data:  # the detail came: it is written, the reports fail alone
                day.report_error = str(exc)
            return data
        for day in data:
            day.reports = {r: by_day[day.task.date] for r, by_day in fetched.items()}
    return data


def _detail_days(
    client: GscClient, chunk: Chunk, base: dict[str, Any], days: list[str], split_budget: int
) -> list[DayData]:
    dims = list(SEARCH_TYPES[chunk.search_type].dimensions)  # "date" first
    lone = len(days) == 1
    body = {**base, "dimensions": dims}
    rows, served, _ = _detail(client, chunk.site_url, body, days, DAILY_ROW_CAP if lone else None)
    capped = {d for d in days if served[d] >= DAILY_ROW_CAP}
    split: Split | None = None
    if lone and capped and split_budget > 0:

        def fetch(sliced: dict[str, Any]) -> tuple[Rows, bool, int]:
            got, count, pages = _detail(client, chunk.site_url, sliced, days, DAILY_ROW_CAP)
            return got[days[0]], count[days[0]] >= DAILY_ROW_CAP, pages

        split = split_capped(
            client, chunk.site_url, body, dims, rows[days[0]], budget=split_budget, fetch=fetch
        )
        recovered = len(split.rows) - len(rows[days[0]])
        rows[days[0]] = split.rows
        if not split.capped:
            capped.clear()
    if chunk.appearance is not None:  # fetched for the whole job beside its detail
        appearance = chunk.appearance.get()
    else:
        appearance = appearances(client, chunk.site_url, days, base)
    return [
        DayData(
            task=task,
            rows=list(rows[task.date].values()),
            appearance=appearance.get(task.date, []),
            totals=totals,
            truncated=task.date in capped,
            split_requests=split.requests if split else 0,
            recovered=recovered if split else 0,
        )
        for task, totals in chunk.days
    ]


def appearances(
    client: GscClient, site: str, days: Sequence[str], base: dict[str, Any]
) -> dict[str, list[AppearanceRow]]:
    """Search appearance for ``days`` (inside ``base``'s range). One request lists the
    range's appearances (for one day, that is the answer); then whichever costs less: one
    request per appearance, filtered by it and grouped by date, or one per day grouped by
    appearance."""
    span = (date.fromisoformat(base["endDate"]) - date.fromisoformat(base["startDate"])).days + 1
    listed = {**base, "dimensions": ["searchAppearance"]}
    listing = client.query(site, listed, follows=FOLLOW_LISTING).rows
    out: dict[str, dict[str, AppearanceRow]] = {d: {} for d in days}
    if len(days) == 1:
        for r in listing:
            out[days[0]][r.keys[0]] = AppearanceRow(r.keys[0], *r[1:])
    elif len({r.keys[0] for r in listing}) <= len(days):  # ~1 each vs 2 a day (empty page)
        calls: list[tuple[str, Callable[[], list[ApiRow]]]] = []
        for name, whole in {r.keys[0]: r for r in listing}.items():
            body = {
                **base,
                "dimensions": ["date"],
                "dimensionFilterGroups": [
                    {
                        "filters": [
                            {
                                "dimension": "searchAppearance",
                                "operator": "equals",
                                "expression": name,
                            }
                        ]
                    }
                ],
            }
            calls.append((name, functools.partial(_until_sums, client, site, body, whole, span)))
        for (name, _), rows in zip(calls, fan_out([call for _, call in calls]), strict=True):
            for r in rows:
                if r.keys[0] in out:
                    out[r.keys[0]][name] = AppearanceRow(name, *r[1:])
    else:
        for day in days:
            body = {**base, "startDate": day, "endDate": day, "dimensions": ["searchAppearance"]}
            for r in client.query(site, body).rows:
                out[day][r.keys[0]] = AppearanceRow(r.keys[0], *r[1:])
    return {d: list(v.values()) for d, v in out.items()}


def _until_sums(
    client: GscClient, site: str, body: dict[str, Any], whole: ApiRow, days: int
) -> list[ApiRow]:
    """The date-grouped rows of ``body``, paged until they add up to ``whole`` (the range's
    own totals: clicks and impressions add up over days), a row for every day is in, or an
    empty page: the answer is known complete without asking for one more page."""
    rows: list[ApiRow] = []
    clicks = impressions = 0
    for page in client.pages(site, body):
        rows += page.rows
        clicks += sum(r.clicks for r in page.rows)
        impressions += sum(r.impressions for r in page.rows)
        if len(rows) >= days or (clicks, impressions) == (whole.clicks, whole.impressions):
            break
    return rows


def fetch_day(client: GscClient, task: DayTask, totals: Totals) -> DayData:
    """One day on its own (a chunk of one)."""
    (data,) = fetch_chunk(client, Chunk(task.site_url, task.search_type, ((task, totals),)))
    return data
