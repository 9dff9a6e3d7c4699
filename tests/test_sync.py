"""`gscsync sync` end to end in-process, against the pytest-httpx fake of the API."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from tests.conftest import lock_held_elsewhere, run_cli
from tests.fakes import FakeGsc

S1 = "sc-domain:example.com"
S2 = "https://www.example.org/"


def day(today: date, n: int) -> str:
    return (today - timedelta(days=n)).isoformat()


def covered(bodies: list[dict[str, Any]]) -> set[str]:
    """Every day the detail requests among ``bodies`` asked for (a range is many days)."""
    out = set()
    for b in bodies:
        start, end = date.fromisoformat(b["startDate"]), date.fromisoformat(b["endDate"])
        out |= {(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)}
    return out


def stored(db: Path, table: str, where: str = "1") -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY 1,2,3,4").fetchall()


@pytest.fixture
def served(httpx_mock: HTTPXMock, fake: FakeGsc) -> FakeGsc:
    httpx_mock.add_callback(fake, is_reusable=True)
    return fake


def test_sync_stores_exactly_the_final_days_served(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", f"{S1},{S2}")
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web,image")
    for n in range(0, 12):
        served.add_day(S1, "web", day(today, n), 5 + n)
        served.add_day(S2, "image", day(today, n), 2)
    assert run_cli("sync") == 0

    window_final = [day(today, n) for n in range(3, 10)]  # window 10 days, final <= today-3
    detail = stored(api_env, "search_analytics")
    expected = sorted(
        (site, stype, d, f"q{i}", f"https://ex.test/p{i % 7}", "usa", "MOBILE")
        for site, stype, count in ((S1, "web", None), (S2, "image", 2))
        for d in window_final
        for i in range(count or 5 + (today - date.fromisoformat(d)).days)
    )
    assert sorted(r[:7] for r in detail) == expected
    ledger = stored(api_env, "sync_days")
    # every site x type x final window day is final, with its row count; nothing fresh stored
    assert {(r[0], r[1], r[2]): r[3] for r in ledger} == {
        (s, t, d): "final" for s in (S1, S2) for t in ("web", "image") for d in window_final
    }
    totals = stored(api_env, "daily_totals", f"site_url = '{S1}' AND search_type = 'web'")
    assert len(totals) == len(window_final)
    # totals include anonymized queries: more than the detail rows add up to
    d0 = window_final[0]
    detail_clicks = sum(r[7] for r in detail if r[0] == S1 and r[1] == "web" and r[2] == d0)
    assert [t[3] for t in totals if t[2] == d0] == [detail_clicks + 3]
    # days with no data at all are final too, with zero rows and zero totals
    empty = stored(api_env, "daily_totals", f"site_url = '{S1}' AND search_type = 'image'")
    assert len(empty) == len(window_final) and all(t[3] == 0 for t in empty)
    runs = stored(api_env, "runs")
    assert len(runs) == 1 and runs[0][4] == "ok" and runs[0][5] == 4 * len(window_final)


def test_second_sync_makes_only_freshness_requests_and_changes_nothing(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    for n in range(0, 10):
        served.add_day(S1, "web", day(today, n), 3)
    assert run_cli("sync") == 0
    before = stored(api_env, "search_analytics"), stored(api_env, "daily_totals")
    served.requests.clear()
    assert run_cli("sync") == 0
    assert served.bodies(detail=True) == []
    probes = served.bodies(detail=False)
    assert len(probes) == 1 and probes[0]["dimensions"] == ["date"]
    assert probes[0]["dataState"] == "all"
    # the probe covers only the days not final yet
    assert probes[0]["startDate"] == day(today, 2)
    assert (stored(api_env, "search_analytics"), stored(api_env, "daily_totals")) == before


def test_detail_requests_are_per_day_and_drop_unsupported_dimensions(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web,discover,googleNews")
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "4")
    d = day(today, 3)
    for t in ("web", "discover", "googleNews"):
        served.add_day(S1, t, d, 2)
    assert run_cli("sync") == 0
    dims = {b["type"]: b["dimensions"] for b in served.bodies(detail=True)}
    assert dims == {
        "web": ["date", "query", "page", "country", "device"],
        "discover": ["date", "page", "country"],
        "googleNews": ["date", "page", "country", "device"],
    }
    assert all(b["startDate"] == b["endDate"] == d for b in served.bodies(detail=True))
    rows = {r[1]: r for r in stored(api_env, "search_analytics", "query = '' OR 1")}
    assert rows["discover"][3] == "" and rows["discover"][6] == ""  # query, device
    assert rows["discover"][10] is None  # no position for discover
    assert rows["googleNews"][3] == "" and rows["googleNews"][6] == "MOBILE"
    assert rows["web"][10] is not None


def test_forbidden_site_fails_alone(
    served: FakeGsc,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    today: date,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", f"{S1},{S2}")
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    served.forbidden.add(S2)
    for n in range(0, 10):
        served.add_day(S1, "web", day(today, n), 2)
    assert run_cli("sync") == 1
    ledger = stored(api_env, "sync_days")
    assert {r[3] for r in ledger if r[0] == S1} == {"final"}
    failed = [r for r in ledger if r[0] == S2]
    assert failed and {r[3] for r in failed} == {"failed"}
    assert all("sufficient permission" in r[8] for r in failed)
    assert "access refused" in capsys.readouterr().err


def test_every_site_forbidden_exits_3(
    served: FakeGsc,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", f"{S1},{S2}")
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    served.forbidden.update({S1, S2})
    assert run_cli("sync") == 3
    err = capsys.readouterr().err
    assert "no configured site is accessible" in err and "Traceback" not in err
    assert stored(api_env, "runs")[0][4] == "failed"


def test_sites_default_to_sites_list_less_unverified(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "4")
    served.sites = {S1: "siteOwner", S2: "siteUnverifiedUser"}
    served.add_day(S1, "web", day(today, 3), 1)
    assert run_cli("sync") == 0
    assert {r[0] for r in stored(api_env, "sync_days")} == {S1}


@pytest.mark.parametrize("key", ["first_incomplete_date", "firstIncompleteDate"])
def test_fresh_days_stored_as_fresh_with_data_state_all(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date, key: str
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_DATA_STATE", "all")
    served.marker_key = key
    for n in range(0, 10):
        served.add_day(S1, "web", day(today, n), 2)
    assert run_cli("sync") == 0
    status = {r[2]: r[3] for r in stored(api_env, "sync_days")}
    assert {d for d, s in status.items() if s == "fresh"} == {day(today, n) for n in (0, 1, 2)}
    fresh = {day(today, n) for n in (0, 1, 2)}
    asked = [b for b in served.bodies(detail=True) if b["dataState"] == "all"]
    assert covered(asked) == fresh  # fresh days asked with dataState all (packed together)
    # the fresh days are fetched again on the next sync; the final ones are not
    served.requests.clear()
    assert run_cli("sync") == 0
    assert covered(served.bodies(detail=True)) == fresh


def test_failed_days_are_retried_next_run(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "4")
    served.add_day(S1, "web", day(today, 3), 2)
    served.forbidden.add(S1)
    assert run_cli("sync") == 3
    assert {r[3] for r in stored(api_env, "sync_days")} == {"failed"}
    served.forbidden.clear()
    assert run_cli("sync") == 0
    assert {(r[2], r[3], r[7]) for r in stored(api_env, "sync_days")} == {
        (day(today, 3), "final", 2)
    }


def test_catch_up_after_an_outage(
    served: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch, today: date
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "3")
    for n in range(0, 40):
        served.add_day(S1, "web", day(today, n), 1)
    # a database whose newest final day is 30 days old
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "1")
    assert run_cli("sync") == 0  # nothing final in a 1-day window: stores nothing
    with sqlite3.connect(api_env) as conn:
        conn.execute(
            "INSERT INTO sync_days VALUES (?, 'web', ?, 'final', 1, 0, 'x', 1, NULL)",
            [S1, day(today, 30)],
        )
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "3")
    assert run_cli("sync") == 0
    finals = {r[2] for r in stored(api_env, "sync_days") if r[3] == "final"}
    assert finals == {day(today, n) for n in range(3, 31)}


def test_lock_held_exits_75_naming_the_pid(
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    lock = tmp_path / "gsc.db.lock"
    with lock_held_elsewhere(lock) as holder:
        assert run_cli("sync") == 75
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and err.count("\n") == 1
    # a dead holder leaves no stale lock
    from gscsync.lock import hold_lock

    with hold_lock(lock):
        assert lock.read_text().split()[0] == str(os.getpid())


def test_dry_run_prints_the_plan_and_fetches_nothing(
    httpx_mock: HTTPXMock,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    today: date,
) -> None:
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "3")
    assert run_cli("sync", "--dry-run", "-s", S1, "-t", "discover") == 0
    out = capsys.readouterr().out
    assert f"{S1}\tdiscover\t3 day(s)\t{day(today, 2)}..{today.isoformat()}" in out
    assert httpx_mock.get_requests() == []
    assert not api_env.exists()


def test_disabled_flag_exits_0_without_calling_the_api(
    httpx_mock: HTTPXMock, api_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GSCSYNC_ENABLED", "off")
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    assert run_cli("sync") == 0
    assert httpx_mock.get_requests() == []


def test_json_log_format_is_one_object_per_line(
    served: FakeGsc,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    assert run_cli("sync", "--log-format", "json") == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines and all(json.loads(ln)["level"] in {"info", "warning", "debug"} for ln in lines)
