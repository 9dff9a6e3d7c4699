"""Resilience against a real server on loopback: faults, load quota, the breaker across
processes, deadlines, signals, kill -9, and that no secret leaks anywhere."""

from __future__ import annotations

import json
import random
import signal
import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gscsync.emulator import Emulator, EmulatorConfig, EmulatorServer, Faults, SiteData
from gscsync.files import write_atomic
from tests.e2e.harness import GOOD, KEY, Env, assert_complete, final_days

pytestmark = pytest.mark.e2e

SMALL = {"web": 120, "discover": 20}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sites = [SiteData(s, rows_per_day=dict(SMALL)) for s in GOOD]
    config = EmulatorConfig(sites=sites, public_keys={KEY.client_email: KEY.public_pem})
    with EmulatorServer(Emulator(config)) as server:
        e = Env(server, tmp_path)
        e.env["GSCSYNC_SEARCH_TYPES"] = "web,discover"
        e.env["GSCSYNC_QPM"] = "100000"
        yield e


WEB_DISCOVER = ("web", "discover")


def test_a_server_failing_a_quarter_of_requests(env: Env) -> None:
    env.emu.config.faults = Faults(
        rate_429=0.07, rate_500=0.05, rate_503=0.05, rate_drop=0.04, rate_truncate=0.04
    )
    runs = [env.run("sync")]
    if runs[0].returncode == 1:  # at most one extra run
        runs.append(env.run("sync"))
    assert runs[-1].returncode == 0, runs[-1].stderr
    assert env.emu.stats["faults"] > 0
    assert "Traceback" not in "".join(r.stderr for r in runs)
    assert_complete(env, final_days(env), WEB_DISCOVER)


def test_the_breaker_opens_and_the_next_run_exits_4_without_a_request(env: Env) -> None:
    env.env |= {
        "GSCSYNC_BREAKER_THRESHOLD": "2",
        "GSCSYNC_MAX_ATTEMPTS": "1",
        "GSCSYNC_BREAKER_COOLDOWN": "600",
    }
    env.emu.config.faults = Faults(always_fail=True)
    assert env.run("sync").returncode == 1
    assert env.sql("SELECT state FROM breaker") == [("open",)]
    served, tokens = env.emu.queries_served, env.emu.stats["token"]
    second = env.run("sync")
    assert second.returncode == 4
    assert "circuit breaker open" in second.stderr and second.stderr.count("\n") == 1
    assert (env.emu.queries_served, env.emu.stats["token"]) == (served, tokens)
    assert env.sql("SELECT status FROM runs ORDER BY id DESC LIMIT 1") == [("skipped",)]
    status = env.run("status", "--json")
    assert status.returncode == 1 and json.loads(status.stdout)["breaker"]["state"] == "open"
    env.emu.config.faults = Faults()
    third = env.run("sync", "--reset-breaker")
    assert third.returncode == 0, third.stderr
    assert env.sql("SELECT state, failures FROM breaker") == [("closed", 0)]


def test_after_the_cooldown_one_probe_decides(env: Env) -> None:
    env.env |= {
        "GSCSYNC_BREAKER_THRESHOLD": "2",
        "GSCSYNC_MAX_ATTEMPTS": "1",
        "GSCSYNC_BREAKER_COOLDOWN": "1",
    }
    env.emu.config.faults = Faults(always_fail=True)
    assert env.run("sync").returncode == 1
    time.sleep(1.1)
    served = env.emu.queries_served
    assert env.run("sync").returncode == 1  # the probe fails: open again, cooldown doubled
    assert env.emu.queries_served == served + 1
    assert env.sql("SELECT state, cooldown FROM breaker") == [("open", 2)]
    env.emu.config.faults = Faults()
    time.sleep(2.1)
    result = env.run("sync")
    assert result.returncode == 0, result.stderr  # the probe succeeds: closed, run completes
    assert env.sql("SELECT state FROM breaker") == [("closed",)]
    assert_complete(env, final_days(env), WEB_DISCOVER)


