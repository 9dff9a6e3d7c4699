"""A setting never makes gscsync write a file it does not own: the lock file, the metrics
file and the env file may not be the database or its -wal/-shm/-journal files (compared
as resolved paths and as inodes, through symlinks and hard links), nor each other."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from gscsync.config import load_settings
from gscsync.errors import ConfigError
from gscsync.models import DayData, DayTask
from gscsync.store import open_store
from tests.conftest import run_cli
from tests.fakes import FakeGsc

S1 = "sc-domain:example.com"


def digest(*paths: Path) -> list[str | None]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths]


def symlink(tmp: Path, name: str, target: str) -> str:
    (tmp / name).symlink_to(tmp / target)
    return str(tmp / name)


def hardlink(tmp: Path, name: str, target: str) -> str:
    (tmp / target).touch()
    os.link(tmp / target, tmp / name)
    return name


Case = tuple[dict[str, str], Callable[[Path], dict[str, str]] | None, str]
# (environment, extra setup returning more environment, the start of the one line)
CASES: dict[str, Case] = {
    "lock-is-db": (
        {"GSCSYNC_LOCK_FILE": "g.db"},
        None,
        "GSCSYNC_LOCK_FILE=g.db is the database g.db; gscsync writes only files it owns: "
        "set GSCSYNC_LOCK_FILE to a path of its own",
    ),
    "lock-is-db-absolute": (
        {},
        lambda t: {"GSCSYNC_LOCK_FILE": str(t / "g.db")},
        "GSCSYNC_LOCK_FILE={tmp}/g.db is the database g.db;",
    ),
    "lock-symlink-to-db": (
        {},
        lambda t: {"GSCSYNC_LOCK_FILE": symlink(t, "lock", "g.db")},
        "GSCSYNC_LOCK_FILE={tmp}/lock is the database g.db;",
    ),
    "lock-hardlink-to-db": (
        {},
        lambda t: {"GSCSYNC_LOCK_FILE": hardlink(t, "lock", "g.db")},
        "GSCSYNC_LOCK_FILE=lock is the database g.db;",
    ),
    "lock-is-wal": (
        {"GSCSYNC_LOCK_FILE": "./g.db-wal"},
        None,
        "GSCSYNC_LOCK_FILE=g.db-wal is the -wal file of the database g.db;",
    ),
    "lock-in-symlinked-dir": (
        {"GSCSYNC_DB": "real/g.db"},
        lambda t: {"GSCSYNC_LOCK_FILE": symlink(t, "alias", "real") + "/g.db-journal"},
        "GSCSYNC_LOCK_FILE={tmp}/alias/g.db-journal is the -journal file of the database "
        "real/g.db;",
    ),
    "metrics-is-db": (
        {"GSCSYNC_METRICS_FILE": "g.db"},
        None,
        "GSCSYNC_METRICS_FILE=g.db is the database g.db; gscsync writes only files it owns: "
        "set GSCSYNC_METRICS_FILE to a path of its own",
    ),
    "metrics-is-shm": (
        {"GSCSYNC_METRICS_FILE": "g.db-shm"},
        None,
        "GSCSYNC_METRICS_FILE=g.db-shm is the -shm file of the database g.db;",
    ),
    "metrics-is-lock": (
        {"GSCSYNC_METRICS_FILE": "run.lock", "GSCSYNC_LOCK_FILE": "run.lock"},
        None,
        "GSCSYNC_METRICS_FILE=run.lock is the lock file run.lock;",
    ),
    "metrics-is-default-lock": (
        {"GSCSYNC_METRICS_FILE": "g.db.lock"},
        None,
        "GSCSYNC_METRICS_FILE=g.db.lock is the lock file g.db.lock;",
    ),
    "metrics-is-credentials": (
        {"GSCSYNC_METRICS_FILE": "sa.json", "GSCSYNC_CREDENTIALS": "sa.json"},
        None,
        "GSCSYNC_METRICS_FILE=sa.json is the credentials file sa.json;",
    ),
    "default-lock-symlink-to-db": (
        {},
        lambda t: {"GSCSYNC_DB": symlink(t, "g.db.lock", "g.db").removesuffix(".lock")},
        "the lock file {tmp}/g.db.lock is the database {tmp}/g.db;",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_setting_that_is_the_database_is_refused(tmp_path: Path, case: str) -> None:
    env, setup, words = CASES[case]
    (tmp_path / "real").mkdir()
    env = {"GSCSYNC_DB": "g.db", **env, **(setup(tmp_path) if setup else {})}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    message = str(info.value)
    assert message.startswith(words.format(tmp=tmp_path)) and "\n" not in message


def test_the_env_file_may_not_be_the_database_nor_be_written(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GSCSYNC_LOCK_FILE=.env\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert str(info.value).startswith(
        "GSCSYNC_LOCK_FILE=.env (in .env) is the env file .env; gscsync writes only files"
    )
    open_store(tmp_path / "g.db").close()
    with pytest.raises(ConfigError, match=r"^--env-file g\.db is the database g\.db; give"):
        load_settings(environ={"GSCSYNC_DB": "g.db"}, env_file=Path("g.db"))
    with pytest.raises(ConfigError, match=r"^--env-file g\.db: cannot read it"):
        load_settings(environ={}, env_file=Path("g.db"))  # not this run's database: unreadable
    os.replace(tmp_path / "g.db", tmp_path / "gscsync.db")  # the database by default
    with pytest.raises(ConfigError, match=r"^--env-file gscsync\.db is the database gscsync\.db"):
        load_settings(environ={}, env_file=Path("gscsync.db"))


def test_files_of_their_own_are_accepted_and_relative_paths_stay_relative(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    s = load_settings(
        environ={
            "GSCSYNC_DB": "sub/g.db",
            "GSCSYNC_METRICS_FILE": "sub/gscsync.prom",
            "GSCSYNC_CREDENTIALS": "sa.json",
        }
    )
    assert (s.db, s.lock_path, s.metrics_file) == (
        Path("sub/g.db"),
        Path("sub/g.db.lock"),
        Path("sub/gscsync.prom"),
    )


@pytest.fixture
def existing_db(api_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = open_store(api_env)
    store.write_day(
        DayData(
            DayTask(S1, "web", (date.today() - timedelta(days=5)).isoformat()),
            rows=[("q", "p", "usa", "MOBILE", 1, 2, 0.5, 1.0)],
        )
    )
    store.close()
    monkeypatch.setenv("GSCSYNC_SITES", S1)
    return api_env


@pytest.mark.parametrize(
    ("variable", "suffix", "words"),
    [
        ("GSCSYNC_LOCK_FILE", "", "is the database"),
        ("GSCSYNC_METRICS_FILE", "", "is the database"),
        ("GSCSYNC_LOCK_FILE", "-wal", "is the -wal file of the database"),
        ("GSCSYNC_METRICS_FILE", "-journal", "is the -journal file of the database"),
    ],
)
def test_sync_with_a_setting_pointing_at_the_database_exits_2_leaving_it_untouched(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    existing_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    suffix: str,
    words: str,
) -> None:
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    files = [existing_db, *(Path(f"{existing_db}{s}") for s in ("-wal", "-shm", "-journal"))]
    before = digest(*files)
    monkeypatch.setenv(variable, f"{existing_db}{suffix}")
    assert run_cli("sync") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{variable}={existing_db}{suffix} {words} {existing_db}; " in err
    assert digest(*files) == before


def test_sync_with_the_database_as_env_file_exits_2(
    existing_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(existing_db)
    assert run_cli("sync", "--env-file", str(existing_db)) == 2
    err = capsys.readouterr().err
    assert f"--env-file {existing_db} is the database {existing_db}" in err
    assert err.count("\n") == 1 and digest(existing_db) == before
