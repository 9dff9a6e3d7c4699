"""The report tables (migration m006): by query, page, country and device, search
appearance in detail and the hourly tables, their ledger ``report_days``, and the day's
by-page totals in ``daily_totals``; written with the day in its one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from gscsync.errors import StorageError
from gscsync.models import (
    APPEARANCE_DETAIL,
    HOURLY,
    REPORTS,
    AppearanceDetailRow,
    DayData,
    DayTask,
    DetailRow,
    HourData,
    HourRow,
    ReportDay,
    ReportRow,
    Totals,
)
from gscsync.store import SqliteStore, open_store
from gscsync.store import reports as store_reports
from gscsync.store.schema import migrations
from tests.test_migration import applied, old_database

SITE = "sc-domain:a.com"
OTHER = "https://www.b.example/"
DAY = "2026-01-02"
METRICS = {"clicks": int, "impressions": int, "ctr": float, "position": float}
KEY = {"site_url": str, "search_type": str}
COLUMNS = {
    "by_query": {**KEY, "date": str, "query": str, **METRICS},
    "by_page": {**KEY, "date": str, "page": str, **METRICS},
    "by_country": {**KEY, "date": str, "country": str, **METRICS},
    "by_device": {**KEY, "date": str, "device": str, **METRICS},
    "search_appearance_detail": {
        **KEY,
        "date": str,
        "appearance": str,
        "page": str,
        "query": str,
        **METRICS,
    },
    "search_analytics_hourly": {
        **KEY,
        "hour": str,
        "query": str,
        "page": str,
        "country": str,
        "device": str,
        **METRICS,
    },
    "hourly_totals": {**KEY, "hour": str, **METRICS},
    "report_days": {
        **KEY,
        "report": str,
        "date": str,
        "status": str,
        "rows": int,
        "truncated": int,
        "fetched_at": str,
        "attempts": int,
        "error": str,
    },
}
# every table whose rows a write may touch, by every column, in one order
TABLES = {
    "search_analytics": "site_url, search_type, date, query, page, country, device",
    "search_appearance": "site_url, search_type, date, appearance",
    "daily_totals": "site_url, search_type, date",
    "detail_sums": "site_url, search_type, date",
    "sync_days": "site_url, search_type, date",
    "by_query": "site_url, search_type, date, query",
    "by_page": "site_url, search_type, date, page",
    "by_country": "site_url, search_type, date, country",
    "by_device": "site_url, search_type, date, device",
    "search_appearance_detail": "site_url, search_type, date, appearance, page, query",
    "search_analytics_hourly": "site_url, search_type, hour, query, page, country, device",
    "hourly_totals": "site_url, search_type, hour",
    "report_days": "site_url, search_type, report, date",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "g.db", busy_timeout_ms=200) as s:
        yield s


def rows_of(store: SqliteStore, table: str, where: str = "") -> list[tuple[Any, ...]]:
    sql = f"SELECT * FROM {table} {where} ORDER BY {TABLES[table]}"
    return store.db.execute(sql).fetchall()


def everything(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a write touches, read by a separate connection."""
    conn = sqlite3.connect(path)
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY {o}").fetchall() for t, o in TABLES.items()
        }
    finally:
        conn.close()


def report_days(store: SqliteStore, report: str, day: str = DAY) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = store.db.execute(
        "SELECT status, rows, truncated, attempts, error, fetched_at FROM report_days "
        "WHERE site_url = ? AND search_type = 'web' AND report = ? AND date = ?",
        [SITE, report, day],
    ).fetchone()
    return row


