"""Migration m003: a database written before it (m001 + m002, rowid tables) is rebuilt in
place, keeping every row, with a progress line per tenth; interrupted (an error or a
kill -9) it leaves the old tables as they were and runs again on the next open."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from gscsync.store import detail, open_store, open_store_readonly
from gscsync.store.schema import migrations

SPEC_TABLES = ("search_analytics", "daily_totals", "search_appearance", "sync_days")
ORDER = {  # every column, so the comparison is of whole rows in one order
    "search_analytics": "site_url, search_type, date, query, page, country, device",
    "daily_totals": "site_url, search_type, date",
    "search_appearance": "site_url, search_type, date, appearance",
    "sync_days": "site_url, search_type, date",
    "runs": "id",
    "breaker": "id",
}
# the columns a table had before m003 where later migrations added some (m006: page totals)
COLUMNS = {"daily_totals": "site_url, search_type, date, clicks, impressions, ctr, position"}
SITES = ("sc-domain:a.com", "https://www.b.example/")
DAYS = [f"2026-01-{d:02d}" for d in range(1, 21)]


def old_database(path: Path) -> None:
    """A database as gscsync wrote it before m003, by the real m001 and m002, filled with
    detail rows (unicode, '' for the dimensions a type lacks, NULL position), totals,
    appearances, a ledger of every status, a run and the breaker."""
    db = Database(path)
    db.enable_wal()
    migrations.apply(db, stop_before="m003_compact_detail")
    conn = db.conn
    rows: list[tuple[Any, ...]] = []
    for s, site in enumerate(SITES):
        for n, day in enumerate(DAYS):
            for i in range(20 + n):
                rows.append(
                    (site, "web", day, f"q{i % 7} é ✓", f"https://x.test/{i % 5}", "usa",
                     "MOBILE" if i % 2 else "DESKTOP", i + s, 10 * i + n, 0.1, 2.5 + i)
                )  # fmt: skip
            rows.append((site, "discover", day, "", "https://x.test/d", "fra", "", 3, 9, 0.3, None))
    conn.executemany("INSERT INTO search_analytics VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    status = ["final", "final", "fresh", "failed"]
    for site in SITES:
        for stype in ("web", "discover"):
            for n, day in enumerate(DAYS):
                key = (site, stype, day)
                conn.execute(
                    "INSERT INTO daily_totals VALUES (?,?,?,?,?,0.2,3.0)", (*key, 500 + n, 9000)
                )
                conn.execute(
                    "INSERT INTO search_appearance VALUES (?,?,?,'VIDEO',1,2,0.5,NULL)", key
                )
                count = 20 + n if stype == "web" else 1
                error = "500" if n % 4 == 3 else None
                conn.execute(
                    "INSERT INTO sync_days VALUES (?,?,?,?,?,?,'2026-02-01T00:00:00+00:00',?,?)",
                    (*key, status[n % 4], count, n % 3 == 0, 1 + n % 2, error),
                )
    # a final ledger day with no detail row at all
    conn.execute(
        "INSERT INTO sync_days VALUES (?, 'web', '2026-01-25', 'final', 0, 0, 'x', 1, NULL)",
        [SITES[0]],
    )
    conn.execute(
        "INSERT INTO daily_totals VALUES (?, 'web', '2026-01-25', 0, 0, 0, NULL)", [SITES[0]]
    )
    conn.execute(
        "INSERT INTO runs (command, started_at, finished_at, status, days_ok, days_failed, "
        "rows_written, requests, error, pid, version) VALUES "
        "('sync', 'a', 'b', 'ok', 1, 0, 5, 9, NULL, 42, '0.1.0')"
    )
    conn.execute("INSERT INTO breaker VALUES (1, 'closed', 2, NULL, 0, NULL)")
    conn.commit()
    db.close()


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every SPEC table (the view after m003), runs and breaker."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(
                f"SELECT {COLUMNS.get(table, '*')} FROM {table} ORDER BY {order}"
            ).fetchall()
            for table, order in ORDER.items()
        }
    finally:
        conn.close()


def detail_sums_by_scan(path: Path) -> dict[tuple[str, str, str], tuple[int, int]]:
    """What each day's detail rows add up to, computed the slow way."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT site_url, search_type, date, SUM(clicks), SUM(impressions) "
        "FROM search_analytics GROUP BY 1, 2, 3"
    ).fetchall()
    conn.close()
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def applied(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    conn.close()
    return names


def kind_of(path: Path, name: str) -> str | None:
    conn = sqlite3.connect(path)
    row = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", [name]).fetchone()
    conn.close()
    return row[0] if row else None


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "g.db"
    old_database(path)
    return path


def test_the_upgrade_keeps_every_row_and_sums_each_day(
    old_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(old_db)
    sums = detail_sums_by_scan(old_db)
    assert len(before["search_analytics"]) == 2 * sum(21 + n for n in range(20))
    caplog.set_level(logging.INFO, logger="gscsync")
    with open_store(old_db) as store:
        assert snapshot(old_db) == before
        stored = store.db.execute(
            "SELECT site_url, search_type, date, clicks, impressions FROM detail_sums"
        ).fetchall()
        by_day = {(r[0], r[1], r[2]): (r[3], r[4]) for r in stored}
        # every day with detail rows has its sums; a ledger day without rows sums to zero
        assert by_day == {**sums, (SITES[0], "web", "2026-01-25"): (0, 0)}
        coverage = {(c.site_url, c.search_type): c for c in store.coverage()}
    assert "m003_compact_detail" in applied(old_db)
    final = {(s, t, d) for s in SITES for t in ("web", "discover") for n, d in enumerate(DAYS)
             if n % 4 < 2}  # fmt: skip
    web_a = coverage[(SITES[0], "web")]
    expected = [sums[k] for k in final if k[:2] == (SITES[0], "web")]
    assert (web_a.clicks_detail, web_a.impressions_detail) == (
        sum(c for c, _ in expected),
        sum(i for _, i in expected),
    )
    lines = [r.getMessage() for r in caplog.records if "rows copied" in r.getMessage()]
    total = len(before["search_analytics"])
    assert lines[-1] == f"upgrading search_analytics: {total:,}/{total:,} rows copied (100%)"
    assert 10 <= len(lines) <= 11  # each tenth once (40 site-days of 20 to 40 rows each)
    assert all(r.levelno == logging.INFO and r.name == "gscsync" for r in caplog.records)


def test_the_tables_are_without_rowid_after_it(old_db: Path) -> None:
    open_store(old_db).close()
    conn = sqlite3.connect(old_db)
    sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    for table in ("search_analytics_rows", "daily_totals", "search_appearance", "sync_days"):
        assert sql[table].rstrip().endswith("WITHOUT ROWID"), table
    assert "WITHOUT ROWID" in sql["detail_sums"]
    assert kind_of(old_db, "search_analytics") == "view"
    assert kind_of(old_db, "idx_sync_days_status") == "index"  # the ledger's index is back
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_an_upgrade_that_fails_midway_leaves_the_old_tables_and_runs_again(
    old_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(old_db)
    copy_day = detail.copy_day
    calls = []

    def fails_on_the_fifth_day(conn: sqlite3.Connection, key: tuple[str, str, str]) -> None:
        calls.append(key)
        if len(calls) == 5:
            raise RuntimeError("interrupted")
        copy_day(conn, key)

    monkeypatch.setattr(detail, "copy_day", fails_on_the_fifth_day)
    with pytest.raises(RuntimeError, match="interrupted"):
        open_store(old_db)
    assert kind_of(old_db, "search_analytics") == "table"
    assert kind_of(old_db, "search_analytics_rows") is None
    assert applied(old_db) == ["m001_initial", "m002_breaker"]
    assert snapshot(old_db) == before
    monkeypatch.setattr(detail, "copy_day", copy_day)
    open_store(old_db).close()
    assert "m003_compact_detail" in applied(old_db)
    assert snapshot(old_db) == before


KILLED_MIDWAY = """
import os, signal, sys
from pathlib import Path
from gscsync.store import detail, open_store
copy_day, calls = detail.copy_day, []
def copy_then_die(conn, key):
    copy_day(conn, key)
    calls.append(key)
    if len(calls) == 20:  # half the days copied
        os.kill(os.getpid(), signal.SIGKILL)
detail.copy_day = copy_then_die
open_store(Path(sys.argv[1]))
"""


def test_a_kill_during_the_upgrade_leaves_the_old_tables_and_the_next_open_finishes(
    old_db: Path,
) -> None:
    before = snapshot(old_db)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", KILLED_MIDWAY, str(old_db)], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert Path(f"{old_db}-wal").exists()  # it died with the copy in its WAL, uncommitted
    with pytest.raises(Exception, match="older schema"):
        open_store_readonly(old_db)  # status: the upgrade is still to do
    assert kind_of(old_db, "search_analytics") == "table"
    assert applied(old_db) == ["m001_initial", "m002_breaker"]
    assert snapshot(old_db) == before
    open_store(old_db).close()
    assert "m003_compact_detail" in applied(old_db)
    assert snapshot(old_db) == before
    conn = sqlite3.connect(old_db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_a_new_database_says_nothing_about_an_upgrade(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gscsync")
    open_store(tmp_path / "new.db").close()
    assert [r.getMessage() for r in caplog.records] == []
