"""The SQLite store: one writer, atomic days, the ledger, runs and the breaker (the schema
and which files are opened as the database are in :mod:`gscsync.store.schema`, the
compact detail layout and the writer's dictionary ids in :mod:`gscsync.store.detail`,
the report tables and their ledger in :mod:`gscsync.store.reports`, what ``status``
reads in :mod:`gscsync.store.coverage`).

The database runs in WAL mode so readers (sqlite3, Datasette, dashboards) can query
while a sync writes; ``busy_timeout`` makes a writer wait for another writer instead of
failing at once. Every method turns what SQLite or the disk refuses (still locked after
the timeout, disk full, I/O error) into one :class:`StorageError` line, after rolling its
transaction back: a day is written whole or not at all.
This package is the only place that imports ``sqlite3`` or ``sqlite_utils``.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlite_utils import Database

from gscsync import __version__
from gscsync.errors import StorageError
from gscsync.files import PRIVATE_MODE
from gscsync.models import (
    BreakerState,
    Coverage,
    DayData,
    DayStatus,
    DayTask,
    HourData,
    LedgerDay,
    RunCounts,
    RunRecord,
    RunStatus,
)
from gscsync.store import coverage as status_reads
from gscsync.store import reports
from gscsync.store.detail import DELETE_ROWS, INSERT_ROWS, UPSERT_SUMS, Ids, Statistics
from gscsync.store.schema import (
    migrations,
    open_database,
    open_database_readonly,
    sqlite_code,
)

# How long a write waits for another writer's transaction before it fails; tests lower it.
BUSY_TIMEOUT_MS = 30_000
RUN_COLUMNS = (
    "id, command, started_at, finished_at, status, days_ok, days_failed, rows_written, "
    "requests, error, pid, version"
)


def utcnow() -> str:
    """Now, UTC, ISO-8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def open_store(
    path: Path,
    *,
    checked: bool = False,
    busy_timeout_ms: int | None = None,
    mode: int = PRIVATE_MODE,
) -> SqliteStore:
    """Open (creating if needed) and migrate the database, or raise ConfigError.

    ``checked``: the caller already ran ``check_db_path`` (before taking the lock). A
    database of another application (tables, no gscsync migration) is refused unchanged.
    ``busy_timeout_ms``: how long a write waits for another writer (``BUSY_TIMEOUT_MS``).
    ``mode``: the database's file mode and its WAL's and SHM's (``GSCSYNC_FILE_MODE``).
    """
    timeout = BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
    db = open_database(Path(path), checked=checked, busy_timeout_ms=timeout, mode=mode)
    return SqliteStore(db, str(path), timeout)


def open_store_readonly(path: Path, *, busy_timeout_ms: int | None = None) -> SqliteStore:
    """Open an existing database for reading only (``status``): no lock, no writes; also
    in a directory gscsync may not write to."""
    timeout = BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
    db = open_database_readonly(Path(path), busy_timeout_ms=timeout)
    return SqliteStore(db, str(path), timeout)


def memory_store() -> SqliteStore:
    """A migrated, empty in-memory store (plans for a database not created yet)."""
    db = Database(memory=True, execute_plugins=False)
    migrations.apply(db)
    return SqliteStore(db, ":memory:")


def storage_error(exc: BaseException, path: str, busy_timeout_ms: int) -> StorageError:
    """One line for what SQLite or the disk refused."""
    code = sqlite_code(exc)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StorageError(
            f"database is locked by another writer ({path}); waited {busy_timeout_ms / 1000:g} s "
            "for it: end the other program's write transaction and run again"
        )
    if code == sqlite3.SQLITE_FULL or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"disk full at {path}: free some space and run again")
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return StorageError(f"database {path}: {reason}")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(
    method: Callable[Concatenate[SqliteStore, _P], _R],
) -> Callable[Concatenate[SqliteStore, _P], _R]:
    """Roll back and raise StorageError when SQLite or the disk refuses (a bug, a
    ``ProgrammingError``, stays what it is)."""

    @functools.wraps(method)
    def guarded(self: SqliteStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, OSError) as exc:
            if isinstance(exc, sqlite3.ProgrammingError):
                raise
            self._rollback()
            raise storage_error(exc, self.path, self.busy_timeout_ms) from exc

    return guarded