def all_reports(n: int = 1) -> dict[str, ReportDay]:
    """Every daily report, ``n`` telling versions apart: unicode, NULL positions."""
    return {
        "by_query": ReportDay([ReportRow(f"q{i} é ✓", i + n, 10 * i, 0.1, 2.5) for i in range(3)]),
        "by_page": ReportDay([ReportRow(f"https://x.test/{i}", n, 9, 0.2, None) for i in range(2)]),
        "by_country": ReportDay([ReportRow("usa", n, 4, 0.25, 1.0), ReportRow("fra", 0, 1, 0, 7)]),
        "by_device": ReportDay([ReportRow("MOBILE", n, 3, 0.3, 1.5)], truncated=True),
        APPEARANCE_DETAIL: ReportDay(
            [
                AppearanceDetailRow("VIDEO", "https://x.test/0", "q0 é ✓", n, 5, 0.2, 3.0),
                AppearanceDetailRow("VIDEO", "https://x.test/0", "", 0, 2, 0.0, None),
            ]
        ),
    }


def day(
    n_rows: int = 2,
    date: str = DAY,
    *,
    fresh: bool = False,
    reports: dict[str, ReportDay] | None = None,
    detail: bool = True,
    page_totals: Totals | None = None,
    site: str = SITE,
) -> DayData:
    return DayData(
        task=DayTask(site, "web", date, fresh),
        rows=[DetailRow(f"q{i}", "p", "usa", "MOBILE", 1, 2, 0.5, 1.0) for i in range(n_rows)],
        appearance=[("VIDEO", 1, 2, 0.5, None)],  # type: ignore[list-item]
        totals=Totals(n_rows + 1, 2 * n_rows + 5, 0.2, 3.0),
        detail=detail,
        reports={} if reports is None else reports,
        page_totals=page_totals,
    )


def hours(
    date: str, n: int, *, complete: bool, offset: str = "-08:00", site: str = SITE
) -> HourData:
    stamps = [f"{date}T{h:02d}:00:00{offset}" for h in range(n)]
    return HourData(
        site_url=site,
        search_type="web",
        date=date,
        totals=[(s, Totals(h, 10 * h, 0.1, 2.0)) for h, s in enumerate(stamps)],
        rows=[
            HourRow(s, "q é", "https://x.test/", "usa", "MOBILE", h, 9, 0.5, None)
            for h, s in enumerate(stamps)
        ],  # fmt: skip
        complete=complete,
    )


# -- the schema -----------------------------------------------------------------------------


def test_every_report_table_has_the_spec_name_and_columns(store: SqliteStore) -> None:
    db = store.db
    for name, columns in COLUMNS.items():
        assert db[name].columns_dict == columns, name
    assert db.table("report_days").pks == ["site_url", "search_type", "report", "date"]
    assert db.table("by_country").pks == ["site_url", "search_type", "date", "country"]
    assert db.table("hourly_totals").pks == ["site_url", "search_type", "hour"]
    assert db.table("by_query_rows").pks == ["site_id", "search_type", "date", "query_id"]
    hourly_key = "site_id search_type hour query_id page_id country device"
    assert db.table("search_analytics_hourly_rows").pks == hourly_key.split()
    sql = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    for table in ("report_days", "by_query_rows", "by_page_rows", "by_country", "by_device",
                  "search_appearance_detail_rows", "search_analytics_hourly_rows",
                  "hourly_totals"):  # fmt: skip
        assert sql[table].rstrip().endswith("WITHOUT ROWID"), table
    views = {"by_query", "by_page", "search_appearance_detail", "search_analytics_hourly"}
    assert views <= set(db.view_names())
    assert {"page_clicks": int, "page_impressions": int}.items() <= db[
        "daily_totals"
    ].columns_dict.items()
    assert "m006_reports" in applied(Path(store.path))
    assert set(REPORTS) | {APPEARANCE_DETAIL} == set(store_reports.LAYOUTS)


