"""Every kind of bad input: one line naming the problem and the fix, the SPEC exit code,
no traceback, and an existing database untouched."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from gscsync.models import DayData, DayTask
from gscsync.store import open_store
from tests.conftest import run_cli
from tests.fakes import FakeGsc
from tests.test_config import BAD

S1 = "sc-domain:example.com"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def existing_db(api_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = open_store(api_env)
    store.write_day(
        DayData(
            # a recent final day: nothing to catch up, so successful runs stay small
            DayTask(S1, "web", (date.today() - timedelta(days=5)).isoformat()),
            rows=[("q", "p", "usa", "MOBILE", 1, 2, 0.5, 1.0)],
        )
    )
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.close()
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    return api_env


def bad_credentials(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.json"
    contents = {
        "not-json": "{oops",
        "wrong-type": json.dumps({"type": "external_account"}),
        "missing-fields": json.dumps({"type": "service_account", "client_email": "a@b"}),
    }
    if kind == "missing":
        return tmp_path / "nowhere.json"
    if kind == "directory":
        path.mkdir()
        return path
    path.write_text(contents[kind])
    return path


MATRIX = [
    # (args, env, exit code, words in the one line): every bad setting of test_config ...
    *(([], {name: value}, 2, needle) for name, value, needle in BAD),
    # ... and flags
    ([], {"GSCSYNC_METRICS_FILE": " "}, 0, ""),  # empty means unset
    (["-t", "shopping"], {}, 2, "--search-type: unknown search type 'shopping'"),
    (["-s", "example.com"], {}, 2, "sc-domain:example.com or https://example.com/"),
    (["-s", "https://example.com"], {}, 2, "must end with '/'"),
    (["-s", "sc-domain:http://x.com"], {}, 2, "not a domain property"),
    (["--bogus"], {}, 2, "No such option: --bogus"),
]


@pytest.mark.parametrize(("args", "env", "code", "words"), MATRIX)
def test_bad_settings_and_flags(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    existing_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    code: int,
    words: str,
) -> None:
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = digest(existing_db)
    assert run_cli("sync", *args) == code
    err = capsys.readouterr().err
    if code:
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
        assert digest(existing_db) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--start", "2026-13-01"], "--start '2026-13-01' is not a date; write YYYY-MM-DD"),
        (["--end", "yesterday"], "--end 'yesterday' is not a date"),
        (["--start", "2026-01-05", "--end", "2026-01-01"], "is before --start"),
        (["--end", (date.today() + timedelta(days=400)).isoformat()], "in the future"),
        (["--start", "2020-01-01"], "older than the API keeps"),
    ],
)
def test_bad_dates(
    existing_db: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    before = digest(existing_db)
    assert run_cli("backfill", *args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert digest(existing_db) == before


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("missing", "does not exist; check GSCSYNC_CREDENTIALS"),
        ("directory", "cannot be read"),
        ("not-json", "is not JSON"),
        ("wrong-type", "type is 'external_account'"),
        ("missing-fields", "lacks private_key, token_uri"),
    ],
)
def test_bad_credentials(
    existing_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    words: str,
) -> None:
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(bad_credentials(tmp_path, kind)))
    before = digest(existing_db)
    assert run_cli("sync") == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert digest(existing_db) == before


def test_world_readable_credentials_draw_a_warning(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    existing_db: Path,
    sa_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpx_mock.add_callback(fake, is_reusable=True)
    sa_key.chmod(0o644)
    assert run_cli("sync", "-t", "web") == 0
    assert f"credentials file {sa_key} is readable by every user" in capsys.readouterr().err


@pytest.mark.parametrize(
    "problem", ["not-sqlite", "newer-schema", "parent-is-a-file", "is-a-directory", "foreign"]
)
def test_bad_databases(
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    path = tmp_path / "target.db"
    if problem == "not-sqlite":
        path.write_text("name,clicks\nx,1\n")
        words = "is not a SQLite database"
    elif problem == "newer-schema":
        db = open_store(path).db
        db.table("_sqlite_migrations").insert(
            {"migration_set": "gscsync", "name": "m900_future", "applied_at": "x"}
        )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        words = "written by a newer gscsync (migration m900_future); upgrade gscsync"
    elif problem == "parent-is-a-file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "g.db"
        words = "does not exist; create it or set GSCSYNC_DB"
    elif problem == "foreign":  # another application's SQLite file, rollback journal
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        conn.commit()
        conn.close()
        words = f"database {path} belongs to another application (tables: orders;"
    else:
        path.mkdir()
        words = "is a directory"
    before = digest(path) if path.is_file() else None
    assert run_cli("sync", "--db", str(path)) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    if before is not None:
        assert digest(path) == before
    if problem == "foreign":  # not switched to WAL, no -wal or -shm left beside it
        assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        conn.close()


# -- pings, metrics, file modes ----------------------------------------------------------
@pytest.fixture
def observed(monitored: FakeGsc) -> FakeGsc:
    day = date.fromisoformat(monitored.final_through).isoformat()
    monitored.add_day(S1, "web", day, 3)
    return monitored


def test_healthcheck_pings_and_metrics_on_success(
    observed: FakeGsc, tmp_path: Path, api_env: Path
) -> None:
    assert run_cli("sync") == 0
    assert observed.pings == ["/check-1/start", "/check-1"]
    prom = (tmp_path / "gscsync.prom").read_text()
    assert 'gscsync_last_run_exit_code{command="sync",status="ok"} 0' in prom
    assert 'gscsync_last_run_days_ok{command="sync"} ' in prom
    assert f'gscsync_newest_final_day_timestamp_seconds{{search_type="web",site="{S1}"}}' in prom
    assert "gscsync_breaker_open 0" in prom
    for path in (api_env, tmp_path / "gsc.db.lock", tmp_path / "gscsync.prom"):
        assert not stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH, path


def test_healthcheck_fail_ping_when_no_site_is_accessible(
    observed: FakeGsc, tmp_path: Path
) -> None:
    observed.forbidden.add(S1)
    assert run_cli("sync") == 3
    assert observed.pings == ["/check-1/start", "/check-1/3"]  # the exit code
    assert 'status="failed"} 3' in (tmp_path / "gscsync.prom").read_text()


def test_a_dead_healthcheck_does_not_fail_the_run(
    observed: FakeGsc, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSCSYNC_HEALTHCHECK_URL", "https://hc-down.test/x")  # refuses
    assert run_cli("sync") == 0
    assert "healthcheck ping start failed" in capsys.readouterr().err


def test_scheme_hint_for_a_refused_url_prefix_property(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    api_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpx_mock.add_callback(fake, is_reusable=True)
    fake.forbidden.add("http://www.example.com/")
    assert run_cli("sync", "-s", "http://www.example.com/", "-t", "web") == 3
    assert "is it https://www.example.com/?" in capsys.readouterr().err
