"""One run at a time, even when the lock file is deleted or replaced under a running sync.

Each test starts a real second process that holds the lock (``hold_lock`` and a sleep)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from gscsync.errors import ConfigError, LockHeld
from gscsync.lock import OPEN_ATTEMPTS, guard_name, hold_lock
from gscsync.store import open_store
from tests.conftest import lock_held_elsewhere, run_cli
from tests.fakes import FakeGsc

TRY = (
    "import sys\n"
    "from pathlib import Path\n"
    "from gscsync.errors import LockHeld\n"
    "from gscsync.lock import hold_lock\n"
    "try:\n"
    "    with hold_lock(Path(sys.argv[1])):\n"
    "        print('got the lock')\n"
    "except LockHeld as exc:\n"
    "    print(exc.pid)\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Process A: holds the lock of ``tmp_path / 'gsc.db.lock'`` until killed."""
    with lock_held_elsewhere(tmp_path / "gsc.db.lock") as proc:
        yield proc


def second_process(lock: Path) -> str:
    """Process B, another real process: what it gets when it asks for the lock."""
    done = subprocess.run(
        [sys.executable, "-c", TRY, str(lock)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def remove(lock: Path) -> None:
    lock.unlink()


def replace(lock: Path) -> None:
    fresh = lock.with_name("fresh")
    fresh.write_text("")
    os.replace(fresh, lock)


LINUX_ONLY = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the guard is an abstract Unix socket"
)


@LINUX_ONLY
@pytest.mark.parametrize("change", [remove, replace], ids=["deleted", "replaced"])
def test_deleting_the_lock_file_while_a_run_holds_it_does_not_let_a_second_run_in(
    holder: subprocess.Popen[str], tmp_path: Path, change: Callable[[Path], None]
) -> None:
    lock = tmp_path / "gsc.db.lock"
    change(lock)
    assert second_process(lock) == str(holder.pid)
    with pytest.raises(LockHeld) as info:  # and this process, a third one
        with hold_lock(lock):
            pytest.fail("two runs hold the lock at once")
    assert info.value.pid == holder.pid and f"pid {holder.pid}" in str(info.value)
    holder.kill()
    holder.wait()
    assert second_process(lock) == "got the lock"  # the holder gone, nothing stale remains


@LINUX_ONLY
def test_sync_exits_75_naming_the_holder_after_its_lock_file_was_deleted(
    holder: subprocess.Popen[str],
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    monkeypatch.setenv("GSCSYNC_SITES", "sc-domain:example.com")
    open_store(api_env).close()
    before = hashlib.sha256(api_env.read_bytes()).hexdigest()
    Path(f"{api_env}.lock").unlink()
    assert run_cli("sync") == 75
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"another gscsync run (pid {holder.pid}) holds the lock" in err
    assert hashlib.sha256(api_env.read_bytes()).hexdigest() == before


def test_a_plain_second_run_is_refused_and_the_lock_file_is_private(
    holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    lock = tmp_path / "gsc.db.lock"
    assert second_process(lock) == str(holder.pid)
    pid, started = lock.read_text().split()  # the holder's pid and start time
    assert int(pid) == holder.pid and started.endswith("Z")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_a_lock_file_replaced_between_open_and_flock_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "x.lock"
    real_flock = fcntl.flock
    calls: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX and not calls:
            replace(lock)  # another process swaps the file in between
        calls.append(operation)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with hold_lock(lock):
        # the lock is on the inode the path names now, which holds our pid
        assert lock.read_text().split()[0] == str(os.getpid())
    assert len([op for op in calls if op & fcntl.LOCK_EX]) == 2


def test_a_lock_file_that_keeps_changing_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "x.lock"
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX:
            replace(lock)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(LockHeld):
        with hold_lock(lock):
            pytest.fail("locked a file the path no longer names")
    assert OPEN_ATTEMPTS >= 3


def test_a_lock_file_that_is_another_programs_file_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other-app.db"
    other.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    before = other.read_bytes()
    lock = tmp_path / "gsc.db.lock"
    lock.symlink_to(other)
    with pytest.raises(ConfigError) as info:
        with hold_lock(lock):
            pytest.fail("took another program's file as the lock")
    assert str(info.value).startswith(f"lock file {lock} holds something other than a pid")
    assert other.read_bytes() == before


def test_the_guard_is_named_after_the_lock_path_however_it_is_spelled(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    name = guard_name(tmp_path / "real" / "gsc.db.lock")
    assert guard_name(tmp_path / "link" / "gsc.db.lock") == name
    assert guard_name(Path("real/gsc.db.lock")) == name  # the tests run in tmp_path
    assert guard_name(tmp_path / "real" / "other.lock") != name
    assert name.startswith(b"\0gscsync-lock-")
