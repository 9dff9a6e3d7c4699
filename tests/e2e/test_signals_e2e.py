"""SIGTERM ends a run with 130 within two seconds whatever it is doing: before it has
begun, or while a server holds sites.list and never answers."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gscsync.emulator import Emulator, EmulatorConfig, EmulatorServer, SiteData
from tests.e2e.harness import GOOD, KEY, Env

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    config = EmulatorConfig(
        sites=[SiteData(s) for s in GOOD], public_keys={KEY.client_email: KEY.public_pem}
    )
    with EmulatorServer(Emulator(config)) as server:
        yield Env(server, tmp_path)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    done.set()
    thread.join()
    for s in held:
        s.close()
    sock.close()


def test_sigterm_while_sites_list_hangs_exits_130_within_two_seconds(
    env: Env, silent_server: str
) -> None:
    proc = env.popen("sync", GSCSYNC_API_URL=silent_server, GSCSYNC_SITES="", GSCSYNC_TIMEOUT="60")
    deadline = time.monotonic() + 10
    while not env.db.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the run has begun and waits on sites.list
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 2.0
    assert "Traceback" not in err
    assert env.sql("SELECT status FROM runs") == [("interrupted",)]


def test_a_signal_in_the_first_moments_exits_130_cleanly(env: Env) -> None:
    for delay in (0.1, 0.2, 0.3):  # after interpreter start-up, before the run is under way
        proc = env.popen("sync")
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode in (0, 130), (delay, err)  # 0: it finished first
        assert "Traceback" not in err and "KeyboardInterrupt" not in err
