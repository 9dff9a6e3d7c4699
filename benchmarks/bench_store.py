"""Benchmark: the SQLite store on synthetic rows shaped like the emulator's (about 600
queries, 50 pages, 8 countries and 3 devices per property and day). Run by hand, not in
CI; prints medians of several runs.

1. bytes per detail row at 1M rows: the old schema (m001: a rowid table and its 7-column
   primary-key index), the plain alternative (the same table WITHOUT ROWID) and the
   current one (dictionary tables behind the view, WITHOUT ROWID), what each object
   costs, the analyst questions on each, what a query or a page lookup index would add,
   and the upgrade (migration m003) of the old database: its time, the file before and
   after VACUUM;
2. ingest: ``write_day`` rows/s against the floor, plain ``executemany`` of the same rows
   (as the id tuples the table holds, dictionaries filled beforehand) into the same
   tables in one transaction per day, and their ratio; for reference the floor with
   either lookup index, the old schema's and the plain table's executemany;
3. ``status`` (open, coverage, runs, breaker) on a 2.5M-row and a 10M-row database
   (built with bulk inserts), and the old code's detail scan at 2.5M rows;
4. the analyst questions on the same databases: clicks per day from daily_totals, the top
   100 queries over 28 days, one query's clicks across all dates (and one page's, with
   and without a page index), with the plan step over the detail rows.

Usage: python benchmarks/bench_store.py [--runs 3] [--rows 1000000] [--big 10000000]
"""

from __future__ import annotations

import argparse
import logging
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gscsync.emulator.data import COUNTRIES, DEVICES, N_PAGES, N_QUERIES, WORDS
from gscsync.models import AppearanceRow, DayData, DayTask, DetailRow, Totals
from gscsync.store import open_store, open_store_readonly
from gscsync.store.detail import INSERT_ROWS, ROWS, write_statistics
from gscsync.store.schema import migrations

