"""The detail rows, stored compactly (migration m003), and what goes with them.

``search_analytics`` keeps its SPEC name and columns as a view; the rows live in
``search_analytics_rows`` (``WITHOUT ROWID``, clustered on the primary key), with the long
strings replaced by ids into dictionary tables that hold each one once: ``site_urls
(id, site_url)``, ``queries (id, query)``, ``pages (id, page)``. ``INSTEAD OF`` triggers
keep ``INSERT``/``UPDATE``/``DELETE`` on the view working for other tools; the store
writes the tables directly. ``detail_sums`` holds what each stored day's rows add up to,
written with the day, so ``status`` never reads the rows.

No secondary index: with the statistics :class:`Statistics` keeps current, SQLite looks
up one query across dates by a skip-scan of the primary key (one seek per site, type
and day instead of a scan), and an index on the query or the page costs more than it
saves (``benchmarks/bench_store.py`` measures both).

gscsync never deletes a dictionary entry (do not either: a row naming a missing id drops
out of the view), so an id never changes or comes back, and a cache of committed ids
stays true.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable

from sqlite_utils import Database

from gscsync.store.tables import LEDGER_TABLES, NOT_NULL_EXTRA

log = logging.getLogger("gscsync")

ROWS = "search_analytics_rows"
# dictionary table -> its text column (ROWS names an entry by its id: site_id, ...)
DICTIONARIES = {"site_urls": "site_url", "queries": "query", "pages": "page"}
ROW_COLUMNS = (
    "site_id, search_type, date, query_id, page_id, country, device, "
    "clicks, impressions, ctr, position"
)
CREATE_ROWS = f"""CREATE TABLE {ROWS} (
   site_id INTEGER NOT NULL REFERENCES site_urls (id),
   search_type TEXT NOT NULL,
   date TEXT NOT NULL,
   query_id INTEGER NOT NULL REFERENCES queries (id),
   page_id INTEGER NOT NULL REFERENCES pages (id),
   country TEXT NOT NULL,
   device TEXT NOT NULL,
   clicks INTEGER,
   impressions INTEGER,
   ctr REAL,
   position REAL,
   PRIMARY KEY (site_id, search_type, date, query_id, page_id, country, device)
) WITHOUT ROWID"""
CREATE_SUMS = """CREATE TABLE detail_sums (
   site_url TEXT NOT NULL,
   search_type TEXT NOT NULL,
   date TEXT NOT NULL,
   clicks INTEGER NOT NULL,
   impressions INTEGER NOT NULL,
   PRIMARY KEY (site_url, search_type, date)
) WITHOUT ROWID"""
CREATE_VIEW = f"""CREATE VIEW search_analytics AS SELECT
   s.site_url AS site_url, r.search_type AS search_type, r.date AS date,
   q.query AS query, p.page AS page, r.country AS country, r.device AS device,
   r.clicks AS clicks, r.impressions AS impressions, r.ctr AS ctr, r.position AS position
