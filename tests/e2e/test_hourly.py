"""Hourly data (GSCSYNC_HOURLY): stored for the days the API serves hourly, summing to the
day, refetched until complete, kept after Google stops serving it. In process: the
emulator over loopback, the real engine, client and store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gscsync.commands import run_sync
from gscsync.config import Settings
from gscsync.emulator import EmulatorServer
from tests.e2e.harness import SHOP, run_settings, shop_server

pytestmark = pytest.mark.e2e
SITE = SHOP


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with shop_server({"web": 40}) as srv:
        yield srv


def settings(server: EmulatorServer, tmp_path: Path, **kw: Any) -> Settings:
    return run_settings(
        server,
        tmp_path,
        **({"search_types": ("web",), "sync_days": 5, "tables": (), "hourly": True} | kw),
    )


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def daily(server: EmulatorServer, day: str) -> tuple[int, int]:
    body = {"startDate": day, "endDate": day, "type": "web", "dataState": "all"}
    answer = server.emulator.query(SITE, {**body, "dimensions": ["date"]})
    row = (answer.get("rows") or [{"clicks": 0, "impressions": 0}])[0]
    return row["clicks"], row["impressions"]


def test_hours_are_stored_sum_to_the_day_and_are_refetched_until_complete(
    server: EmulatorServer, tmp_path: Path
) -> None:
    s = settings(server, tmp_path)
    assert run_sync(s).exit_code == 0
    sums = rows(
        s.db,
        "SELECT substr(hour, 1, 10), SUM(clicks), SUM(impressions) FROM hourly_totals GROUP BY 1",
    )
    today = server.emulator.today()
    assert len(sums) >= 9  # the last ten days, today's hours so far included
    assert all(today - timedelta(days=9) <= datetime.fromisoformat(d).date() for d, *_ in sums)
    for day, clicks, impressions in sums:
        assert (clicks, impressions) == daily(server, day), day
    detail = dict(
        (r[0], r[1:])
        for r in rows(
            s.db,
            "SELECT substr(hour, 1, 10), SUM(clicks), SUM(impressions) "
            "FROM search_analytics_hourly GROUP BY 1",
        )
    )
    assert detail and all(detail[d][1] <= i for d, _, i in sums if d in detail)
    for (hour,) in rows(s.db, "SELECT hour FROM hourly_totals"):
        assert datetime.fromisoformat(hour).utcoffset() in (
            timedelta(hours=-7),
            timedelta(hours=-8),
        )
    ledger = dict(rows(s.db, "SELECT date, status FROM report_days WHERE report = 'hourly'"))
    final_through = server.emulator.final_through().isoformat()
    assert {d for d, st in ledger.items() if st == "final"} == {
        d for d in ledger if d <= final_through
    }
    assert any(st == "fresh" for st in ledger.values())

    server.emulator.log.clear()
    assert run_sync(s).exit_code == 0
    hourly = [b for _, b in server.emulator.log if b.get("dataState") == "hourly_all"]
    fresh = sorted(d for d, st in ledger.items() if st != "final")
    assert hourly and all(b["startDate"] == fresh[0] for b in hourly)  # complete days: no


def test_hours_are_kept_after_the_api_stops_serving_them(
    server: EmulatorServer, tmp_path: Path
) -> None:
    s = settings(server, tmp_path)
    assert run_sync(s).exit_code == 0
    before = rows(s.db, "SELECT * FROM hourly_totals ORDER BY 1, 2, 3")
    server.emulator.advance(12)  # every day stored is now past the hourly window
    assert run_sync(s, today=server.emulator.today()).exit_code == 0
    after = rows(s.db, "SELECT * FROM hourly_totals ORDER BY 1, 2, 3")
    assert set(before) <= set(after)


def test_hourly_is_off_by_default(server: EmulatorServer, tmp_path: Path) -> None:
    s = settings(server, tmp_path, hourly=False)
    assert run_sync(s).exit_code == 0
    assert all(b.get("dataState") != "hourly_all" for _, b in server.emulator.log)
    assert rows(s.db, "SELECT COUNT(*) FROM hourly_totals") == [(0,)]
