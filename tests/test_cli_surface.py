"""The command line as people meet it: ``-h``, the variables behind each option in
``--help``, readable placeholders, ``--credentials`` wherever the API is called, and
shell completion through the console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from gscsync.cli import app
from tests.conftest import run_cli
from tests.fakes import FakeGsc

ROOT = Path(__file__).resolve().parents[1]
CLI = typer.main.get_command(app)
COMMANDS: dict[str, click.Command] = CLI.commands  # type: ignore[attr-defined]
# option (parameter name) -> the variable behind it, as --help must name it
ENV = {
    "site": "GSCSYNC_SITES",
    "search_type": "GSCSYNC_SEARCH_TYPES",
    "db": "GSCSYNC_DB",
    "credentials": "GSCSYNC_CREDENTIALS",
    "shard": "GSCSYNC_SHARD",
    "log_format": "GSCSYNC_LOG_FORMAT",
}
PLACEHOLDERS = {
    "--site": "SITE",
    "--search-type": "TYPE",
    "--db": "PATH",
    "--credentials": "PATH",
    "--shard": "K/N",
    "--env-file": "PATH",
    "--log-format": "text|json",
    "--start": "DATE",
    "--end": "DATE",
    "--max-age": "HOURS",
}
API_COMMANDS = ("sync", "backfill", "sites", "check")


def help_of(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def help_records(name: str) -> dict[str, str]:
    """Each option of a command -> its help text, as --help prints it."""
    command = COMMANDS[name]
    ctx = click.Context(command, info_name=name, parent=click.Context(CLI, info_name="gscsync"))
    out = {}
    for param in command.params:
        record = param.get_help_record(ctx)
        if record is not None and param.name is not None:
            out[param.name] = " ".join(record[1].split())
    return out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_names_the_environment_variable_behind_each_option(name: str) -> None:
    records = help_records(name)
    for option, var in ENV.items():
        if option in records and name != "demo":  # demo's --db is its own, not GSCSYNC_DB
            assert f"[env: {var}" in records[option], (name, option, records[option])


def test_sync_help_mentions_the_credentials_variables() -> None:
    text = " ".join(help_of("sync", "--help").split())
    assert "--credentials PATH" in text
    assert "[env: GSCSYNC_CREDENTIALS, else GOOGLE_APPLICATION_CREDENTIALS]" in text
    assert "[env: GSCSYNC_SHARD, or GSCSYNC_SHARDS with JOB_COMPLETION_INDEX]" in text


@pytest.mark.parametrize("name", ["", *sorted(COMMANDS)])
def test_dash_h_is_help_everywhere(name: str) -> None:
    args = [name] if name else []
    assert help_of(*args, "-h") == help_of(*args, "--help")
    assert "-h, --help" in help_of(*args, "-h")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_options_have_readable_placeholders(name: str) -> None:
    text = help_of(name, "--help")
    for word in ("TEXT", "INTEGER", "FLOAT", "list[", "PATH..."):
        assert word not in text, (name, word)
    assert not re.search(r"<\w[^>]*>", text), name  # no <path>, <list[str]>
    for param in COMMANDS[name].params:
        if isinstance(param, click.Option) and not param.is_flag and not param.count:
            flag = next(o for o in param.opts if o.startswith("--"))
            assert param.metavar == PLACEHOLDERS[flag], (name, flag)
            assert f"{flag} {param.metavar}" in text


def test_merge_usage_names_its_arguments() -> None:
    text = help_of("merge", "--help")
    assert "Usage: gscsync merge [OPTIONS] {OUT.db} {SHARD.db}..." in text
    assert "Example: gscsync merge all.db shard-1.db shard-2.db" in " ".join(text.split())


@pytest.mark.parametrize("name", API_COMMANDS)
def test_every_command_that_calls_the_api_takes_credentials(name: str) -> None:
    flags = {opt for p in COMMANDS[name].params for opt in p.opts}
    assert "--credentials" in flags
    if name in ("sync", "backfill"):
        assert "--shard" in flags


@pytest.fixture
def served(
    httpx_mock: HTTPXMock, fake: FakeGsc, api_env: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeGsc:
    """The fake API, and no credentials in the environment."""
    monkeypatch.delenv("GSCSYNC_CREDENTIALS")
    fake.sites = {"sc-domain:example.com": "siteOwner"}
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    return fake


def test_credentials_flag_is_used(
    served: FakeGsc, sa_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("sites", "--json") == 2  # no credentials anywhere
    capsys.readouterr()
    assert run_cli("sites", "--json", "--credentials", str(sa_key)) == 0
    assert json.loads(capsys.readouterr().out)[0]["site_url"] == "sc-domain:example.com"


def test_credentials_flag_wins_over_the_environment(
    served: FakeGsc,
    sa_key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(tmp_path / "missing.json"))
    assert run_cli("check", "--credentials", str(sa_key), "-s", "sc-domain:example.com") == 0
    capsys.readouterr()
    assert run_cli("sync", "--credentials", str(tmp_path / "nope.json")) == 2
    assert "nope.json does not exist" in capsys.readouterr().err


def test_completion_is_offered() -> None:
    text = help_of("--help")
    assert "--install-completion" in text and "--show-completion" in text


def _console_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The ``gscsync`` console script (``gscsync.signals:main``) in a fresh process."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    code = "import sys; from gscsync.signals import main; sys.argv[0] = 'gscsync'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environ
    )


def test_the_console_script_runs_and_completes() -> None:
    version = _console_script("--version")
    assert version.returncode == 0 and version.stdout.startswith("gscsync ")
    script = _console_script("--show-completion", "bash")
    assert script.returncode == 0 and "_GSCSYNC_COMPLETE=complete_bash" in script.stdout
    words = _console_script(
        _GSCSYNC_COMPLETE="complete_bash", COMP_WORDS="gscsync me", COMP_CWORD="1"
    )
    assert words.returncode == 0 and words.stdout.split() == ["merge"]
    options = _console_script(
        _GSCSYNC_COMPLETE="complete_bash", COMP_WORDS="gscsync sync --cre", COMP_CWORD="2"
    )
    assert options.stdout.split() == ["--credentials"]
