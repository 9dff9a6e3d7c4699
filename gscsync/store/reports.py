"""The report tables (migration m006) and their ledger, ``report_days``.

Each report keeps its SPEC name and columns. The by-property tables ``by_query`` and
``by_page``, ``search_appearance_detail`` and ``search_analytics_hourly`` hold long
strings, so, like ``search_analytics`` (see :mod:`gscsync.store.detail`), their rows live
in ``<name>_rows`` tables (``WITHOUT ROWID``) with the site, the query and the page
replaced by ids into the dictionary tables ``site_urls``, ``queries`` and ``pages``,
behind a view of the SPEC name. Unlike ``search_analytics`` these views have no
``INSTEAD OF`` triggers: they are read-only, and only the store writes the tables behind
them. ``by_country``, ``by_device`` and ``hourly_totals`` are small: plain ``WITHOUT
ROWID`` tables with the site URL as text.

``report_days`` is the reports' ledger, one row per site × search type × report × day
(the hourly tables under the report ``hourly``), kept as ``sync_days`` keeps the detail
table's: ``status`` (``final``, ``fresh``, ``failed``), ``rows``, ``truncated``,
``fetched_at``, ``attempts`` (every write or failure counts one), ``error``.

m006 creates all of it from the layouts below: applied migrations never change, so
neither do these; a new column comes with a new migration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlite_utils import Database

from gscsync.models import (
    APPEARANCE_DETAIL,
    DETAIL_DIMENSIONS,
    HOURLY,
    REPORTS,
    DayStatus,
    HourData,
    LedgerDay,
)
from gscsync.store.detail import DICTIONARIES, Ids

# a text column -> the dictionary table that holds it (in a layout that uses them)
DICTIONARY_OF = {column: table for table, column in DICTIONARIES.items()}
METRIC_COLUMNS = ("clicks INTEGER", "impressions INTEGER", "ctr REAL", "position REAL")


@dataclass(frozen=True)
class Layout:
    """How one report table is stored."""

    name: str  # the SPEC name: the table, or the view over ``<name>_rows``
    time: str  # "date" or "hour"
    dims: tuple[str, ...]  # the key columns after site, type and time
    dictionary: bool  # site_url, query and page stored as dictionary ids

    @property
    def table(self) -> str:
        return f"{self.name}_rows" if self.dictionary else self.name

    def stored(self, column: str) -> str:
        """The stored column that holds ``column``."""
        if not self.dictionary or column not in DICTIONARY_OF:
            return column
        return "site_id" if column == "site_url" else f"{column}_id"  # as search_analytics_rows

    @property
    def site(self) -> str:
        return self.stored("site_url")

    @property
    def columns(self) -> tuple[str, ...]:
        """The stored columns, in order."""
        key = ("site_url", "search_type", self.time, *self.dims)
        return (*map(self.stored, key), "clicks", "impressions", "ctr", "position")

    def create_sql(self) -> list[str]:
        key = ("site_url", "search_type", self.time, *self.dims)
        defs = []
        for column in key:
            if self.stored(column) != column:
                table = DICTIONARY_OF[column]
                defs.append(f"{self.stored(column)} INTEGER NOT NULL REFERENCES {table} (id)")
            else:
                defs.append(f"{column} TEXT NOT NULL")
        pk = ", ".join(map(self.stored, key))
        body = ",\n   ".join([*defs, *METRIC_COLUMNS, f"PRIMARY KEY ({pk})"])
        sql = [f"CREATE TABLE {self.table} (\n   {body}\n) WITHOUT ROWID"]
        if self.dictionary:
            sql.append(self._view_sql(key))
        return sql

    def _view_sql(self, key: tuple[str, ...]) -> str:
        select, joins = [], []
        for column in (*key, "clicks", "impressions", "ctr", "position"):
            stored = self.stored(column)
            if stored == column:
                select.append(f"r.{column} AS {column}")
            else:
                table = DICTIONARY_OF[column]
                select.append(f"{table}.{column} AS {column}")
                joins.append(f"JOIN {table} ON {table}.id = r.{stored}")
        return (
            f"CREATE VIEW {self.name} AS SELECT {', '.join(select)} "
            f"FROM {self.table} r {' '.join(joins)}"
        )


LAYOUTS: dict[str, Layout] = {
    "by_query": Layout("by_query", "date", ("query",), True),
    "by_page": Layout("by_page", "date", ("page",), True),
    "by_country": Layout("by_country", "date", ("country",), False),
    "by_device": Layout("by_device", "date", ("device",), False),
    APPEARANCE_DETAIL: Layout(APPEARANCE_DETAIL, "date", ("appearance", "page", "query"), True),
}
HOURLY_ROWS = Layout("search_analytics_hourly", "hour", DETAIL_DIMENSIONS[1:], True)
HOURLY_TOTALS = Layout("hourly_totals", "hour", (), False)
assert set(LAYOUTS) == {*REPORTS, APPEARANCE_DETAIL}

CREATE_LEDGER = """CREATE TABLE report_days (
   site_url TEXT NOT NULL,
   search_type TEXT NOT NULL,
   report TEXT NOT NULL,
   date TEXT NOT NULL,
   status TEXT NOT NULL,
   rows INTEGER,
   truncated INTEGER,
   fetched_at TEXT,
   attempts INTEGER,
   error TEXT,
   PRIMARY KEY (site_url, search_type, report, date)
) WITHOUT ROWID"""
# rows and truncated NULL: a failure, which keeps what the last write recorded
UPSERT_LEDGER = (
    "INSERT INTO report_days (site_url, search_type, report, date, status, rows, truncated, "
    "fetched_at, attempts, error) VALUES (?, ?, ?, ?, ?, COALESCE(?, 0), COALESCE(?, 0), ?, 1, ?) "
    "ON CONFLICT (site_url, search_type, report, date) DO UPDATE SET "
    "status = excluded.status, rows = COALESCE(?, rows), truncated = COALESCE(?, truncated), "
    "fetched_at = excluded.fetched_at, attempts = attempts + 1, error = excluded.error"
)


# -- migration m006 -------------------------------------------------------------------------


def upgrade(db: Database) -> None:
    """m006: the report tables and views, their ledger, and the day's by-page totals as
    two nullable columns of ``daily_totals`` (NULL: not known)."""
    for layout in (*LAYOUTS.values(), HOURLY_ROWS, HOURLY_TOTALS):
        for sql in layout.create_sql():
            db.execute(sql)
    db.execute(CREATE_LEDGER)
    db.execute("ALTER TABLE daily_totals ADD COLUMN page_clicks INTEGER")
    db.execute("ALTER TABLE daily_totals ADD COLUMN page_impressions INTEGER")


# -- writing, inside the store's transaction ------------------------------------------------


def check_reports(names: Iterable[str]) -> None:
    """ValueError for a report this store has no table for."""
    unknown = sorted(set(names) - set(LAYOUTS))
    if unknown:
        raise ValueError(f"unknown report {unknown[0]!r}; known: {', '.join(LAYOUTS)}")


def replace_rows(
    conn: sqlite3.Connection,
    ids: Ids,
    layout: Layout,
    key: tuple[str, str, str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Replace what one site, type and day hold in ``layout``'s table with ``rows``.

    For a ``date`` table each row is its dimensions then the metrics; for an ``hour``
    table the hour comes first. The day's hours are those whose date part is the day's."""
    site, stype, day = key
    lead: tuple[str, ...] = (day,)  # what each stored row starts with after site and type
    row_key = layout.dims  # the key columns each row starts with
    when, bounds = "date = ?", [day]
    if layout.time == "hour":  # every hour of the day: from the day up to the next one
        lead, row_key = (), (layout.time, *layout.dims)
        following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        when, bounds = "hour >= ? AND hour < ?", [day, following]
    site_value: object = site
    if layout.dictionary:
        site_value = ids.get(conn, "site_urls", (site,))[site]
    conn.execute(
        f"DELETE FROM {layout.table} WHERE {layout.site} = ? AND search_type = ? AND {when}",
        (site_value, stype, *bounds),
    )
    if not rows:
        return
    lookups: list[tuple[int, Callable[[str], int]]] = [
        (i, ids.get(conn, DICTIONARY_OF[column], {row[i] for row in rows}).__getitem__)
        for i, column in enumerate(row_key)
        if layout.stored(column) != column
    ]
    prefix = (site_value, stype, *lead)

    def stored(row: Sequence[Any]) -> tuple[Any, ...]:
        if not lookups:
            return (*prefix, *row)
        values = list(row)
        for i, lookup in lookups:
            values[i] = lookup(values[i])
        return (*prefix, *values)

    marks = ", ".join("?" * len(layout.columns))
    conn.executemany(
        f"INSERT INTO {layout.table} ({', '.join(layout.columns)}) VALUES ({marks})",
        map(stored, rows),
    )