QUERIES = [
    f"{WORDS[q % len(WORDS)]} {WORDS[(q * 7 + 3) % len(WORDS)]} {q}" for q in range(N_QUERIES)
]
SPACE = N_QUERIES * N_PAGES * len(COUNTRIES) * len(DEVICES)
START = date(2024, 1, 1)
# lookup indexes measured, not kept: their cost against the skip-scan of the primary key
CANDIDATE_INDEXES = {
    "by_query": "site_id, search_type, query_id, date",
    "by_page": "site_id, search_type, page_id, date",
}
OLD_DETAIL = (
    "INSERT INTO search_analytics (site_url, search_type, date, query, page, country, device, "
    "clicks, impressions, ctr, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def site(n: int) -> str:
    return f"sc-domain:example{n}.com"


def pages(site_url: str, stype: str) -> list[str]:
    host = site_url.removeprefix("sc-domain:")
    return [f"https://{host}/{stype.lower()}/p{p}" for p in range(N_PAGES)]


def day_rows(rng: random.Random, site_url: str, stype: str, n: int) -> list[DetailRow]:
    """One day's detail rows, drawn like the emulator's (every combination at most once)."""
    page_list = pages(site_url, stype)
    rows = []
    for i in rng.sample(range(SPACE), n):
        q, rest = i % N_QUERIES, i // N_QUERIES
        p, rest = rest % N_PAGES, rest // N_PAGES
        c, d = rest % len(COUNTRIES), rest // len(COUNTRIES)
        impressions = max(1, int(rng.paretovariate(1.2) * 20))
        clicks = int(impressions * rng.uniform(0, 0.3))
        rows.append(
            DetailRow(
                QUERIES[q],
                page_list[p],
                COUNTRIES[c],
                DEVICES[d],
                clicks,
                impressions,
                round(clicks / impressions, 4),
                round(rng.uniform(1, 60), 2),
            )
        )
    return rows


def days_of(sites: int, days: int, per_day: int, seed: int = 1) -> Iterator[DayData]:
    """``sites`` web properties x ``days`` days of ``per_day`` rows, newest day first."""
    rng = random.Random(seed)
    for n in range(days):
        day = (START + timedelta(days=days - 1 - n)).isoformat()
        for s in range(sites):
            rows = day_rows(rng, site(s), "web", per_day)
            clicks, impressions = sum(r.clicks for r in rows), sum(r.impressions for r in rows)
            yield DayData(
                DayTask(site(s), "web", day),
                rows,
                appearance=[
                    AppearanceRow("VIDEO", 3, 30, 0.1, 4.0),
                    AppearanceRow("AMP_BLUE_LINK", 1, 9, 0.11, 7.5),
                ],
                totals=Totals(clicks + 7, impressions + 70, 0.05, 9.5),
            )


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def file_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


def objects(path: Path) -> dict[str, int]:
    """Bytes per table or index (dbstat), the free pages as ``(free)``."""
    conn = sqlite3.connect(path)
    out = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    out["(free)"] = conn.execute("PRAGMA freelist_count").fetchone()[0] * page
    conn.close()
    return out


def old_database(path: Path) -> Database:
    """A database with the schema before m003 (the real m001 and m002)."""
    db = Database(path)
    db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    migrations.apply(db, stop_before="m003_compact_detail")
    return db


def old_write(db: Database, data: DayData) -> None:
    """What write_day did before m003: executemany into the rowid tables."""
    t = data.task
    key = (t.site_url, t.search_type, t.date)
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(OLD_DETAIL, [key + tuple(r) for r in data.rows])
    conn.executemany(
        "INSERT INTO search_appearance VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [key + tuple(r) for r in data.appearance],
    )
    conn.execute(
        "INSERT OR REPLACE INTO daily_totals VALUES (?, ?, ?, ?, ?, ?, ?)", key + tuple(data.totals)
    )
    conn.execute(
        "INSERT OR REPLACE INTO sync_days VALUES (?, ?, ?, 'final', ?, 0, 'x', 1, NULL)",
        (*key, len(data.rows)),
    )
    conn.execute("COMMIT")


# -- 1. bytes per row ------------------------------------------------------------------------


def plain_database(path: Path) -> Database:
    """The alternative to dictionaries: the SPEC table as it is, WITHOUT ROWID."""
    db = old_database(path)
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'search_analytics'").fetchone()[0]
    db.execute("DROP TABLE search_analytics")
    db.execute(f"{sql} WITHOUT ROWID")
    return db


def sizes(tmp: Path, rows: int, runs: int) -> None:
    per_day, n_sites = 5000, 2
    n_days = rows // per_day // n_sites
    data = list(days_of(n_sites, n_days, per_day))
    total = sum(len(d.rows) for d in data)
    shape = f"{n_sites} properties x {n_days} days x {per_day:,}"
    print(f"\n1. bytes per detail row, {total:,} rows ({shape}), and the questions on each")
    old_path, plain_path, new_path = tmp / "old.db", tmp / "plain.db", tmp / "new.db"
    for path, make in ((old_path, old_database), (plain_path, plain_database)):
        db = make(path)
        for d in data:
            old_write(db, d)
        if path == plain_path:
            db.execute("ANALYZE")  # the same planner statistics the store keeps
        db.close()
    with open_store(new_path) as store:
        for d in data:
            store.write_day(d)
    for label, path in (
        ("old schema (m001, rowid)", old_path),
        ("plain WITHOUT ROWID, no dictionary", plain_path),
        ("current, written by write_day", new_path),
    ):
        size = file_bytes(path)
        print(f"   {label:36s} {size / total:7.1f} B/row  ({size / 1e6:,.0f} MB)")
        for name, b in sorted(objects(path).items(), key=lambda kv: -kv[1])[:3]:
            print(f"      {name:40s} {b / total:7.1f} B/row")
        conn = sqlite3.connect(path)
        for name, (sql, args) in questions(n_days).items():
            took = timed(max(runs, 5), partial(fetch, conn, sql, args))
            print(f"      {name:38s} {took * 1000:8.2f} ms")
        conn.close()
    conn = sqlite3.connect(new_path)
    for name, columns in CANDIDATE_INDEXES.items():
        started = time.perf_counter()
        conn.execute(f"CREATE INDEX {name} ON {ROWS} ({columns})")
        conn.commit()
        cost = objects(new_path)[name]
        print(
            f"   an index {name} would add {cost / total:5.1f} B/row "
            f"(built in {time.perf_counter() - started:.1f} s)"
        )
        conn.execute(f"DROP INDEX {name}")
        conn.commit()
    conn.close()
    logging.basicConfig(level=logging.INFO, format="      log: %(message)s")
    before = file_bytes(old_path)
    started = time.perf_counter()
    open_store(old_path).close()
    took = time.perf_counter() - started
    logging.getLogger().setLevel(logging.WARNING)
    after = file_bytes(old_path)
    conn = sqlite3.connect(old_path)
    conn.execute("VACUUM")
    conn.close()
    vacuumed = file_bytes(old_path)
    print(
        f"   upgrade (m003) of the old database: {took:.1f} s ({total / took:,.0f} rows/s); "
        f"file {before / 1e6:,.0f} MB -> {after / 1e6:,.0f} MB, "
        f"{vacuumed / 1e6:,.0f} MB after VACUUM ({vacuumed / total:.1f} B/row)"
    )


# -- 2. ingest -------------------------------------------------------------------------------


def ingest(tmp: Path, runs: int) -> None:
    print(f"\n2. ingest rows/s (median of {runs} runs, interleaved; each a fresh database)")
    variants: dict[str, Callable[[Path, list[DayData]], float]] = {
        "write_day": _write_day,
        "floor": _floor,
        "floor + by_query": partial(_floor, index="by_query"),
        "floor + by_page": partial(_floor, index="by_page"),
        "old schema": partial(_old, make=old_database),
        "plain": partial(_old, make=plain_database),
    }
    for per_day, n_days in ((5000, 60), (50_000, 6)):
        data = list(days_of(1, n_days, per_day, seed=per_day))
        total = sum(len(d.rows) for d in data)
        took: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(runs):  # interleaved, so a busy moment weighs on every variant
            for name, fn in variants.items():
                took[name].append(fn(tmp, data))
        rate = {name: total / statistics.median(times) for name, times in took.items()}
        pairs = zip(took["write_day"], took["floor"], strict=True)
        ratio = statistics.median(floor / wrote for wrote, floor in pairs)
        print(
            f"   days of {per_day:>6,} rows: write_day {rate['write_day']:>9,.0f}  "
            f"floor {rate['floor']:>9,.0f}  ratio {ratio:.2f}   "
            f"(floor with by_query {rate['floor + by_query']:>8,.0f}, "
            f"with by_page {rate['floor + by_page']:>8,.0f}; "
            f"old schema executemany {rate['old schema']:>8,.0f}, "
            f"plain WITHOUT ROWID {rate['plain']:>8,.0f})"
        )


def _fresh(tmp: Path) -> Path:
    path = tmp / "ingest.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _write_day(tmp: Path, data: list[DayData]) -> float:
    with open_store(_fresh(tmp)) as store:
        started = time.perf_counter()
        for d in data:
            store.write_day(d)
        return time.perf_counter() - started


def _floor(tmp: Path, data: list[DayData], index: str | None = None) -> float:
    """The same rows into the same tables, as the id tuples they are stored as (with
    ``index``: one of the candidate lookup indexes added)."""
    with open_store(_fresh(tmp)) as store:
        conn = store.db.conn
        if index:
            conn.execute(f"CREATE INDEX {index} ON {ROWS} ({CANDIDATE_INDEXES[index]})")
        ids: dict[str, dict[str, int]] = {}
        for table, column, values in (
            ("site_urls", "site_url", {d.task.site_url for d in data}),
            ("queries", "query", {r.query for d in data for r in d.rows}),
            ("pages", "page", {r.page for d in data for r in d.rows}),
        ):
            conn.executemany(f"INSERT INTO {table} ({column}) VALUES (?)", [(v,) for v in values])
            ids[table] = dict(conn.execute(f"SELECT {column}, id FROM {table}").fetchall())
        conn.commit()
        prepared = [
            [
                (
                    ids["site_urls"][d.task.site_url],
                    "web",
                    d.task.date,
                    ids["queries"][r.query],
                    ids["pages"][r.page],
                    *r[2:],
                )
                for r in d.rows
            ]
            for d in data
        ]
        started = time.perf_counter()
        for rows in prepared:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_ROWS, rows)
            conn.execute("COMMIT")
        return time.perf_counter() - started


