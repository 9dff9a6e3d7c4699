"""The SQLite store: schema through versioned migrations, one writer, atomic days.

The database runs in WAL mode so readers (sqlite3, Datasette, dashboards) can query
while a sync writes; ``busy_timeout`` makes a writer wait for a reader instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from gscsync import __version__
from gscsync.breaker import BreakerState
from gscsync.errors import ConfigError
from gscsync.files import create_private
from gscsync.models import DayData, DayTask

BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"
DIMENSION_PK = ("site_url", "search_type", "date")

migrations = Migrations("gscsync")


@migrations()
def m001_initial(db: Database) -> None:
    """The tables of SPEC.md: detail rows, totals, appearances, ledger, runs."""
    metrics: dict[str, Any] = {"clicks": int, "impressions": int, "ctr": float, "position": float}
    db.table("search_analytics").create(
        {
            "site_url": str,
            "search_type": str,
            "date": str,
            "query": str,
            "page": str,
            "country": str,
            "device": str,
            **metrics,
        },
        pk=("site_url", "search_type", "date", "query", "page", "country", "device"),
        not_null={"site_url", "search_type", "date", "query", "page", "country", "device"},
    )
    db.table("daily_totals").create(
        {"site_url": str, "search_type": str, "date": str, **metrics},
        pk=DIMENSION_PK,
        not_null=set(DIMENSION_PK),
    )
    db.table("search_appearance").create(
        {"site_url": str, "search_type": str, "date": str, "appearance": str, **metrics},
        pk=("site_url", "search_type", "date", "appearance"),
        not_null={"site_url", "search_type", "date", "appearance"},
    )
    db.table("sync_days").create(
        {
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
        pk=DIMENSION_PK,
        not_null={"site_url", "search_type", "date", "status"},
    )
    db.table("runs").create(
        {
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
        pk="id",
    )
    db.table("sync_days").create_index(["status"])


@migrations()
def m002_breaker(db: Database) -> None:
    """The circuit breaker's state: one row, so it outlives each cron process."""
    db.table("breaker").create(
        {
            "id": int,
            "state": str,
            "failures": int,
            "opened_at": float,
            "cooldown": int,
            "reason": str,
        },
        pk="id",
    )


def utcnow() -> str:
    """Now, UTC, ISO-8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def check_db_path(path: Path) -> None:
    """Refuse a database path that cannot work, before anything is created."""
    if path.is_dir():
        raise ConfigError(f"database path {path} is a directory; set GSCSYNC_DB to a file path")
    if not path.parent.is_dir():
        raise ConfigError(
            f"database directory {path.parent} does not exist; create it or set GSCSYNC_DB "
            "elsewhere"
        )
    if path.exists():
        _check_sqlite_file(path)


def open_db(path: Path) -> Database:
    """Open (creating if needed) and migrate the database, or raise ConfigError."""
    path = Path(path)
    check_db_path(path)
    parent = path.parent
    if not path.exists():
        try:
            create_private(path)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the database {path} ({exc.strerror}); choose a writable GSCSYNC_DB"
            ) from None
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(parent, os.W_OK):
        raise ConfigError(
            f"database {path} (or its directory) is not writable; fix its permissions "
            "or set GSCSYNC_DB elsewhere"
        )
    try:
        db = Database(path, execute_plugins=False)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        _refuse_newer_schema(db, path)
        migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"database {path} cannot be used: {exc}") from None
    return db


def memory_db() -> Database:
    """A migrated, empty in-memory database (plans for a database not created yet)."""
    db = Database(memory=True, execute_plugins=False)
    migrations.apply(db)
    return db


def open_db_readonly(path: Path) -> Database:
    """Open an existing database for reading only (``status``): no lock, no writes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"database {path} does not exist; run `gscsync sync` first")
    _check_sqlite_file(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db = Database(conn, execute_plugins=False)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _refuse_newer_schema(db, path)
        if migrations.pending(db):
            raise ConfigError(
                f"database {path} has an older schema; run `gscsync sync` or `gscsync check` "
                "once to upgrade it"
            )
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"database {path} cannot be read: {exc}") from None
    return db


