"""`gscsync sites` and `gscsync check`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from tests.conftest import lock_held_elsewhere, run_cli
from tests.fakes import TOKEN_URI, FakeGsc

S1, S2, S3 = "sc-domain:example.com", "https://www.example.org/", "https://locked.example/"


@pytest.fixture
def served(httpx_mock: HTTPXMock, fake: FakeGsc, api_env: Path) -> FakeGsc:
    fake.sites = {S1: "siteOwner", S2: "siteRestrictedUser", S3: "siteUnverifiedUser"}
    fake.forbidden.add(S3)
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    return fake


def test_sites_json_marks_what_sync_takes(
    served: FakeGsc, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("sites", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"site_url": S1, "permission_level": "siteOwner", "synced": True},
        {"site_url": S2, "permission_level": "siteRestrictedUser", "synced": True},
        {"site_url": S3, "permission_level": "siteUnverifiedUser", "synced": False},
    ]


def test_sites_with_configured_sites_lists_invisible_ones(
    served: FakeGsc, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("sites", "--json", "-s", S2, "-s", "sc-domain:other.example") == 0
    doc = {d["site_url"]: d for d in json.loads(capsys.readouterr().out)}
    assert [u for u, d in doc.items() if d["synced"]] == [S2, "sc-domain:other.example"]
    assert doc["sc-domain:other.example"]["permission_level"] is None


def test_sites_table(served: FakeGsc, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sites") == 0
    out = capsys.readouterr().out
    assert S1 in out and "siteUnverifiedUser" in out


def test_check_passes_on_a_good_setup(
    served: FakeGsc, capsys: pytest.CaptureFixture[str], api_env: Path
) -> None:
    assert run_cli("check", "-s", S1, "-s", S2) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(": ")[0] for ln in lines] == [
        "✓ settings",
        "✓ credentials",
        "✓ database",
        "✓ lock",
        f"✓ site {S1}",
        f"✓ site {S2}",
    ]
    assert "sync@p.iam.gserviceaccount.com" in lines[1]
    assert api_env.exists()  # the database was created and migrated


def test_check_bad_settings_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSCSYNC_CONCURRENCY", "lots")
    assert run_cli("check") == 2
    out = capsys.readouterr().out
    assert out.startswith("✗ settings: GSCSYNC_CONCURRENCY") and out.count("\n") == 1


def test_check_bad_credentials_file_exits_3_with_the_fix(
    httpx_mock: HTTPXMock,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "key.json"
    bad.write_text("{not json")
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(bad))
    assert run_cli("check", "-s", S1) == 3
    out = capsys.readouterr().out
    assert f"✗ credentials: credentials file {bad} is not JSON" in out
    assert "fix: point GSCSYNC_CREDENTIALS" in out
    assert "✓ database" in out and "✓ lock" in out


def test_check_refused_token_exits_3(
    httpx_mock: HTTPXMock, api_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, status_code=400, json={"error": "invalid_grant"})
    assert run_cli("check", "-s", S1) == 3
    assert "✗ credentials: the token endpoint refused the credentials: invalid_grant" in (
        capsys.readouterr().out
    )


def test_check_inaccessible_site_exits_3_naming_the_fix(
    served: FakeGsc, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("check", "-s", S1, "-s", S3) == 3
    out = capsys.readouterr().out
    assert f"✓ site {S1}" in out
    assert f"✗ site {S3}: User does not have sufficient permission" in out
    assert f"fix: add sync@p.iam.gserviceaccount.com as a user of {S3}" in out


def test_check_unwritable_database_path_exits_1(
    served: FakeGsc, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_cli("check", "-s", S1, "--db", str(tmp_path / "missing" / "g.db")) == 1
    out = capsys.readouterr().out
    assert "✗ database: database directory" in out and "create it or set GSCSYNC_DB" in out


def test_check_beside_a_running_sync_reports_it_and_passes(
    served: FakeGsc, capsys: pytest.CaptureFixture[str], api_env: Path
) -> None:
    with lock_held_elsewhere(Path(f"{api_env}.lock")) as holder:
        # a smoke run or a health probe beside the 04:00 sync: information, not a failure
        assert run_cli("check", "-s", S1) == 0
        out = capsys.readouterr().out
        assert f"✓ lock: a gscsync run is going on (pid {holder.pid}, since 20" in out


def test_check_says_when_syncing_is_disabled(
    served: FakeGsc,
    capsys: pytest.CaptureFixture[str],
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GSCSYNC_ENABLED", "false")
    assert run_cli("check", "-s", S1) == 0
    assert "GSCSYNC_ENABLED is false: sync and backfill do nothing" in capsys.readouterr().out


@pytest.mark.parametrize("command", [("check",), ("sync",), ("sync", "--dry-run")])
def test_a_world_readable_key_is_warned_about_once(
    served: FakeGsc,
    capsys: pytest.CaptureFixture[str],
    api_env: Path,
    sa_key: Path,
    command: tuple[str, ...],
) -> None:
    sa_key.chmod(0o644)
    run_cli(*command, "-s", S1)
    assert capsys.readouterr().err.count("readable by every user on this machine") == 1