def test_each_report_round_trips_through_its_spec_name(store: SqliteStore) -> None:
    store.write_day(day(reports=all_reports()))
    store.write_hours(hours(DAY, 2, complete=True))
    assert rows_of(store, "by_query") == [
        (SITE, "web", DAY, f"q{i} é ✓", i + 1, 10 * i, 0.1, 2.5) for i in range(3)
    ]
    assert rows_of(store, "by_page") == [
        (SITE, "web", DAY, f"https://x.test/{i}", 1, 9, 0.2, None) for i in range(2)
    ]
    assert rows_of(store, "by_country") == [
        (SITE, "web", DAY, "fra", 0, 1, 0.0, 7.0),
        (SITE, "web", DAY, "usa", 1, 4, 0.25, 1.0),
    ]
    assert rows_of(store, "by_device") == [(SITE, "web", DAY, "MOBILE", 1, 3, 0.3, 1.5)]
    assert rows_of(store, "search_appearance_detail") == [
        (SITE, "web", DAY, "VIDEO", "https://x.test/0", "", 0, 2, 0.0, None),
        (SITE, "web", DAY, "VIDEO", "https://x.test/0", "q0 é ✓", 1, 5, 0.2, 3.0),
    ]
    assert rows_of(store, "hourly_totals") == [
        (SITE, "web", f"{DAY}T00:00:00-08:00", 0, 0, 0.1, 2.0),
        (SITE, "web", f"{DAY}T01:00:00-08:00", 1, 10, 0.1, 2.0),
    ]
    assert rows_of(store, "search_analytics_hourly") == [
        (SITE, "web", f"{DAY}T0{h}:00:00-08:00", "q é", "https://x.test/", "usa", "MOBILE",
         h, 9, 0.5, None) for h in range(2)
    ]  # fmt: skip
    # the long strings are held once, in the dictionaries the detail rows use too
    assert store.db.execute("SELECT COUNT(*) FROM queries WHERE query = 'q0 é ✓'").fetchone() == (
        1,
    )
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


# -- writing a day ---------------------------------------------------------------------------


def test_a_report_only_day_leaves_the_detail_untouched(store: SqliteStore) -> None:
    store.write_day(day(4, page_totals=Totals(7, 70, 0.1, 4.0)))
    before = everything(Path(store.path))
    store.write_day(day(9, detail=False, reports={"by_query": all_reports()["by_query"]}))
    after = everything(Path(store.path))
    changed = {t for t in TABLES if after[t] != before[t]}
    assert changed == {"by_query", "report_days"}
    assert [r[0] for r in rows_of(store, "report_days")] == [SITE]
    assert store.ledger(SITE, "web")[DAY].attempts == 1  # sync_days: not a second attempt
    # a day never written in detail gets its reports, and no detail ledger row
    store.write_day(day(detail=False, date="2026-01-05", reports=all_reports()))
    assert "2026-01-05" not in store.ledger(SITE, "web")
    assert store.db.execute(
        "SELECT COUNT(*) FROM daily_totals WHERE date = '2026-01-05'"
    ).fetchone() == (0,)
    assert len(rows_of(store, "by_country", "WHERE date = '2026-01-05'")) == 2


def test_the_days_by_page_totals_go_to_daily_totals(store: SqliteStore) -> None:
    def page_columns(date: str = DAY) -> tuple[Any, ...]:
        row: tuple[Any, ...] = store.db.execute(
            "SELECT clicks, page_clicks, page_impressions FROM daily_totals WHERE date = ?",
            [date],
        ).fetchone()
        return row

    store.write_day(day(2, page_totals=Totals(8, 80, 0.1, 2.0)))
    assert page_columns() == (3, 8, 80)
    store.write_day(day(2))  # not known this time: NULL, as the day is replaced
    assert page_columns() == (3, None, None)
    # with the reports alone: the page columns of the stored row, nothing else
    store.write_day(day(5, detail=False, page_totals=Totals(6, 60, 0.1, 2.0)))
    assert page_columns() == (3, 6, 60)
    store.write_day(day(detail=False, date="2026-01-09", page_totals=Totals(1, 1, 1.0, 1.0)))
    assert store.db.execute(
        "SELECT COUNT(*) FROM daily_totals WHERE date = '2026-01-09'"
    ).fetchone() == (0,)


