"""Hostile answers against the real CLI (issue: never wrong, never stuck): invalid rows,
a redirect, a misread freshness marker, a body that drips or never ends, a token endpoint
quoting secrets. Whatever comes back, nothing wrong is stored, the day it concerns fails
alone with the reason in one line, and no run outlives its timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gscsync.emulator import Emulator, EmulatorConfig, EmulatorServer, Faults, SiteData
from gscsync.emulator.faults import REDIRECT_TO, ROW_KINDS
from tests.e2e.harness import GOOD, KEY, Env, assert_complete, final_days

pytestmark = pytest.mark.e2e
TYPES = ("web", "discover")
WHY = {
    "nan": "clicks is not a finite non-negative integer",
    "infinity": "impressions is not a finite non-negative integer",
    "string_number": "clicks is not a finite non-negative integer",
    "huge": "impressions is not a finite non-negative integer below 2**63",
    "keys_not_list": "keys is not a list",
    "short_keys": "keys for",
    "no_keys": "keys is not a list",
    "wrong_date": "date key is not the requested day",
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sites = [SiteData(s, rows_per_day={"web": 120, "discover": 20}) for s in GOOD]
    config = EmulatorConfig(sites=sites, public_keys={KEY.client_email: KEY.public_pem})
    with EmulatorServer(Emulator(config)) as server:
        e = Env(server, tmp_path)
        e.env |= {
            "GSCSYNC_SEARCH_TYPES": ",".join(TYPES),
            "GSCSYNC_QPM": "100000",
            "GSCSYNC_MAX_ATTEMPTS": "2",
            "GSCSYNC_BREAKER_THRESHOLD": "100",  # these tests are about days, not outages
        }
        yield e


def assert_only_day_failed(env: Env, bad: str, why: str) -> None:
    """``bad`` failed for every site and type with ``why``; every other day is exact."""
    failed = env.sql(
        "SELECT site_url, search_type, date, error FROM sync_days WHERE status = 'failed'"
    )
    assert sorted(f[:3] for f in failed) == sorted((s, t, bad) for s in GOOD for t in TYPES)
    assert all(why in error and "\n" not in error and len(error) < 300 for *_, error in failed)
    assert env.sql("SELECT COUNT(*) FROM search_analytics WHERE date = ?", bad) == [(0,)]
    others = [d for d in final_days(env) if d != bad]
    for site in GOOD:
        for stype in TYPES:
            for day in others:
                assert env.stored_rows(site, stype, day) == env.served_rows(site, stype, day)
    assert env.sql("SELECT COUNT(*) FROM sync_days WHERE status = 'final'") == [
        (len(GOOD) * len(TYPES) * len(others),)
    ]
    ((status, days_failed),) = env.sql("SELECT status, days_failed FROM runs")
    assert (status, days_failed) == ("partial", len(GOOD) * len(TYPES))


@pytest.mark.parametrize("kind", ROW_KINDS)
def test_a_day_answered_with_an_invalid_row_fails_alone(env: Env, kind: str) -> None:
    bad = final_days(env)[1]
    env.emu.config.faults = Faults(bad_rows=kind, bad_day=bad)
    result = env.run("sync")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert_only_day_failed(env, bad, WHY[kind])
    # retried by sending the request again: MAX_ATTEMPTS detail requests per site and type
    # for the bad day on its own (a packed range holding it failed first, then was split)
    sent = [
        b
        for _, b in env.emu.log
        if b.get("startDate") == bad == b.get("endDate") and len(b.get("dimensions", [])) > 2
    ]
    assert len(sent) == 2 * len(GOOD) * len(TYPES)
    env.emu.config.faults = Faults()  # the next run fetches it
    assert env.run("sync").returncode == 0
    assert_complete(env, final_days(env), TYPES)


def test_a_redirect_is_never_taken_for_an_empty_day(env: Env) -> None:
    bad = final_days(env)[2]
    env.emu.config.faults = Faults(redirect=True, bad_day=bad)
    result = env.run("sync")
    assert result.returncode == 1, result.stderr
    assert_only_day_failed(env, bad, f"unexpected redirect (HTTP 302) to {REDIRECT_TO}")
    sent = [b for _, b in env.emu.log if b.get("startDate") == bad and b.get("endDate") == bad]
    assert len(sent) == len(GOOD) * len(TYPES)  # not retried


def test_a_probe_with_a_date_key_that_is_not_a_day_fails_its_job_without_a_crash(
    env: Env,
) -> None:
    env.emu.config.faults = Faults(bad_rows="probe_bad_date")
    result = env.run("sync")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "date key is not a day" in result.stderr
    assert env.sql("SELECT COUNT(*) FROM search_analytics") == [(0,)]
    assert env.sql("SELECT DISTINCT status FROM sync_days") in ([], [("failed",)])


def test_a_marker_not_spelled_as_a_date_is_ignored_never_misread(env: Env) -> None:
    env.emu.config.faults = Faults(bad_rows="bad_marker")  # tomorrow, as YYYYMMDD
    result = env.run("sync")
    assert result.returncode == 0, result.stderr
    assert "ignoring a freshness marker that is not a date" in result.stderr
    assert_complete(env, final_days(env), TYPES)  # no fresh day taken for final
    newest = env.sql("SELECT MAX(date) FROM sync_days WHERE status = 'final'")[0][0]
    assert newest == env.emu.final_through().isoformat()


def test_a_drip_fed_api_ends_each_request_at_the_timeout(env: Env) -> None:
    env.emu.config.faults = Faults(drip=0.5)
    started = time.monotonic()
    result = env.run("sync", GSCSYNC_TIMEOUT="1.5", GSCSYNC_CONCURRENCY="4")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "timed out after 1.5 s" in result.stderr
    # 4 probes in parallel, 2 tries of 1.5 s each, a backoff under 1 s, start-up
    assert elapsed < 12, elapsed
    assert env.sql("SELECT COUNT(*) FROM search_analytics") == [(0,)]


def test_an_endless_answer_is_cut_at_the_size_cap(env: Env) -> None:
    env.emu.config.faults = Faults(oversize=-1)
    started = time.monotonic()
    result = env.run("sync")
    assert result.returncode == 1, result.stderr
    assert "answer larger than 64 MB" in result.stderr
    assert time.monotonic() - started < 30


def test_a_token_endpoint_quoting_the_assertion_leaks_nothing(env: Env) -> None:
    env.emu.config.faults = Faults(echo_token_errors=True)
    result = env.run("sync")
    assert result.returncode == 3, result.stderr
    assert "invalid_grant" in result.stderr and "[redacted]" in result.stderr
    assert "eyJ" not in result.stderr  # no JWT (header, claims or signature)
    ((status, error),) = env.sql("SELECT status, error FROM runs")
    assert status == "failed" and "eyJ" not in error
