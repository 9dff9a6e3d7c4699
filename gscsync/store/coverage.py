"""What ``status`` reads: coverage per site × search type, from the ledger alone.

``sync_days`` says which days are final, ``daily_totals`` what Google counted and
``detail_sums`` what each stored day's detail rows add up to (written with the day), so
the time ``status`` takes grows with the number of days, never with the number of rows.
A ledger day without sums (written by hand or by another program) is summed from its
detail rows, so the numbers stay exact whoever wrote the day.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

from gscsync.dates import days
from gscsync.models import Coverage

FINAL = "d.site_url = ? AND d.search_type = ? AND d.status = 'final'"
DETAIL_SUMS = (
    "SELECT COALESCE(SUM(s.clicks), 0), COALESCE(SUM(s.impressions), 0) FROM sync_days d "
    f"JOIN detail_sums s USING (site_url, search_type, date) WHERE {FINAL}"
)
UNSUMMED_DETAIL = (
    "SELECT COALESCE(SUM(r.clicks), 0), COALESCE(SUM(r.impressions), 0) FROM sync_days d "
    "JOIN site_urls u ON u.site_url = d.site_url "
    "JOIN search_analytics_rows r ON r.site_id = u.id AND r.search_type = d.search_type "
    f"AND r.date = d.date WHERE {FINAL} AND NOT EXISTS (SELECT 1 FROM detail_sums s "
    "WHERE s.site_url = d.site_url AND s.search_type = d.search_type AND s.date = d.date)"
)
TOTALS = (
    "SELECT COALESCE(SUM(t.clicks), 0), COALESCE(SUM(t.impressions), 0) FROM sync_days d "
    f"JOIN daily_totals t USING (site_url, search_type, date) WHERE {FINAL}"
)
SPLITS = (
    "SELECT COUNT(*), COALESCE(SUM(s.recovered), 0) FROM sync_days d "
    f"JOIN detail_sums s USING (site_url, search_type, date) WHERE {FINAL} "
    "AND s.split_requests > 0"
)
EMPTY_WITH_IMPRESSIONS = (
    "SELECT d.date FROM sync_days d JOIN daily_totals t USING (site_url, search_type, date) "
    f"WHERE {FINAL} AND d.rows = 0 AND t.impressions > 0 ORDER BY d.date"
)


def newest_final_days(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """The newest final day per (site, search type): one pass over the ledger."""
    cursor = conn.execute(
        "SELECT site_url, search_type, MAX(date) FROM sync_days WHERE status = 'final' "
        "GROUP BY site_url, search_type"
    )
    return {(site, stype): day for site, stype, day in cursor.fetchall()}


def coverage(conn: sqlite3.Connection) -> list[Coverage]:
    """Coverage of every site × search type in the ledger."""
    pairs = conn.execute(
        "SELECT DISTINCT site_url, search_type FROM sync_days ORDER BY site_url, search_type"
    ).fetchall()
    return [_coverage(conn, site, stype) for site, stype in pairs]


def _sums(conn: sqlite3.Connection, sql: str, key: list[str]) -> tuple[int, int]:
    row: Any = conn.execute(sql, key).fetchone()
    return int(row[0]), int(row[1])


def _coverage(conn: sqlite3.Connection, site: str, stype: str) -> Coverage:
    key = [site, stype]
    ledger = conn.execute(
        "SELECT date, status, rows, truncated, error FROM sync_days "
        "WHERE site_url = ? AND search_type = ? ORDER BY date",
        key,
    ).fetchall()
    finals = [r[0] for r in ledger if r[1] == "final"]
    final_set = set(finals)
    gaps: list[str] = []
    if finals:
        first, last = date.fromisoformat(finals[0]), date.fromisoformat(finals[-1])
        gaps = [d.isoformat() for d in days(first, last) if d.isoformat() not in final_set]
    empty = conn.execute(EMPTY_WITH_IMPRESSIONS, key).fetchall()
    summed, unsummed = _sums(conn, DETAIL_SUMS, key), _sums(conn, UNSUMMED_DETAIL, key)
    totals = _sums(conn, TOTALS, key)
    splits = _sums(conn, SPLITS, key)
    return Coverage(
        site_url=site,
        search_type=stype,
        first_final=finals[0] if finals else None,
        newest_final=finals[-1] if finals else None,
        days_final=len(finals),
        days_fresh=sum(1 for r in ledger if r[1] == "fresh"),
        gaps=gaps,
        failed=[{"date": r[0], "error": r[4] or ""} for r in ledger if r[1] == "failed"],
        truncated=[r[0] for r in ledger if r[3]],
        empty_with_impressions=[r[0] for r in empty],
        rows=sum(r[2] or 0 for r in ledger if r[1] in ("final", "fresh")),
        clicks_detail=summed[0] + unsummed[0],
        clicks_total=totals[0],
        impressions_detail=summed[1] + unsummed[1],
        impressions_total=totals[1],
        days_split=splits[0],
        rows_recovered=splits[1],
    )
