"""The real CLI in a subprocess against the emulator on loopback: httpx, google-auth,
paging and the SQLite file, all real."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from gscsync.emulator import (
    DEMO_SITES,
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    SiteData,
)
from gscsync.emulator.data import DEFAULT_ROWS
from gscsync.files import write_atomic
from tests.e2e.harness import GOOD, KEY, TYPES, Env, assert_complete, final_days

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sites = [SiteData(s) for s in GOOD]
    sites.append(SiteData("https://locked.example/", permission="siteUnverifiedUser"))
    config = EmulatorConfig(sites=sites, public_keys={KEY.client_email: KEY.public_pem})
    with EmulatorServer(Emulator(config)) as server:
        yield Env(server, tmp_path)


def test_full_sync_equals_the_emulators_data_day_by_day(env: Env) -> None:
    env.emu.site(GOOD[1]).rows_per_day["web"] = 30_000  # more than one page of 25,000 a day
    result = env.run("sync")
    assert result.returncode == 0, result.stderr
    days = final_days(env)
    assert days
    assert_complete(env, days, TYPES)
    big_day = env.sql("SELECT MAX(rows) FROM sync_days WHERE search_type = 'web'")[0][0]
    assert big_day > 25_000  # paging really happened
    total = env.emu.query(GOOD[0], {"startDate": days[0], "endDate": days[0]})["rows"][0]
    assert env.sql(
        "SELECT clicks, impressions FROM daily_totals WHERE site_url = ? AND "
        "search_type = 'web' AND date = ?",
        GOOD[0],
        days[0],
    ) == [(total["clicks"], total["impressions"])]


def test_resync_makes_no_detail_request_and_changes_nothing(env: Env) -> None:
    assert env.run("sync").returncode == 0
    before = env.sql("SELECT * FROM search_analytics ORDER BY 1,2,3,4,5,6,7")
    detail_before = env.emu.stats["detail"]
    result = env.run("sync")
    assert result.returncode == 0, result.stderr
    assert env.emu.stats["detail"] == detail_before
    assert env.sql("SELECT * FROM search_analytics ORDER BY 1,2,3,4,5,6,7") == before


def test_fresh_days_turn_final_when_the_clock_moves(env: Env) -> None:
    env.env["GSCSYNC_SEARCH_TYPES"] = "web"
    assert env.run("sync", GSCSYNC_DATA_STATE="all").returncode == 0
    fresh_day = (env.emu.final_through() + timedelta(days=1)).isoformat()
    site = GOOD[0]
    assert env.sql(
        "SELECT status FROM sync_days WHERE site_url = ? AND date = ?", site, fresh_day
    ) == [("fresh",)]
    assert env.stored_rows(site, "web", fresh_day) == env.served_rows(site, "web", fresh_day, "all")
    env.emu.advance(1)
    assert env.run("sync", GSCSYNC_DATA_STATE="all").returncode == 0
    assert env.sql(
        "SELECT status FROM sync_days WHERE site_url = ? AND date = ?", site, fresh_day
    ) == [("final",)]
    assert env.stored_rows(site, "web", fresh_day) == env.served_rows(site, "web", fresh_day)


def test_a_forbidden_property_alongside_good_ones(env: Env) -> None:
    env.env["GSCSYNC_SITES"] += ",https://locked.example/,sc-domain:unknown.example"
    env.env["GSCSYNC_SEARCH_TYPES"] = "web"
    result = env.run("sync")
    assert result.returncode == 1
    assert "locked.example" in result.stderr and "Traceback" not in result.stderr
    status = dict(
        env.sql("SELECT site_url, GROUP_CONCAT(DISTINCT status) FROM sync_days GROUP BY site_url")
    )
    assert status == {
        GOOD[0]: "final",
        GOOD[1]: "final",
        "https://locked.example/": "failed",
        "sc-domain:unknown.example": "failed",
    }


def test_token_expiry_in_the_middle_of_a_run(env: Env) -> None:
    env.emu.config.faults = Faults(latency=0.02)
    proc = env.popen("sync")
    deadline = time.monotonic() + 30
    while env.emu.stats["detail"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    env.emu.expire_tokens()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert env.emu.stats["unauthorized"] >= 1 and env.emu.stats["token"] >= 2
    assert env.sql("SELECT COUNT(*) FROM sync_days WHERE status != 'final'") == [(0,)]


def test_authorized_user_credentials(env: Env, tmp_path: Path) -> None:
    env.emu.config.refresh_tokens["1//refresh-me"] = "client-1"
    user = tmp_path / "user.json"

    def write_user(refresh_token: str) -> None:
        info = {
            "type": "authorized_user",
            "client_id": "client-1",
            "client_secret": "s",
            "refresh_token": refresh_token,
            "token_uri": f"{env.server.url}/token",
        }
        write_atomic(user, json.dumps(info))

    write_user("1//refresh-me")
    result = env.run("sync", GSCSYNC_CREDENTIALS=str(user), GSCSYNC_SEARCH_TYPES="web")
    assert result.returncode == 0, result.stderr
    write_user("1//revoked")
    refused = env.run("sync", GSCSYNC_CREDENTIALS=str(user), GSCSYNC_SEARCH_TYPES="web")
    assert refused.returncode == 3 and "invalid_grant" in refused.stderr
    assert "1//revoked" not in refused.stderr


def test_a_reader_queries_while_a_sync_writes(env: Env) -> None:
    env.emu.config.faults = Faults(latency=0.01)
    env.env["GSCSYNC_CONCURRENCY"] = "2"
    assert env.run("sync", GSCSYNC_SEARCH_TYPES="image").returncode == 0  # create the file
    proc = env.popen("sync")
    reads, errors = 0, []
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        conn = sqlite3.connect(env.db, timeout=0.5)
        while not stop.is_set():
            try:
                # every day in the ledger is complete: its rows match the ledger's count
                bad = conn.execute(
                    "SELECT d.date FROM sync_days d LEFT JOIN (SELECT site_url, search_type, "
                    "date, COUNT(*) n FROM search_analytics GROUP BY 1,2,3) a "
                    "USING (site_url, search_type, date) WHERE d.status = 'final' AND "
                    "d.rows != COALESCE(a.n, 0)"
                ).fetchall()
                assert not bad, bad
                reads += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
        conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    _, err = proc.communicate(timeout=120)
    stop.set()
    thread.join()
    assert proc.returncode == 0, err
    assert errors == [] and reads > 10
    assert env.sql("PRAGMA journal_mode") == [("wal",)]


def test_demo_runs_offline_and_fills_every_type_with_data(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gscsync", "demo", "--db", str(tmp_path / "demo.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("GSCSYNC_")},
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "gscsync status" in result.stdout and "last runs" in result.stdout
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        pairs = set(conn.execute("SELECT DISTINCT site_url, search_type FROM search_analytics"))
    with_data = {t for t, n in DEFAULT_ROWS.items() if n}
    assert pairs == {(s, t) for s in DEMO_SITES for t in with_data}
    assert elapsed < 30


def test_sigterm_during_a_backfill_stops_cleanly_and_a_rerun_finishes(env: Env) -> None:
    import signal

    env.emu.config.faults = Faults(latency=0.1)
    env.env["GSCSYNC_SEARCH_TYPES"] = "web"
    env.env["GSCSYNC_CONCURRENCY"] = "1"  # one chunk at a time: a stop lands between them
    for site in GOOD:
        env.emu.site(site).rows_per_day["web"] = 2_000  # days too big to pack: one by one
    start = (env.emu.today() - timedelta(days=15)).isoformat()
    proc = env.popen("backfill", "--start", start)
    deadline = time.monotonic() + 30

    def finals() -> int:
        if not env.db.exists():
            return 0
        try:
            return int(env.sql("SELECT COUNT(*) FROM sync_days WHERE status = 'final'")[0][0])
        except sqlite3.OperationalError:  # not created yet
            return 0

    while finals() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert env.sql("SELECT status FROM runs") == [("interrupted",)]
    assert env.sql("PRAGMA integrity_check") == [("ok",)]
    kept = env.sql("SELECT site_url, date FROM sync_days WHERE status = 'final'")
    assert kept
    for site, day in kept:  # every committed day is complete
        assert env.stored_rows(site, "web", day) == env.served_rows(site, "web", day)
    env.emu.config.faults = Faults()
    result = env.run("backfill", "--start", start)
    assert result.returncode == 0, result.stderr
    finals = env.sql("SELECT COUNT(*) FROM sync_days WHERE status = 'final'")[0][0]
    assert finals == len(GOOD) * ((env.emu.final_through() - date.fromisoformat(start)).days + 1)
