"""Settings: precedence, parsing, and one clear error per bad value."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gscsync.config import Settings, load_settings
from gscsync.errors import ConfigError
from gscsync.models import SEARCH_TYPE_NAMES
from gscsync.parse import validate_site
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
    # every number of seconds is finite and bounded (1e308 overflowed later)
    ("GSCSYNC_TIMEOUT", "1e308", "is too long: at most 3600 seconds (1 hour)"),
    ("GSCSYNC_TIMEOUT", "nan", "is not a number of seconds"),
    ("GSCSYNC_MAX_RUNTIME", "604801", "is too long: at most 604800 seconds (7 days)"),
    ("GSCSYNC_MAX_RUNTIME", "inf", "is too long"),
    ("GSCSYNC_QUOTA_COOLOFF", "3601", "is too long: at most 3600 seconds (1 hour)"),
    ("GSCSYNC_QUOTA_PATIENCE", "86401", "is too long: at most 86400 seconds (1 day)"),
    ("GSCSYNC_QUOTA_PATIENCE", "-1", "must be 0 or a positive number of seconds"),
    # a control character inside a property (urlsplit silently drops tabs and newlines)
    ("GSCSYNC_SITES", "https://example.com/\tshop/", "contains the control character '\\t'"),
    ("GSCSYNC_SITES", "https://example.com/\nx/", "contains the control character '\\n'"),
    ("GSCSYNC_SITES", "sc-domain:a.com\x7f", "contains the control character '\\x7f'"),
    ("GSCSYNC_API_URL", "http://127.0.0.1:8765\r\n/", "contains the control character '\\r'"),
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


def test_numbers_of_seconds_up_to_their_bound_are_accepted() -> None:
    s = load_settings(
        environ={
            "GSCSYNC_TIMEOUT": "3600",
            "GSCSYNC_MAX_RUNTIME": "604800",
            "GSCSYNC_QUOTA_COOLOFF": "0.5",
            "GSCSYNC_QUOTA_PATIENCE": "0",
        }
    )
    assert (s.timeout, s.max_runtime, s.quota_cooloff, s.quota_patience) == (
        3600.0,
        604800.0,
        0.5,
        0.0,
    )
    assert load_settings(environ={"GSCSYNC_QUOTA_PATIENCE": "86400"}).quota_patience == 86400


@pytest.mark.parametrize(
    "site", ["https://a.com/\u200bshop/", "sc-domain:a\u2028b.com", "https://a.com/\x00/"]
)
def test_invisible_and_control_characters_fail_validate_site(site: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_site(site, "--site")
    assert str(info.value).startswith("--site: ") and "control character" in str(info.value)
    assert "\n" not in str(info.value)
    assert validate_site(" https://a.com/\n") == "https://a.com/"  # surrounding space: trimmed


# -- the .env file ------------------------------------------------------------------------


def test_a_syntax_error_in_the_env_file_is_a_config_error_naming_file_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(
        '# settings\nGSCSYNC_QPM=50\nGSCSYNC_SITES="sc-domain:a.com\nGSCSYNC_SYNC_DAYS=3\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert str(info.value) == (
        "env file .env line 3 (GSCSYNC_SITES) cannot be parsed (an unterminated quote?); "
        "fix that line"
    )
    other = tmp_path / "prod.env"
    other.write_text("GSCSYNC_QPM='50\n")
    with pytest.raises(ConfigError, match=rf"^--env-file {other} line 1 \(GSCSYNC_QPM\)"):
        load_settings(environ={}, env_file=other)


def test_a_broken_env_file_stops_the_cli_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text('GSCSYNC_DB="elsewhere.db\n')
    assert run_cli("sync") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "env file .env line 1 (GSCSYNC_DB) cannot be parsed" in err
    assert not (tmp_path / "gscsync.db").exists()  # the run did not go on with defaults


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "env-fifo"
    os.mkfifo(path)
    return path


def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.env"
    path.write_text("# padding\n" * 100_001)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda t: t, "is a directory; give the path of a .env file"),
        (fifo, "is not a regular file (a FIFO, socket or device); give the path of a .env file"),
        (
            lambda t: Path("/dev/zero"),
            "is not a regular file (a FIFO, socket or device); give the path of a .env file",
        ),
        (big, "is 1,000,010 bytes, more than 1,000,000; give the path of a .env file"),
    ],
    ids=["directory", "fifo", "dev-zero", "over-1-MB"],
)
def test_an_env_file_must_be_a_small_regular_file_and_is_never_waited_on(
    tmp_path: Path, make: Callable[[Path], Path], words: str
) -> None:
    path = make(tmp_path)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_settings(environ={}, env_file=path)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked opening a FIFO: release it, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"load_settings waited on {path}")
    assert isinstance(outcome[0], ConfigError)
    assert str(outcome[0]) == f"--env-file {path} {words}"


def test_an_env_file_of_exactly_1_mb_and_one_not_utf8_are_told_apart(tmp_path: Path) -> None:
    ok = tmp_path / "ok.env"
    ok.write_text("GSCSYNC_QPM=7\n" + "#" * (1_000_000 - 15) + "\n")
    assert ok.stat().st_size == 1_000_000
    assert load_settings(environ={}, env_file=ok).qpm == 7
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"GSCSYNC_SITES=sc-domain:caf\xe9.com\n")
    with pytest.raises(ConfigError, match="cannot read it \\(not UTF-8 text\\)"):
        load_settings(environ={}, env_file=latin)
