"""backfill (order, skip, force, interruption and resume, date checks) and status."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from gscsync.commands import run_backfill
from gscsync.config import load_settings
from gscsync.errors import Interrupted
from gscsync.models import DayData, DayTask, RunCounts, RunReport
from gscsync.store import SqliteStore, open_store
from tests.conftest import run_cli
from tests.fakes import FakeGsc

S1 = "sc-domain:example.com"


def day(today: date, n: int) -> str:
    return (today - timedelta(days=n)).isoformat()


@pytest.fixture
def served(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    monkeypatch: pytest.MonkeyPatch,
    api_env: Path,
    today: date,
) -> FakeGsc:
    httpx_mock.add_callback(fake, is_reusable=True)
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web,image")
    monkeypatch.setenv("GSCSYNC_CONCURRENCY", "1")
    for n in range(0, 40):
        fake.add_day(S1, "web", day(today, n), 1 + n % 4)
        fake.add_day(S1, "image", day(today, n), 1)
    return fake


def detail_days(fake: FakeGsc) -> list[str]:
    """Every day a detail query asked for (first pages only: paging goes on to an empty
    page), a packed range counting each of its days; newest range first as asked."""
    out = []
    for b in fake.bodies(detail=True):
        if b["startRow"] == 0:
            start, end = date.fromisoformat(b["startDate"]), date.fromisoformat(b["endDate"])
            out += [(end - timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
    return out


def typed_detail_days(fake: FakeGsc) -> list[tuple[str, str]]:
    """detail_days with each day's search type."""
    out = []
    for b in fake.bodies(detail=True):
        if b["startRow"] == 0:
            start, end = date.fromisoformat(b["startDate"]), date.fromisoformat(b["endDate"])
            out += [
                (b["type"], (start + timedelta(days=n)).isoformat())
                for n in range((end - start).days + 1)
            ]
    return out


def test_backfill_fetches_the_range_newest_first_and_totals_in_one_range_request(
    served: FakeGsc, api_env: Path, today: date
) -> None:
    assert run_cli("backfill", "--start", day(today, 20), "--end", day(today, 5)) == 0
    fetched = detail_days(served)
    expected = [day(today, n) for n in range(5, 21) for _ in ("web", "image")]
    assert sorted(fetched) == sorted(expected)  # every day once per type, small days packed
    assert len(served.bodies(detail=True)) == 4  # one packed range per type, paged once more
    probes = served.bodies(detail=False)
    dated = [b for b in probes if b["dimensions"] == ["date"] and "dimensionFilterGroups" not in b]
    date_probes = [b for b in dated if "aggregationType" not in b]
    assert len(date_probes) == 2 and all(b["startDate"] == day(today, 20) for b in date_probes)
    sizing = [b for b in dated if b.get("aggregationType") == "byPage"]  # one per type
    assert sorted(b["type"] for b in sizing) == ["image", "web"]
    with sqlite3.connect(api_env) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM search_analytics WHERE search_type='web'")
        assert rows.fetchone()[0] == sum(1 + n % 4 for n in range(5, 21))


def test_backfill_prints_plain_progress_lines_when_not_a_terminal(
    served: FakeGsc, capsys: pytest.CaptureFixture[str], today: date
) -> None:
    assert run_cli("backfill", "--start", day(today, 22), "--end", day(today, 3)) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "progress:" in ln]
    assert "progress: 40/40 days" in lines[-1]
    assert 2 <= len(lines) <= 11  # one per tenth at most (packed days arrive together)


def test_backfill_skips_final_days_unless_forced(
    served: FakeGsc, api_env: Path, today: date
) -> None:
    assert run_cli("backfill", "--start", day(today, 10), "--end", day(today, 5)) == 0
    served.requests.clear()
    assert run_cli("backfill", "--start", day(today, 12), "--end", day(today, 5)) == 0
    assert sorted(set(detail_days(served))) == [day(today, 12), day(today, 11)]
    served.requests.clear()
    assert run_cli("backfill", "--start", day(today, 6), "--end", day(today, 5), "--force") == 0
    assert sorted(detail_days(served)) == sorted([day(today, 6), day(today, 5)] * 2)


