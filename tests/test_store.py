"""The SQLite store: schema, WAL, atomic day replacement, ledger."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gscsync.errors import ConfigError, StorageError
from gscsync.models import DayData, DayTask
from gscsync.store import SqliteStore, open_store, open_store_readonly
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
        "page_clicks": int,  # m006: the day's by-page totals (NULL: not known)
        "page_impressions": int,
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
    "daily_totals": ["site_url", "search_type", "date"],
    "search_appearance": ["site_url", "search_type", "date", "appearance"],
    "sync_days": ["site_url", "search_type", "date"],
    "runs": ["id"],
}


MIGRATIONS = [
    "m001_initial",
    "m002_breaker",
    "m003_compact_detail",
    "m004_split_counts",
    "m005_views",
    "m006_reports",
]


def test_migrations_create_the_spec_schema_in_wal(tmp_path: Path) -> None:
    """The SPEC's names and columns; since m003 ``search_analytics`` is a view over
    dictionary tables (SPEC "Additions"), its key that of the table behind it."""
    db = open_store(tmp_path / "g.db").db
    assert db.view("search_analytics").columns_dict == EXPECTED["search_analytics"]
    assert db.table("search_analytics_rows").pks == [
        "site_id",
        "search_type",
        "date",
        "query_id",
        "page_id",
        "country",
        "device",
    ]
    for table, columns in EXPECTED.items():
        if table != "search_analytics":
            assert db.table(table).columns_dict == columns
            assert db.table(table).pks == PKS[table]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [m.name for m in migrations.applied(db)] == MIGRATIONS
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
        "CREATE TRIGGER no_x BEFORE INSERT ON search_analytics_rows "
        "WHEN NEW.clicks = 'x' BEGIN SELECT RAISE(ABORT, 'bad row'); END"
    )
    with pytest.raises(StorageError) as info:
        store.write_day(bad)
    assert str(info.value) == f"database {tmp_path / 'g.db'}: bad row"
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
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


# -- another application's database is refused, byte for byte unchanged ------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_db(path: Path, *, migration_set: str | None = None, tables: bool = True) -> Path:
    """Another program's SQLite file, in rollback-journal mode (SQLite's default)."""
    conn = sqlite3.connect(path)
    if tables:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    if migration_set is not None:
        conn.execute(
            "CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, "
            "name TEXT, applied_at TEXT)"
        )
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES (?, 'm001_initial', 'x')",
            [migration_set],
        )
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    ("migration_set", "tables", "shown"),
    [(None, True, "tables: notes;"), ("llm", True, "tables: notes;"), ("llm", False, "none")],
)
def test_another_applications_database_is_refused_unchanged(
    tmp_path: Path, migration_set: str | None, tables: bool, shown: str
) -> None:
    (tmp_path / "d").mkdir()
    path = foreign_db(tmp_path / "d" / "app.db", migration_set=migration_set, tables=tables)
    before = digest(path)
    with pytest.raises(ConfigError) as info:
        open_store(path)
    message = str(info.value)
    assert message.startswith(f"database {path} belongs to another application (")
    assert shown in message and "GSCSYNC_DB" in message and "\n" not in message
    assert digest(path) == before
    assert [p.name for p in path.parent.iterdir()] == ["app.db"]  # no -wal, no -shm
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    with pytest.raises(ConfigError, match="belongs to another application"):
        open_store_readonly(path)  # status refuses it too
    assert digest(path) == before


@pytest.mark.parametrize("kind", ["empty-file", "no-tables", "only-empty-migrations-table"])
def test_an_empty_database_is_taken(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "g.db"
    path.touch()
    if kind != "empty-file":
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 1")  # a SQLite file with no table
        if kind == "only-empty-migrations-table":  # a first open killed before m001 committed
            conn.execute(
                "CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, "
                "name TEXT, applied_at TEXT)"
            )
        conn.commit()
        conn.close()
    db = open_store(path).db
    assert [m.name for m in migrations.applied(db)] == MIGRATIONS


# -- status in a directory it may not write to --------------------------------------------


def wal_database(directory: Path) -> Path:
    """A gscsync database in WAL mode with one final day, closed cleanly (no -wal left)."""
    path = directory / "g.db"
    store = open_store(path)
    store.write_day(day(2))
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
    assert not Path(f"{path}-wal").exists()
    path.chmod(0o644)
    return path


def read_like_status(path: Path) -> str:
    """What ``gscsync status`` reads, as text; or the error it meets."""
    try:
        with open_store_readonly(path) as store:
            coverage = store.coverage()
            store.recent_runs()
            store.load_breaker()
        return f"ok {coverage[0].days_final} {coverage[0].rows}"
    except Exception as exc:
        return f"error {exc}"


def plain_readonly_open(path: Path) -> str:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT COUNT(*) FROM sync_days").fetchone()
        conn.close()
        return "ok"
    except sqlite3.Error as exc:
        return f"error {exc}"


def run_unprivileged(fn: Callable[[], str]) -> str:
    """``fn()`` where directory permissions hold: here if not root, else in a forked child
    that has become ``nobody`` (root ignores a directory's mode)."""
    if os.geteuid() != 0:
        return fn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, fn().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        out = fh.read().decode()
    os.waitpid(pid, 0)
    return out


@pytest.fixture
def readonly_dir() -> Iterator[Path]:
    """A directory others can enter (tmp_path's parents are private to root), made 0555."""
    directory = Path(tempfile.mkdtemp(prefix="gscsync-ro-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def test_status_reads_a_wal_database_in_a_read_only_directory(readonly_dir: Path) -> None:
    path = wal_database(readonly_dir)
    before = digest(path)
    readonly_dir.chmod(0o555)
    # the failure this guards against is real here: SQLite's own read-only open fails
    assert run_unprivileged(lambda: plain_readonly_open(path)) == (
        "error attempt to write a readonly database"
    )
    assert run_unprivileged(lambda: read_like_status(path)) == "ok 1 2"
    assert digest(path) == before
    assert sorted(p.name for p in readonly_dir.iterdir()) == ["g.db"]


def test_a_read_only_directory_with_a_wal_file_is_refused_not_misread(
    readonly_dir: Path,
) -> None:
    path = wal_database(readonly_dir)
    keep = sqlite3.connect(path)  # a writer that has not checkpointed: the -wal holds data
    keep.execute("PRAGMA wal_autocheckpoint = 0")
    keep.execute("UPDATE sync_days SET rows = 7")
    keep.commit()
    shutil.copy(f"{path}-wal", readonly_dir / "saved-wal")
    keep.close()  # checkpoints and removes the -wal: put the unmerged one back
    shutil.copy(readonly_dir / "saved-wal", f"{path}-wal")
    os.chmod(f"{path}-wal", 0o644)
    readonly_dir.chmod(0o555)
    out = run_unprivileged(lambda: read_like_status(path))
    assert out.startswith(f"error database {path} cannot be read") and "-wal" in out


def test_the_immutable_fallback_is_taken_when_the_first_open_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same code path as above, forced: wherever permissions cannot be made to bite."""
    path = wal_database(tmp_path)
    sqlite3.connect(tmp_path / "other.db").close()
    readonly = sqlite3.connect(f"file:{tmp_path / 'other.db'}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as real:
        readonly.execute("CREATE TABLE t (x)")  # a genuine SQLITE_READONLY error object
    readonly.close()
    uris: list[str] = []
    connect = sqlite3.connect

    def first_open_fails(database: str, **kwargs: Any) -> sqlite3.Connection:
        uri = database
        uris.append(uri)
        if "immutable=1" not in uri:
            raise real.value
        return connect(uri, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", first_open_fails)
    assert read_like_status(path) == "ok 1 2"
    assert uris == [f"file:{path}?mode=ro", f"file:{path}?mode=ro&immutable=1"]
    Path(f"{path}-wal").write_bytes(b"")  # with a -wal file, immutable could misread
    uris.clear()
    assert read_like_status(path).startswith(f"error database {path} cannot be read")
    assert uris == [f"file:{path}?mode=ro"]


# -- the compact detail table (m003): sums, lookups, the view, the writer's ids -----------


def sums_of(store: SqliteStore, date: str = "2026-01-01") -> tuple[int, int] | None:
    row = store.db.execute(
        "SELECT clicks, impressions FROM detail_sums WHERE site_url = ? AND search_type = 'web' "
        "AND date = ?",
        ["sc-domain:a.com", date],
    ).fetchone()
    return None if row is None else (row[0], row[1])


def test_write_day_records_what_the_day_adds_up_to(tmp_path: Path) -> None:
    store = open_store(tmp_path / "g.db")
    data = day(4)
    data.rows[:] = [(f"q{i}", "p", "usa", "MOBILE", i, 10 * i + 1, 0.5, 1.0) for i in range(4)]
    store.write_day(data)
    assert sums_of(store) == (0 + 1 + 2 + 3, 1 + 11 + 21 + 31)
    store.write_day(day(2))  # the day replaced: its sums too
    assert sums_of(store) == (2, 4)
    store.write_day(day(0))
    assert sums_of(store) == (0, 0)
    store.mark_failed(DayTask("sc-domain:a.com", "web", "2026-01-01"), "500")
    assert sums_of(store) == (0, 0)  # the rows stay as they were, so do their sums


def test_status_reads_the_ledger_not_the_detail_rows(tmp_path: Path) -> None:
    """coverage() is exact from the ledger's sums: removing every detail row behind the
    store's back changes nothing (status no longer reads a row per detail row)."""
    store = open_store(tmp_path / "g.db")
    for n, date in enumerate(("2026-01-01", "2026-01-02", "2026-01-04")):
        store.write_day(day(3 + n, date))
    store.write_day(day(9, "2026-01-05", fresh=True))  # not final: not counted
    before = store.coverage()
    assert (before[0].clicks_detail, before[0].impressions_detail) == (3 + 4 + 5, 2 * 12)
    assert (before[0].clicks_total, before[0].impressions_total) == (15, 2 * 12 + 15)
    store.db.execute("DELETE FROM search_analytics_rows")
    store.db.conn.commit()
    assert store.coverage() == before


def test_a_ledger_day_written_by_another_program_is_summed_from_its_rows(tmp_path: Path) -> None:
    """A final day recorded without sums (by hand, another tool) still counts exactly."""
    store = open_store(tmp_path / "g.db")
    store.write_day(day(3))
    conn = store.db.conn
    conn.execute(
        "INSERT INTO search_analytics VALUES "
        "('sc-domain:a.com', 'web', '2026-01-02', 'q', 'p', 'usa', 'MOBILE', 7, 70, 0.1, 1.0)"
    )
    conn.execute(
        "INSERT INTO sync_days VALUES "
        "('sc-domain:a.com', 'web', '2026-01-02', 'final', 1, 0, 'x', 1, NULL)"
    )
    conn.commit()
    coverage = store.coverage()[0]
    assert (coverage.clicks_detail, coverage.impressions_detail) == (3 + 7, 6 + 70)


def plan(path: Path, sql: str, args: list[str]) -> list[str]:
    conn = sqlite3.connect(path)  # a reader of its own, as an analyst's tool
    try:
        return [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    finally:
        conn.close()


def test_one_query_across_all_dates_is_a_seek_not_a_scan(tmp_path: Path) -> None:
    """With the statistics the writer keeps, SQLite finds one query's rows by seeking the
    primary key once per site, type and day (a skip-scan), not by reading the property."""
    path = tmp_path / "g.db"
    store = open_store(path)
    for n in range(30):  # 12,000 rows: past the first statistics
        data = day(0, f"2026-01-{n + 1:02d}")
        data.rows[:] = [
            (f"q{i % 100}", f"p{i // 100}", "usa", "MOBILE", 1, 2, 0.5, 1.0) for i in range(400)
        ]
        store.write_day(data)
    sql = (
        "SELECT date, SUM(clicks) FROM search_analytics WHERE site_url = ? "
        "AND search_type = 'web' AND query = ? GROUP BY date"
    )
    steps = plan(path, sql, ["sc-domain:a.com", "q7"])
    detail = [s for s in steps if s.startswith(("SEARCH r ", "SCAN r"))]
    assert detail == [
        "SEARCH r USING PRIMARY KEY (ANY(site_id) AND ANY(search_type) AND ANY(date) "
        "AND query_id=?)"
    ]
    assert len(store.db.execute(sql, ["sc-domain:a.com", "q7"]).fetchall()) == 30
    stat = store.db.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'search_analytics_rows'")
    # written when the rows reached 10,000 (25 days), from the ledger: rows, per site,
    # per site and type, per day
    assert stat.fetchone()[0].split()[:4] == ["10000", "10000", "10000", "400"]
    for n in range(30, 50):  # doubled: written again
        data.task = DayTask("sc-domain:a.com", "web", f"2026-02-{n - 29:02d}")
        store.write_day(data)
    stat = store.db.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'search_analytics_rows'")
    assert stat.fetchone()[0].split()[0] == "20000"


def test_the_view_takes_writes_from_other_tools(tmp_path: Path) -> None:
    """INSERT, INSERT OR REPLACE, UPDATE and DELETE on search_analytics still work (through
    INSTEAD OF triggers), and never renumber a dictionary entry."""
    path = tmp_path / "g.db"
    store = open_store(path)
    store.write_day(day(2))
    conn = sqlite3.connect(path)
    row = ("sc-domain:b.com", "web", "2026-01-03", "q1", "p", "usa", "DESKTOP", 3, 4, 0.5, None)
    conn.execute("INSERT INTO search_analytics VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
    ids = conn.execute("SELECT * FROM queries ORDER BY id").fetchall()
    conn.execute(
        "INSERT OR REPLACE INTO search_analytics VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (*row[:7], 5, 6, 0.5, 2.0),
    )
    with pytest.raises(sqlite3.IntegrityError):  # the key is unique, as in a table
        conn.execute("INSERT INTO search_analytics VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
    assert conn.execute("SELECT * FROM queries ORDER BY id").fetchall() == ids
    conn.execute("UPDATE search_analytics SET clicks = 9 WHERE site_url = 'sc-domain:b.com'")
    conn.execute("DELETE FROM search_analytics WHERE query = 'q0'")
    conn.commit()
    assert conn.execute("SELECT * FROM search_analytics ORDER BY site_url").fetchall() == [
        ("sc-domain:a.com", "web", "2026-01-01", "q1", "p", "usa", "MOBILE", 1, 2, 0.5, 1.0),
        (*row[:7], 9, 6, 0.5, 2.0),
    ]
    conn.close()


def test_a_day_rolled_back_leaves_no_stale_dictionary_id(tmp_path: Path) -> None:
    """New strings of a day that fails are rolled back with it; the writer then stores
    them again under ids that exist (it never trusts an id from an uncommitted day)."""
    store = open_store(tmp_path / "g.db")
    bad = day(2)
    bad.rows[:] = [("new query", "new page", "usa", "MOBILE", 1, 2, 0.5, 1.0)]
    store.db.execute(
        "CREATE TRIGGER no_day BEFORE INSERT ON daily_totals BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(StorageError):
        store.write_day(bad)
    assert store.db.execute("SELECT COUNT(*) FROM queries").fetchone() == (0,)
    store.db.execute("DROP TRIGGER no_day")
    store.db.execute("INSERT INTO queries (query) VALUES ('someone else')")  # takes the id
    store.db.conn.commit()
    store.write_day(bad)
    assert store.db.execute("SELECT query, page FROM search_analytics").fetchall() == [
        ("new query", "new page")
    ]
