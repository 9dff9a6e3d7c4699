"""Merging a shard's database into another (``gscsync merge``), ledger-aware.

The unit is a ledger entry with the rows it stands for: a ``sync_days`` entry with its
detail rows, ``daily_totals``, ``search_appearance`` and ``detail_sums`` row; a
``report_days`` entry with its report table's rows of that day (the report ``hourly``:
the day's ``hourly_totals`` and ``search_analytics_hourly``). The shard's entry replaces
the merged one when it is ``final`` and the merged one is not, or when both are as final
and the shard's ``fetched_at`` is later; otherwise the merged one stays. So merging the
same shard twice changes nothing, and a shard merged again later brings its newer days.

Rows are written as the store writes them: detail rows by the store's own statements
with the merged database's dictionary ids (:class:`gscsync.store.detail.Ids`), report
rows by :func:`gscsync.store.reports.replace_rows`; the ledger entry is copied as the
shard recorded it (status, rows, truncated, ``fetched_at``, attempts, error). The
shard's ``runs`` are added once each, their origin (``source``: the shard's path, and the
run's id there) kept in ``merged_runs``; a run the shard has updated since (it was still
running) is updated. One shard is one transaction: a failure leaves the merged
database as it was before that shard.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

from gscsync.errors import ConfigError
from gscsync.models import HOURLY
from gscsync.store import reports
from gscsync.store.detail import (
    DELETE_ROWS,
    DICTIONARIES,
    INSERT_ROWS,
    ROWS,
    Ids,
    write_statistics,
)
from gscsync.store.reports import HOURLY_ROWS, HOURLY_TOTALS, LAYOUTS, Layout
from gscsync.store.sqlite import RUN_COLUMNS, SqliteStore, storage_error, utcnow

LEDGER = "status, rows, truncated, fetched_at, attempts, error"
DAY_TABLES = ("daily_totals", "search_appearance", "detail_sums")  # keyed by site, type, date
# a day's detail rows as stored, the query and page as the shard's dictionary ids
DETAIL = (
    "SELECT query_id, page_id, country, device, clicks, impressions, ctr, position "
    f"FROM {ROWS} WHERE site_id = (SELECT id FROM site_urls WHERE site_url = ?) "
    "AND search_type = ? AND date = ?"
)
CREATE_MERGED_RUNS = """CREATE TABLE IF NOT EXISTS merged_runs (
   run_id INTEGER PRIMARY KEY,
   source TEXT NOT NULL,
   source_id INTEGER NOT NULL,
   merged_at TEXT NOT NULL,
   UNIQUE (source, source_id)
)"""
RUN_VALUES = RUN_COLUMNS.removeprefix("id, ")  # every column but the id
PAGE_TOTALS = (
    "UPDATE daily_totals SET page_clicks = ?, page_impressions = ? "
    "WHERE site_url = ? AND search_type = ? AND date = ? AND EXISTS (SELECT 1 FROM sync_days d "
    "WHERE d.site_url = daily_totals.site_url AND d.search_type = daily_totals.search_type "
    "AND d.date = daily_totals.date AND d.status = ? AND d.fetched_at IS ?)"
)

CHUNK = 500  # ids per IN (...) read of a dictionary
ID_MAP_LIMIT = 1_000_000  # mapped ids kept per dictionary before the map starts over
Entry = tuple[Any, ...]  # a ledger entry after its key: the columns of LEDGER


class MergeCounts(NamedTuple):
    """What merging one shard did."""

    days: int = 0  # sync_days entries taken
    days_seen: int = 0  # sync_days entries the shard has
    report_days: int = 0  # report_days entries taken
    report_days_seen: int = 0
    rows: int = 0  # detail and report rows written
    runs_added: int = 0
    runs_updated: int = 0


def wins(theirs: Entry, ours: Entry | None) -> bool:
    """Whether the shard's entry replaces the merged one: a ``final`` day beats a
    ``fresh`` or ``failed`` one; between two as final, the later ``fetched_at`` wins; a
    tie keeps the merged one (so merging again changes nothing)."""
    if ours is None:
        return True
    return (theirs[0] == "final", theirs[3] or "") > (ours[0] == "final", ours[3] or "")


def merge_shard(out: SqliteStore, shard: SqliteStore, source: str) -> MergeCounts:
    """Merge ``shard`` into ``out`` in one transaction; ``source`` names the shard in
    ``merged_runs``. A shard that cannot be read raises ConfigError; what the merged
    database refuses, StorageError; either leaves ``out`` as it was."""
    reader = _Reader(shard.db.conn, source)
    conn, ids = out.db.conn, Ids()
    try:
        reader.begin()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = _Merge(reader, conn, ids, source).run()
                conn.execute("COMMIT")
            except BaseException:
                ids.rollback()
                _rollback(conn)
                raise
            ids.commit()
        finally:
            reader.end()
    except (sqlite3.DatabaseError, OSError) as exc:
        if isinstance(exc, sqlite3.ProgrammingError):
            raise
        raise storage_error(exc, out.path, out.busy_timeout_ms) from exc
    return counts


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # SQLite rolls back an interrupted transaction itself


class _Reader:
    """Reads of the shard, in one read transaction (one snapshot, even while a sync
    writes it); what SQLite cannot read is a ConfigError naming the shard."""

    def __init__(self, conn: sqlite3.Connection, source: str) -> None:
        self.conn, self.source = conn, source

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.ProgrammingError):
                raise
            raise ConfigError(f"shard {self.source} cannot be read: {exc}") from None

    def begin(self) -> None:
        self.rows("BEGIN")
        self.rows("SELECT COUNT(*) FROM sync_days")  # the snapshot starts here

    def end(self) -> None:
        _rollback(self.conn)


class _Merge:
    """One shard into the merged database, inside its transaction."""

    def __init__(self, read: _Reader, conn: sqlite3.Connection, ids: Ids, source: str) -> None:
        self.read, self.conn, self.ids, self.source = read, conn, ids, source
        self.taken: set[tuple[str, str, str]] = set()  # the sync_days entries taken
        self.rows = 0
        self.columns = {t: _columns(conn, t) for t in DAY_TABLES}
        # the shard's dictionary ids -> the merged database's, per dictionary table
        self.id_map: dict[str, dict[int, int]] = {"queries": {}, "pages": {}}

    def run(self) -> MergeCounts:
        days, days_seen = self._ledger("sync_days", ("date",), self._take_day)
        reports_taken, reports_seen = self._ledger(
            "report_days", ("report", "date"), self._take_report_day
        )
        added, updated = self._runs()
        if self.rows or days:
            write_statistics(self.conn)  # the planner's view of the detail table
        return MergeCounts(days, days_seen, reports_taken, reports_seen, self.rows, added, updated)

    def _ledger(
        self, table: str, keys: tuple[str, ...], take: Callable[[str, str, Any, Entry], None]
    ) -> tuple[int, int]:
        """Walk the shard's ledger ``table`` one site and type at a time and take each
        entry that wins over the merged one; returns (entries taken, entries seen)."""
        names, width = ", ".join(keys), len(keys)
        taken = seen = 0
        for site, stype in self.read.rows(f"SELECT DISTINCT site_url, search_type FROM {table}"):
            sql = f"SELECT {names}, {LEDGER} FROM {table} WHERE site_url = ? AND search_type = ?"
            ours = {
                tuple(r[:width]): tuple(r[width:])
                for r in self.conn.execute(sql, (site, stype)).fetchall()
            }
            for row in self.read.rows(f"{sql} ORDER BY {names}", (site, stype)):
                seen += 1
                key, entry = tuple(row[:width]), tuple(row[width:])
                if wins(entry, ours.get(key)):
                    take(site, stype, key, entry)
                    taken += 1
        return taken, seen

    def _take_day(self, site: str, stype: str, key: tuple[str], entry: Entry) -> None:
        """One sync_days entry with its detail rows, totals, appearances and sums."""
        conn, ids = self.conn, self.ids
        day = key[0]
        stored = self.read.rows(DETAIL, (site, stype, day))
        queries, pages = {r[0] for r in stored}, {r[1] for r in stored}
        qid, pid = self._ids("queries", queries), self._ids("pages", pages)
        site_id = ids.get(conn, "site_urls", (site,))[site]
        if not (queries <= qid.keys() and pages <= pid.keys()):
            stored = [r for r in stored if r[0] in qid and r[1] in pid]  # as the view shows
        rows = [
            (site_id, stype, day, qid[q], pid[p], country, device, clicks, imps, ctr, position)
            for q, p, country, device, clicks, imps, ctr, position in stored
        ]
        conn.execute(DELETE_ROWS, (site_id, stype, day))
        conn.executemany(INSERT_ROWS, rows)
        for table, columns in self.columns.items():
            where = "WHERE site_url = ? AND search_type = ? AND date = ?"
            conn.execute(f"DELETE FROM {table} {where}", (site, stype, day))
            values = self.read.rows(f"SELECT {columns} FROM {table} {where}", (site, stype, day))
            marks = ", ".join("?" * (columns.count(",") + 1))
            conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)
        conn.execute(
            f"INSERT OR REPLACE INTO sync_days (site_url, search_type, date, {LEDGER}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (site, stype, day, *entry),
        )
        self.taken.add((site, stype, day))
        self.rows += len(rows)

    def _ids(self, table: str, shard_ids: set[int]) -> dict[int, int]:
        """The merged database's ids of the shard's dictionary ids ``shard_ids`` (those
        the shard's dictionary holds), created as need be by the store's writer."""
        known = self.id_map[table]
        if len(known) > ID_MAP_LIMIT:
            known.clear()
        missing = list(shard_ids - known.keys())
        column = DICTIONARIES[table]
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            marks = ", ".join("?" * len(chunk))
            texts = self.read.rows(f"SELECT id, {column} FROM {table} WHERE id IN ({marks})", chunk)
            ours = self.ids.get(self.conn, table, {text for _, text in texts})
            known.update((shard_id, ours[text]) for shard_id, text in texts)
        return known

    def _take_report_day(self, site: str, stype: str, key: tuple[str, str], entry: Entry) -> None:
        """One report_days entry with its report's rows of the day."""
        report, day = key
        layouts: tuple[Layout, ...]
        if report == HOURLY:
            layouts = (HOURLY_TOTALS, HOURLY_ROWS)
        elif report in LAYOUTS:
            layouts = (LAYOUTS[report],)
        else:
            raise ConfigError(
                f"shard {self.source} records the report {report!r}, which this gscsync "
                "does not know; merge with the gscsync that wrote it"
            )
        for layout in layouts:
            rows = self.read.rows(*_day_rows(layout, site, stype, day))
            reports.replace_rows(self.conn, self.ids, layout, (site, stype, day), rows)
            self.rows += len(rows)
        self.conn.execute(
            f"INSERT OR REPLACE INTO report_days (site_url, search_type, report, date, {LEDGER}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (site, stype, report, day, *entry),
        )
        if (site, stype, day) not in self.taken:
            self._page_totals(site, stype, day)

    def _page_totals(self, site: str, stype: str, day: str) -> None:
        """A report written after its day's detail may have set the day's by-page totals:
        they follow when the merged day's detail came from this shard (same entry)."""
        found = self.read.rows(
            "SELECT t.page_clicks, t.page_impressions, d.status, d.fetched_at FROM daily_totals t "
            "JOIN sync_days d USING (site_url, search_type, date) "
            "WHERE t.site_url = ? AND t.search_type = ? AND t.date = ?",
            (site, stype, day),
        )
        if found and found[0][0] is not None:
            clicks, impressions, status, fetched_at = found[0]
            self.conn.execute(
                PAGE_TOTALS, (clicks, impressions, site, stype, day, status, fetched_at)
            )

    def _runs(self) -> tuple[int, int]:
        """Each of the shard's runs once, with its origin; returns (added, updated)."""
        conn = self.conn
        conn.execute(CREATE_MERGED_RUNS)
        known = dict(
            conn.execute(
                "SELECT source_id, run_id FROM merged_runs WHERE source = ?", (self.source,)
            ).fetchall()
        )
        marks = ", ".join("?" * (RUN_VALUES.count(",") + 1))
        added = updated = 0
        for source_id, *values in self.read.rows(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY id"):
            run_id = known.get(source_id)
            if run_id is None:
                cursor = conn.execute(f"INSERT INTO runs ({RUN_VALUES}) VALUES ({marks})", values)
                conn.execute(
                    "INSERT INTO merged_runs (run_id, source, source_id, merged_at) "
                    "VALUES (?, ?, ?, ?)",
                    (cursor.lastrowid, self.source, source_id, utcnow()),
                )
                added += 1
                continue
            current = conn.execute(f"SELECT {RUN_VALUES} FROM runs WHERE id = ?", (run_id,))
            row = current.fetchone()
            if row is not None and list(row) != values:  # None: pruned from the merged runs
                sets = ", ".join(f"{c.strip()} = ?" for c in RUN_VALUES.split(","))
                conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values, run_id))
                updated += 1
        return added, updated


def _columns(conn: sqlite3.Connection, table: str) -> str:
    """The columns of ``table`` in the merged database (the shard's are the same: both
    are at this gscsync's schema)."""
    return ", ".join(str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})").fetchall())


def _day_rows(layout: Layout, site: str, stype: str, day: str) -> tuple[str, tuple[str, ...]]:
    """The SELECT of one day of ``layout``'s table as :func:`reports.replace_rows` takes
    its rows: the key columns after site, type (and for an hour table the hour), then the
    metrics."""
    metrics = ("clicks", "impressions", "ctr", "position")
    where = "site_url = ? AND search_type = ?"
    if layout.time == "hour":
        following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        columns = ", ".join((layout.time, *layout.dims, *metrics))
        sql = f"SELECT {columns} FROM {layout.name} WHERE {where} AND hour >= ? AND hour < ?"
        return sql, (site, stype, day, following)
    columns = ", ".join((*layout.dims, *metrics))
    return f"SELECT {columns} FROM {layout.name} WHERE {where} AND date = ?", (site, stype, day)