FROM {ROWS} r
JOIN site_urls s ON s.id = r.site_id
JOIN queries q ON q.id = r.query_id
JOIN pages p ON p.id = r.page_id"""
# what the store's writer runs, prepared once per connection by sqlite3's statement cache
INSERT_ROWS = f"INSERT INTO {ROWS} ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
DELETE_ROWS = f"DELETE FROM {ROWS} WHERE site_id = ? AND search_type = ? AND date = ?"
UPSERT_SUMS = (
    "INSERT OR REPLACE INTO detail_sums (site_url, search_type, date, clicks, impressions, "
    "split_requests, recovered) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SUM_DAY = (
    "INSERT OR REPLACE INTO detail_sums (site_url, search_type, date, clicks, impressions) "
    "SELECT ?, ?, ?, COALESCE(SUM(clicks), 0), COALESCE(SUM(impressions), 0) "
    f"FROM {ROWS} WHERE site_id = ? AND search_type = ? AND date = ?"
)


def _id_of(table: str, value: str) -> str:
    column = DICTIONARIES[table]
    return f"(SELECT id FROM {table} WHERE {column} = {value})"


def _ensure(table: str, value: str) -> str:
    # never a conflict: an outer INSERT OR REPLACE must not renumber a dictionary entry
    column = DICTIONARIES[table]
    return (
        f"INSERT INTO {table} ({column}) SELECT {value} "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {column} = {value});"
    )


def _trigger_sql() -> list[str]:
    def insert(new: str) -> str:
        ensure = " ".join(_ensure(t, f"{new}.{c}") for t, c in DICTIONARIES.items())
        values = (
            f"{_id_of('site_urls', f'{new}.site_url')}, {new}.search_type, {new}.date, "
            f"{_id_of('queries', f'{new}.query')}, {_id_of('pages', f'{new}.page')}, "
            f"{new}.country, {new}.device, {new}.clicks, {new}.impressions, {new}.ctr, "
            f"{new}.position"
        )
        return f"{ensure} INSERT INTO {ROWS} ({ROW_COLUMNS}) VALUES ({values});"

    delete = (
        f"DELETE FROM {ROWS} WHERE site_id = {_id_of('site_urls', 'OLD.site_url')} "
        "AND search_type = OLD.search_type AND date = OLD.date "
        f"AND query_id = {_id_of('queries', 'OLD.query')} "
        f"AND page_id = {_id_of('pages', 'OLD.page')} "
        "AND country = OLD.country AND device = OLD.device;"
    )
    return [
        "CREATE TRIGGER search_analytics_insert INSTEAD OF INSERT ON search_analytics "
        f"BEGIN {insert('NEW')} END",
        f"CREATE TRIGGER search_analytics_delete INSTEAD OF DELETE ON search_analytics "
        f"BEGIN {delete} END",
        "CREATE TRIGGER search_analytics_update INSTEAD OF UPDATE ON search_analytics "
        f"BEGIN {delete} {insert('NEW')} END",
    ]


# -- migration m003 -------------------------------------------------------------------------


def upgrade(db: Database) -> None:
    """m003: every detail row into the compact layout, the day sums backfilled, the small
    tables rebuilt ``WITHOUT ROWID``. It runs inside the migration's one transaction: a
    kill leaves the old tables as they were, and the next open runs it again."""
    conn = db.conn
    started = time.monotonic()
    groups = conn.execute(
        "SELECT site_url, search_type, date, COUNT(*) FROM search_analytics "
        "GROUP BY site_url, search_type, date ORDER BY site_url, search_type, date"
    ).fetchall()
    total = sum(int(g[3]) for g in groups)
    if total:  # a new database has nothing to say
        log.info("upgrading the database: %s detail rows to the compact layout", f"{total:,}")
    for table, column in DICTIONARIES.items():
        conn.execute(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {column} TEXT NOT NULL UNIQUE)"
        )
    conn.execute(CREATE_ROWS)
    conn.execute(CREATE_SUMS)
    progress = _Progress(total)
    for site, stype, day, count in groups:
        copy_day(conn, (site, stype, day))
        progress.add(int(count))
    conn.execute("DROP TABLE search_analytics")
    for sql in (CREATE_VIEW, *_trigger_sql()):
        conn.execute(sql)
    for table in LEDGER_TABLES:
        rebuild_without_rowid(db, table)
    # a ledger day with no detail row adds up to zero
    conn.execute(
        "INSERT OR IGNORE INTO detail_sums (site_url, search_type, date, clicks, impressions) "
        "SELECT site_url, search_type, date, 0, 0 FROM sync_days"
    )
    write_statistics(conn)
    if total:
        log.info("database upgraded in %.1f s", time.monotonic() - started)


def copy_day(conn: sqlite3.Connection, key: tuple[str, str, str]) -> None:
    """Copy one site × type × day from the old ``search_analytics`` table, in key order
    (so the new pages fill up), and record what it adds up to."""
    where = "site_url = ? AND search_type = ? AND date = ?"
    conn.execute("INSERT OR IGNORE INTO site_urls (site_url) VALUES (?)", key[:1])
    for table, column in DICTIONARIES.items():
        if table != "site_urls":
            conn.execute(
                f"INSERT OR IGNORE INTO {table} ({column}) "
                f"SELECT {column} FROM search_analytics WHERE {where}",
                key,
            )
    conn.execute(
        f"INSERT INTO {ROWS} ({ROW_COLUMNS}) SELECT s.id, o.search_type, o.date, q.id, p.id, "
        "o.country, o.device, o.clicks, o.impressions, o.ctr, o.position "
        "FROM search_analytics o JOIN site_urls s ON s.site_url = o.site_url "
        "JOIN queries q ON q.query = o.query JOIN pages p ON p.page = o.page "
        "WHERE o.site_url = ? AND o.search_type = ? AND o.date = ? "
        "ORDER BY q.id, p.id, o.country, o.device",
        key,
    )
    site_id = conn.execute("SELECT id FROM site_urls WHERE site_url = ?", key[:1]).fetchone()[0]
    conn.execute(SUM_DAY, (*key, site_id, *key[1:]))


class _Progress:
    """A log line at every tenth of the rows copied, and at the end."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.shown = total, 0, 0

    def add(self, rows: int) -> None:
        self.done += rows
        tenth = 10 if not self.total else self.done * 10 // self.total
        if tenth > self.shown or self.done == self.total:
            self.shown = tenth
            log.info(
                "upgrading search_analytics: %s/%s rows copied (%d%%)",
                f"{self.done:,}",
                f"{self.total:,}",
                100 * self.done // self.total if self.total else 100,
            )


