"""The requests for one job: which sites, the finality probe, and one day's fetch.

Each function asks the API through a :class:`GscClient` and turns its answer into the
plain data of :mod:`gscsync.models`. What each search type allows comes from the one
table, :data:`gscsync.models.SEARCH_TYPES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from gscsync.api.client import GscClient, first_incomplete_date
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


def to_detail(row: dict[str, Any], dims: Sequence[str]) -> tuple[tuple[str, ...], DetailRow]:
    """An API row as (key, detail row); dimensions not requested are ``''``."""
    keys = dict(zip(dims, row.get("keys") or [], strict=False))
    query, page, country, device = (str(keys.get(d, "")) for d in DETAIL_DIMENSIONS[1:])
    return (query, page, country, device), DetailRow(query, page, country, device, *_metrics(row))


def _metrics(row: dict[str, Any]) -> Totals:
    position = row.get("position")
    return Totals(
        int(row.get("clicks") or 0),
        int(row.get("impressions") or 0),
        float(row.get("ctr") or 0.0),
        float(position) if position is not None else None,
    )


def _date_totals(
    client: GscClient, site_url: str, body: dict[str, Any], start: date, end: date
) -> tuple[dict[str, Totals], dict[str, Any]]:
    """Totals by date of one date-grouped request, and its metadata."""
    span = (end - start).days + 1
    result = client.query(site_url, body, complete=lambda n: n >= span)
    totals: dict[str, Totals] = {}
    for row in result.rows:
        keys = row.get("keys") or []
        if keys:
            totals[str(keys[0])[:10]] = _metrics(row)
    return totals, result.metadata


def read_marker(metadata: dict[str, Any], today: date) -> date | None:
    """The freshness marker, if present and believable (a date no later than tomorrow)."""
    marker = first_incomplete_date(metadata)
    try:
        day = date.fromisoformat(marker) if marker else None
    except ValueError:
        return None
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
    dims = dimensions_for(task.search_type)
    rows: dict[tuple[str, ...], DetailRow] = {}
    served = 0
    for page in client.pages(task.site_url, {**base, "dimensions": dims}, cap=DAILY_ROW_CAP):
        for api_row in page.get("rows", []):  # reduced page by page: the JSON goes at once
            key, row = to_detail(api_row, dims)
            rows[key] = row  # ties across pages can repeat a row: keep one
        served += len(page.get("rows", []))
    appearance: dict[str, AppearanceRow] = {}
    for api_row in client.query(task.site_url, {**base, "dimensions": ["searchAppearance"]}).rows:
        name = str((api_row.get("keys") or [""])[0])
        appearance[name] = AppearanceRow(name, *_metrics(api_row))
    return DayData(
        task=task,
        rows=list(rows.values()),
        appearance=list(appearance.values()),
        totals=totals,
        truncated=served >= DAILY_ROW_CAP,
    )
