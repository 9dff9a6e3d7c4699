"""The report tables (by_query, by_page, by_country, by_device, search_appearance_detail):
each equals the API's own grouped answer, resumes from its own ledger, and costs what the
README says. In process: the emulator over loopback, the real engine, client and store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gscsync.commands import run_backfill, run_sync
from gscsync.config import Settings, load_settings
from gscsync.emulator import EmulatorServer
from gscsync.errors import ConfigError
from gscsync.models import REPORTS
from tests.e2e.harness import SHOP, run_settings, shop_server

pytestmark = pytest.mark.e2e
SITE = SHOP
COLUMN = {"by_query": "query", "by_page": "page", "by_country": "country", "by_device": "device"}


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with shop_server() as srv:
        yield srv


def settings(server: EmulatorServer, tmp_path: Path, **kw: Any) -> Settings:
    return run_settings(server, tmp_path, **({"search_types": ("web",), "sync_days": 8} | kw))


def api_answer(server: EmulatorServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = server.emulator.query(SITE, {**body, "rowLimit": 25_000, "startRow": len(rows)})
        if not page.get("rows"):
            return rows
        rows += page["rows"]


def stored(db: Path, sql: str) -> set[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(sql).fetchall())


def requests_by_dimensions(server: EmulatorServer) -> list[tuple[str, ...]]:
    return [tuple(b.get("dimensions", ())) for _, b in server.emulator.log]


def test_each_report_table_equals_the_apis_own_grouped_answer(
    server: EmulatorServer, tmp_path: Path
) -> None:
    s = settings(server, tmp_path)
    assert run_sync(s).exit_code == 0
    final = [d for (d,) in stored(s.db, "SELECT date FROM sync_days WHERE status = 'final'")]
    assert len(final) >= 4
    first, last = min(final), max(final)
    for report, column in COLUMN.items():
        body = {
            "startDate": first,
            "endDate": last,
            "type": "web",
            "dimensions": ["date", column],
            **({"aggregationType": "byProperty"} if report != "by_page" else {}),
        }
        expected = {
            (r["keys"][0], r["keys"][1], r["clicks"], r["impressions"])
            for r in api_answer(server, body)
        }
        got = stored(
            s.db,
            f"SELECT date, {column}, clicks, impressions FROM {report} "
            f"WHERE date BETWEEN '{first}' AND '{last}'",
        )
        assert got == expected, report
        assert expected  # the emulator has rows for every report
    ledger = stored(s.db, "SELECT report, status FROM report_days")
    assert ledger == {(r, "final") for r in REPORTS}
    # by property, as the UI shows: a query's impressions count once per search, however
    # many of the property's pages showed; the detail's sums (by page) are never smaller
    by_query = stored(s.db, "SELECT date, SUM(impressions) FROM by_query GROUP BY date")
    detail = dict(stored(s.db, "SELECT date, SUM(impressions) FROM search_analytics GROUP BY date"))
    assert all(impressions <= detail[day] for day, impressions in by_query)


def test_reports_added_later_are_fetched_alone_without_refetching_the_detail(
    server: EmulatorServer, tmp_path: Path
) -> None:
    assert run_sync(settings(server, tmp_path, tables=())).exit_code == 0
    server.emulator.log.clear()
    s = settings(server, tmp_path)
    assert run_sync(s).exit_code == 0
    dims = requests_by_dimensions(server)
    assert ("date", "query", "page", "country", "device") not in dims  # no detail again
    assert ("searchAppearance",) not in dims  # nor its appearance
    assert {("date", c) for c in COLUMN.values()} <= set(dims)
    finals = stored(s.db, "SELECT date FROM sync_days WHERE status = 'final'")
    for report in REPORTS:
        days = stored(s.db, f"SELECT date FROM report_days WHERE report = '{report}'")
        assert days == finals, report
    server.emulator.log.clear()
    assert run_sync(s).exit_code == 0
    assert all(b["dimensions"] == ["date"] for _, b in server.emulator.log)  # the probe only


def test_country_and_device_reports_need_no_empty_page(
    server: EmulatorServer, tmp_path: Path
) -> None:
    # their rows add up to the day's totals by property: known complete at once
    s = settings(server, tmp_path, tables=(("web", "by_country"), ("web", "by_device")))
    assert run_sync(s).exit_code == 0
    for column in ("country", "device"):
        asked = [b for _, b in server.emulator.log if b.get("dimensions") == ["date", column]]
        assert len(asked) >= 1
        assert all(b.get("startRow", 0) == 0 for b in asked)


def test_search_appearance_detail_is_the_two_step_answer(
    server: EmulatorServer, tmp_path: Path
) -> None:
    s = settings(server, tmp_path, tables=(("web", "search_appearance_detail"),))
    end = server.emulator.final_through()
    day = end.isoformat()
    assert run_backfill(s, start=end, end=end).exit_code == 0
    names = stored(s.db, f"SELECT appearance FROM search_appearance WHERE date = '{day}'")
    assert names
    expected = set()
    for (name,) in names:
        body = {
            "startDate": day,
            "endDate": day,
            "type": "web",
            "dimensions": ["date", "page", "query"],
            "dimensionFilterGroups": [
                {"filters": [{"dimension": "searchAppearance", "expression": name}]}
            ],
        }
        expected |= {
            (name, r["keys"][1], r["keys"][2], r["clicks"]) for r in api_answer(server, body)
        }
    got = stored(s.db, "SELECT appearance, page, query, clicks FROM search_appearance_detail")
    assert got == expected and got


def test_discover_keeps_only_the_reports_the_api_answers(
    server: EmulatorServer, tmp_path: Path
) -> None:
    server.emulator.sites[SITE].rows_per_day.update(discover=30)
    s = settings(server, tmp_path, search_types=("discover",), tables=load_tables("by_country"))
    assert ("discover", "by_country") in s.tables
    assert run_sync(s).exit_code == 0
    assert stored(s.db, "SELECT DISTINCT search_type FROM by_country") == {("discover",)}


def load_tables(value: str) -> tuple[tuple[str, str], ...]:
    return load_settings(environ={"GSCSYNC_TABLES": value}, flags={}).tables


def test_gscsync_tables_is_checked_and_defaults_to_every_report_for_web() -> None:
    assert load_settings(environ={}, flags={}).tables == tuple(("web", r) for r in REPORTS)
    assert load_tables("none") == ()
    assert ("image", "by_query") in load_tables("by_query")
    assert ("discover", "by_query") not in load_tables("by_query")  # Discover has no query
    assert load_tables("image:by_device") == (("image", "by_device"),)
    with pytest.raises(ConfigError, match="unknown table 'by_queries'"):
        load_tables("by_queries")
    with pytest.raises(ConfigError, match="cannot answer by_query for discover"):
        load_tables("discover:by_query")
    with pytest.raises(ConfigError, match="unknown search type 'webb'"):
        load_tables("webb:by_page")


def test_by_page_totals_are_kept_for_every_day_sized_or_alone(
    server: EmulatorServer, tmp_path: Path
) -> None:
    s = settings(server, tmp_path)
    assert run_sync(s).exit_code == 0  # several days: sized by one byPage request
    server.emulator.advance(1)
    assert run_sync(s, today=server.emulator.today()).exit_code == 0  # one new day, alone
    got = stored(s.db, "SELECT date, page_clicks, page_impressions, impressions FROM daily_totals")
    assert len(got) >= 5
    for day, clicks, impressions, by_property in got:
        body = {"startDate": day, "endDate": day, "type": "web", "aggregationType": "byPage"}
        (total,) = api_answer(server, {**body, "dimensions": ["date"]})
        assert (clicks, impressions) == (total["clicks"], total["impressions"]), day
        assert impressions >= by_property