def rebuild_without_rowid(db: Database, table: str) -> None:
    """Rebuild a ledger table ``WITHOUT ROWID``: the same columns, rows and indexes."""
    sql = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchone()[0]
    if "WITHOUT ROWID" in sql.upper():
        return
    indexes = [i for i in db.table(table).indexes if not i.name.startswith("sqlite_")]
    columns, pk = LEDGER_TABLES[table]
    old = f"_{table}_rowid"
    db.execute(f"ALTER TABLE {table} RENAME TO {old}")
    create = db.create_table_sql(
        table, columns, pk=pk, not_null={*pk, *NOT_NULL_EXTRA.get(table, ())}
    )
    db.execute(create.strip().rstrip(";") + " WITHOUT ROWID")
    names = ", ".join(columns)
    db.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")
    db.execute(f"DROP TABLE {old}")
    for index in indexes:
        db.table(table).create_index(index.columns, index_name=index.name, unique=index.unique)


# -- the writer's dictionary ids -----------------------------------------------------------


class Ids:
    """Text -> id for the dictionary tables. Ids committed are cached (bounded); ids a
    transaction creates wait in ``pending`` until :meth:`commit` (dropped by
    :meth:`rollback`), so the cache never names an id the database does not hold."""

    LIMIT = 500_000  # cached strings per dictionary before the cache starts over

    def __init__(self) -> None:
        self.known: dict[str, dict[str, int]] = {t: {} for t in DICTIONARIES}
        self.pending: dict[str, dict[str, int]] = {t: {} for t in DICTIONARIES}

    def get(self, conn: sqlite3.Connection, table: str, values: Iterable[str]) -> dict[str, int]:
        """The ids of ``values`` (distinct), creating those not in the table yet. Call it
        inside the write transaction."""
        known, pending = self.known[table], self.pending[table]
        out: dict[str, int] = {}
        missing: list[str] = []
        for value in values:
            found = known.get(value)
            if found is None:
                found = pending.get(value)
            if found is None:
                missing.append(value)
            else:
                out[value] = found
        if missing:
            column = DICTIONARIES[table]
            select = f"SELECT id FROM {table} WHERE {column} = ?"
            insert = f"INSERT INTO {table} ({column}) VALUES (?)"
            for value in missing:
                row = conn.execute(select, (value,)).fetchone()
                if row is not None:
                    out[value] = known[value] = row[0]
                else:
                    out[value] = pending[value] = int(conn.execute(insert, (value,)).lastrowid or 0)
        return out

    def commit(self) -> None:
        for table, pending in self.pending.items():
            known = self.known[table]
            if len(known) + len(pending) > self.LIMIT:
                known.clear()
            known.update(pending)
            pending.clear()

    def rollback(self) -> None:
        for pending in self.pending.values():
            pending.clear()


