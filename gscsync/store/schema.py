"""The schema, as versioned migrations (sqlite-utils ``Migrations``), and the file it lives
in: which files gscsync accepts as its database, and opening them.

gscsync writes only a file that is new, empty, or already a gscsync database: a database
of another application (tables, and no gscsync migration) or of a newer gscsync is
refused before anything is written (not even the switch to WAL), so it stays byte for
byte what it was.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from gscsync.errors import ConfigError
from gscsync.files import PRIVATE_MODE, apply_mode, create_private
from gscsync.store import detail, reports
from gscsync.store.tables import DETAIL_COLUMNS, DETAIL_PK, LEDGER_TABLES, NOT_NULL_EXTRA

SQLITE_MAGIC = b"SQLite format 3\x00"

migrations = Migrations("gscsync")


@migrations()
def m001_initial(db: Database) -> None:
    """The tables of SPEC.md: detail rows, totals, appearances, ledger, runs."""
    db.table("search_analytics").create(DETAIL_COLUMNS, pk=DETAIL_PK, not_null={*DETAIL_PK})
    for table, (columns, pk) in LEDGER_TABLES.items():
        db.table(table).create(columns, pk=pk, not_null={*pk, *NOT_NULL_EXTRA.get(table, ())})
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


@migrations()
def m003_compact_detail(db: Database) -> None:
    """Detail rows in dictionary tables behind the ``search_analytics`` view, ``WITHOUT
    ROWID``; per-day sums for ``status``; the ledger tables ``WITHOUT ROWID``; planner
    statistics (see :mod:`gscsync.store.detail`)."""
    detail.upgrade(db)


@migrations()
def m004_split_counts(db: Database) -> None:
    """What refetching a capped day as slices cost and gave back, kept with its sums."""
    db.execute("ALTER TABLE detail_sums ADD COLUMN split_requests INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE detail_sums ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0")


# The last 28 days a property has data for, in Pacific dates as stored.
_RECENT = (
    "date > (SELECT date(MAX(t.date), '-28 days') FROM daily_totals t "
    "WHERE t.site_url = x.site_url AND t.search_type = x.search_type)"
)
VIEWS = {
    "v_daily": "SELECT site_url, search_type, date, clicks, impressions, ctr, position "
    "FROM daily_totals",
    "v_top_queries_28d": "SELECT site_url, search_type, query, SUM(clicks) AS clicks, "
    "SUM(impressions) AS impressions FROM search_analytics x "
    f"WHERE query != '' AND {_RECENT} GROUP BY site_url, search_type, query",
    "v_top_pages_28d": "SELECT site_url, search_type, page, SUM(clicks) AS clicks, "
    "SUM(impressions) AS impressions FROM search_analytics x "
    f"WHERE {_RECENT} GROUP BY site_url, search_type, page",
}


@migrations()
def m005_views(db: Database) -> None:
    """Views for the questions analysts ask first (exact daily totals, top queries and
    pages over each property's last 28 days)."""
    for name, sql in VIEWS.items():
        db.execute(f"CREATE VIEW {name} AS {sql}")


@migrations()
def m006_reports(db: Database) -> None:
    """The report tables (by query, page, country and device, search appearance in detail,
    hourly) and their ledger ``report_days``; by-page totals in ``daily_totals`` (see
    :mod:`gscsync.store.reports`)."""
    reports.upgrade(db)


# The names this gscsync knows: a database recording any other was written by a newer one.
KNOWN_MIGRATIONS = frozenset(
    f.__name__
    for f in (
        m001_initial,
        m002_breaker,
        m003_compact_detail,
        m004_split_counts,
        m005_views,
        m006_reports,
    )
)


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
        check_sqlite_file(path)


def open_database(
    path: Path, *, checked: bool, busy_timeout_ms: int, mode: int = PRIVATE_MODE
) -> Database:
    """Open (creating if needed) and migrate the database, or raise ConfigError.

    ``checked``: the caller already ran :func:`check_db_path` (before taking the lock).
    """
    if not checked:
        check_db_path(path)
    if not path.exists():
        try:
            create_private(path, mode)
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
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"database {path} cannot be used: {exc}") from None
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        refuse_foreign_or_newer(db, path)  # reads only: before anything is written
        db.enable_wal()
        apply_mode(path, mode)  # the database, and the WAL and SHM files SQLite made
        db.execute("PRAGMA synchronous = NORMAL")
        migrations.apply(db)
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise ConfigError(f"database {path} cannot be used: {exc}") from None
        raise
    return db


def open_database_readonly(path: Path, *, busy_timeout_ms: int) -> Database:
    """Open an existing database for reading only (``status``): no lock, no writes.

    In a directory gscsync may not write to, SQLite cannot create the ``-shm`` file a WAL
    database needs; the database is then read as ``immutable``, which is exact as long as
    no ``-wal`` file holds changes not yet in it (with one, it is refused)."""
    if not path.is_file():
        raise ConfigError(f"database {path} does not exist; run `gscsync sync` first")
    check_sqlite_file(path)
    uri = f"file:{quote(os.fsdecode(path))}?mode=ro"
    try:
        try:
            db = _connect_readonly(uri, busy_timeout_ms)
        except sqlite3.OperationalError as exc:
            if sqlite_code(exc) not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
                raise
            if Path(f"{path}-wal").exists():
                raise ConfigError(
                    f"database {path} cannot be read: its directory is not writable and its "
                    "-wal file holds changes; open it once where it is writable"
                ) from None
            db = _connect_readonly(f"{uri}&immutable=1", busy_timeout_ms)
        try:
            refuse_foreign_or_newer(db, path)
            if migrations.pending(db):
                raise ConfigError(
                    f"database {path} has an older schema; run `gscsync sync` or "
                    "`gscsync check` once to upgrade it"
                )
        except BaseException:
            db.close()
            raise
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"database {path} cannot be read: {exc}") from None
    return db


def _connect_readonly(uri: str, timeout_ms: int) -> Database:
    """A read-only connection that has read the schema (where a read-only directory fails)."""
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return Database(conn, execute_plugins=False)


def check_sqlite_file(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise ConfigError(f"database {path} cannot be read ({exc.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise ConfigError(
            f"{path} is not a SQLite database; point GSCSYNC_DB at a new or gscsync file"
        )


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of an error (SQLITE_BUSY...), if it has one."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def refuse_foreign_or_newer(db: Database, path: Path) -> None:
    """ConfigError for a database gscsync must not write: another application's (it has
    tables, or another migration set, and no gscsync migration) or a newer gscsync's.
    Reads only, so a refused file stays byte for byte what it was."""
    sets: set[str] = set()
    if db.table(migrations.migrations_table).exists():
        rows = db.execute(f"SELECT DISTINCT migration_set FROM {migrations.migrations_table}")
        sets = {str(row[0]) for row in rows.fetchall()}
    if migrations.name not in sets:
        names = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != ? ORDER BY name",
            [migrations.migrations_table],
        ).fetchall()
        tables = [str(row[0]) for row in names]
        if tables or sets:
            shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
            raise ConfigError(
                f"database {path} belongs to another application (tables: {shown or 'none'}; "
                "no gscsync schema); gscsync leaves it untouched: set GSCSYNC_DB to a new file"
            )
        return
    unknown = [m.name for m in migrations.applied(db) if m.name not in KNOWN_MIGRATIONS]
    if unknown:
        raise ConfigError(
            f"database {path} was written by a newer gscsync (migration {unknown[-1]}); "
            "upgrade gscsync to use it"
        )