def _old(tmp: Path, data: list[DayData], make: Callable[[Path], Database]) -> float:
    """executemany of the string rows into the old schema, or the plain WITHOUT ROWID one."""
    db = make(_fresh(tmp))
    prepared = [[(d.task.site_url, "web", d.task.date, *r) for r in d.rows] for d in data]
    started = time.perf_counter()
    for rows in prepared:
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.executemany(OLD_DETAIL, rows)
        db.conn.execute("COMMIT")
    took = time.perf_counter() - started
    db.close()
    return took


# -- 3. and 4. status and the analyst questions on big databases ----------------------------

N_SITES, WEB_PER_DAY, IMAGE_PER_DAY = 4, 4000, 1000  # 20,000 rows a day


def bulk_build(path: Path, n_days: int, first_day: int = 0) -> None:
    """Days ``first_day`` .. ``first_day + n_days - 1`` of N_SITES properties (web and
    image) straight into the current tables, in large transactions; the planner's
    statistics written at the end, as the store's writer keeps them."""
    open_store(path).close()  # created and migrated
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("BEGIN")
    for s in range(N_SITES):
        conn.execute("INSERT OR IGNORE INTO site_urls (site_url) VALUES (?)", [site(s)])
        for stype in ("web", "image"):
            conn.executemany(
                "INSERT OR IGNORE INTO pages (page) VALUES (?)",
                [(p,) for p in pages(site(s), stype)],
            )
    conn.executemany("INSERT OR IGNORE INTO queries (query) VALUES (?)", [(q,) for q in QUERIES])
    site_id = dict(conn.execute("SELECT site_url, id FROM site_urls"))
    query_id = dict(conn.execute("SELECT query, id FROM queries"))
    page_id = dict(conn.execute("SELECT page, id FROM pages"))
    rng = random.Random(first_day)
    for n in range(first_day, first_day + n_days):
        day = (START + timedelta(days=n)).isoformat()
        for s in range(N_SITES):
            for stype, per_day in (("web", WEB_PER_DAY), ("image", IMAGE_PER_DAY)):
                rows = day_rows(rng, site(s), stype, per_day)
                sid = site_id[site(s)]
                conn.executemany(
                    INSERT_ROWS,
                    [(sid, stype, day, query_id[r[0]], page_id[r[1]], *r[2:]) for r in rows],
                )
                clicks, impressions = sum(r.clicks for r in rows), sum(r.impressions for r in rows)
                key = (site(s), stype, day)
                conn.execute(
                    "INSERT INTO detail_sums VALUES (?, ?, ?, ?, ?)", (*key, clicks, impressions)
                )
                conn.execute(
                    "INSERT INTO daily_totals VALUES (?, ?, ?, ?, ?, 0.05, 9.5)",
                    (*key, clicks + 7, impressions + 70),
                )
                conn.execute(
                    "INSERT INTO search_appearance VALUES (?, ?, ?, 'VIDEO', 3, 30, 0.1, 4.0)", key
                )
                conn.execute(
                    "INSERT INTO sync_days VALUES (?, ?, ?, 'final', ?, 0, 'x', 1, NULL)",
                    (*key, per_day),
                )
        if n % 25 == 24:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
    write_statistics(conn)
    conn.execute("COMMIT")
    conn.close()


