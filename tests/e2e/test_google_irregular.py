"""Google's irregular ways, each a switch of the emulator, against the real CLI: finality
without the marker, short pages and shuffled ties, quota bursts, the 403s that end a run,
and the 16-month edge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gscsync.emulator import Emulator, EmulatorConfig, EmulatorServer, Faults, SiteData
from tests.e2e.harness import GOOD, KEY, Env, assert_complete, final_days

pytestmark = pytest.mark.e2e
TYPES = ("web", "discover")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    sites = [SiteData(s, rows_per_day={"web": 300, "discover": 40}) for s in GOOD]
    config = EmulatorConfig(sites=sites, public_keys={KEY.client_email: KEY.public_pem})
    with EmulatorServer(Emulator(config)) as server:
        e = Env(server, tmp_path)
        e.env |= {"GSCSYNC_SEARCH_TYPES": ",".join(TYPES), "GSCSYNC_QPM": "100000"}
        yield e


def is_probe(body: dict[str, object]) -> bool:
    """A finality probe (its first page: paging may ask once more): grouped by date alone,
    by property, unfiltered; not the sizing request or a search-appearance request."""
    plain = "aggregationType" not in body and "dimensionFilterGroups" not in body
    return body.get("dimensions") == ["date"] and body.get("startRow") == 0 and plain


def test_without_the_marker_fresh_days_stay_pending_and_final_days_are_exact(env: Env) -> None:
    env.emu.config.omit_marker = True
    result = env.run("sync")
    assert result.returncode == 0, result.stderr
    assert_complete(env, final_days(env), TYPES)  # no fresh day was stored as final
    newest = env.sql("SELECT MAX(date) FROM sync_days")[0][0]
    assert newest == env.emu.final_through().isoformat()
    # the dataState: final probe ran once per site x type, only because the marker was absent
    probes = [b["dataState"] for _, b in env.emu.log if is_probe(b)]
    assert sorted(probes) == sorted(["all", "final"] * len(GOOD) * len(TYPES))
    env.emu.config.omit_marker = False
    env.emu.log.clear()
    env.emu.advance(1)
    assert env.run("sync").returncode == 0
    probes = [b["dataState"] for _, b in env.emu.log if is_probe(b)]
    assert probes == ["all"] * len(GOOD) * len(TYPES)  # with the marker: one probe each
    newest = env.sql("SELECT MAX(date) FROM sync_days WHERE status = 'final'")[0][0]
    assert newest == env.emu.final_through().isoformat()


def test_short_pages_mid_stream_and_ties_in_a_new_order_lose_no_row(env: Env) -> None:
    env.emu.config.short_pages = 97  # 300 rows: pages of 97, 97, 97, 9, then empty
    env.emu.config.shuffle_ties = True
    result = env.run("sync")
    assert result.returncode == 0, result.stderr
    assert_complete(env, final_days(env), TYPES)
    assert env.sql("SELECT MAX(rows) FROM sync_days WHERE search_type = 'web'")[0][0] > 97


def test_a_quota_burst_pauses_the_run_which_then_completes(env: Env) -> None:
    env.emu.config.faults = Faults(quota_after=6, quota_for=1.0)
    result = env.run("sync", GSCSYNC_QUOTA_COOLOFF="0.6")
    assert result.returncode == 0, result.stderr
    assert "no new request for" in result.stderr
    assert env.emu.stats["faults"] > 0
    assert env.sql("SELECT COUNT(*) FROM sync_days WHERE status = 'failed'") == [(0,)]
    assert env.sql("SELECT status FROM runs") == [("ok",)]
    assert_complete(env, final_days(env), TYPES)


def test_persistent_quota_stops_the_run_cleanly_and_the_next_one_finishes(env: Env) -> None:
    env.emu.config.faults = Faults(quota_after=6)
    first = env.run("sync", GSCSYNC_QUOTA_COOLOFF="0.2", GSCSYNC_QUOTA_PATIENCE="0.5")
    assert first.returncode == 1, first.stderr
    assert "no more requests this run" in first.stderr
    assert env.sql("SELECT COUNT(*) FROM sync_days WHERE status = 'failed'") == [(0,)]
    assert env.sql("SELECT status FROM runs") == [("partial",)]
    env.emu.config.faults = Faults()
    second = env.run("sync")
    assert second.returncode == 0, second.stderr
    assert_complete(env, final_days(env), TYPES)


def test_the_daily_limit_stops_the_run_at_once(env: Env) -> None:
    env.emu.config.faults = Faults(forbid="dailyLimitExceeded")
    result = env.run("sync", GSCSYNC_QUOTA_COOLOFF="30")
    assert result.returncode == 1, result.stderr
    assert "no more requests this run" in result.stderr
    assert env.emu.queries_served <= 4  # the requests already in flight, no cool-off


@pytest.mark.parametrize(
    ("forbid", "needle"),
    [
        ("accessNotConfigured", "not enabled in project 123456789012"),
        ("insufficientPermissions", "webmasters.readonly"),
        ("quotaProject", "set-quota-project"),
    ],
)
def test_a_403_for_the_whole_api_exits_3_with_the_fix(env: Env, forbid: str, needle: str) -> None:
    env.emu.config.faults = Faults(forbid=forbid)
    result = env.run("sync")
    assert result.returncode == 3, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("gscsync: error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in result.stderr
    assert "retrying" not in result.stderr  # nothing retried, nothing after the end
    listing = env.run("sites")  # sites.list is refused the same way
    assert listing.returncode == 3 and needle in listing.stderr
    assert env.sql("SELECT COUNT(*) FROM sync_days WHERE status = 'failed'") == [(0,)]


def test_a_refetch_past_the_16_month_edge_keeps_the_stored_rows(env: Env) -> None:
    oldest = env.emu.earliest()
    start, end = oldest.isoformat(), (oldest + timedelta(days=4)).isoformat()
    assert env.run("backfill", "--start", start, "--end", end, "-t", "web").returncode == 0
    before = env.sql("SELECT COUNT(*) FROM search_analytics WHERE date <= ?", end)[0][0]
    assert before > 0
    env.emu.config.edge_lag_days = 3  # Google now serves three days less than we think
    result = env.run("backfill", "--force", "--start", start, "--end", end, "-t", "web")
    assert result.returncode == 0, result.stderr
    assert "keeping the" in result.stderr
    assert env.sql("SELECT COUNT(*) FROM search_analytics WHERE date <= ?", end)[0][0] == before
    status = json.loads(env.run("status", "--json").stdout)
    assert all(c["empty_with_impressions"] == [] for c in status["coverage"])
