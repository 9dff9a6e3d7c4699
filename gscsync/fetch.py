"""The requests for one job: which sites, the finality probe, and one day's fetch.

Each function asks the API through a :class:`GscClient`, whose answers arrive checked
against their request by :mod:`gscsync.api.answers` (a row that breaks the contract is a
BadResponse, never a stored row), and turns them into the plain data of
:mod:`gscsync.models`. What each search type allows comes from the one table,
:data:`gscsync.models.SEARCH_TYPES`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from gscsync.api.answers import ApiRow, first_incomplete_date, iso_day, one_line
from gscsync.api.client import GscClient
from gscsync.errors import NoAccessibleSite
from gscsync.models import (
    DETAIL_DIMENSIONS,
    SEARCH_TYPES,
    AppearanceRow,
    DayData,
    DayTask,
    DetailRow,
    Totals,
)
from gscsync.planner import Finality, finality

DAILY_ROW_CAP = 50_000

log = logging.getLogger("gscsync")


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


def to_detail(row: ApiRow, dims: Sequence[str]) -> tuple[tuple[str, ...], DetailRow]:
    """A checked API row as (key, detail row); dimensions not requested are ``''``."""
    q, p, c, d = _detail_positions(dims if isinstance(dims, tuple) else tuple(dims))
    k = row.keys
    key = (
        k[q] if q >= 0 else "",
        k[p] if p >= 0 else "",
        k[c] if c >= 0 else "",
        k[d] if d >= 0 else "",
    )
    return key, DetailRow(*key, row.clicks, row.impressions, row.ctr, row.position)


def _metrics(row: ApiRow) -> Totals:
    return Totals(row.clicks, row.impressions, row.ctr, row.position)


def _date_totals(
    client: GscClient, site_url: str, body: dict[str, Any], start: date, end: date
) -> tuple[dict[str, Totals], dict[str, Any]]:
    """Totals by date of one date-grouped request (its date keys checked to be days of the
    range), and its metadata."""
    span = (end - start).days + 1
    result = client.query(site_url, body, complete=lambda n: n >= span)
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


def fetch_day(client: GscClient, task: DayTask, totals: Totals) -> DayData:
    """Every detail row and appearance row of one day."""
    base = {
        "startDate": task.date,
        "endDate": task.date,
        "type": task.search_type,
        "dataState": "all" if task.fresh else "final",
    }
    dims = tuple(SEARCH_TYPES[task.search_type].dimensions)
    rows: dict[tuple[str, ...], DetailRow] = {}
    served = 0
    for page in client.pages(task.site_url, {**base, "dimensions": list(dims)}, cap=DAILY_ROW_CAP):
        for api_row in page.rows:  # reduced page by page: the JSON goes at once
            key, row = to_detail(api_row, dims)
            rows[key] = row  # ties across pages can repeat a row: keep one
        served += len(page.rows)
    appearance: dict[str, AppearanceRow] = {}
    for api_row in client.query(task.site_url, {**base, "dimensions": ["searchAppearance"]}).rows:
        name = api_row.keys[0]
        appearance[name] = AppearanceRow(name, *api_row[1:])
    return DayData(
        task=task,
        rows=list(rows.values()),
        appearance=list(appearance.values()),
        totals=totals,
        truncated=served >= DAILY_ROW_CAP,
    )
