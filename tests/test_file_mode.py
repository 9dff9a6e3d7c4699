"""Files only the owner can read by default; GSCSYNC_FILE_MODE=0640 lets the owner's
group read the database and its WAL/SHM files (a dashboard running as another user)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gscsync.config import load_settings
from gscsync.errors import ConfigError
from gscsync.models import DayData, DayTask
from gscsync.store import open_store


def modes(db: Path) -> dict[str, int]:
    return {
        suffix or "db": stat.S_IMODE(Path(f"{db}{suffix}").stat().st_mode)
        for suffix in ("", "-wal", "-shm")
        if Path(f"{db}{suffix}").exists()
    }


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_the_database_and_its_wal_files_get_the_mode(tmp_path: Path, mode: int) -> None:
    old = os.umask(0o077)  # a strict umask must not take the group's read away
    try:
        db = tmp_path / "g.db"
        with open_store(db, mode=mode) as store:
            store.write_day(DayData(DayTask("sc-domain:a.com", "web", "2026-03-01")))
            got = modes(db)
    finally:
        os.umask(old)
    assert set(got) >= {"db", "-wal", "-shm"}
    assert set(got.values()) == {mode}


def test_an_existing_database_follows_a_changed_setting(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    open_store(db).close()
    assert modes(db)["db"] == 0o600
    open_store(db, mode=0o640).close()
    assert modes(db)["db"] == 0o640


def test_the_setting_takes_0600_or_0640_only() -> None:
    assert load_settings(environ={}).file_mode == 0o600
    assert load_settings(environ={"GSCSYNC_FILE_MODE": "0640"}).file_mode == 0o640
    assert load_settings(environ={"GSCSYNC_FILE_MODE": "640"}).file_mode == 0o640
    with pytest.raises(ConfigError, match="GSCSYNC_FILE_MODE='0644'.*0600.*0640"):
        load_settings(environ={"GSCSYNC_FILE_MODE": "0644"})
