"""Files gscsync creates are readable by their owner only; it writes no file it does not own."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_MODE = 0o600
CONFIG_LIMIT = 1_000_000  # bytes: settings and credentials files are far smaller
# SQLite's own files beside a database: a write to any of them can corrupt it.
SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")


def create_private(path: Path, mode: int = PRIVATE_MODE) -> None:
    """Create ``path`` if it does not exist, with ``mode`` (0600 unless asked)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, mode)
    os.close(fd)
    os.chmod(path, mode)  # whatever the umask took away from a group-readable mode


def apply_mode(path: Path, mode: int) -> None:
    """Give ``path`` and SQLite's files beside it ``mode``, where they exist and are ours
    (SQLite creates the WAL and SHM files with the database file's mode)."""
    for suffix in SQLITE_SIDECARS:
        item = Path(f"{path}{suffix}")
        try:
            st = item.stat()
        except OSError:
            continue
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(item, mode)


def write_atomic(path: Path, text: str, mode: int = PRIVATE_MODE) -> None:
    """Replace ``path`` with ``text`` in one rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path once symlinks are resolved (the
    file need not exist yet), or the same inode (a hard link, a bind mount)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


def sqlite_files(db: Path) -> list[tuple[str, Path]]:
    """The database and the files SQLite keeps beside it (for a symlinked database, beside
    the link and beside its target), each with what to call it in a message."""
    bases = [db]
    try:
        if db.resolve() != db.absolute():
            bases.append(db.resolve())
    except (OSError, RuntimeError):
        pass
    return [
        (f"the {sfx} file of the database {db}" if sfx else f"the database {db}", Path(f"{b}{sfx}"))
        for b in bases
        for sfx in SQLITE_SIDECARS
    ]


class NotSmallRegularFile(ValueError):
    """A file to read is a directory, a FIFO, a device, or too big; ``str`` says which."""


def read_small_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or :class:`NotSmallRegularFile`
    (or ``OSError``). Checked with ``stat`` before opening, then opened with ``O_NONBLOCK``
    (a FIFO swapped in since is never waited on) and checked again on the open file."""
    _check_small_regular(os.stat(path), limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as fh:
        _check_small_regular(os.fstat(fd), limit)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise NotSmallRegularFile(f"more than {limit:,} bytes")
    return data


def _check_small_regular(st: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise NotSmallRegularFile("a directory")
    if not stat.S_ISREG(st.st_mode):
        raise NotSmallRegularFile("not a regular file (a FIFO, socket or device)")
    if st.st_size > limit:
        raise NotSmallRegularFile(f"{st.st_size:,} bytes, more than {limit:,}")