def check_hours(data: HourData) -> None:
    """ValueError for an hour that is not on the day ``data`` is for."""
    hours = [hour for hour, _ in data.totals] + [row[0] for row in data.rows]
    stray = next((hour for hour in hours if hour[:10] != data.date), None)
    if stray is not None:
        raise ValueError(f"hour {stray} is not on {data.date}")


def write_hours(conn: sqlite3.Connection, ids: Ids, data: HourData, fetched_at: str) -> None:
    """Replace one day's hourly totals and rows and record its report ``hourly``."""
    key = (data.site_url, data.search_type, data.date)
    totals = [(hour, *totals) for hour, totals in data.totals]
    replace_rows(conn, ids, HOURLY_TOTALS, key, totals)
    replace_rows(conn, ids, HOURLY_ROWS, key, data.rows)
    status: DayStatus = "final" if data.complete else "fresh"
    done = (status, len(data.rows), data.truncated, None, fetched_at)
    upsert_ledger(conn, (*key[:2], HOURLY, key[2]), *done)


def upsert_ledger(
    conn: sqlite3.Connection,
    key: tuple[str, str, str, str],  # site, type, report, date
    status: DayStatus,
    rows: int | None,
    truncated: bool | None,
    error: str | None,
    fetched_at: str,
) -> None:
    """Record an attempt at one report day; ``rows``/``truncated`` None keep the stored."""
    flag = None if truncated is None else int(truncated)
    conn.execute(UPSERT_LEDGER, (*key, status, rows, flag, fetched_at, error, rows, flag))


def update_page_totals(
    conn: sqlite3.Connection, key: tuple[str, str, str], clicks: int, impressions: int
) -> None:
    """Set the by-page totals of a stored ``daily_totals`` row (none: nothing to set)."""
    conn.execute(
        "UPDATE daily_totals SET page_clicks = ?, page_impressions = ? "
        "WHERE site_url = ? AND search_type = ? AND date = ?",
        (clicks, impressions, *key),
    )


# -- reading --------------------------------------------------------------------------------


def report_ledger(
    conn: sqlite3.Connection, site_url: str, search_type: str
) -> dict[tuple[str, str], LedgerDay]:
    """The report ledger of one site and search type, by (report, date)."""
    cursor = conn.execute(
        "SELECT report, date, status, rows, attempts, error FROM report_days "
        "WHERE site_url = ? AND search_type = ?",
        (site_url, search_type),
    )
    return {
        (r[0], r[1]): LedgerDay(r[1], r[2], r[3] or 0, r[4] or 0, r[5]) for r in cursor.fetchall()
    }
