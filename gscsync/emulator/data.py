"""Deterministic synthetic Search Console data, and the query engine over it.

Every (site, search type, day) has a fixed set of base rows, drawn from a seed, each with
query, page, country, device, an optional search appearance, clicks, impressions and
position. Some queries are anonymized: they count in totals but are never returned when
a request groups or filters by query. Days not final yet are served only with
``dataState: all``, scaled down (partial data that grows until final).

Aggregation: by page, every base row counts; by property, one search (a query, country,
device and day) showing several of the property's pages counts once, with its topmost
position (:func:`collapse_by_property`), so totals by property are at most those by page.

Hourly data (``dataState: hourly_all``, grouped by ``hour``): the last :data:`HOURLY_DAYS`
Pacific days, each row of a day (as ``dataState: all`` serves it) split exactly over the
day's real local hours (:func:`day_hours`, :func:`split_exact`); today only up to the
current hour.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from gscsync.models import SEARCH_TYPES

PACIFIC = ZoneInfo("America/Los_Angeles")
DAILY_ROW_CAP = 50_000
HOURLY_DAYS = 10  # hourly data reaches back this many Pacific days, today included
# share of a day's traffic by local wall-clock hour (quiet at night, busiest early afternoon)
HOUR_WEIGHTS = (3, 2, 2, 2, 2, 3, 4, 6, 8, 9, 10, 10, 11, 11, 10, 10, 9, 9, 9, 8, 8, 7, 6, 4)
NO_POSITION_TYPES = {t.name for t in SEARCH_TYPES.values() if not t.has_position}
WORDS = (
    "shoes",
    "running",
    "trail",
    "boots",
    "sale",
    "review",
    "best",
    "cheap",
    "women",
    "men",
    "kids",
    "waterproof",
    "hiking",
    "size",
    "guide",
    "near me",
    "online",
    "store",
)
COUNTRIES = ("usa", "gbr", "deu", "fra", "ind", "can", "aus", "bra")
DEVICES = ("DESKTOP", "MOBILE", "TABLET")
APPEARANCES = ("AMP_BLUE_LINK", "VIDEO", "REVIEW_SNIPPET", "PRODUCT_SNIPPETS")
N_QUERIES, N_PAGES = 600, 50


@dataclass(frozen=True)
class BaseRow:
    query: str
    page: str
    country: str
    device: str
    appearance: str  # '' when the row has none
    anonymized: bool
    clicks: int
    impressions: int
    position: float


DEFAULT_ROWS = {"web": 300, "image": 60, "video": 12, "news": 0, "discover": 40, "googleNews": 15}


@dataclass
class SiteData:
    """A property: its permission level and rows per day per search type."""

    url: str
    permission: str = "siteOwner"
    rows_per_day: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ROWS))


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _host(site: str) -> str:
    return (
        site.removeprefix("sc-domain:")
        .removeprefix("https://")
        .removeprefix("http://")
        .strip("/")
        .split("/")[0]
    )


@lru_cache(maxsize=256)
def base_rows(seed: int, site: str, search_type: str, day: str, count: int) -> tuple[BaseRow, ...]:
    """The final rows of one site, type and day (cached: generation is the slow part)."""
    if count <= 0:
        return ()
    rng = random.Random(_seed(seed, site, search_type, day))
    n = max(1, int(count * rng.uniform(0.8, 1.2)))
    space = N_QUERIES * N_PAGES * len(COUNTRIES) * len(DEVICES)
    host = _host(site)
    rows = []
    for i in sorted(rng.sample(range(space), min(n, space))):
        q, rest = i % N_QUERIES, i // N_QUERIES
        p, rest = rest % N_PAGES, rest // N_PAGES
        c, d = rest % len(COUNTRIES), rest // len(COUNTRIES)
        # most rows carry a few impressions, a few carry very many (a long tail, as in
        # Search Console exports): median about 3, mean about 20
        impressions = int(rng.paretovariate(1.1) * 2)
        clicks = int(impressions * rng.uniform(0, 0.3))
        rows.append(
            BaseRow(
                query=f"{WORDS[q % len(WORDS)]} {WORDS[(q * 7 + 3) % len(WORDS)]} {q}",
                page=f"https://{host}/{search_type.lower()}/p{p}",
                country=COUNTRIES[c],
                device=DEVICES[d],
                appearance=APPEARANCES[q % len(APPEARANCES)] if q % 5 == 0 else "",
                anonymized=rng.random() < 0.08,
                clicks=clicks,
                impressions=max(impressions, clicks, 1),
                position=round(rng.uniform(1, 60), 2),
            )
        )
    return tuple(rows)


class QueryError(Exception):
    """A 400 the API would send."""


def _norm(value: Any) -> str:
    return str(value).replace("_", "").lower()


TYPES = {_norm(t): t for t in DEFAULT_ROWS}
DIMENSIONS = {
    _norm(d): d for d in ("date", "query", "page", "country", "device", "searchAppearance", "hour")
}
FILTER_DIMENSIONS = {"query", "page", "country", "device", "searchAppearance"}
OPERATORS = {"equals", "notequals", "contains", "notcontains", "includingregex", "excludingregex"}
AGGREGATIONS = {"auto", "bypage", "byproperty", "bynewsshowcasepanel"}
STATES = {"final", "all", "hourlyall"}


@dataclass(frozen=True)
class Query:
    """A validated searchAnalytics.query body."""

    start: date
    end: date
    dimensions: tuple[str, ...]
    search_type: str
    state: str
    aggregation: str
    filters: tuple[tuple[str, str, str], ...]
    row_limit: int
    start_row: int


def _parse_day(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise QueryError(
            f"Invalid value at '{name}': {value!r} is not a date (YYYY-MM-DD)."
        ) from None


def parse_query(body: dict[str, Any]) -> Query:
    """Validate a body as the API does; QueryError carries the 400's message."""
    if "startDate" not in body or "endDate" not in body:
        raise QueryError("Required fields startDate and endDate are missing.")
    start, end = _parse_day(body["startDate"], "startDate"), _parse_day(body["endDate"], "endDate")
    if start > end:
        raise QueryError("startDate must be earlier than or equal to endDate.")
    dims: list[str] = []
    for raw in body.get("dimensions") or []:
        dim = DIMENSIONS.get(_norm(raw))
        if dim is None:
            raise QueryError(f"Invalid value at 'dimensions': {raw!r}.")
        if dim in dims:
            raise QueryError(f"Dimension {dim} is specified more than once.")
        dims.append(dim)
    stype = TYPES.get(_norm(body.get("type") or body.get("searchType") or "web"))
    if stype is None:
        raise QueryError(
            f"Invalid value at 'type': {body.get('type') or body.get('searchType')!r}."
        )
    state = _norm(body.get("dataState") or "final")
    if state not in STATES:
        raise QueryError(f"Invalid value at 'dataState': {body.get('dataState')!r}.")
    aggregation = _norm(body.get("aggregationType") or "auto")
    if aggregation not in AGGREGATIONS:
        raise QueryError(f"Invalid value at 'aggregationType': {body.get('aggregationType')!r}.")
    filters = _parse_filters(body.get("dimensionFilterGroups") or [])
    row_limit, start_row = body.get("rowLimit", 1000), body.get("startRow", 0)
    if not isinstance(row_limit, int) or not 1 <= row_limit <= 25_000:
        raise QueryError("rowLimit must be between 1 and 25000.")
    if not isinstance(start_row, int) or start_row < 0:
        raise QueryError("startRow must be a non-negative integer.")
    query = Query(start, end, tuple(dims), stype, state, aggregation, filters, row_limit, start_row)
    _check_combination(query)
    return query


