"""The report tables of a chunk of days: the API's own grouped answers, as the Search
Console UI shows them.

Detail rows are aggregated by page and leave out anonymized queries, so their sums are
not the UI's query, country or device reports. Each report table is one request over the
chunk's range, grouped by date and its dimension, asked by property where the API allows
(not for pages, nor for Discover and Google News) and paged to the end: a packed chunk's
detail bound holds for these too (a report has at most as many rows a day as the
detail), so a packed range fits in one page. ``search_appearance_detail`` is Google's
two-step way: the appearances of the range, then one request per appearance filtered by
it and grouped by date, page and query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gscsync.api.answers import InvalidAnswer
from gscsync.api.client import DAILY_ROW_CAP, GscClient
from gscsync.models import (
    APPEARANCE_DETAIL,
    REPORT_DIMENSION,
    SEARCH_TYPES,
    AppearanceDetailRow,
    DayData,
    ReportDay,
    ReportRow,
    Totals,
    by_property,
)


def _sums_to_totals(search_type: str, report: str) -> bool:
    """Whether a day's rows of ``report`` add up to the day's totals as the probe asked
    them (by property, or by page for Discover and Google News): every search has one
    country and one device; the query report leaves out anonymized queries, and pages
    by page add up to the by-page totals only."""
    if report == "by_query":
        return False
    return report != "by_page" or not SEARCH_TYPES[search_type].has_position


def fetch_reports(
    client: GscClient,
    site: str,
    base: dict[str, Any],
    days: Sequence[str],
    reports: Iterable[str],
    appearances: Iterable[str] | None = None,
    totals: Mapping[str, Totals] | None = None,
) -> dict[str, dict[str, ReportDay]]:
    """By report, by day: the rows of each report table for ``days`` (the range of
    ``base``). ``appearances`` names the range's search appearances when known (else one
    request lists them, for ``search_appearance_detail`` only). With the days' ``totals``
    (as the probe asked them), a report whose rows add up to them stops paging once they
    do: known complete without asking for the empty page."""
    lone = len(days) == 1
    stype = base["type"]
    out: dict[str, dict[str, ReportDay]] = {}
    for report in reports:
        if report == APPEARANCE_DETAIL:
            out[report] = _appearance_detail(client, site, base, days, appearances)
            continue
        body = {**base, "dimensions": ["date", REPORT_DIMENSION[report]]}
        if by_property(stype, report):
            body["aggregationType"] = "byProperty"
        rows: dict[str, dict[str, ReportRow]] = {d: {} for d in days}
        served = dict.fromkeys(days, 0)
        expected = None
        if totals is not None and _sums_to_totals(stype, report):
            expected = {d: (totals[d].clicks, totals[d].impressions) for d in days}
        for page in client.pages(site, body, cap=DAILY_ROW_CAP if lone else None):
            for r in page.rows:
                day, key = rows.get(r.keys[0]), r.keys[1]
                if day is not None:  # ties repeated across pages: one row each
                    day[key] = ReportRow(key, r.clicks, r.impressions, r.ctr, r.position)
                    served[r.keys[0]] += 1
            if expected is not None and all(_sums(rows[d]) == expected[d] for d in days):
                break
        if expected is not None:  # these add up to the day's totals: none is no answer
            for d in days:
                if not rows[d] and expected[d][1]:
                    raise InvalidAnswer(
                        f"{report} answered no rows for {d}, a day with {expected[d][1]} "
                        "impressions"
                    )
        out[report] = {
            d: ReportDay(list(v.values()), served[d] >= DAILY_ROW_CAP) for d, v in rows.items()
        }
    return out


def _sums(rows: dict[str, ReportRow]) -> tuple[int, int]:
    return sum(r.clicks for r in rows.values()), sum(r.impressions for r in rows.values())


def _appearance_detail(
    client: GscClient,
    site: str,
    base: dict[str, Any],
    days: Sequence[str],
    appearances: Iterable[str] | None,
) -> dict[str, ReportDay]:
    if appearances is None:
        listing = client.query(site, {**base, "dimensions": ["searchAppearance"]})
        appearances = [r.keys[0] for r in listing.rows]
    has_query = "query" in SEARCH_TYPES[base["type"]].dimensions
    dims = ["date", "page", *(["query"] if has_query else [])]
    rows: dict[str, dict[tuple[str, str, str], AppearanceDetailRow]] = {d: {} for d in days}
    capped: set[str] = set()
    for name in sorted(set(appearances)):
        served = dict.fromkeys(days, 0)
        body = {
            **base,
            "dimensions": dims,
            "dimensionFilterGroups": [
                {
                    "filters": [
                        {"dimension": "searchAppearance", "operator": "equals", "expression": name}
                    ]
                }
            ],
        }
        for page in client.pages(site, body, cap=DAILY_ROW_CAP if len(days) == 1 else None):
            for r in page.rows:
                day = rows.get(r.keys[0])
                if day is None:
                    continue
                query = r.keys[2] if has_query else ""
                day[(name, r.keys[1], query)] = AppearanceDetailRow(
                    name, r.keys[1], query, r.clicks, r.impressions, r.ctr, r.position
                )
                served[r.keys[0]] += 1
        capped.update(d for d, n in served.items() if n >= DAILY_ROW_CAP)
    return {d: ReportDay(list(v.values()), d in capped) for d, v in rows.items()}


def page_sums(data: DayData) -> Totals | None:
    """The day's by-page totals from its ``by_page`` rows (every impression is on a page,
    anonymized queries' too), when the day has them whole; else None."""
    day = data.reports.get("by_page")
    if day is None or day.truncated or not day.rows:
        return None
    clicks = sum(r.clicks for r in day.rows)
    impressions = sum(r.impressions for r in day.rows)
    weighted = [r.position * r.impressions for r in day.rows if r.position is not None]
    position = sum(weighted) / impressions if impressions and weighted else None
    return Totals(clicks, impressions, clicks / impressions if impressions else 0.0, position)
