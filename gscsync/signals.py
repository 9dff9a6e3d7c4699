"""SIGINT and SIGTERM, handled from the first moment of the process.

The handlers go in before anything heavy is imported (see :func:`main`), so a signal at
any moment ends the process with exit 130 and one line, never 143 or a traceback: outside a
fetching run nothing can be left half-done, so it exits at once. While a fetching run is
under way (:func:`graceful`), the first signal only asks the run to stop after the
requests in flight (the run closes its runs row as ``interrupted``); a second one
interrupts at once (the open transaction rolls back). Signals are process-wide, and so is
this state.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from gscsync import logs  # light: the standard library only

log = logging.getLogger("gscsync")
STOP = threading.Event()
_graceful = threading.Event()


def _handler(signum: int, _frame: object) -> None:
    if not _graceful.is_set():  # nothing under way that could be left half-done
        logs.final_error("gscsync: interrupted")
        sys.stderr.flush()
        os._exit(130)
    if not STOP.is_set():
        name = signal.Signals(signum).name
        log.warning("%s received: stopping after the requests in flight", name)
        STOP.set()
        return
    raise KeyboardInterrupt  # a second signal: the user means it


def install() -> None:
    """Handle SIGINT and SIGTERM from now on."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


@contextmanager
def graceful() -> Iterator[threading.Event]:
    """While inside, a first signal sets the returned event instead of interrupting."""
    STOP.clear()
    _graceful.set()
    try:
        yield STOP
    finally:
        _graceful.clear()


def main() -> None:
    """The console script: handlers first, then the command line."""
    install()
    from gscsync.cli import main as cli_main

    cli_main()