def _parse_filters(groups: Any) -> tuple[tuple[str, str, str], ...]:
    out = []
    for group in groups:
        if _norm(group.get("groupType") or "and") != "and":
            raise QueryError("Only groupType 'and' is supported.")
        for f in group.get("filters") or []:
            dim = DIMENSIONS.get(_norm(f.get("dimension", "")))
            if dim not in FILTER_DIMENSIONS:
                raise QueryError(f"Invalid value at 'filters.dimension': {f.get('dimension')!r}.")
            op = _norm(f.get("operator") or "equals")
            if op not in OPERATORS:
                raise QueryError(f"Invalid value at 'filters.operator': {f.get('operator')!r}.")
            expression = str(f.get("expression", ""))
            if op.endswith("regex"):
                try:
                    re.compile(expression)
                except re.error:
                    raise QueryError(f"Invalid regular expression {expression!r}.") from None
            out.append((dim, op, expression))
    return tuple(out)


def _check_combination(q: Query) -> None:
    dims, filtered = set(q.dimensions), {f[0] for f in q.filters}
    if "searchAppearance" in dims and len(dims) > 1:
        raise QueryError(
            "Cannot group by search appearance dimension together with another dimension."
        )
    stype = SEARCH_TYPES[q.search_type]
    if "query" not in stype.dimensions and "query" in dims | filtered:
        raise QueryError(f"Requests for {stype.label} cannot be grouped or filtered by query.")
    refused = sorted((dims - {"searchAppearance", "hour"}) - set(stype.dimensions))
    if refused:  # Discover may be filtered by device, never grouped by it
        raise QueryError(f"Requests for {stype.label} cannot be grouped by {refused[0]}.")
    if q.aggregation == "byproperty" and ("page" in dims | filtered):
        raise QueryError(
            "Aggregation by property is not supported when grouping or filtering by page."
        )
    if q.aggregation == "byproperty" and q.search_type in NO_POSITION_TYPES:
        raise QueryError(f"Aggregation by property is not supported for {q.search_type}.")
    if "hour" in dims and q.state != "hourlyall":
        raise QueryError("Grouping by hour requires dataState HOURLY_ALL.")
    if q.state == "hourlyall" and "hour" not in dims:
        raise QueryError("dataState HOURLY_ALL requires grouping by hour.")
    if "hour" in dims and "date" in dims:
        raise QueryError(
            "Cannot group by hour together with date: an hour key "
            "(YYYY-MM-DDThh:mm:ss-07:00) already names its day."
        )