class SqliteStore:
    """The :class:`gscsync.store.Store` on SQLite. Writes come from one thread: the writer."""

    def __init__(self, db: Database, path: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.db = db
        self.path = path  # for messages
        self.busy_timeout_ms = busy_timeout_ms
        self._ids = Ids()  # the dictionary ids the writer has seen
        self._statistics: Statistics | None = None  # created by the first write

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; ``IMMEDIATE`` takes the write lock (waiting up to the busy
        timeout) before anything is done, so a write never fails halfway for a lock. The
        dictionary ids it creates are cached once it commits, forgotten if it does not."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self._ids.rollback()
            self._rollback()
            raise
        self._ids.commit()

    def _rollback(self) -> None:
        try:
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back an interrupted transaction itself

    # -- the ledger and the days --------------------------------------------------------

    @_guarded
    def ledger(self, site_url: str, search_type: str) -> dict[str, LedgerDay]:
        """The ledger of one site and search type, by date."""
        cursor = self.db.execute(
            "SELECT date, status, rows, attempts, error FROM sync_days "
            "WHERE site_url = ? AND search_type = ?",
            [site_url, search_type],
        )
        return {r[0]: LedgerDay(r[0], r[1], r[2] or 0, r[3] or 0, r[4]) for r in cursor.fetchall()}

    @_guarded
    def write_day(self, data: DayData) -> None:
        """Replace one day's rows, totals, appearances, sums and ledger row, and each of
        its reports' rows and ledger row, in one transaction: one prepared statement per
        table, rows bound as plain tuples. ``data.detail`` False: only the reports (and the
        by-page totals of a stored ``daily_totals`` row, when given)."""
        t = data.task
        key = (t.site_url, t.search_type, t.date)
        conn, ids = self.db.conn, self._ids
        rows = data.rows if data.detail else []
        reports.check_reports(data.reports)
        if self._statistics is None:
            self._statistics = Statistics(conn)
        with self._transaction():
            if data.detail:
                self._write_detail(data)
            elif data.page_totals is not None:
                reports.update_page_totals(conn, key, *data.page_totals[:2])
            now = utcnow()
            for name, report in data.reports.items():
                reports.replace_rows(conn, ids, reports.LAYOUTS[name], key, report.rows)
                done = (data.status, len(report.rows), report.truncated, None)
                reports.upsert_ledger(conn, (*key[:2], name, key[2]), *done, now)
        self._statistics.wrote(conn, len(rows))

    def _write_detail(self, data: DayData) -> None:
        """The detail part of :meth:`write_day`, inside its transaction."""
        t = data.task
        key = (t.site_url, t.search_type, t.date)
        conn, ids, rows = self.db.conn, self._ids, data.rows
        site = ids.get(conn, "site_urls", key[:1])[t.site_url]
        qid = ids.get(conn, "queries", set(map(itemgetter(0), rows))).__getitem__
        pid = ids.get(conn, "pages", set(map(itemgetter(1), rows))).__getitem__
        stype, day = t.search_type, t.date
        conn.execute(DELETE_ROWS, (site, stype, day))
        conn.executemany(
            INSERT_ROWS,
            (
                (site, stype, day, qid(q), pid(p), c, d, clicks, imp, ctr, pos)
                for q, p, c, d, clicks, imp, ctr, pos in rows
            ),
        )
        conn.execute(
            "DELETE FROM search_appearance WHERE site_url = ? AND search_type = ? AND date = ?",
            key,
        )
        conn.executemany(
            "INSERT INTO search_appearance (site_url, search_type, date, appearance, "
            "clicks, impressions, ctr, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [key + tuple(row) for row in data.appearance],
        )
        page = (None, None) if data.page_totals is None else data.page_totals[:2]
        conn.execute(
            "INSERT OR REPLACE INTO daily_totals (site_url, search_type, date, clicks, "
            "impressions, ctr, position, page_clicks, page_impressions) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            key + tuple(data.totals) + tuple(page),
        )
        sums = (sum(map(itemgetter(4), rows)), sum(map(itemgetter(5), rows)))
        split = (data.split_requests, data.recovered)
        conn.execute(UPSERT_SUMS, key + sums + split)
        self._ledger_upsert(key, data.status, len(rows), int(data.truncated), None)

    @_guarded
    def final_rows(self, task: DayTask) -> int:
        """How many detail rows the day holds if it is stored final (else 0)."""
        row = self.db.execute(
            "SELECT rows FROM sync_days WHERE site_url = ? AND search_type = ? AND date = ? "
            "AND status = 'final'",
            [task.site_url, task.search_type, task.date],
        ).fetchone()
        return int(row[0] or 0) if row else 0

    @_guarded
    def mark_failed(self, task: DayTask, error: str) -> None:
        """Record a failed attempt; the day's stored rows (if any) stay as they were."""
        key = (task.site_url, task.search_type, task.date)
        with self._transaction():
            self._ledger_upsert(key, "failed", None, None, error[:1000])

    @_guarded
    def report_ledger(self, site_url: str, search_type: str) -> dict[tuple[str, str], LedgerDay]:
        """The report ledger of one site and search type, by (report, date); the hourly
        tables are the report ``hourly``."""
        return reports.report_ledger(self.db.conn, site_url, search_type)

    @_guarded
    def mark_report_failed(self, task: DayTask, report: str, error: str) -> None:
        """Record a failed attempt at one report of a day, as :meth:`mark_failed` does:
        the report's stored rows (if any) and its recorded row count stay as they were."""
        key = (task.site_url, task.search_type, report, task.date)
        with self._transaction():
            reports.upsert_ledger(self.db.conn, key, "failed", None, None, error[:1000], utcnow())

    @_guarded
    def write_hours(self, data: HourData) -> None:
        """Replace one Pacific day's ``hourly_totals`` and ``search_analytics_hourly`` rows
        (the hours whose date part is ``data.date``) and record the report ``hourly`` of
        the day, ``final`` when every hour is, in one transaction. Other days' hours stay:
        nothing deletes the hours of days Google no longer serves."""
        reports.check_hours(data)
        with self._transaction():
            reports.write_hours(self.db.conn, self._ids, data, utcnow())

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

    @_guarded
    def start_run(self, command: str) -> int:
        """Open a ``runs`` row; returns its id. Call it holding the lock: any row still
        ``running`` then belongs to a process that died (kill -9, power loss)."""
        with self._transaction():
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

    @_guarded
    def finish_run(
        self, run_id: int, status: RunStatus, counts: RunCounts, error: str | None
    ) -> None:
        """Close a ``runs`` row with its outcome and counters."""
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, error = ?, days_ok = ?, "
            "days_failed = ?, rows_written = ?, requests = ? WHERE id = ?",
            [utcnow(), status, error, *counts, run_id],
        )

    @_guarded
    def prune_runs(self, retention_days: int) -> int:
        """Delete runs that started more than ``retention_days`` ago."""
        cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).isoformat()
        cursor = self.db.execute("DELETE FROM runs WHERE started_at < ?", [cutoff])
        return cursor.rowcount

    @_guarded
    def recent_runs(self, limit: int = 5, command: str | None = None) -> list[RunRecord]:
        """The newest runs (of ``command`` only, if given), newest first."""
        where = "WHERE command = ?" if command else ""
        cursor = self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY id DESC LIMIT ?",
            [command, limit] if command else [limit],
        )
        return [RunRecord(*row) for row in cursor.fetchall()]

    # -- the circuit breaker ------------------------------------------------------------

    @_guarded
    def load_breaker(self) -> BreakerState:
        """The persisted breaker state (closed when none was saved)."""
        row = self.db.execute(
            "SELECT state, failures, opened_at, cooldown, reason FROM breaker WHERE id = 1"
        ).fetchone()
        if row is None:
            return BreakerState()
        return BreakerState(row[0], row[1] or 0, row[2], row[3] or 0, row[4])

    @_guarded
    def save_breaker(self, state: BreakerState) -> None:
        """Persist the breaker state."""
        self.db.execute(
            "INSERT OR REPLACE INTO breaker (id, state, failures, opened_at, cooldown, reason) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            [state.state, state.failures, state.opened_at, state.cooldown, state.reason],
        )

    # -- coverage -----------------------------------------------------------------------

    @_guarded
    def day_size(self, site_url: str, search_type: str) -> tuple[float, float] | None:
        """Mean detail rows and mean impressions of the stored final days (None: none)."""
        row = self.db.execute(
            "SELECT COUNT(*), AVG(d.rows), AVG(COALESCE(t.page_impressions, t.impressions, 0)) "
            "FROM sync_days d LEFT JOIN daily_totals t USING (site_url, search_type, date) "
            "WHERE d.site_url = ? AND d.search_type = ? AND d.status = 'final'",
            [site_url, search_type],
        ).fetchone()
        return (float(row[1]), float(row[2])) if row and row[0] else None

    @_guarded
    def newest_final_days(self) -> dict[tuple[str, str], str]:
        """The newest final day per (site, search type): one pass over the ledger."""
        return status_reads.newest_final_days(self.db.conn)

    @_guarded
    def coverage(self) -> list[Coverage]:
        """Coverage of every site × search type in the ledger (reads no detail row)."""
        return status_reads.coverage(self.db.conn)
