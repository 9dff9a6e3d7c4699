"""One run at a time per lock file, even when someone deletes the lock file.

Two locks are taken, without waiting, and both are dropped by the kernel when their
process dies, however it dies, so a crashed run never leaves a stale lock behind:

1. **A guard nothing on disk can remove** (Linux): an abstract Unix socket bound to a name
   made from the lock file's absolute path (its directory resolved). While a run holds it,
   a second run for the same lock path cannot bind it and exits 75 naming the holder's pid
   (asked of the socket, ``SO_PEERCRED``). This is what makes deleting the lock file safe:
   with an flock alone, ``rm`` of the file (by hand, by a tmp cleaner) while a run held it
   let the next run create a new file, lock that new inode and write at once.
2. **An ``fcntl.flock`` on the lock file**, which holds the owner's pid and start time
   (``4242 2026-03-06T04:00:00Z``: ``cat`` it to see who holds the lock). After the flock the
   path must still name the locked inode (a file replaced or removed between the open and
   the flock is opened again), and the file stays when the run ends (removing it would
   race a new run). This lock also works across network namespaces (containers sharing a
   volume) and on systems without abstract sockets, where the guard is not taken.

The lock file is gscsync's own: one that holds anything but a pid and a start time
(another program's file, a database reached through a symlink) is refused untouched
(exit 2). A lock file an older gscsync wrote (a pid alone) is taken as its own.

The way past a held lock is to wait for the holder, never another ``GSCSYNC_LOCK_FILE``:
two runs with two lock files would write the same database.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from gscsync.errors import ConfigError, LockHeld
from gscsync.files import PRIVATE_MODE, read_small_file

OPEN_ATTEMPTS = 5  # the lock file was replaced between open and flock this often: give up
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# What a lock file may hold: "<pid> <start, UTC>", or "<pid>" as older versions wrote it.
_CONTENT = re.compile(rb"(?P<pid>\d+)(?: (?P<started>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ))?")
_HEAD = 128  # bytes read to judge a lock file: far more than it ever holds


class Holder(NamedTuple):
    """Who a lock file says holds it."""

    pid: int
    started: str | None  # ISO 8601 UTC, None in a file an older version wrote


def parse_holder(content: bytes) -> Holder | None:
    """The holder a lock file's content names; None for an empty or foreign content."""
    match = _CONTENT.fullmatch(content.strip())
    if match is None:
        return None
    started = match.group("started")
    return Holder(int(match.group("pid")), started.decode("ascii") if started else None)


def read_holder(path: Path) -> Holder | None:
    """The holder written in a lock file, if any."""
    try:
        return parse_holder(read_small_file(path, _HEAD))
    except (OSError, ValueError):  # gone, unreadable, or not a small regular file
        return None


def read_pid(path: Path) -> int | None:
    """The pid written in a lock file, if any."""
    holder = read_holder(path)
    return holder.pid if holder else None


def holder_line() -> bytes:
    """What a run writes in the lock file it holds: its pid and start time (UTC)."""
    return f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode()


@contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Take the lock or raise :class:`LockHeld` at once (never waits)."""
    guard = _bind_guard(path)
    try:
        fd = _lock_file(path)
        try:
            _refuse_foreign(fd, path)
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder_line(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        if guard is not None:
            guard.close()


def _lock_file(path: Path) -> int:
    """An fd holding the flock of the inode ``path`` names (at the moment it returns)."""
    for _ in range(OPEN_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the lock file {path} ({exc.strerror}); set GSCSYNC_LOCK_FILE "
                "to a writable path"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(str(path), read_pid(path)) from None
        if _names(path, fd):
            return fd
        os.close(fd)  # replaced or removed since the open: that inode locks nothing
    raise LockHeld(str(path), read_pid(path))


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _refuse_foreign(fd: int, path: Path) -> None:
    head = os.pread(fd, _HEAD, 0)
    if head.strip() and parse_holder(head) is None:
        raise ConfigError(
            f"lock file {path} holds something other than a pid (another program's file?); "
            "gscsync writes only files it owns: set GSCSYNC_LOCK_FILE to a path of its own"
        )


def guard_name(path: Path) -> bytes:
    """The abstract socket name of the lock at ``path``: its directory resolved, so a
    relative path, a symlinked directory and a re-created file all give the same name."""
    key = os.path.join(os.path.realpath(path.parent), path.name)
    return b"\0gscsync-lock-" + hashlib.sha256(os.fsencode(key)).hexdigest().encode()


def _bind_guard(path: Path) -> socket.socket | None:
    """Bind the guard, or raise LockHeld; None where abstract sockets do not exist."""
    if not sys.platform.startswith("linux"):
        return None
    name = guard_name(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(128)  # only so that a refused run can ask the holder's pid
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise LockHeld(str(path), _holder_pid(name) or read_pid(path)) from None
        return None  # a sandbox without Unix sockets: the file lock alone
    return sock


def _holder_pid(name: bytes) -> int | None:
    """The pid of the process bound to the guard ``name``, as the kernel reports it."""
    if not sys.platform.startswith("linux"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(name)
            cred = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
        except OSError:  # its backlog is full: the lock file's pid will do
            return None
    pid: int = _CRED.unpack(cred)[0]
    return pid or None
