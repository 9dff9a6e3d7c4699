"""The Datasette metadata of the report tables (by_query, by_page, by_country, by_device,
search appearance in detail, the hourly tables, their ledger report_days): each described
with every column it has, and the canned queries on them answer exactly on a real
database written through the store."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from gscsync.datasette import QUERIES, TABLES
from gscsync.models import DayData, DayTask, HourData, ReportDay, ReportRow, Totals
from gscsync.store import open_store
from tests.conftest import run_cli

SITE = "sc-domain:example.com"
OTHER = "https://www.b.example/"
NEW = (
    "by_query",
    "by_page",
    "by_country",
    "by_device",
    "search_appearance_detail",
    "search_analytics_hourly",
    "hourly_totals",
    "report_days",
)


def day(
    when: date | str,
    clicks: int = 0,
    rows: list[ReportRow] | None = None,
    *,
    site: str = SITE,
    stype: str = "web",
    fresh: bool = False,
    capped: bool = False,
) -> DayData:
    """A day with ``clicks`` in daily_totals and ``rows`` as its by_query report."""
    reports = {} if rows is None else {"by_query": ReportDay(rows, truncated=capped)}
    return DayData(
        DayTask(site, stype, str(when), fresh),
        totals=Totals(clicks, 10 * clicks, 0.1, 2.0),
        reports=reports,
    )


def query(sql_name: str, path: Path, site: str = SITE) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(QUERIES[sql_name]["sql"], {"site": site}).fetchall()


def test_every_report_table_is_described_with_every_column(tmp_path: Path) -> None:
    path = tmp_path / "gsc.db"
    open_store(path).close()
    with sqlite3.connect(path) as conn:
        for table in NEW:
            meta = TABLES[table]
            assert meta["description"], table
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            assert columns and set(meta["columns"]) == set(columns), table
            assert all(meta["columns"].values()), table
        daily = {r[1] for r in conn.execute("PRAGMA table_info(daily_totals)")}
    assert {"page_clicks", "page_impressions"} <= set(TABLES["daily_totals"]["columns"]) <= daily
    assert "Pacific offset" in TABLES["search_analytics_hourly"]["columns"]["hour"]
    assert "Pacific offset" in TABLES["hourly_totals"]["columns"]["hour"]
    assert "by page" in TABLES["by_page"]["description"]
    for table in ("by_query", "by_country", "by_device"):
        assert "by property" in TABLES[table]["description"], table
    assert "ledger of the report tables" in TABLES["report_days"]["description"]


def test_the_command_describes_the_report_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gsc.db"
    open_store(path).close()
    assert run_cli("datasette-metadata", "--db", str(path)) == 0
    doc = json.loads(capsys.readouterr().out)["databases"]["gsc"]
    assert set(NEW) <= set(doc["tables"])
    assert {"anonymized_share", "top_queries_as_search_console"} <= set(doc["queries"])


def test_the_anonymized_share_per_day_is_daily_totals_minus_by_query(tmp_path: Path) -> None:
    path = tmp_path / "gsc.db"
    with open_store(path) as store:
        store.write_day(day("2026-03-01", 10, [ReportRow("a", 3, 9, 0.3, 1.0),
                                               ReportRow("b", 4, 9, 0.4, 1.0)]))  # fmt: skip
        store.write_day(day("2026-03-02", 6, []))  # every click anonymized
        store.write_day(day("2026-03-03", 0, []))  # no click: no share
        # left out: by_query capped, not final, or failed
        store.write_day(day("2026-03-04", 9, [ReportRow("a", 1, 1, 1.0, 1.0)], capped=True))
        store.write_day(day("2026-03-05", 9, [ReportRow("a", 1, 1, 1.0, 1.0)], fresh=True))
        store.write_day(day("2026-03-06", 9, [ReportRow("a", 1, 1, 1.0, 1.0)]))
        store.mark_report_failed(DayTask(SITE, "web", "2026-03-06"), "by_query", "500")
        store.write_day(day("2026-03-01", 50, [ReportRow("a", 40, 9, 0.3, 1.0)], site=OTHER))
        coverage = next(c for c in store.coverage() if c.site_url == SITE)
    assert query("anonymized_share", path) == [
        ("2026-03-03", 0, 0, 0, None),
        ("2026-03-02", 6, 0, 6, 1.0),
        ("2026-03-01", 10, 7, 3, 0.3),
    ]
    assert query("anonymized_share", path, OTHER) == [("2026-03-01", 50, 40, 10, 0.2)]
    # the same days and clicks status counts
    assert (coverage.anonymized_clicks_total, coverage.anonymized_clicks_by_query) == (16, 7)


def test_top_queries_as_search_console_shows_them_over_28_days(tmp_path: Path) -> None:
    """by_query summed over the 28 days up to the newest final by_query day: ctr from the
    sums, position weighted by impressions; other days, properties and types left out."""
    path = tmp_path / "gsc.db"
    first = date(2026, 2, 1)
    with open_store(path) as store:
        for n in range(30):  # 2026-02-01 .. 2026-03-02: the window is the last 28
            rows = [ReportRow("shoes", 2, 10, 0.2, 1.0)]
            if n < 2:
                rows.append(ReportRow("boots", 50, 60, 0.8, 1.0))  # before the window
            if n == 28:
                rows.append(ReportRow("boots", 1, 30, 0.03, 4.0))
            if n == 29:
                rows.append(ReportRow("boots", 1, 10, 0.1, 2.0))
            store.write_day(day(first + timedelta(days=n), 9, rows))
        newest = first + timedelta(days=30)
        store.write_day(day(newest, 9, [ReportRow("hats", 99, 99, 1.0, 1.0)], fresh=True))
        store.write_day(day(newest - timedelta(1), 9, [ReportRow("x", 99, 99, 1, 1)], site=OTHER))
        store.write_day(
            day(newest - timedelta(1), 9, [ReportRow("y", 99, 99, 1, 1)], stype="image")
        )
    assert query("top_queries_as_search_console", path) == [
        ("shoes", 56, 280, 0.2, 1.0),
        ("boots", 2, 40, 0.05, 3.5),
    ]


def test_report_coverage_lists_each_report_table(tmp_path: Path) -> None:
    path = tmp_path / "gsc.db"
    with open_store(path) as store:
        store.write_day(day("2026-03-01", 1, [ReportRow("a", 1, 1, 1.0, 1.0)], capped=True))
        store.write_day(day("2026-03-02", 1, [], fresh=True))
        hour = "2026-03-01T00:00:00-08:00"
        store.write_hours(
            HourData(SITE, "web", "2026-03-01", [(hour, Totals(1, 2, 0.5, 1.0))], [], True)
        )
    assert query("report_coverage", path) == [
        (SITE, "web", "by_query", "2026-03-01", "2026-03-02", 1, 1, 0, 1, 1),
        (SITE, "web", "hourly", "2026-03-01", "2026-03-01", 1, 0, 0, 0, 0),
    ]