def main_step(conn: sqlite3.Connection, sql: str, args: list[Any]) -> str:
    """The plan's step over the detail rows (or the only step)."""
    steps = [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    rows = [s for s in steps if s.startswith(("SEARCH r ", "SCAN r"))]
    return (rows or steps)[0]


def fetch(conn: sqlite3.Connection, sql: str, args: list[Any]) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def timed(runs: int, fn: Callable[[], Any]) -> float:
    def once() -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    return median_of(runs, once)


def questions(n_days: int) -> dict[str, tuple[str, list[Any]]]:
    last = (START + timedelta(days=n_days - 1)).isoformat()
    first28 = (START + timedelta(days=n_days - 28)).isoformat()
    s0 = site(0)
    return {
        "clicks per day (daily_totals)": (
            "SELECT date, clicks FROM daily_totals WHERE site_url = ? AND search_type = 'web' "
            "ORDER BY date",
            [s0],
        ),
        "top 100 queries, 28 days": (
            "SELECT query, SUM(clicks) AS c, SUM(impressions) FROM search_analytics "
            "WHERE site_url = ? AND search_type = 'web' AND date BETWEEN ? AND ? "
            "GROUP BY query ORDER BY c DESC LIMIT 100",
            [s0, first28, last],
        ),
        "one query across all dates": (
            "SELECT date, SUM(clicks) FROM search_analytics WHERE site_url = ? "
            "AND search_type = 'web' AND query = ? GROUP BY date ORDER BY date",
            [s0, QUERIES[17]],
        ),
        "clicks per day from the detail rows": (  # the worst case of the dictionary joins
            "SELECT date, SUM(clicks) FROM search_analytics WHERE site_url = ? "
            "AND search_type = 'web' GROUP BY date",
            [s0],
        ),
        "one page across all dates": (
            "SELECT date, SUM(clicks) FROM search_analytics WHERE site_url = ? "
            "AND search_type = 'web' AND page = ? GROUP BY date ORDER BY date",
            [s0, pages(s0, "web")[7]],
        ),
    }


def big(tmp: Path, runs: int, big_rows: int) -> None:
    per_day = N_SITES * (WEB_PER_DAY + IMAGE_PER_DAY)
    path = tmp / "big.db"
    done = 0
    shape = f"{N_SITES} properties x web+image, {per_day:,} rows a day"
    print(f"\n3./4. status and the analyst questions ({shape})")
    for target in sorted({2_500_000, big_rows}):
        n_days = target // per_day
        started = time.perf_counter()
        bulk_build(path, n_days - done, first_day=done)
        done = n_days
        built = time.perf_counter() - started
        rows = done * per_day
        size = file_bytes(path)
        print(
            f"   {rows:,} rows ({done} days): built in {built:.0f} s, "
            f"{size / 1e6:,.0f} MB ({size / rows:.0f} B/row)"
        )

        def status() -> None:
            with open_store_readonly(path) as store:
                store.coverage()
                store.recent_runs()
                store.load_breaker()

        took = timed(max(runs, 5), status)
        print(f"      status (open, coverage, runs, breaker)  {took * 1000:8.2f} ms")
        conn = sqlite3.connect(path)
        for name, (sql, args) in questions(done).items():
            took = timed(max(runs, 5), partial(fetch, conn, sql, args))
            print(f"      {name:38s} {took * 1000:8.2f} ms   [{main_step(conn, sql, args)}]")
        if target == 2_500_000:
            page_index(conn, runs, done)
        conn.close()
    old_reference(tmp, runs)


def page_index(conn: sqlite3.Connection, runs: int, n_days: int) -> None:
    """The page lookup again with the candidate page index (built, analyzed, dropped)."""
    started = time.perf_counter()
    conn.execute(f"CREATE INDEX by_page ON {ROWS} ({CANDIDATE_INDEXES['by_page']})")
    conn.execute("ANALYZE by_page")
    conn.commit()
    built = time.perf_counter() - started
    sql, args = questions(n_days)["one page across all dates"]
    took = timed(max(runs, 5), lambda: conn.execute(sql, args).fetchall())
    print(f"      ... with a by_page index ({built:.0f} s to build) {took * 1000:8.2f} ms")
    conn.execute("DROP INDEX by_page")
    conn.commit()


def old_reference(tmp: Path, runs: int) -> None:
    """The old schema at 2.5M rows: its status detail scan and the same questions."""
    per_day = N_SITES * (WEB_PER_DAY + IMAGE_PER_DAY)
    n_days = 2_500_000 // per_day
    path = tmp / "big-old.db"
    db = old_database(path)
    conn = db.conn
    conn.execute("PRAGMA cache_size = -262144")
    rng = random.Random(0)
    started = time.perf_counter()
    conn.execute("BEGIN")
    for n in range(n_days):
        day = (START + timedelta(days=n)).isoformat()
        for s in range(N_SITES):
            for stype, count in (("web", WEB_PER_DAY), ("image", IMAGE_PER_DAY)):
                key = (site(s), stype, day)
                conn.executemany(
                    OLD_DETAIL, [key + tuple(r) for r in day_rows(rng, site(s), stype, count)]
                )
                conn.execute("INSERT INTO daily_totals VALUES (?, ?, ?, 1, 2, 0.5, 1.0)", key)
                conn.execute(
                    "INSERT INTO sync_days VALUES (?, ?, ?, 'final', ?, 0, 'x', 1, NULL)",
                    (*key, count),
                )
    conn.execute("COMMIT")
    print(
        f"   old schema, {n_days * per_day:,} rows: built in {time.perf_counter() - started:.0f} s"
    )

    def old_status() -> None:
        for site_url, stype in conn.execute(
            "SELECT DISTINCT site_url, search_type FROM sync_days"
        ).fetchall():
            conn.execute(
                "SELECT SUM(x.clicks), SUM(x.impressions) FROM search_analytics x JOIN sync_days d "
                "USING (site_url, search_type, date) WHERE x.site_url = ? AND x.search_type = ? "
                "AND d.status = 'final'",
                [site_url, stype],
            ).fetchone()

    print(f"      status detail sums (the old coverage)   {timed(runs, old_status) * 1000:8.1f} ms")
    for name, (sql, args) in questions(n_days).items():
        took = timed(max(runs, 5), partial(fetch, conn, sql, args))
        print(f"      {name:38s} {took * 1000:8.2f} ms")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the size comparison")
    parser.add_argument("--big", type=int, default=10_000_000, help="rows of the status database")
    parser.add_argument("--only", choices=["sizes", "ingest", "big"], help="run one part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gscsync-bench-") as tmp:
        if args.only in (None, "sizes"):
            sizes(Path(tmp), args.rows, args.runs)
        if args.only in (None, "ingest"):
            ingest(Path(tmp), args.runs)
        if args.only in (None, "big"):
            big(Path(tmp), args.runs, args.big)


if __name__ == "__main__":
    main()
