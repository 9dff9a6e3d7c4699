"""``--json`` on every report: ``check``, the ``sync``/``backfill`` run summary, the dry
runs and ``demo`` print one JSON document on stdout, as the README documents them. Also
sharding: ``--shard K/N`` syncs a stable share of the properties."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gscsync.emulator import Emulator, EmulatorConfig, EmulatorServer, SiteData
from gscsync.shard import shard_of
from tests.conftest import run_cli
from tests.e2e.harness import KEY

pytestmark = pytest.mark.e2e
SITES = [f"sc-domain:shop{n}.example" for n in range(6)]


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        sites=[SiteData(s, rows_per_day={"web": 20}) for s in SITES],
        public_keys={KEY.client_email: KEY.public_pem},
    )
    with EmulatorServer(Emulator(config)) as srv:
        yield srv


@pytest.fixture
def env(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = KEY.write(tmp_path / "key.json", f"{server.url}/token")
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(key))
    monkeypatch.setenv("GSCSYNC_API_URL", server.url)
    monkeypatch.setenv("GSCSYNC_DB", str(tmp_path / "gsc.db"))
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_SYNC_DAYS", "5")
    monkeypatch.setenv("GSCSYNC_QPM", "100000")
    return tmp_path / "gsc.db"


def document(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_sync_json_is_the_runs_summary_per_site_and_type(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("sync", "--json", "-s", SITES[0], "-s", SITES[1]) == 0
    doc = document(capsys)
    assert doc["command"] == "sync" and doc["status"] == "ok" and doc["exit_code"] == 0
    assert doc["sites"] == SITES[:2] and doc["failures"] == []
    per = {(e["site_url"], e["search_type"]): e for e in doc["by_site_type"]}
    assert set(per) == {(SITES[0], "web"), (SITES[1], "web")}
    assert sum(e["days_ok"] for e in per.values()) == doc["days_ok"] > 0
    assert sum(e["rows"] for e in per.values()) == doc["rows"] > 0
    assert doc["requests"] > 0


def test_check_and_the_dry_runs_print_json(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("check", "--json", "-s", SITES[0]) == 0
    checks = document(capsys)
    assert [c["name"] for c in checks][:4] == ["settings", "credentials", "database", "lock"]
    assert all(c["ok"] and c["message"] for c in checks)
    assert run_cli("sync", "--dry-run", "--json", "-s", SITES[0]) == 0
    (plan,) = document(capsys)
    assert plan["site_url"] == SITES[0] and len(plan["days"]) == 5
    assert run_cli("backfill", "--dry-run", "--json", "-s", SITES[0], "--start", "2026-11-01") == 0
    bf = document(capsys)
    assert bf["start"] == "2026-11-01" and bf["estimates"][0]["site_url"] == SITES[0]
    assert bf["total"]["requests_high"] >= bf["total"]["requests_low"] >= 1


def test_demo_json_and_a_second_demo_is_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.db"
    assert run_cli("demo", "--json", "--db", str(db)) == 0
    first = document(capsys)
    assert first["command"] == "sync" and first["days_ok"] > 0
    assert run_cli("demo", "--db", str(db)) == 0
    assert "is already up to date" in capsys.readouterr().out


def test_shards_partition_the_properties_and_each_syncs_its_own(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    for k in (1, 2, 3):
        db = tmp_path / f"shard-{k}.db"
        assert run_cli("sync", "--json", "--shard", f"{k}/3", "--db", str(db)) == 0
        sites = document(capsys)["sites"]
        assert all(shard_of(s, 3) == k for s in sites)
        seen += sites
    assert sorted(seen) == sorted(SITES)  # every property in exactly one shard


def test_a_run_that_cannot_start_still_prints_json(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gscsync.lock import hold_lock

    with hold_lock(Path(f"{env}.lock")):  # another run holds the lock
        assert run_cli("sync", "--json", "-s", SITES[0]) == 75
    held = document(capsys)
    assert (held["command"], held["status"], held["exit_code"]) == ("sync", "skipped", 75)
    assert "holds the lock" in held["error"]
    assert run_cli("backfill", "--json", "--start", "2099-01-01") == 2
    bad = document(capsys)
    assert (bad["status"], bad["exit_code"]) == ("failed", 2)
    assert "--start 2099-01-01 is in the future" in bad["error"]


def test_merge_writes_the_merged_database_in_the_file_mode(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import stat

    assert run_cli("sync", "-s", SITES[0]) == 0
    monkeypatch.setenv("GSCSYNC_FILE_MODE", "0640")
    out = tmp_path / "all.db"
    assert run_cli("merge", str(out), str(env)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
