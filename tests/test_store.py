"""The SQLite store: schema, WAL, atomic day replacement, ledger."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gscsync.errors import ConfigError
from gscsync.models import DayData, DayTask
from gscsync.store import open_store
from gscsync.store.schema import migrations

EXPECTED = {
    "search_analytics": {
        "site_url": str,
        "search_type": str,
        "date": str,
        "query": str,
        "page": str,
        "country": str,
        "device": str,
        "clicks": int,
        "impressions": int,
        "ctr": float,
        "position": float,
    },
    "daily_totals": {
        "site_url": str,
        "search_type": str,
        "date": str,
        "clicks": int,
        "impressions": int,
        "ctr": float,
        "position": float,
    },
    "search_appearance": {
        "site_url": str,
        "search_type": str,
        "date": str,
        "appearance": str,
        "clicks": int,
        "impressions": int,
        "ctr": float,
        "position": float,
    },
    "sync_days": {
        "site_url": str,
        "search_type": str,
        "date": str,
        "status": str,
        "rows": int,
        "truncated": int,
        "fetched_at": str,
        "attempts": int,
        "error": str,
    },
    "runs": {
        "id": int,
        "command": str,
        "started_at": str,
        "finished_at": str,
        "status": str,
        "days_ok": int,
        "days_failed": int,
        "rows_written": int,
        "requests": int,
        "error": str,
        "pid": int,
        "version": str,
    },
}
PKS = {
    "search_analytics": ["site_url", "search_type", "date", "query", "page", "country", "device"],
    "daily_totals": ["site_url", "search_type", "date"],
    "search_appearance": ["site_url", "search_type", "date", "appearance"],
    "sync_days": ["site_url", "search_type", "date"],
    "runs": ["id"],
}


def test_migrations_create_the_spec_schema_in_wal(tmp_path: Path) -> None:
    db = open_store(tmp_path / "g.db").db
    for table, columns in EXPECTED.items():
        assert db.table(table).columns_dict == columns
        assert db.table(table).pks == PKS[table]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [m.name for m in migrations.applied(db)] == ["m001_initial", "m002_breaker"]
    assert db.table("breaker").columns_dict == {
        "id": int,
        "state": str,
        "failures": int,
        "opened_at": float,
        "cooldown": int,
        "reason": str,
    }
    assert stat.S_IMODE((tmp_path / "g.db").stat().st_mode) == 0o600


def day(n_rows: int, date: str = "2026-01-01", fresh: bool = False) -> DayData:
    return DayData(
        task=DayTask("sc-domain:a.com", "web", date, fresh),
        rows=[(f"q{i}", "p", "usa", "MOBILE", 1, 2, 0.5, 1.0) for i in range(n_rows)],
        appearance=[("VIDEO", 1, 2, 0.5, None)],
        totals=(n_rows + 1, 2 * n_rows + 5, 0.2, 3.0),
    )


def test_write_day_replaces_the_day_and_its_ledger_row(tmp_path: Path) -> None:
    store = open_store(tmp_path / "g.db")
    store.write_day(day(5, fresh=True))
    store.write_day(day(2, "2026-01-02"))
    store.write_day(day(3))
    count = store.db.execute("SELECT date, COUNT(*) FROM search_analytics GROUP BY date").fetchall()
    assert count == [("2026-01-01", 3), ("2026-01-02", 2)]
    ledger = store.ledger("sc-domain:a.com", "web")
    assert (
        ledger["2026-01-01"].status,
        ledger["2026-01-01"].rows,
        ledger["2026-01-01"].attempts,
    ) == ("final", 3, 2)
    assert store.db.execute(
        "SELECT clicks FROM daily_totals WHERE date = '2026-01-01'"
    ).fetchone() == (4,)


def test_a_failed_write_leaves_the_day_as_it_was(tmp_path: Path) -> None:
    store = open_store(tmp_path / "g.db")
    store.write_day(day(4))
    bad = day(3)
    bad.rows.append(("q", "p", "usa", "MOBILE", "x", 2, 0.5, 1.0))  # type: ignore[arg-type]
    store.db.execute(
        "CREATE TRIGGER no_x BEFORE INSERT ON search_analytics "
        "WHEN NEW.clicks = 'x' BEGIN SELECT RAISE(ABORT, 'bad row'); END"
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.write_day(bad)
    assert store.db.execute("SELECT COUNT(*) FROM search_analytics").fetchone() == (4,)
    assert store.ledger("sc-domain:a.com", "web")["2026-01-01"].rows == 4


def test_mark_failed_keeps_rows_and_counts_attempts(tmp_path: Path) -> None:
    store = open_store(tmp_path / "g.db")
    store.write_day(day(2))
    store.mark_failed(DayTask("sc-domain:a.com", "web", "2026-01-01"), "500 backendError")
    row = store.ledger("sc-domain:a.com", "web")["2026-01-01"]
    assert (row.status, row.rows, row.attempts, row.error) == ("failed", 2, 2, "500 backendError")


def test_not_a_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes")
    with pytest.raises(ConfigError, match="not a SQLite database"):
        open_store(path)
    assert path.read_text() == "my notes"


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_store(tmp_path / "nope" / "g.db")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = open_store(tmp_path / "g.db").db
    db.table("_sqlite_migrations").insert(
        {"migration_set": "gscsync", "name": "m999_future", "applied_at": "x"}
    )
    db.close()
    with pytest.raises(ConfigError, match="newer gscsync"):
        open_store(tmp_path / "g.db")
