"""Storage faults fail cleanly: another writer holding the database past the busy timeout,
a full disk, or any other refusal ends in one StorageError line naming the database, and
the day's transaction rolls back (nothing half-written)."""

from __future__ import annotations

import errno
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from gscsync.errors import ConfigError, StorageError
from gscsync.models import BreakerState, DayData, DayTask, RunCounts
from gscsync.store import SqliteStore, detail, open_store
from gscsync.store import sqlite as store_sqlite
from gscsync.store.sqlite import storage_error
from tests.conftest import run_cli
from tests.fakes import FakeGsc
from tests.test_migration import applied, old_database
from tests.test_migration import snapshot as all_rows

SITE = "sc-domain:a.com"


def day(n_rows: int, date: str = "2026-01-01") -> DayData:
    return DayData(
        task=DayTask(SITE, "web", date),
        rows=[(f"q{i}-{'x' * 200}", "p", "usa", "MOBILE", 1, 2, 0.5, 1.0) for i in range(n_rows)],
        appearance=[("VIDEO", 1, 2, 0.5, None)],
        totals=(n_rows, 2 * n_rows, 0.5, 1.0),
    )


def snapshot(path: Path) -> list[tuple[object, ...]]:
    """Every row of the tables a write touches, read by a separate connection."""
    conn = sqlite3.connect(path)
    try:
        return (
            [
                row
                for table in ("search_analytics", "search_appearance", "daily_totals", "sync_days")
                for row in conn.execute(f"SELECT '{table}', * FROM {table} ORDER BY 2, 3, 4, 5")
            ]
            + conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
            + conn.execute("SELECT * FROM breaker").fetchall()
        )
    finally:
        conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store(tmp_path / "g.db", busy_timeout_ms=200)
    s.write_day(day(3))
    run = s.start_run("sync")
    s.finish_run(run, "ok", RunCounts(1, 0, 3, 2), None)
    yield s
    s.close()


@pytest.fixture
def other_writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A second program holding the write lock (sqlite3 shell, a backup, a migration)."""
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    conn.rollback()
    conn.close()


WRITES: dict[str, Callable[[SqliteStore], object]] = {
    "write_day": lambda s: s.write_day(day(5)),
    "mark_failed": lambda s: s.mark_failed(DayTask(SITE, "web", "2026-01-01"), "500"),
    "start_run": lambda s: s.start_run("backfill"),
    "finish_run": lambda s: s.finish_run(1, "failed", RunCounts(0, 1, 0, 1), "x"),
    "save_breaker": lambda s: s.save_breaker(BreakerState("open", 5, 1.0, 60, "down")),
    "prune_runs": lambda s: s.prune_runs(-1),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_blocked_by_another_writer_waits_then_fails_in_one_line(
    store: SqliteStore,
    other_writer: sqlite3.Connection,
    tmp_path: Path,
    write: str,
) -> None:
    path = tmp_path / "g.db"
    before = snapshot(path)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        WRITES[write](store)
    assert time.monotonic() - started >= 0.15  # busy_timeout: it waited for the other writer
    message = str(info.value)
    assert message.startswith(f"database is locked by another writer ({path}); waited 0.2 s")
    assert "\n" not in message
    assert not store.db.conn.in_transaction  # rolled back: the store goes on working
    other_writer.rollback()
    assert snapshot(path) == before  # nothing half-written
    WRITES[write](store)  # the lock gone, the same write succeeds
    assert snapshot(path) != before or write == "prune_runs"


def test_the_busy_timeout_is_thirty_seconds_and_tests_can_lower_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def timeout(s: SqliteStore) -> int:
        return int(s.db.execute("PRAGMA busy_timeout").fetchone()[0])

    assert store_sqlite.BUSY_TIMEOUT_MS == 30_000
    with open_store(tmp_path / "g.db") as s:
        assert timeout(s) == 30_000
    with open_store(tmp_path / "g.db", busy_timeout_ms=50) as s:
        assert timeout(s) == 50
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_MS", 70)
    with open_store(tmp_path / "g.db") as s:
        assert (timeout(s), s.busy_timeout_ms) == (70, 70)


def test_disk_full_rolls_the_day_back_and_says_so(store: SqliteStore, tmp_path: Path) -> None:
    """SQLite's real SQLITE_FULL: the database may not grow past a few more pages."""
    path = tmp_path / "g.db"
    before = snapshot(path)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(StorageError) as info:
        store.write_day(day(2000))  # ~500 kB of rows: far more than two pages
    assert str(info.value) == f"disk full at {path}: free some space and run again"
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not store.db.conn.in_transaction
    assert snapshot(path) == before  # the old day stays whole: 3 rows, its ledger row
    store.db.execute("PRAGMA max_page_count = 1073741823")
    store.write_day(day(2000))
    assert store.ledger(SITE, "web")["2026-01-01"].rows == 2000


def test_other_refusals_name_the_database_and_the_reason(tmp_path: Path) -> None:
    path = "/data/g.db"
    full = OSError(errno.ENOSPC, "No space left on device")
    assert (
        str(storage_error(full, path, 30_000))
        == "disk full at /data/g.db: free some space and run again"
    )
    io = sqlite3.OperationalError("disk I/O error")
    assert str(storage_error(io, path, 30_000)) == "database /data/g.db: disk I/O error"
    multi = sqlite3.DatabaseError("database disk image\nis malformed")
    assert str(storage_error(multi, path, 30_000)) == (
        "database /data/g.db: database disk image is malformed"
    )


def test_a_bug_is_not_disguised_as_a_storage_fault(store: SqliteStore) -> None:
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.ledger(SITE, "web")


def test_sync_against_a_database_another_writer_holds_exits_1_in_one_line(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    monkeypatch.setenv("GSCSYNC_SITES", SITE)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_MS", 200)
    open_store(api_env).close()
    before = hashlib.sha256(api_env.read_bytes()).hexdigest()
    holder = sqlite3.connect(api_env, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert run_cli("sync") == 1
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"database is locked by another writer ({api_env}); waited 0.2 s for it" in err
    assert hashlib.sha256(api_env.read_bytes()).hexdigest() == before


def test_an_upgrade_that_fills_the_disk_leaves_the_old_database_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """m003 writes the detail rows anew: a disk that fills meanwhile rolls it all back,
    the old tables stay as they were, and the next open (with space) upgrades."""
    path = tmp_path / "g.db"
    old_database(path)
    before = all_rows(path)
    copy_day = detail.copy_day

    limited: list[int] = []

    def disk_fills(conn: sqlite3.Connection, key: tuple[str, str, str]) -> None:
        if not limited:  # a few pages more, then SQLite's real SQLITE_FULL
            limited.append(conn.execute("PRAGMA page_count").fetchone()[0] + 3)
            conn.execute(f"PRAGMA max_page_count = {limited[0]}")
        copy_day(conn, key)

    monkeypatch.setattr(detail, "copy_day", disk_fills)
    with pytest.raises(ConfigError) as info:
        open_store(path)
    assert str(info.value) == f"database {path} cannot be used: database or disk is full"
    assert applied(path) == ["m001_initial", "m002_breaker"]
    assert all_rows(path) == before
    monkeypatch.setattr(detail, "copy_day", copy_day)
    open_store(path).close()
    assert "m003_compact_detail" in applied(path)
    assert all_rows(path) == before
