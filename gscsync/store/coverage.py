"""What ``status`` reads: coverage per site × search type, from the ledger alone.

``sync_days`` says which days are final, ``daily_totals`` what Google counted and
``detail_sums`` what each stored day's detail rows add up to (written with the day), so
the time ``status`` takes grows with the number of days, never with the number of detail
rows. A ledger day without sums (written by hand or by another program) is summed from
its detail rows, so the numbers stay exact whoever wrote the day.

The shares set the detail rows (aggregated by page) against the day's by-page totals
where ``daily_totals`` knows them, else against its by-property totals. The anonymized
click share sets ``daily_totals`` against the sum of ``by_query`` (by property) on the
days ``report_days`` records ``by_query`` final and not capped: those sums are the one
read that grows with rows, one primary-key range of ``by_query_rows`` per such day
(about 0.1 s per million rows).
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

from gscsync.dates import days
from gscsync.models import APPEARANCE_DETAIL, HOURLY, REPORTS, Coverage

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
# by property; like for like (by page where known); days; days with by-page totals known
TOTALS = (
    "SELECT COALESCE(SUM(t.clicks), 0), COALESCE(SUM(t.impressions), 0), "
    "COALESCE(SUM(COALESCE(t.page_clicks, t.clicks)), 0), "
    "COALESCE(SUM(COALESCE(t.page_impressions, t.impressions)), 0), "
    "COUNT(*), COUNT(t.page_clicks), COUNT(t.page_impressions) FROM sync_days d "
    f"JOIN daily_totals t USING (site_url, search_type, date) WHERE {FINAL}"
)
# days split, rows recovered, days capped before splitting, days still capped after it
CAPPED = (
    "SELECT COALESCE(SUM(s.split_requests > 0), 0), "
    "COALESCE(SUM(CASE WHEN s.split_requests > 0 THEN s.recovered END), 0), "
    "COALESCE(SUM(COALESCE(s.split_requests, 0) > 0 OR COALESCE(d.truncated, 0) != 0), 0), "
    "COALESCE(SUM(COALESCE(d.truncated, 0) != 0), 0) FROM sync_days d "
    f"LEFT JOIN detail_sums s USING (site_url, search_type, date) WHERE {FINAL}"
)
# per by_query day final and uncapped with totals: its by-property clicks, and what its
# by_query rows add up to (a primary-key range of by_query_rows each)
ANONYMIZED = (
    "SELECT COUNT(*), COALESCE(SUM(t.clicks), 0), COALESCE(SUM(("
    "SELECT SUM(q.clicks) FROM by_query_rows q WHERE q.site_id = u.id "
    "AND q.search_type = d.search_type AND q.date = d.date)), 0) "
    "FROM report_days d JOIN daily_totals t USING (site_url, search_type, date) "
    "JOIN site_urls u ON u.site_url = d.site_url "
    "WHERE d.site_url = ? AND d.search_type = ? AND d.report = 'by_query' "
    "AND d.status = 'final' AND COALESCE(d.truncated, 0) = 0"
)
REPORTS_FINAL = (
    "SELECT report, COUNT(*) FROM report_days WHERE site_url = ? AND search_type = ? "
    "AND status = 'final' GROUP BY report"
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
    """Coverage of every site × search type in the ledgers (``sync_days`` and
    ``report_days``)."""
    pairs = conn.execute(
        "SELECT site_url, search_type FROM sync_days UNION "
        "SELECT site_url, search_type FROM report_days ORDER BY site_url, search_type"
    ).fetchall()
    return [_coverage(conn, site, stype) for site, stype in pairs]


def _sums(conn: sqlite3.Connection, sql: str, key: list[str]) -> tuple[int, ...]:
    row: Any = conn.execute(sql, key).fetchone()
    return tuple(int(value) for value in row)


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
    split, recovered, capped_before, capped_after = _sums(conn, CAPPED, key)
    anonymized = _sums(conn, ANONYMIZED, key)
    reports = dict.fromkeys((*REPORTS, APPEARANCE_DETAIL, HOURLY), 0)
    reports.update(conn.execute(REPORTS_FINAL, key).fetchall())
    failed = [{"date": r[0], "error": r[4] or ""} for r in ledger if r[1] == "failed"]
    failed += [
        {"date": day, "error": error or "", "report": report}
        for day, report, error in conn.execute(
            "SELECT date, report, error FROM report_days WHERE site_url = ? AND "
            "search_type = ? AND status = 'failed' AND NOT (report = 'hourly' AND date < "
            "(SELECT date(MAX(h.date), '-9 days') FROM report_days h WHERE h.site_url = ? "
            "AND h.search_type = ? AND h.report = 'hourly')) ORDER BY date, report",
            [*key, *key],  # an hourly day past the API's 10-day window cannot be refetched
        )
    ]
    return Coverage(
        site_url=site,
        search_type=stype,
        first_final=finals[0] if finals else None,
        newest_final=finals[-1] if finals else None,
        days_final=len(finals),
        days_fresh=sum(1 for r in ledger if r[1] == "fresh"),
        gaps=gaps,
        failed=failed,  # detail days; report tables' days carry "report"
        truncated=[r[0] for r in ledger if r[3]],
        empty_with_impressions=[r[0] for r in empty],
        rows=sum(r[2] or 0 for r in ledger if r[1] in ("final", "fresh")),
        clicks_detail=summed[0] + unsummed[0],
        clicks_total=totals[0],
        impressions_detail=summed[1] + unsummed[1],
        impressions_total=totals[1],
        days_split=split,
        rows_recovered=recovered,
        clicks_share_total=totals[2],
        impressions_share_total=totals[3],
        days_with_totals=totals[4],
        clicks_share_days_by_page=totals[5],
        impressions_share_days_by_page=totals[6],
        days_capped_before_split=capped_before,
        days_capped_after_split=capped_after,
        anonymized_clicks_days=anonymized[0],
        anonymized_clicks_total=anonymized[1],
        anonymized_clicks_by_query=anonymized[2],
        report_days_final=reports,
    )