def test_a_rewrite_replaces_the_days_report_rows_only(store: SqliteStore) -> None:
    def queries(date: str = DAY, site: str = SITE) -> list[str]:
        where = f"WHERE date = '{date}' AND site_url = '{site}'"
        return [r[3] for r in rows_of(store, "by_query", where)]

    def by_query(*keys: str) -> dict[str, ReportDay]:
        return {"by_query": ReportDay([ReportRow(k, 1, 2, 0.5, 1.0) for k in keys])}

    store.write_day(day(reports=by_query("a", "b", "c")))
    store.write_day(day(date="2026-01-03", reports=by_query("a", "z")))
    store.write_day(day(site=OTHER, reports=by_query("a", "y")))
    store.write_day(day(detail=False, reports=by_query("b", "d")))
    assert queries() == ["b", "d"]
    assert queries("2026-01-03") == ["a", "z"]  # another day
    assert queries(site=OTHER) == ["a", "y"]  # another site
    store.write_day(day(detail=False, reports={**all_reports(2), **by_query()}))
    assert queries() == []  # an empty answer empties the day
    assert report_days(store, "by_query")[:2] == ("final", 0)  # type: ignore[index]
    assert rows_of(store, "by_device", f"WHERE date = '{DAY}'")[0][4] == 2


def test_the_report_ledger_counts_attempts_like_sync_days(store: SqliteStore) -> None:
    store.write_day(day(fresh=True, reports={"by_device": all_reports()["by_device"]}))
    status, rows, truncated, attempts, error, fetched_at = report_days(store, "by_device") or ()
    assert (status, rows, truncated, attempts, error) == ("fresh", 1, 1, 1, None)
    assert fetched_at.endswith("+00:00")
    task = DayTask(SITE, "web", DAY)
    store.mark_report_failed(task, "by_device", "500 backendError " + "x" * 2000)
    failed = report_days(store, "by_device")
    assert failed is not None and failed[:4] == ("failed", 1, 1, 2)
    assert failed[4].startswith("500 backendError") and len(failed[4]) == 1000
    store.write_day(day(detail=False, reports={"by_device": ReportDay([])}))
    assert report_days(store, "by_device")[:5] == ("final", 0, 0, 3, None)  # type: ignore[index]
    ledger = store.report_ledger(SITE, "web")
    assert set(ledger) == {("by_device", DAY)}
    entry = ledger[("by_device", DAY)]
    assert (entry.date, entry.status, entry.rows, entry.attempts, entry.error) == (
        DAY,
        "final",
        0,
        3,
        None,
    )
    assert store.report_ledger(SITE, "image") == {} and store.report_ledger(OTHER, "web") == {}
    # a report never written, failed: recorded with no rows
    store.mark_report_failed(DayTask(SITE, "web", "2026-01-07"), "by_page", "timeout")
    assert store.report_ledger(SITE, "web")[("by_page", "2026-01-07")].status == "failed"
    assert "2026-01-07" not in store.ledger(SITE, "web")  # sync_days: one row per detail day


def test_mark_report_failed_keeps_a_final_days_rows(store: SqliteStore) -> None:
    """As mark_failed does for the detail: a failed refetch of a final day (backfill
    --force) is recorded, and retried by the next sync, but its rows and recorded row
    count stay the final ones."""
    store.write_day(day(2, reports=all_reports()))
    before = everything(Path(store.path))
    task = DayTask(SITE, "web", DAY)
    store.mark_report_failed(task, "by_page", "500")
    store.mark_failed(task, "500")
    after = everything(Path(store.path))
    assert {t for t in TABLES if after[t] != before[t]} == {"report_days", "sync_days"}
    assert len(rows_of(store, "by_page")) == 2
    page = store.report_ledger(SITE, "web")[("by_page", DAY)]
    detail = store.ledger(SITE, "web")[DAY]
    assert (page.status, page.rows, page.attempts) == ("failed", 2, 2)
    assert (detail.status, detail.rows, detail.attempts) == ("failed", 2, 2)
    others = {k: v.status for k, v in store.report_ledger(SITE, "web").items() if k[0] != "by_page"}
    assert set(others.values()) == {"final"}