def test_interrupted_backfill_keeps_its_days_and_resumes_without_refetching(
    served: FakeGsc, api_env: Path, today: date
) -> None:
    for n in range(40):  # web days too big to pack (each alone): more work than in flight
        served.add_day(S1, "web", day(today, n), 80)
    settings = load_settings()
    stop = threading.Event()

    def progress(r: RunReport) -> None:
        if r.days_ok >= 5:
            stop.set()

    with pytest.raises(Interrupted):
        run_backfill(
            settings,
            start=date.fromisoformat(day(today, 30)),
            on_progress=progress,
            stop=stop,
            today=today,
        )
    with sqlite3.connect(api_env) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
        kept = set(conn.execute("SELECT search_type, date FROM sync_days WHERE status='final'"))
    assert 5 <= len(kept) < 2 * 28
    served.requests.clear()
    outcome = run_backfill(settings, start=date.fromisoformat(day(today, 30)), today=today)
    assert outcome.exit_code == 0
    second = typed_detail_days(served)
    finals = {(t, day(today, n)) for t in ("web", "image") for n in range(3, 31)}
    # a day kept is never asked for again; the rest (those not begun, and those whose
    # request was in flight when the run stopped: abandoned, not written) exactly once
    assert not kept & set(second)
    assert sorted(second) == sorted(finals - kept)


