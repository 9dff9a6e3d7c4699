"""Whatever fails, the run keeps what it has, closes its runs row, pings, writes metrics,
says what went wrong in one line, and leaks no secret (issue: never wrong, never stuck)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gscsync import engine
from gscsync.errors import StorageError
from gscsync.models import RunCounts
from gscsync.store import SqliteStore, open_store
from tests.conftest import run_cli, write_json
from tests.fakes import TOKEN_URI, FakeGsc

S1 = "sc-domain:example.com"
REFRESH, CLIENT_SECRET = "1//0refresh-TOKEN-d41d8cd98f", "GOCSPX-client-secret-77af01"


def day(fake: FakeGsc, n: int) -> str:
    return (date.fromisoformat(fake.final_through) - timedelta(days=n)).isoformat()


@pytest.fixture
def observed(monitored: FakeGsc, monkeypatch: pytest.MonkeyPatch) -> FakeGsc:
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "8")
    monkeypatch.setenv("GSCSYNC_CONCURRENCY", "1")
    fake = monitored
    for n in range(5):
        fake.add_day(S1, "web", day(fake, n), 3)
    return fake


def runs(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, error FROM runs ORDER BY id").fetchall()


def ledger(db: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT date, status, error FROM sync_days").fetchall()
    return {d: (s, e) for d, s, e in rows}


def test_a_bug_in_a_worker_fails_that_day_alone(
    observed: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.fetch_chunk
    bad = day(observed, 2)

    def fetch_chunk(client: Any, chunk: Any, *args: Any) -> Any:
        if any(task.date == bad for task, _ in chunk.days):  # packed or alone
            raise ValueError("could not convert string to float: 'NaN-ish'")
        return real(client, chunk, *args)

    monkeypatch.setattr(engine, "fetch_chunk", fetch_chunk)
    assert run_cli("sync") == 1
    days = ledger(api_env)
    assert days.pop(bad)[0] == "failed"
    assert {s for s, _ in days.values()} == {"final"} and len(days) >= 4  # the others went on
    (status, err), *_ = runs(api_env)
    assert status == "partial" and "internal error: ValueError" in err
    assert observed.pings[-1] == "/check-1/1"  # exit 1


def test_a_bug_outside_the_workers_still_closes_the_run(
    observed: FakeGsc,
    api_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def explode(self: Any, jobs: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(engine.Engine, "run", explode)
    assert run_cli("sync") == 1
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "Traceback" not in err
    assert runs(api_env) == [("failed", "internal error: KeyError: 'surprise'")]
    assert observed.pings == ["/check-1/start", "/check-1/1"]
    assert 'status="failed"} 1' in (tmp_path / "gscsync.prom").read_text()


def test_a_database_that_refuses_a_write_ends_the_run_cleanly_keeping_committed_days(
    observed: FakeGsc,
    api_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = SqliteStore.write_day
    written: list[str] = []

    def write_day(self: SqliteStore, data: Any) -> None:
        if len(written) == 2:
            raise StorageError(f"database is locked by another writer ({api_env})")
        real(self, data)
        written.append(data.task.date)

    monkeypatch.setattr(SqliteStore, "write_day", write_day)
    assert run_cli("sync") == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("gscsync:")]
    assert err == [f"gscsync: error: database is locked by another writer ({api_env})"]
    assert sorted(d for d, (s, _) in ledger(api_env).items() if s == "final") == sorted(written)
    (status, error), *_ = runs(api_env)
    assert status == "failed" and "locked" in error
    assert observed.pings[-1] == "/check-1/1"  # exit 1
    assert "gscsync_last_run_days_ok" in (tmp_path / "gscsync.prom").read_text()


def test_health_sees_a_sync_that_did_not_finish(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "s.db"
    store = open_store(db)
    store.finish_run(store.start_run("sync"), "ok", RunCounts(), None)

    def status() -> list[str]:
        assert run_cli("status", "--json", "--db", str(db)) in (0, 1)
        problems: list[str] = json.loads(capsys.readouterr().out)["problems"]
        return problems

    assert status() == []
    store.finish_run(store.start_run("sync"), "interrupted", RunCounts(), "SIGTERM")
    assert status() == ["the last sync did not finish: SIGTERM"]
    dead = store.start_run("sync")  # a row left running by a process that is gone
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET pid = 999999999 WHERE id = ?", [dead])
    assert status() == ["the last sync did not finish: its process (pid 999999999) is gone"]
    store.finish_run(dead, "ok", RunCounts(), None)
    alive = store.start_run("sync")  # this very process: a sync in progress
    assert alive and status() == []  # judged by the last finished one


def test_secrets_never_reach_the_database_the_ping_or_stderr(
    observed: FakeGsc,
    api_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = write_json(
        tmp_path / "user.json",
        {
            "type": "authorized_user",
            "client_id": "c-1.apps.googleusercontent.com",
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH,
            "token_uri": TOKEN_URI,
        },
    )
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(user))
    echo = f"bad request: client_secret {CLIENT_SECRET} and {REFRESH} and token tok-1 echoed"
    observed.errors = [(400, "badRequest", echo)] * 3
    assert run_cli("sync", "-v") == 1
    out = capsys.readouterr()
    with sqlite3.connect(api_env) as conn:
        dump = "\n".join(conn.iterdump())
    pings = "\n".join(
        r.content.decode() for r in observed.requests if r.url.host == "hc.test" and r.content
    )
    haystack = out.err + out.out + dump + pings + (tmp_path / "gscsync.prom").read_text()
    assert "[redacted]" in dump and "[redacted]" in pings  # the echo arrived, scrubbed
    for secret in (CLIENT_SECRET, REFRESH):
        assert secret not in haystack


def test_the_final_error_line_is_json_under_log_format_json(
    api_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(api_env.parent / "missing.json"))
    assert run_cli("sync", "--log-format", "json", "-s", S1) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    docs = [json.loads(ln) for ln in lines]  # every line is JSON, the last one included
    assert docs[-1]["level"] == "error" and "missing.json" in docs[-1]["msg"]
    assert datetime.fromisoformat(docs[-1]["ts"]).utcoffset() == timedelta(0)