def test_an_unknown_report_is_refused_before_anything_is_written(store: SqliteStore) -> None:
    before = everything(Path(store.path))
    with pytest.raises(ValueError, match="unknown report 'by_nothing'"):
        store.write_day(day(reports={**all_reports(), "by_nothing": ReportDay([])}))
    assert everything(Path(store.path)) == before


# -- atomic ---------------------------------------------------------------------------------


def test_a_failure_midway_through_the_reports_leaves_the_day_as_it_was(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_day(day(3, reports=all_reports(1), page_totals=Totals(1, 2, 0.5, 1.0)))
    path = Path(store.path)
    before = everything(path)
    new = all_reports(5)
    new["by_query"].rows.append(ReportRow("a query never seen", 1, 1, 1.0, 1.0))
    # SQLite refuses the fourth report: a StorageError, and nothing of the day changed
    store.db.execute(
        "CREATE TRIGGER no_device BEFORE INSERT ON by_device "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.raises(StorageError, match="disk says no"):
        store.write_day(day(6, fresh=True, reports=new))
    assert not store.db.conn.in_transaction
    assert everything(path) == before
    store.db.execute("DROP TRIGGER no_device")
    # the process dies between two reports' ledger rows: the same
    upsert, calls = store_reports.upsert_ledger, []

    def dies_on_the_third(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        upsert(*args)

    monkeypatch.setattr(store_reports, "upsert_ledger", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        store.write_day(day(6, fresh=True, reports=new))
    assert everything(path) == before
    monkeypatch.undo()
    # the ids the failed writes created were dropped with them: the next write holds
    store.write_day(day(6, fresh=True, reports=new))
    assert ("a query never seen",) in [r[3:4] for r in rows_of(store, "by_query")]
    assert len(rows_of(store, "search_analytics")) == 6


# -- the hours ------------------------------------------------------------------------------


def test_write_hours_replaces_the_day_and_keeps_the_others(store: SqliteStore) -> None:
    store.write_hours(hours("2026-01-01", 24, complete=True))
    store.write_hours(hours("2026-01-03", 3, complete=False))
    store.write_hours(hours(DAY, 5, complete=False))
    fresh = store.report_ledger(SITE, "web")[(HOURLY, DAY)]
    assert (fresh.status, fresh.rows, fresh.attempts) == ("fresh", 5, 1)
    store.write_hours(hours(DAY, 24, complete=True, offset="-07:00")._replace(rows=[]))
    final = store.report_ledger(SITE, "web")[(HOURLY, DAY)]
    assert (final.status, final.rows, final.attempts) == ("final", 0, 2)

    def stamps(table: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for row in rows_of(store, table):
            out.setdefault(row[2][:10], []).append(row[2])
        return out

    totals = stamps("hourly_totals")
    assert len(totals["2026-01-01"]) == 24 and len(totals["2026-01-03"]) == 3  # kept
    assert totals[DAY] == [f"{DAY}T{h:02d}:00:00-07:00" for h in range(24)]  # replaced
    detail = stamps("search_analytics_hourly")
    assert DAY not in detail and len(detail["2026-01-01"]) == 24
    assert store.report_ledger(SITE, "web")[(HOURLY, "2026-01-01")].status == "final"
    assert store.ledger(SITE, "web") == {}  # nothing in sync_days
    # another site's hours of the same day are its own
    store.write_hours(hours(DAY, 2, complete=True, site=OTHER))
    assert len(stamps("hourly_totals")[DAY]) == 24 + 2


def test_an_hour_of_another_day_is_refused_and_nothing_written(store: SqliteStore) -> None:
    store.write_hours(hours(DAY, 3, complete=False))
    before = everything(Path(store.path))
    stray = hours(DAY, 2, complete=True)
    stray.rows.append(stray.rows[0]._replace(hour="2026-01-03T00:00:00-08:00"))
    with pytest.raises(ValueError, match="2026-01-03T00:00:00-08:00 is not on 2026-01-02"):
        store.write_hours(stray)
    assert everything(Path(store.path)) == before


def test_a_failed_write_of_hours_leaves_them_as_they_were(store: SqliteStore) -> None:
    store.write_hours(hours(DAY, 3, complete=False))
    before = everything(Path(store.path))
    store.db.execute(
        "CREATE TRIGGER no_hour BEFORE INSERT ON search_analytics_hourly_rows "
        "BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(StorageError):
        store.write_hours(hours(DAY, 24, complete=True))
    assert everything(Path(store.path)) == before


# -- the upgrade ----------------------------------------------------------------------------

SPEC_COLUMNS = {  # what a database at m005 holds, by the columns it had then
    "search_analytics": "site_url, search_type, date, query, page, country, device, clicks, "
    "impressions, ctr, position",
    "daily_totals": "site_url, search_type, date, clicks, impressions, ctr, position",
    "search_appearance": "site_url, search_type, date, appearance, clicks, impressions, ctr, "
    "position",
    "sync_days": "*",
    "detail_sums": "*",
    "site_urls": "*",
    "queries": "*",
    "pages": "*",
    "runs": "*",
    "breaker": "*",
    "v_daily": "*",
    "v_top_queries_28d": "*",
    "v_top_pages_28d": "*",
}


def at_m005(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: sorted(conn.execute(f"SELECT {c} FROM {t}").fetchall(), key=repr)
            for t, c in SPEC_COLUMNS.items()
        }
    finally:
        conn.close()


def test_a_database_at_m005_upgrades_in_place_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    old_database(path)  # rows of every kind, written before m003
    db = Database(path)
    migrations.apply(db, stop_before="m006_reports")
    db.close()
    assert applied(path)[-1] == "m005_views"
    before = at_m005(path)
    assert len(before["search_analytics"]) > 1000 and before["runs"] and before["breaker"]
    with open_store(path) as store:
        assert applied(path)[-1] == "m006_reports"
        assert at_m005(path) == before
        assert store.db.execute(
            "SELECT COUNT(*), COUNT(page_clicks), COUNT(page_impressions) FROM daily_totals"
        ).fetchone() == (len(before["daily_totals"]), 0, 0)  # NULL: not known
        for table in (*store_reports.LAYOUTS, "hourly_totals", "report_days"):
            assert rows_of(store, table) == [], table
        # the upgraded database takes reports, reusing the dictionary's entries
        queries = store.db.execute("SELECT COUNT(*) FROM queries").fetchone()
        store.write_day(
            day(0, date="2026-01-01", site="sc-domain:a.com", detail=False,
                reports={"by_query": ReportDay([ReportRow("q0 é ✓", 1, 2, 0.5, 1.0)])})
        )  # fmt: skip
        assert store.db.execute("SELECT COUNT(*) FROM queries").fetchone() == queries
        assert rows_of(store, "by_query")[0][:4] == (SITE, "web", "2026-01-01", "q0 é ✓")
        assert at_m005(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


WRITES = {
    "write_day": lambda s: s.write_day(day(detail=False, reports=all_reports(3))),
    "mark_report_failed": lambda s: s.mark_report_failed(DayTask(SITE, "web", DAY), "by_page", "x"),
    "write_hours": lambda s: s.write_hours(hours(DAY, 4, complete=True)),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_report_write_blocked_by_another_writer_fails_in_one_line(
    store: SqliteStore, write: str
) -> None:
    store.write_day(day(reports=all_reports()))
    store.write_hours(hours(DAY, 2, complete=False))
    path = Path(store.path)
    before = everything(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match=r"^database is locked by another writer"):
            WRITES[write](store)
    finally:
        other.rollback()
        other.close()
    assert not store.db.conn.in_transaction
    assert everything(path) == before
    WRITES[write](store)
    assert everything(path) != before