def test_interrupted_run_exits_130_without_a_request(
    httpx_mock: HTTPXMock,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    original = run_backfill

    def stop_at_once(settings: object, **kwargs: object) -> object:
        event = threading.Event()
        event.set()
        return original(settings, **{**kwargs, "stop": event})  # type: ignore[arg-type]

    monkeypatch.setattr("gscsync.commands.run_backfill", stop_at_once)
    assert run_cli("backfill") == 130
    assert "interrupted" in capsys.readouterr().err
    assert httpx_mock.get_requests() == []
    with sqlite3.connect(api_env) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--start", "2001-01-01"], "older than the API keeps"),
        (["--end", "2999-01-01"], "in the future"),
        (["--start", "2026-01-10", "--end", "2026-01-01"], "before --start"),
        (["--start", "2026-1-1"], "not a date"),
    ],
)
def test_bad_ranges_exit_2_with_the_valid_range(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str], api_env: Path
) -> None:
    assert run_cli("backfill", *args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not api_env.exists()


# -- status ------------------------------------------------------------------------------
def build(db_path: Path) -> SqliteStore:
    """Finals on 1, 2, 4, 6; day 3 failed; day 5 missing; day 6 capped; a fresh day 7."""
    store = open_store(db_path)
    for d, clicks in ((1, 10), (2, 20), (4, 30), (6, 40)):
        store.write_day(
            DayData(
                DayTask(S1, "web", f"2026-03-0{d}"),
                rows=[("q", "p", "usa", "MOBILE", clicks // 2, clicks, 0.5, 1.0)],
                totals=(clicks, 2 * clicks, 0.5, 2.0),
                truncated=d == 6,
            )
        )
    store.mark_failed(DayTask(S1, "web", "2026-03-03"), "500 backendError: Backend Error")
    store.write_day(
        DayData(
            DayTask(S1, "web", "2026-03-07", fresh=True),
            rows=[("q", "p", "usa", "MOBILE", 1, 1, 1.0, 1.0)],
        )
    )
    return store


def test_status_json_reports_gaps_failures_and_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = build(tmp_path / "s.db")
    run = store.start_run("sync")
    store.finish_run(run, "partial", RunCounts(days_ok=4, days_failed=1), None)
    assert run_cli("status", "--json", "--db", str(tmp_path / "s.db")) == 1
    doc = json.loads(capsys.readouterr().out)
    # the schema the README documents, exactly
    assert set(doc) == {
        "healthy",
        "problems",
        "database",
        "max_age_hours",
        "coverage",
        "runs",
        "breaker",
    }
    assert doc["breaker"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "opened_at": None,
        "retry_after": None,
        "reason": None,
    }
    (cov,) = doc["coverage"]
    assert set(cov) == {
        "site_url",
        "search_type",
        "first_final",
        "newest_final",
        "days_final",
        "days_fresh",
        "gaps",
        "failed",
        "truncated",
        "empty_with_impressions",
        "rows",
        "clicks_detail",
        "clicks_total",
        "impressions_detail",
        "impressions_total",
        "days_split",
        "rows_recovered",
        "clicks_share",
        "impressions_share",
        "clicks_share_total",
        "impressions_share_total",
        "days_with_totals",
        "clicks_share_days_by_page",
        "impressions_share_days_by_page",
        "clicks_share_basis",
        "impressions_share_basis",
        "days_capped_before_split",
        "days_capped_after_split",
        "anonymized_clicks_days",
        "anonymized_clicks_total",
        "anonymized_clicks_by_query",
        "anonymized_clicks_share",
        "report_days_final",
    }
    assert set(doc["runs"][0]) == {
        "id",
        "command",
        "started_at",
        "finished_at",
        "status",
        "days_ok",
        "days_failed",
        "rows_written",
        "requests",
        "error",
        "pid",
        "version",
    }
    assert (cov["first_final"], cov["newest_final"], cov["days_final"]) == (
        "2026-03-01",
        "2026-03-06",
        4,
    )
    assert cov["gaps"] == ["2026-03-03", "2026-03-05"]
    assert cov["failed"] == [{"date": "2026-03-03", "error": "500 backendError: Backend Error"}]
    assert cov["truncated"] == ["2026-03-06"] and cov["days_fresh"] == 1 and cov["rows"] == 5
    assert (cov["clicks_detail"], cov["clicks_total"]) == (5 + 10 + 15 + 20, 100)
    assert cov["clicks_share"] == pytest.approx(0.5)
    assert cov["impressions_share"] == pytest.approx(0.5)
    assert (cov["clicks_share_basis"], cov["impressions_share_basis"]) == ("by_property",) * 2
    assert (cov["days_capped_before_split"], cov["days_capped_after_split"]) == (1, 1)
    assert cov["anonymized_clicks_share"] is None and cov["anonymized_clicks_days"] == 0
    assert doc["healthy"] is False and doc["problems"] == [
        "1 day(s) failed and wait for the next sync"
    ]
    assert doc["runs"][0]["status"] == "partial"


def test_status_is_healthy_then_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(tmp_path / "s.db")
    store.finish_run(store.start_run("sync"), "ok", RunCounts(), None)
    assert run_cli("status", "--db", str(tmp_path / "s.db")) == 0
    assert "healthy" in capsys.readouterr().out
    store.db.execute("UPDATE runs SET finished_at = '2020-01-01T00:00:00+00:00'")
    assert run_cli("status", "--json", "--db", str(tmp_path / "s.db"), "--max-age", "36") == 1
    assert "over 36 h" in json.loads(capsys.readouterr().out)["problems"][0]


def test_status_failed_last_sync_and_no_sync_are_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(tmp_path / "s.db")
    assert run_cli("status", "--json", "--db", str(tmp_path / "s.db")) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == ["no sync has finished yet"]
    store.finish_run(store.start_run("sync"), "failed", RunCounts(), "401 authError")
    assert run_cli("status", "--json", "--db", str(tmp_path / "s.db")) == 1
    assert "401 authError" in json.loads(capsys.readouterr().out)["problems"][0]


def test_status_on_a_missing_database_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("status", "--db", str(tmp_path / "none.db")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_status_finds_the_last_sync_behind_many_backfills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(tmp_path / "s.db")
    store.finish_run(store.start_run("sync"), "ok", RunCounts(), None)
    for _ in range(7):
        store.finish_run(store.start_run("backfill"), "ok", RunCounts(), None)
    assert run_cli("status", "--json", "--db", str(tmp_path / "s.db")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["healthy"] is True and doc["runs"][-1]["command"] == "sync"