# -- the planner's statistics --------------------------------------------------------------

MIN_STATISTICS_ROWS = 10_000
STATISTICS_SAMPLE = 5_000


def written_statistics(conn: sqlite3.Connection) -> int:
    """The row count the planner's statistics of the detail table were written for."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).fetchone():
        return 0
    row = conn.execute(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = ? AND idx = ?", [ROWS, ROWS]
    ).fetchone()
    return int(str(row[0]).split()[0]) if row else 0


def write_statistics(conn: sqlite3.Connection) -> int:
    """Write ``sqlite_stat1`` for the detail table as ``ANALYZE`` would, without reading
    the table: the counts from the ledger, the repeats within a day from a sample of its
    largest day.
    Returns the row count written for (0: none, the table is empty). Call it inside a
    write transaction."""
    rows, days, sites, pairs = conn.execute(
        "SELECT COALESCE(SUM(rows), 0), COUNT(*), COUNT(DISTINCT site_url), "
        "(SELECT COUNT(*) FROM (SELECT DISTINCT site_url, search_type FROM sync_days "
        "WHERE rows > 0)) FROM sync_days WHERE rows > 0"
    ).fetchone()
    sample = conn.execute(
        "SELECT u.id, d.search_type, d.date FROM sync_days d JOIN site_urls u "
        "ON u.site_url = d.site_url ORDER BY d.rows DESC LIMIT 1"
    ).fetchone()
    if not rows or sample is None:
        return 0
    # the first rows (in key order) of the largest day: how often a query, a query and
    # page, a query, page and country repeat within a day
    sampled, *distinct = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT query_id), COUNT(DISTINCT query_id || ',' || page_id), "
        "COUNT(DISTINCT query_id || ',' || page_id || ',' || country) FROM (SELECT query_id, "
        f"page_id, country FROM {ROWS} WHERE site_id = ? AND search_type = ? AND date = ? "
        f"LIMIT {STATISTICS_SAMPLE})",
        sample,
    ).fetchone()
    per = [rows, rows / sites, rows / pairs, rows / days] + [sampled / max(n, 1) for n in distinct]
    stat = " ".join(str(max(1, round(x))) for x in per) + " 1"
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).fetchone():
        conn.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1, reads no table
    conn.execute("DELETE FROM sqlite_stat1 WHERE tbl = ? AND idx = ?", [ROWS, ROWS])
    conn.execute("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", [ROWS, ROWS, stat])
    return int(rows)


class Statistics:
    """Keeps the planner's statistics of the detail table current: rewritten (in a few
    milliseconds, see :func:`write_statistics`) each time the rows have doubled, from
    10,000 rows. Knowing the real shape of the data (thousands of rows per site, type and
    day) the planner finds one query across all dates by a skip-scan of the primary key,
    one seek per site, type and day, where without them it scans the whole property."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.written = written_statistics(conn)
        self.rows = int(conn.execute("SELECT COALESCE(SUM(rows), 0) FROM sync_days").fetchone()[0])

    def wrote(self, conn: sqlite3.Connection, rows: int) -> None:
        self.rows += rows
        if self.rows < max(2 * self.written, MIN_STATISTICS_ROWS):
            return
        self.written = self.rows
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self.written = write_statistics(conn) or self.rows
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # statistics are a hint: never fail a sync for them
            log.debug("planner statistics not written: %s", exc)