def resolve_aggregation(q: Query) -> str:
    """The aggregation ``q`` is answered with, as ``responseAggregationType`` spells it.

    ``auto`` is by page when page is grouped or filtered, and for Discover and Google News
    (which refuse ``byProperty``); otherwise by property.
    """
    explicit = {
        "bypage": "byPage",
        "byproperty": "byProperty",
        "bynewsshowcasepanel": "byNewsShowcasePanel",
    }.get(q.aggregation)
    if explicit is not None:
        return explicit
    by_page = "page" in q.dimensions or any(f[0] == "page" for f in q.filters)
    return "byPage" if by_page or q.search_type in NO_POSITION_TYPES else "byProperty"


def _matches(row: BaseRow, filters: Iterable[tuple[str, str, str]]) -> bool:
    for dim, op, expr in filters:
        value = row.appearance if dim == "searchAppearance" else getattr(row, dim)
        if dim in ("country", "device", "searchAppearance"):
            value, expr = value.lower(), expr.lower()
        if op == "equals" and value != expr:
            return False
        if op == "notequals" and value == expr:
            return False
        if op == "contains" and expr.lower() not in value.lower():
            return False
        if op == "notcontains" and expr.lower() in value.lower():
            return False
        if op == "includingregex" and not re.search(expr, value):
            return False
        if op == "excludingregex" and re.search(expr, value):
            return False
    return True


