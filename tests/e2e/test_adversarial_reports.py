"""Adversarial cases for the report tables and hourly data (found in review): hostile
or odd answers, ledger edges, stops during the hourly pass. In process: the emulator
over loopback, the real engine, client and store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gscsync import engine
from gscsync.api.answers import Answer, ApiRow
from gscsync.budget import MemoryBudget
from gscsync.commands import run_backfill, run_sync, status
from gscsync.config import ENV_VARS, Settings
from gscsync.dates import earliest_served
from gscsync.emulator import EmulatorServer
from gscsync.emulator.server import google_error
from gscsync.errors import GscSyncError
from gscsync.models import REPORTS, Chunk, DayData, DayTask, Totals
from gscsync.reports import fetch_reports
from tests.e2e.harness import SHOP, run_settings, shop_server

SITE = SHOP


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in (*ENV_VARS, "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def make_server(**config: Any) -> EmulatorServer:
    return shop_server(config.pop("rows_per_day", {"web": 40}), **config)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with make_server() as srv:
        yield srv


def settings(server: EmulatorServer, tmp_path: Path, **kw: Any) -> Settings:
    defaults = {"search_types": ("web",), "sync_days": 5, "tables": (), "max_attempts": 1}
    return run_settings(server, tmp_path, **(defaults | kw))


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def tamper(
    server: EmulatorServer, fn: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
) -> None:
    """Post-process every answer the emulator gives: fn(body, doc) -> doc."""
    emu = server.emulator
    orig = emu.query

    def query(url: str, body: dict[str, Any]) -> dict[str, Any]:
        return fn(body, orig(url, body))

    emu.query = query  # type: ignore[method-assign]


def test_missing_day_in_sizing(server, tmp_path: Path) -> None:
    emu = server.emulator
    victim = (emu.final_through()).isoformat()

    def fn(body, doc):
        if body.get("aggregationType") == "byPage" and body.get("dimensions") == ["date"]:
            doc = {**doc, "rows": [r for r in doc.get("rows", []) if r["keys"][0] != victim]}
        return doc

    tamper(server, fn)
    s = settings(server, tmp_path, sync_days=6)
    assert run_sync(s, today=emu.today()).exit_code == 0
    got = rows(
        s.db,
        "SELECT date, clicks, impressions, page_clicks, page_impressions FROM daily_totals "
        "ORDER BY 1",
    )
    (row,) = [r for r in got if r[0] == victim]
    assert row[4] is None or row[4] >= row[2], (
        "by-page impressions stored as 0 for a day with impressions"
    )


def test_signal_during_hourly(server, tmp_path: Path) -> None:
    stop = threading.Event()

    def fn(body, doc):
        if body.get("dataState") == "hourly_all":
            stop.set()  # the signal arrives while the hourly pass runs
        return doc

    tamper(server, fn)
    s = settings(server, tmp_path, hourly=True)
    try:
        run_sync(s, today=server.emulator.today(), stop=stop)
    except GscSyncError:
        pass  # the run's outcome is checked below
    runs = rows(s.db, "SELECT status, error FROM runs")
    assert runs[0][0] == "interrupted"


def test_signal_during_a_slow_hourly_request_is_not_within_2s(server, tmp_path: Path) -> None:
    import time

    stop = threading.Event()
    at = {}

    def fn(body, doc):
        if body.get("dataState") == "hourly_all" and "t" not in at:
            at["t"] = time.monotonic()
            stop.set()  # SIGTERM arrives while this request is in flight
            time.sleep(8)  # a slow answer
        return doc

    tamper(server, fn)
    s = settings(server, tmp_path, hourly=True)
    try:
        run_sync(s, today=server.emulator.today(), stop=stop)
    except GscSyncError:
        pass
    took = time.monotonic() - at["t"]
    assert took < 2.5, "README: SIGTERM ends the run within 2 s whatever is in flight"


def test_quota_during_hourly_is_an_ok_run(server, tmp_path: Path) -> None:
    from gscsync.emulator.server import FAULT_ERRORS, google_error

    def fn(body, doc):
        if body.get("dataState") == "hourly_all":
            raise google_error(*FAULT_ERRORS["quota"])
        return doc

    tamper(server, fn)
    s = settings(server, tmp_path, hourly=True)
    out = run_sync(s, today=server.emulator.today())
    assert out.status != "ok", (
        "hourly data not fetched (quota) yet the run is ok/exit 0 with no 'stopped early'"
    )


def test_empty_by_country(server, tmp_path: Path) -> None:
    def fn(body, doc):
        if body.get("dimensions") == ["date", "country"]:
            doc = {k: v for k, v in doc.items() if k != "rows"}
        return doc

    tamper(server, fn)
    s = settings(server, tmp_path, tables=(("web", "by_country"),))
    # rows that must add up to the day's totals, and none came: not an answer to keep
    assert run_sync(s, today=server.emulator.today()).exit_code == 1
    got = rows(s.db, "SELECT DISTINCT status FROM report_days")
    assert got == [("failed",)]
    assert rows(s.db, "SELECT DISTINCT status FROM sync_days") == [("final",)]  # detail kept
    rep = status(s, max_age_hours=36)
    assert not rep.healthy


def test_gap_after_outage_with_new_table(server, tmp_path: Path) -> None:
    emu = server.emulator
    s0 = settings(server, tmp_path, sync_days=5)
    assert run_sync(s0, today=emu.today()).exit_code == 0
    emu.advance(20)  # 20 days without a sync
    s1 = settings(server, tmp_path, sync_days=5, tables=(("web", "by_country"),))
    assert run_sync(s1, today=emu.today()).exit_code == 0
    days = [d for (d,) in rows(s1.db, "SELECT date FROM sync_days WHERE status='final' ORDER BY 1")]
    from datetime import date

    span = (date.fromisoformat(days[-1]) - date.fromisoformat(days[0])).days + 1
    assert span == len(days), (
        f"gap left: {span - len(days)} day(s) between {days[0]} and {days[-1]}"
    )


def test_hourly_totals_with_a_row_repeated_across_pages(tmp_path: Path) -> None:
    with make_server(short_pages=50, shuffle_ties=True) as server:
        s = settings(server, tmp_path, hourly=True)
        try:
            outcome = run_sync(s, today=server.emulator.today())
        except GscSyncError as exc:
            runs = rows(s.db, "SELECT status, error FROM runs")
            pytest.fail(f"run failed: {exc!r}; runs={runs}")
        assert outcome.exit_code == 0


def _marker(server, value):
    def fn(body, doc):
        if body.get("dataState") == "hourly_all" and body.get("dimensions") == ["hour"]:
            doc = {**doc, "metadata": {"first_incomplete_hour": value(server)}}
        return doc

    tamper(server, fn)


def test_future_marker_makes_today_final(server, tmp_path: Path) -> None:
    tomorrow = server.emulator.today() + timedelta(days=1)
    _marker(server, lambda _s: f"{tomorrow}T00:00:00-08:00")
    s = settings(server, tmp_path, hourly=True)
    assert run_sync(s, today=server.emulator.today()).exit_code == 0
    today = server.emulator.today().isoformat()
    ((status,),) = rows(
        s.db, "SELECT status FROM report_days WHERE report='hourly' AND date=?", today
    )
    assert status != "final", "today's hours (not over yet) stored final: never refetched"


def test_marker_in_another_offset(server, tmp_path: Path) -> None:
    # 'today 02:00+09:00' is yesterday 09:00 Pacific: yesterday is NOT complete
    today = server.emulator.today()
    _marker(server, lambda _s: f"{today}T02:00:00+09:00")
    s = settings(server, tmp_path, hourly=True)
    assert run_sync(s, today=today).exit_code == 0
    y = (today - timedelta(days=1)).isoformat()
    ((status,),) = rows(s.db, "SELECT status FROM report_days WHERE report='hourly' AND date=?", y)
    assert status != "final", (
        "yesterday stored final although its hours after 09:00 Pacific are incomplete"
    )


def to_utc(key: str) -> str:
    return datetime.fromisoformat(key).astimezone(UTC).isoformat(timespec="seconds")


def test_utc_hour_keys(server, tmp_path: Path) -> None:
    today = server.emulator.today()

    def fn(body, doc):
        if body.get("dataState") != "hourly_all" or not doc.get("rows"):
            return doc
        at = body["dimensions"].index("hour")
        out = []
        for r in doc["rows"]:
            k = list(r["keys"])
            k[at] = to_utc(k[at])
            if k[at][:10] > body["endDate"]:
                continue  # drop hours whose UTC date is past the range (keep the answer 'valid')
            out.append({**r, "keys": k})
        return {**doc, "rows": out}

    tamper(server, fn)
    s = settings(server, tmp_path, hourly=True)
    run_sync(s, today=today)
    offsets = {h[19:] for (h,) in rows(s.db, "SELECT hour FROM hourly_totals")}
    assert offsets <= {"-07:00", "-08:00"}, (
        "non-Pacific hour keys stored (README: Google's Pacific offset)"
    )


def test_hourly_failure_outlives_the_window(server, tmp_path: Path) -> None:
    broken = {"on": True}

    def fn(body, doc):
        if broken["on"] and body.get("dataState") == "hourly_all" and doc.get("rows"):
            r = dict(doc["rows"][0])
            r["keys"] = ["not-an-hour", *r["keys"][1:]]
            doc = {**doc, "rows": [r, *doc["rows"][1:]]}
        return doc

    tamper(server, fn)
    s = settings(server, tmp_path, hourly=True)
    run_sync(s, today=server.emulator.today())  # hourly fails: exit 1 (partial)
    broken["on"] = False
    server.emulator.advance(11)
    out = run_sync(s, today=server.emulator.today())
    rep = status(s, max_age_hours=36)
    assert out.exit_code == 0
    assert rep.healthy, rep.problems


def test_a_report_only_day_teaches_the_budget_nothing() -> None:
    b = MemoryBudget({})
    t = Totals(0, 900_000, 0.0, None)
    big = Chunk("s", "web", ((DayTask("s", "web", "2026-01-02"), t),), big=True)
    assert b.is_big(big)
    b.learn(
        DayData(
            task=DayTask("s", "web", "2026-01-01", detail=False, reports=("by_query",)),
            totals=t,
            detail=False,
        )
    )
    assert b.is_big(big), "a 900,000-impression day is no longer big after a report-only day"


def test_report_only_days_leave_the_big_day_budget_in_force(tmp_path: Path, monkeypatch) -> None:
    with make_server(rows_per_day={"web": 20_000}) as server:
        real = engine.fetch_chunk
        lock, now, peak = threading.Lock(), [0], [0]

        def fetch_chunk(client: Any, chunk: Any, *args: Any) -> Any:
            detail = chunk.days[0][0].detail
            with lock:
                now[0] += detail
                peak[0] = max(peak[0], now[0])
            try:
                return real(client, chunk, *args)
            finally:
                with lock:
                    now[0] -= detail

        end = server.emulator.final_through()
        s0 = settings(server, tmp_path, concurrency=4)
        assert run_backfill(s0, start=end - timedelta(days=1), end=end).exit_code == 0
        monkeypatch.setattr(engine, "fetch_chunk", fetch_chunk)
        s1 = settings(server, tmp_path, concurrency=4, tables=(("web", "by_country"),))
        out = run_backfill(s1, start=end - timedelta(days=5), end=end)
        assert out.exit_code == 0
        assert peak[0] <= engine.BIG_INFLIGHT


class FakeClient:
    def pages(self, site, body, cap=None, complete=None):
        day = body["startDate"]
        p1 = [ApiRow((day, f"q{i}"), 1, 10, 0.1, 3.0) for i in range(25_000)]
        # page 2 repeats q24999 (a tie) in place of q25000
        p2 = [ApiRow((day, f"q{i}"), 1, 10, 0.1, 3.0) for i in [24_999, *range(25_001, 50_000)]]
        served = 0
        for page in (p1, p2, []):
            yield Answer(page)
            served += len(page)
            if not page or (cap is not None and served >= cap):
                return


def test_capped_by_query_day_with_a_repeat() -> None:
    day = "2026-11-01"
    base = {"startDate": day, "endDate": day, "type": "web", "dataState": "final"}
    out = fetch_reports(
        FakeClient(), "s", base, [day], ["by_query"], None, {day: Totals(50_000, 600_000, 0.1, 3.0)}
    )
    rd = out["by_query"][day]
    assert rd.truncated, "50,000 rows served (the cap) but recorded as not truncated"


def test_report_only_day_past_the_edge(tmp_path: Path) -> None:
    with make_server() as server:
        emu = server.emulator
        today = emu.today()
        start = earliest_served(today)
        end = start + timedelta(days=2)
        s0 = settings(server, tmp_path)  # no report tables
        assert run_backfill(s0, start=start, end=end, today=today).exit_code == 0
        before = rows(
            s0.db, "SELECT date, clicks, page_clicks, page_impressions FROM daily_totals ORDER BY 1"
        )
        emu.config.edge_lag_days = 5  # Google's edge moved: these days answer no rows now
        s1 = settings(server, tmp_path, tables=(("web", "by_page"), ("web", "by_query")))
        run_backfill(s1, start=start, end=end, today=today)
        after = rows(
            s1.db, "SELECT date, clicks, page_clicks, page_impressions FROM daily_totals ORDER BY 1"
        )
        assert after == before, "stored by-page totals overwritten with zeros"


def test_force_refetch_past_the_edge_wipes_report_rows(tmp_path: Path) -> None:
    with make_server() as server:
        emu = server.emulator
        today = emu.today()
        start = earliest_served(today)
        end = start + timedelta(days=2)
        s = settings(
            server,
            tmp_path,
            tables=(("web", "by_page"), ("web", "by_query"), ("web", "by_country")),
        )
        assert run_backfill(s, start=start, end=end, today=today).exit_code == 0
        before = (
            rows(s.db, "SELECT COUNT(*) FROM by_page_rows")[0][0],
            rows(s.db, "SELECT COUNT(*) FROM search_analytics_rows")[0][0],
        )
        emu.config.edge_lag_days = 5
        run_backfill(s, start=start, end=end, force=True, today=today)
        after = (
            rows(s.db, "SELECT COUNT(*) FROM by_page_rows")[0][0],
            rows(s.db, "SELECT COUNT(*) FROM search_analytics_rows")[0][0],
        )
        assert after == before, "detail kept, but the report rows of the final day were wiped"


def test_force_with_failing_report(tmp_path: Path) -> None:
    with make_server() as server:
        emu = server.emulator
        end = emu.final_through()
        start = end - timedelta(days=2)
        s0 = settings(server, tmp_path)
        assert run_backfill(s0, start=start, end=end, today=emu.today()).exit_code == 0

        def fn(body, doc):
            if body.get("dimensions") == ["date", "query"]:
                raise google_error(400, "badRequest", "no", "INVALID_ARGUMENT")
            return doc

        tamper(server, fn)
        s1 = settings(server, tmp_path, tables=(("web", "by_query"),))
        try:
            run_backfill(s1, start=start, end=end, force=True, today=emu.today())
        except GscSyncError:
            pass  # the run's outcome is checked below
        got = rows(s1.db, "SELECT date, status, error FROM sync_days ORDER BY 1")
        assert all(st == "final" for _, st, _ in got), (
            "final detail days downgraded by a report failure"
        )


def test_count(server, tmp_path: Path) -> None:
    emu = server.emulator

    def fn(body, doc):
        if len(body.get("dimensions", ())) > 1:
            raise google_error(400, "badRequest", "no", "INVALID_ARGUMENT")
        return doc

    tamper(server, fn)
    s = settings(
        server, tmp_path, tables=tuple(("web", r) for r in REPORTS), breaker_threshold=1000
    )
    try:
        run_sync(s, today=emu.today())
    except GscSyncError:
        pass  # the run's outcome is checked below
    days = rows(s.db, "SELECT COUNT(*) FROM sync_days WHERE status='failed'")[0][0]
    rep = status(s, max_age_hours=36)
    assert f"{days} day(s) failed and wait for the next sync" in rep.problems