def _check_sqlite_file(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise ConfigError(f"database {path} cannot be read ({exc.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise ConfigError(
            f"{path} is not a SQLite database; point GSCSYNC_DB at a new or gscsync file"
        )


def _refuse_newer_schema(db: Database, path: Path) -> None:
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if unknown:
        raise ConfigError(
            f"database {path} was written by a newer gscsync (migration {unknown[-1]}); "
            "upgrade gscsync to use it"
        )


@dataclass(frozen=True)
class LedgerDay:
    """One ``sync_days`` row."""

    date: str
    status: str
    rows: int
    attempts: int
    error: str | None


class Store:
    """All writes go through here, from one thread: the writer."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.atomic():
            yield

    def ledger(self, site_url: str, search_type: str) -> dict[str, LedgerDay]:
        """The ledger of one site and search type, by date."""
        cursor = self.db.execute(
            "SELECT date, status, rows, attempts, error FROM sync_days "
            "WHERE site_url = ? AND search_type = ?",
            [site_url, search_type],
        )
        return {r[0]: LedgerDay(r[0], r[1], r[2] or 0, r[3] or 0, r[4]) for r in cursor.fetchall()}

    def write_day(self, data: DayData) -> None:
        """Replace one day's rows, totals, appearances and ledger row in one transaction."""
        t = data.task
        key = (t.site_url, t.search_type, t.date)
        with self.db.atomic():
            for table in ("search_analytics", "search_appearance"):
                self.db.execute(
                    f"DELETE FROM {table} WHERE site_url = ? AND search_type = ? AND date = ?",
                    key,
                )
            self.db.conn.executemany(
                "INSERT INTO search_analytics (site_url, search_type, date, query, page, "
                "country, device, clicks, impressions, ctr, position) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key + row for row in data.rows),
            )
            self.db.conn.executemany(
                "INSERT INTO search_appearance (site_url, search_type, date, appearance, "
                "clicks, impressions, ctr, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key + row for row in data.appearance),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO daily_totals (site_url, search_type, date, clicks, "
                "impressions, ctr, position) VALUES (?, ?, ?, ?, ?, ?, ?)",
                key + data.totals,
            )
            self._ledger_upsert(key, data.status, len(data.rows), int(data.truncated), None)

    def mark_failed(self, task: DayTask, error: str) -> None:
        """Record a failed attempt; the day's stored rows (if any) stay as they were."""
        key = (task.site_url, task.search_type, task.date)
        with self.db.atomic():
            self._ledger_upsert(key, "failed", None, None, error[:1000])

    def _ledger_upsert(
        self,
        key: tuple[str, str, str],
        status: str,
        rows: int | None,
        truncated: int | None,
        error: str | None,
    ) -> None:
        self.db.execute(
            "INSERT INTO sync_days (site_url, search_type, date, status, rows, truncated, "
            "fetched_at, attempts, error) VALUES (?, ?, ?, ?, COALESCE(?, 0), COALESCE(?, 0), "
            "?, 1, ?) ON CONFLICT (site_url, search_type, date) DO UPDATE SET "
            "status = excluded.status, rows = COALESCE(?, rows), "
            "truncated = COALESCE(?, truncated), fetched_at = excluded.fetched_at, "
            "attempts = attempts + 1, error = excluded.error",
            [*key, status, rows, truncated, utcnow(), error, rows, truncated],
        )

    def start_run(self, command: str) -> int:
        """Open a ``runs`` row; returns its id. Call it holding the lock: any row still
        ``running`` then belongs to a process that died (kill -9, power loss)."""
        self.db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, "
            "error = 'the process ended before finishing (killed or crashed)' "
            "WHERE status = 'running'",
            [utcnow()],
        )
        cursor = self.db.execute(
            "INSERT INTO runs (command, started_at, status, days_ok, days_failed, "
            "rows_written, requests, pid, version) VALUES (?, ?, 'running', 0, 0, 0, 0, ?, ?)",
            [command, utcnow(), os.getpid(), __version__],
        )
        return int(cursor.lastrowid or 0)

    def finish_run(
        self, run_id: int, *, status: str, error: str | None = None, **counts: int
    ) -> None:
        """Close a ``runs`` row with its outcome and counters."""
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, error = ?, days_ok = ?, "
            "days_failed = ?, rows_written = ?, requests = ? WHERE id = ?",
            [
                utcnow(),
                status,
                error,
                counts.get("days_ok", 0),
                counts.get("days_failed", 0),
                counts.get("rows_written", 0),
                counts.get("requests", 0),
                run_id,
            ],
        )

    def load_breaker(self) -> BreakerState:
        """The persisted breaker state (closed when none was saved)."""
        return load_breaker(self.db)

    def save_breaker(self, state: BreakerState) -> None:
        """Persist the breaker state."""
        self.db.execute(
            "INSERT OR REPLACE INTO breaker (id, state, failures, opened_at, cooldown, reason) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            [state.state, state.failures, state.opened_at, state.cooldown, state.reason],
        )

    def prune_runs(self, retention_days: int) -> int:
        """Delete runs that started more than ``retention_days`` ago."""
        cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).isoformat()
        cursor = self.db.execute("DELETE FROM runs WHERE started_at < ?", [cutoff])
        return cursor.rowcount


def load_breaker(db: Database) -> BreakerState:
    """The persisted breaker state of any database (read-only use in ``status``)."""
    row = db.execute(
        "SELECT state, failures, opened_at, cooldown, reason FROM breaker WHERE id = 1"
    ).fetchone()
    if row is None:
        return BreakerState()
    return BreakerState(row[0], row[1] or 0, row[2], row[3] or 0, row[4])
