"""Settings: precedence, parsing, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gscsync.config import Settings, load_settings, validate_site
from gscsync.errors import ConfigError
from gscsync.models import SEARCH_TYPE_NAMES
from tests.conftest import run_cli


def test_defaults_match_the_spec() -> None:
    s = load_settings(environ={})
    assert s == Settings()
    assert (s.db, s.search_types, s.data_state, s.sync_days, s.enabled) == (
        Path("gscsync.db"),
        SEARCH_TYPE_NAMES,
        "final",
        10,
        True,
    )
    assert (s.api_url, s.concurrency, s.qpm, s.timeout, s.max_attempts) == (
        "https://searchconsole.googleapis.com",
        4,
        300,
        60.0,
        6,
    )
    assert (
        s.max_runtime,
        s.lock_path,
        s.log_format,
        s.breaker_threshold,
        s.breaker_cooldown,
        s.retention_days,
    ) == (None, Path("gscsync.db.lock"), "text", 5, 1800, 90)


def test_flag_beats_environment_beats_dotenv_beats_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GSCSYNC_DB=dotenv.db\nGSCSYNC_SYNC_DAYS=7\nGSCSYNC_QPM=50\n")
    env = {"GSCSYNC_DB": "env.db", "GSCSYNC_SYNC_DAYS": "5"}
    s = load_settings({"db": Path("flag.db")}, environ=env)
    assert (s.db, s.sync_days, s.qpm, s.concurrency) == (Path("flag.db"), 5, 50, 4)
    assert s.sources["db"] == "--db" and s.sources["qpm"] == "GSCSYNC_QPM (in .env)"


def test_env_file_flag_reads_that_file(tmp_path: Path) -> None:
    other = tmp_path / "other.env"
    other.write_text("GSCSYNC_SITES=sc-domain:a.com, https://b.com/\n")
    s = load_settings(environ={}, env_file=other)
    assert s.sites == ("sc-domain:a.com", "https://b.com/")
    with pytest.raises(ConfigError, match="--env-file"):
        load_settings(environ={}, env_file=tmp_path / "missing.env")


def test_google_application_credentials_is_the_fallback() -> None:
    s = load_settings(environ={"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"})
    assert s.credentials == Path("/k.json")
    s = load_settings(
        environ={"GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "GSCSYNC_CREDENTIALS": "/g.json"}
    )
    assert s.credentials == Path("/g.json")


def test_values_are_normalised() -> None:
    s = load_settings(
        environ={
            "GSCSYNC_SEARCH_TYPES": "WEB, googlenews,google_news,discover",
            "GSCSYNC_ENABLED": "No",
            "GSCSYNC_DATA_STATE": "ALL",
            "GSCSYNC_API_URL": "http://127.0.0.1:8080/",
            "GSCSYNC_MAX_RUNTIME": "90.5",
        }
    )
    assert s.search_types == ("web", "googleNews", "discover")
    assert (s.enabled, s.data_state, s.api_url, s.max_runtime) == (
        False,
        "all",
        "http://127.0.0.1:8080",
        90.5,
    )


BAD = [
    ("GSCSYNC_SITES", "example.com", "sc-domain:example.com"),
    ("GSCSYNC_SITES", "https://example.com", "must end with '/'"),
    ("GSCSYNC_SITES", "sc-domain:https://x.com/", "not a domain property"),
    ("GSCSYNC_SITES", "ftp:/x", "not a Search Console property"),
    ("GSCSYNC_DB", " ", "empty"),
    ("GSCSYNC_SEARCH_TYPES", "web,shopping", "unknown search type 'shopping'"),
    ("GSCSYNC_SEARCH_TYPES", ",", "empty"),
    ("GSCSYNC_DATA_STATE", "partial", "not one of: final, all"),
    ("GSCSYNC_SYNC_DAYS", "0", "between 1 and 540"),
    ("GSCSYNC_SYNC_DAYS", "ten", "not a whole number"),
    ("GSCSYNC_ENABLED", "maybe", "not a boolean"),
    ("GSCSYNC_API_URL", "searchconsole.googleapis.com", "not an http(s) URL"),
    ("GSCSYNC_CONCURRENCY", "0", "between 1 and 64"),
    ("GSCSYNC_QPM", "-5", "between 1 and"),
    ("GSCSYNC_TIMEOUT", "0", "positive number"),
    ("GSCSYNC_TIMEOUT", "soon", "not a number"),
    ("GSCSYNC_MAX_ATTEMPTS", "0", "between 1 and 50"),
    ("GSCSYNC_MAX_RUNTIME", "-1", "positive number"),
    ("GSCSYNC_LOG_FORMAT", "xml", "not one of: text, json"),
    ("GSCSYNC_HEALTHCHECK_URL", "hc-ping.com/abc", "not an http(s) URL"),
    ("GSCSYNC_BREAKER_THRESHOLD", "0", "between 1 and"),
    ("GSCSYNC_BREAKER_COOLDOWN", "x", "not a whole number"),
    ("GSCSYNC_RETENTION_DAYS", "0", "between 1 and"),
]


@pytest.mark.parametrize(("name", "value", "needle"), BAD)
def test_each_bad_setting_is_a_config_error_naming_it(name: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={name: value})
    assert str(info.value).startswith(name) and needle in str(info.value)


@pytest.mark.parametrize(("name", "value", "needle"), BAD[::4])
def test_each_bad_setting_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    needle: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert run_cli("sync") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and needle in err and "Traceback" not in err


def test_bad_flag_value_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sync", "-t", "shopping") == 2
    assert "--search-type" in capsys.readouterr().err


def test_unknown_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sync", "--no-such-flag") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-such-flag" in err


def test_http_hint_for_bare_domain() -> None:
    with pytest.raises(ConfigError, match=r"sc-domain:example\.com or https://example\.com/"):
        validate_site("example.com")
