"""The SQLite store: versioned schema, one writer, atomic days, the ledger, status reads.

The database runs in WAL mode so readers (sqlite3, Datasette, dashboards) can query
while a sync writes; ``busy_timeout`` makes a writer wait for a reader instead of failing.
This package is the only place that imports ``sqlite3`` or ``sqlite_utils``.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gscsync import __version__
from gscsync.dates import days
from gscsync.errors import ConfigError
from gscsync.files import create_private
from gscsync.models import (
    BreakerState,
    Coverage,
    DayData,
    DayStatus,
    DayTask,
    LedgerDay,
    RunCounts,
    RunRecord,
    RunStatus,
)
from gscsync.store.schema import KNOWN_MIGRATIONS, migrations

BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"
RUN_COLUMNS = (
    "id, command, started_at, finished_at, status, days_ok, days_failed, rows_written, "
    "requests, error, pid, version"
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


def open_store(path: Path, *, checked: bool = False) -> SqliteStore:
    """Open (creating if needed) and migrate the database, or raise ConfigError.

    ``checked``: the caller already ran :func:`check_db_path` (before taking the lock).
    """
    path = Path(path)
    if not checked:
        check_db_path(path)
    if not path.exists():
        try:
            create_private(path)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the database {path} ({exc.strerror}); choose a writable GSCSYNC_DB"
            ) from None
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
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
    return SqliteStore(db)


def memory_store() -> SqliteStore:
    """A migrated, empty in-memory store (plans for a database not created yet)."""
    db = Database(memory=True, execute_plugins=False)
    migrations.apply(db)
    return SqliteStore(db)


def open_store_readonly(path: Path) -> SqliteStore:
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
    return SqliteStore(db)


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
    unknown = [m.name for m in migrations.applied(db) if m.name not in KNOWN_MIGRATIONS]
    if unknown:
        raise ConfigError(
            f"database {path} was written by a newer gscsync (migration {unknown[-1]}); "
            "upgrade gscsync to use it"
        )


class SqliteStore:
    """The :class:`gscsync.store.Store` on SQLite. Writes come from one thread: the writer."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the ledger and the days --------------------------------------------------------

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
                key + tuple(data.totals),
            )
            self._ledger_upsert(key, data.status, len(data.rows), int(data.truncated), None)

    def final_rows(self, task: DayTask) -> int:
        """How many detail rows the day holds if it is stored final (else 0)."""
        row = self.db.execute(
            "SELECT rows FROM sync_days WHERE site_url = ? AND search_type = ? AND date = ? "
            "AND status = 'final'",
            [task.site_url, task.search_type, task.date],
        ).fetchone()
        return int(row[0] or 0) if row else 0

    def mark_failed(self, task: DayTask, error: str) -> None:
        """Record a failed attempt; the day's stored rows (if any) stay as they were."""
        key = (task.site_url, task.search_type, task.date)
        with self.db.atomic():
            self._ledger_upsert(key, "failed", None, None, error[:1000])

    def _ledger_upsert(
        self,
        key: tuple[str, str, str],
        status: DayStatus,
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

    # -- runs ---------------------------------------------------------------------------

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
        self, run_id: int, status: RunStatus, counts: RunCounts, error: str | None
    ) -> None:
        """Close a ``runs`` row with its outcome and counters."""
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, error = ?, days_ok = ?, "
            "days_failed = ?, rows_written = ?, requests = ? WHERE id = ?",
            [utcnow(), status, error, *counts, run_id],
        )

    def prune_runs(self, retention_days: int) -> int:
        """Delete runs that started more than ``retention_days`` ago."""
        cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).isoformat()
        cursor = self.db.execute("DELETE FROM runs WHERE started_at < ?", [cutoff])
        return cursor.rowcount

    def recent_runs(self, limit: int = 5, command: str | None = None) -> list[RunRecord]:
        """The newest runs (of ``command`` only, if given), newest first."""
        where = "WHERE command = ?" if command else ""
        cursor = self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY id DESC LIMIT ?",
            [command, limit] if command else [limit],
        )
        return [RunRecord(*row) for row in cursor.fetchall()]

    # -- the circuit breaker ------------------------------------------------------------

    def load_breaker(self) -> BreakerState:
        """The persisted breaker state (closed when none was saved)."""
        row = self.db.execute(
            "SELECT state, failures, opened_at, cooldown, reason FROM breaker WHERE id = 1"
        ).fetchone()
        if row is None:
            return BreakerState()
        return BreakerState(row[0], row[1] or 0, row[2], row[3] or 0, row[4])

    def save_breaker(self, state: BreakerState) -> None:
        """Persist the breaker state."""
        self.db.execute(
            "INSERT OR REPLACE INTO breaker (id, state, failures, opened_at, cooldown, reason) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            [state.state, state.failures, state.opened_at, state.cooldown, state.reason],
        )

    # -- coverage -----------------------------------------------------------------------

    def newest_final_days(self) -> dict[tuple[str, str], str]:
        """The newest final day per (site, search type): one pass over the ledger."""
        cursor = self.db.execute(
            "SELECT site_url, search_type, MAX(date) FROM sync_days WHERE status = 'final' "
            "GROUP BY site_url, search_type"
        )
        return {(site, stype): day for site, stype, day in cursor.fetchall()}

    def coverage(self) -> list[Coverage]:
        """Coverage of every site × search type in the ledger."""
        pairs = self.db.execute(
            "SELECT DISTINCT site_url, search_type FROM sync_days ORDER BY site_url, search_type"
        ).fetchall()
        return [self._coverage(site, stype) for site, stype in pairs]

    def _coverage(self, site: str, stype: str) -> Coverage:
        key = [site, stype]
        ledger = self.db.execute(
            "SELECT date, status, rows, truncated, error FROM sync_days "
            "WHERE site_url = ? AND search_type = ? ORDER BY date",
            key,
        ).fetchall()
        finals = [r[0] for r in ledger if r[1] == "final"]
        final_set = set(finals)
        gaps: list[str] = []
        if finals:
            first, last = date.fromisoformat(finals[0]), date.fromisoformat(finals[-1])
            gaps = [d.isoformat() for d in days(first, last) if d.isoformat() not in final_set]
        empty = self.db.execute(
            "SELECT d.date FROM sync_days d JOIN daily_totals t USING (site_url, search_type, "
            "date) WHERE d.site_url = ? AND d.search_type = ? AND d.status = 'final' "
            "AND d.rows = 0 AND t.impressions > 0 ORDER BY d.date",
            key,
        ).fetchall()
        detail = self._final_sums("search_analytics", key)
        totals = self._final_sums("daily_totals", key)
        return Coverage(
            site_url=site,
            search_type=stype,
            first_final=finals[0] if finals else None,
            newest_final=finals[-1] if finals else None,
            days_final=len(finals),
            days_fresh=sum(1 for r in ledger if r[1] == "fresh"),
            gaps=gaps,
            failed=[{"date": r[0], "error": r[4] or ""} for r in ledger if r[1] == "failed"],
            truncated=[r[0] for r in ledger if r[3]],
            empty_with_impressions=[r[0] for r in empty],
            rows=sum(r[2] or 0 for r in ledger if r[1] in ("final", "fresh")),
            clicks_detail=detail[0],
            clicks_total=totals[0],
            impressions_detail=detail[1],
            impressions_total=totals[1],
        )

    def _final_sums(self, table: str, key: list[str]) -> tuple[int, int]:
        """Clicks and impressions of ``table`` over the final days of one site and type."""
        row: Any = self.db.execute(
            "SELECT COALESCE(SUM(x.clicks), 0), COALESCE(SUM(x.impressions), 0) "
            f"FROM {table} x JOIN sync_days d USING (site_url, search_type, date) "
            "WHERE x.site_url = ? AND x.search_type = ? AND d.status = 'final'",
            key,
        ).fetchone()
        return int(row[0]), int(row[1])
