"""One run at a time: an ``fcntl.flock`` on the lock file, holding the owner's pid.

The kernel drops a flock when its process dies, however it dies, so a crashed run never
leaves a stale lock behind; the file itself stays (removing it would race a new run).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gscsync.errors import ConfigError, LockHeld
from gscsync.files import PRIVATE_MODE


def read_pid(path: Path) -> int | None:
    """The pid written in a lock file, if any."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Take the lock or raise :class:`LockHeld` at once (never waits)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the lock file {path} ({exc.strerror}); set GSCSYNC_LOCK_FILE "
            "to a writable path"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(str(path), read_pid(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