def freshness_factor(day: date, final_through: date) -> float:
    """How much of a day's final data is visible: 1 when final, less the fresher it is."""
    age = (day - final_through).days
    return 1.0 if age <= 0 else max(0.2, 1.0 - 0.25 * age)


def day_rows(
    seed: int, site: SiteData, search_type: str, day: date, final_through: date
) -> Iterator[BaseRow]:
    """A day's rows as served now: final, or scaled down while fresh."""
    rows = base_rows(
        seed, site.url, search_type, day.isoformat(), site.rows_per_day.get(search_type, 0)
    )
    factor = freshness_factor(day, final_through)
    if factor == 1.0:
        yield from rows
        return
    for r in rows:
        clicks = int(r.clicks * factor)
        yield BaseRow(
            r.query,
            r.page,
            r.country,
            r.device,
            r.appearance,
            r.anonymized,
            clicks,
            max(int(r.impressions * factor), clicks, 1),
            r.position,
        )


def collapse_by_property(rows: Iterable[BaseRow], *, by_appearance: bool) -> list[BaseRow]:
    """The rows of one day as a property counts them: one search (query, country, device,
    and appearance when ``by_appearance``) showing several of the property's pages is one
    row, with the most impressions and clicks any of its pages had and the topmost position.
    Keeps the first row's page, query and appearance; anonymized only when all were."""
    out: dict[tuple[str, str, str, str], BaseRow] = {}
    for r in rows:
        key = (r.query, r.country, r.device, r.appearance if by_appearance else "")
        seen = out.get(key)
        out[key] = (
            r
            if seen is None
            else BaseRow(
                seen.query,
                seen.page,
                seen.country,
                seen.device,
                seen.appearance,
                seen.anonymized and r.anonymized,
                max(seen.clicks, r.clicks),
                max(seen.impressions, r.impressions),
                min(seen.position, r.position),
            )
        )
    return list(out.values())


def day_hours(day: date, until: datetime | None = None) -> list[datetime]:
    """The hours of a Pacific day, each its first instant in America/Los_Angeles: 24, or
    23 and 25 on the days daylight saving time starts and ends; with ``until`` (aware),
    only the hours begun by then."""
    start = datetime.combine(day, time(), PACIFIC).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), PACIFIC).astimezone(UTC)
    hours = []
    at = start
    while at < end and (until is None or at <= until):
        hours.append(at.astimezone(PACIFIC))
        at += timedelta(hours=1)
    return hours


def hour_key(at: datetime) -> str:
    """An hour as the API keys it: ``2025-04-07T13:00:00-07:00``."""
    return at.astimezone(PACIFIC).isoformat(timespec="seconds")


def split_exact(total: int, weights: Sequence[int], salt: int) -> list[int]:
    """``total`` split over ``weights`` in proportion, in integers summing exactly to it.

    Largest remainder, the units left over going to parts with a remainder, picked by a
    draw from ``salt``: a part never gets more than its exact share rounded up, so a split
    of clicks weighted by a split of impressions never has more clicks than impressions in
    a part (nor any in a part without impressions).
    """
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    short = total - sum(parts)
    if short:
        rests = [total * w % whole for w in weights]
        order = sorted(
            (h for h, rest in enumerate(rests) if rest),
            key=lambda h: -(rests[h] + _draw(salt, h) % whole),  # larger remainders first, mostly
        )
        for h in order[:short]:
            parts[h] += 1
    return parts


def _draw(salt: int, n: int) -> int:
    """A deterministic pseudo-random number from ``salt`` and ``n`` (a 64-bit mix)."""
    x = (salt + n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 27)