def test_max_runtime_ends_the_run_before_the_work_is_done(env: Env) -> None:
    env.emu.config.faults = Faults(latency=0.4)
    started = time.monotonic()
    result = env.run("sync", GSCSYNC_MAX_RUNTIME="1.5", GSCSYNC_CONCURRENCY="2")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 1.5 + 2.0  # the limit plus interpreter start-up, not the 7 s of work
    (row,) = env.sql("SELECT status, error FROM runs")
    assert row[0] == "partial" and "stopped early: deadline" in row[1]
    env.emu.config.faults = Faults()
    assert env.run("sync").returncode == 0
    assert_complete(env, final_days(env), WEB_DISCOVER)


def test_sigterm_abandons_requests_in_flight(env: Env) -> None:
    env.emu.config.faults = Faults(latency=5.0)
    proc = env.popen("sync")
    deadline = time.monotonic() + 20
    while env.emu.stats["token"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # requests are now in flight, each held 5 s by the server
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 2.5  # did not wait out the 5 s requests
    assert "interrupted" in err and "Traceback" not in err
    assert env.sql("SELECT status FROM runs") == [("interrupted",)]


def test_kill_9_at_random_moments_never_corrupts_and_the_next_run_completes(env: Env) -> None:
    env.emu.config.faults = Faults(latency=0.05)
    start = (env.emu.today() - timedelta(days=20)).isoformat()
    rng = random.Random(20261129)
    kills_mid_work = 0
    for _ in range(5):
        # --force: every run replaces every day, so a kill lands mid-replacement too
        proc = env.popen("backfill", "--start", start, "--force")
        time.sleep(rng.uniform(0.8, 2.5))
        proc.kill()
        proc.communicate()
        if not env.db.exists():
            continue
        assert env.sql("PRAGMA integrity_check") == [("ok",)]
        if not env.sql("SELECT 1 FROM sqlite_master WHERE name = 'sync_days'"):
            continue  # killed before the schema was created: an empty, valid file
        kills_mid_work += 1
        for site, stype, day in env.sql(
            "SELECT site_url, search_type, date FROM sync_days WHERE status = 'final'"
        ):
            assert env.stored_rows(site, stype, day) == env.served_rows(site, stype, day)
    assert kills_mid_work >= 3
    env.emu.config.faults = Faults()
    result = env.run("backfill", "--start", start)
    assert result.returncode == 0, result.stderr
    days = [
        (env.emu.final_through() - timedelta(days=n)).isoformat()
        for n in range((env.emu.final_through() - env.emu.today()).days + 21)
    ]
    assert_complete(env, days, WEB_DISCOVER)


def test_no_secret_reaches_output_or_database_and_files_are_private(
    env: Env, tmp_path: Path
) -> None:
    refresh, client_secret = "1//0refresh-SECRET-4e8c2d", "GOCSPX-client-SECRET-9f1a"
    env.emu.config.refresh_tokens[refresh] = "client-7"
    user = tmp_path / "user.json"
    write_atomic(
        user,
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "client-7",
                "client_secret": client_secret,
                "refresh_token": refresh,
                "token_uri": f"{env.server.url}/token",
            }
        ),
    )
    env.emu.config.faults = Faults(rate_500=0.15, rate_429=0.1)
    metrics = tmp_path / "gscsync.prom"
    env.env |= {
        "GSCSYNC_METRICS_FILE": str(metrics),
        "GSCSYNC_SITES": env.env["GSCSYNC_SITES"] + ",https://locked.example/",
    }
    outputs = []
    for creds, fmt in ((env.key, "text"), (env.key, "json"), (user, "text"), (user, "json")):
        r = env.run("sync", "-vv", "--log-format", fmt, GSCSYNC_CREDENTIALS=str(creds))
        outputs += [r.stdout, r.stderr]
    env.run("status", "--json")
    text = "\n".join(outputs)
    assert "retrying after" in text and "access refused" in text  # retries and errors ran
    with __import__("sqlite3").connect(env.db) as conn:
        dump = "\n".join(conn.iterdump())
    haystack = text + dump + metrics.read_text()
    secrets = [refresh, client_secret, *env.emu.tokens]
    pem = "".join(KEY.private_pem.splitlines()[1:-1])
    secrets += [pem[i : i + 24] for i in range(0, len(pem) - 24, 200)]
    assert len(env.emu.tokens) >= 2
    for secret in secrets:
        assert secret not in haystack, secret[:12]
    for path in (
        env.db,
        Path(f"{env.db}-wal"),
        Path(f"{env.db}-shm"),
        Path(f"{env.db}.lock"),
        metrics,
    ):
        if path.exists():
            assert not stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH, path
