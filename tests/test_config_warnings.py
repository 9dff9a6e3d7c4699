"""Settings that are easy to get wrong without an error: an unknown ``GSCSYNC_*`` name draws
a warning naming the closest known one, and relative paths in an env file are relative
to that file, not to the working directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import gscsync
from gscsync.config import ENV_VARS, closest_name, load_settings, unknown_names
from gscsync.store import open_store
from tests.conftest import run_cli

# -- unknown names -----------------------------------------------------------------------------


def test_unknown_names_in_the_environment_warn_with_the_closest_known_one() -> None:
    environ = {
        "GSCSYNC_SITE": "sc-domain:a.com",
        "GSCSYNC_QMP": "100",
        "GSCSYNC_DB": "g.db",
        "GSCSYNC_ZZZZZZZZ": "1",
        "PATH": "/usr/bin",
    }
    settings = load_settings(environ=environ)
    assert settings.sites == () and settings.qpm == 300  # ignored, never an error
    assert list(settings.warnings) == [
        "GSCSYNC_QMP (in the environment) is not a gscsync setting and is ignored; "
        "did you mean GSCSYNC_QPM?",
        "GSCSYNC_SITE (in the environment) is not a gscsync setting and is ignored; "
        "did you mean GSCSYNC_SITES?",
        "GSCSYNC_ZZZZZZZZ (in the environment) is not a gscsync setting and is ignored; "
        "no known setting is like it",
    ]


def test_unknown_names_in_the_env_file_warn_naming_the_file(tmp_path: Path) -> None:
    env = tmp_path / "prod.env"
    env.write_text("GSCSYNC_CREDENTIAL=key.json\nGSCSYNC_SHARDS=2\ngscsync_db=x.db\n")
    settings = load_settings(environ={"GSCSYNC_CREDENTIAL": "k.json"}, env_file=env)
    assert list(settings.warnings) == [
        "GSCSYNC_CREDENTIAL (in the environment) is not a gscsync setting and is ignored; "
        "did you mean GSCSYNC_CREDENTIALS?",  # once, though in both places
        f"gscsync_db (in the env file {env}) is not a gscsync setting and is ignored; "
        "did you mean GSCSYNC_DB?",
    ]


def test_known_names_draw_no_warning() -> None:
    known = {name: "1" for name in ENV_VARS}
    assert unknown_names(known, known, Path(".env")) == []


def test_the_cli_warns_on_stderr_and_runs_as_before(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSCSYNC_SITE", "sc-domain:a.com")
    assert run_cli("datasette-metadata") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert re.search(
        r" WARNING GSCSYNC_SITE \(in the environment\) is not a gscsync setting and is "
        r"ignored; did you mean GSCSYNC_SITES\?$",
        lines[0],
    )


def test_the_warning_comes_in_the_log_format_asked_for_even_from_the_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text("GSCSYNC_LOG_FORMAT=json\nGSCSYNC_QMP=100\n")
    assert run_cli("datasette-metadata") == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "warning"
    assert doc["msg"] == (
        "GSCSYNC_QMP (in the env file .env) is not a gscsync setting and is ignored; "
        "did you mean GSCSYNC_QPM?"
    )


def test_every_gscsync_name_the_code_reads_is_known() -> None:
    """A name mentioned anywhere in the package (a setting read elsewhere, or named in a
    message) or in the examples must be one that draws no warning."""
    package = Path(gscsync.__file__).parent
    files = [*package.rglob("*.py"), *(package.parent / "examples").rglob("*")]
    named = {
        name
        for path in files
        if path.is_file()
        for name in re.findall(r"\bGSCSYNC_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    assert named and named <= set(ENV_VARS), sorted(named - set(ENV_VARS))
    assert {"GSCSYNC_SHARD", "GSCSYNC_SHARDS", "GSCSYNC_API_URL"} <= set(ENV_VARS)


def test_closest_name() -> None:
    assert closest_name("GSCSYNC_SEARCH_TYPE") == "GSCSYNC_SEARCH_TYPES"
    assert closest_name("GSCSYNC_LOCKFILE") == "GSCSYNC_LOCK_FILE"
    assert closest_name("GSCSYNC_SHARD_COUNT") in ("GSCSYNC_SHARD", "GSCSYNC_SHARDS")


# -- relative paths in the env file ------------------------------------------------------------


def test_relative_paths_in_an_env_file_are_relative_to_its_directory(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    env = conf / "prod.env"
    env.write_text(
        "GSCSYNC_DB=data/g.db\nGSCSYNC_CREDENTIALS=key.json\nGSCSYNC_LOCK_FILE=../run/g.lock\n"
        "GSCSYNC_METRICS_FILE=/var/lib/node/gscsync.prom\n"
    )
    s = load_settings(environ={}, env_file=env)
    assert s.db == conf / "data" / "g.db"
    assert s.credentials == conf / "key.json"
    assert s.lock_file == conf / "../run/g.lock"
    assert s.metrics_file == Path("/var/lib/node/gscsync.prom")  # absolute: as written
    relative = load_settings(environ={}, env_file=Path("conf/prod.env"))
    assert relative.db == Path("conf/data/g.db")


def test_paths_from_the_environment_and_flags_stay_relative_to_the_working_directory(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    env = conf / "prod.env"
    env.write_text("GSCSYNC_DB=g.db\nGSCSYNC_CREDENTIALS=key.json\n")
    s = load_settings(environ={"GSCSYNC_CREDENTIALS": "k.json"}, env_file=env)
    assert (s.db, s.credentials) == (conf / "g.db", Path("k.json"))
    s = load_settings({"db": Path("flag.db")}, environ={}, env_file=env)
    assert s.db == Path("flag.db")
    google = load_settings(
        environ={}, env_file=_write(conf / "g.env", "GOOGLE_APPLICATION_CREDENTIALS=k.json\n")
    )
    assert google.credentials == conf / "k.json"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_dot_env_of_the_working_directory_keeps_its_paths(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GSCSYNC_DB=here.db\n")
    assert load_settings(environ={}).db == Path("here.db")


def test_status_reads_the_database_named_relative_to_the_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    open_store(conf / "g.db").close()
    _write(conf / "gscsync.env", "GSCSYNC_DB=g.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli("status", "--json", "--env-file", "../conf/gscsync.env") == 1  # no sync yet
    assert json.loads(capsys.readouterr().out)["database"] == "../conf/g.db"
    assert not (elsewhere / "g.db").exists()