def answer(
    q: Query,
    seed: int,
    site: SiteData,
    *,
    today: date,
    final_through: date,
    earliest: date,
    cap: int = DAILY_ROW_CAP,
    property_overlap: bool = False,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Rows for a query (all of them, before paging) and whether the range has fresh days.

    With ``property_overlap``, an answer by property counts each search once across the
    property's pages (:func:`collapse_by_property`); without, it sums rows as by page. An
    hourly answer serves today's hours begun by ``now`` (aware; all of them when None).
    """
    hourly = q.state == "hourlyall"
    first, last = max(q.start, earliest), min(q.end, final_through if q.state == "final" else today)
    if hourly:
        first = max(first, today - timedelta(days=HOURLY_DAYS - 1))
    filtered = {f[0] for f in q.filters}
    by_query = "query" in q.dimensions or "query" in filtered
    by_appearance = "searchAppearance" in q.dimensions or "searchAppearance" in filtered
    collapse = property_overlap and resolve_aggregation(q) == "byProperty"
    at = q.dimensions.index("hour") if hourly else -1
    groups: dict[tuple[str, ...], list[float]] = {}

    def add(key: tuple[str, ...], clicks: int, impressions: int, position: float) -> None:
        acc = groups.setdefault(key, [0, 0, 0.0])
        acc[0] += clicks
        acc[1] += impressions
        acc[2] += position * impressions

    day = first
    while day <= last:
        iso = day.isoformat()
        rows = [
            base
            for base in day_rows(seed, site, q.search_type, day, final_through)
            if not (by_query and base.anonymized)
            and _matches(base, q.filters)
            and not ("searchAppearance" in q.dimensions and not base.appearance)
        ]
        if collapse:
            rows = collapse_by_property(rows, by_appearance=by_appearance)
        hours = day_hours(day, now if day == today else None) if hourly else []
        hour_keys = [hour_key(h) for h in hours]
        weights = [HOUR_WEIGHTS[h.hour] for h in hours]
        for base in rows:
            key = tuple(
                iso
                if d == "date"
                else base.appearance
                if d == "searchAppearance"
                else ""
                if d == "hour"
                else getattr(base, d)
                for d in q.dimensions
            )
            if not hourly:
                add(key, base.clicks, base.impressions, base.position)
                continue
            salt = zlib.crc32(
                f"{iso}|{base.query}|{base.page}|{base.country}|{base.device}".encode()
            )
            seen = split_exact(base.impressions, weights, salt)
            clicked = split_exact(base.clicks, seen, salt + 1)
            for hk, c, i in zip(hour_keys, clicked, seen, strict=True):
                if i:
                    add((*key[:at], hk, *key[at + 1 :]), c, i, base.position)
        day += timedelta(days=1)
    out: list[dict[str, Any]] = []
    for key, (clicks, impressions, weighted) in groups.items():
        row: dict[str, Any] = {
            "clicks": clicks,
            "impressions": impressions,
            "ctr": clicks / impressions if impressions else 0.0,
        }
        if q.dimensions:
            row["keys"] = list(key)
        if q.search_type not in NO_POSITION_TYPES:
            row["position"] = round(weighted / impressions, 4) if impressions else 0.0
        out.append(row)
    out.sort(key=lambda r: (-r["clicks"], -r["impressions"], r.get("keys", [])))
    out = _cap(out, q, cap)  # the top rows of each day
    if q.dimensions in (("date",), ("hour",)):
        out.sort(key=lambda r: r["keys"][0])  # chronological
    return out, q.end > final_through


def _cap(rows: list[dict[str, Any]], q: Query, cap: int = DAILY_ROW_CAP) -> list[dict[str, Any]]:
    """At most ``cap`` rows per day, the top ones by clicks (after the filters); an hour
    counts for the day its key names."""
    timed = [d for d in q.dimensions if d in ("date", "hour")]
    if not timed:
        return rows[: cap * ((q.end - q.start).days + 1)]
    at = q.dimensions.index(timed[0])
    seen: dict[str, int] = {}
    kept = []
    for r in rows:
        d = r["keys"][at][:10]
        seen[d] = seen.get(d, 0) + 1
        if seen[d] <= cap:
            kept.append(r)
    return kept
