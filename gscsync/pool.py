"""Worker threads the run can walk away from.

Fetching runs on daemon threads: on a signal or at the deadline the writer stops waiting
for them, and whatever they were doing dies with the process (only the writer writes, so
nothing is half-written).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import Any, Generic, TypeVar

from gscsync.api.client import ClientClosed
from gscsync.errors import GscSyncError, WorkerError
from gscsync.models import RunReport

log = logging.getLogger("gscsync")
T = TypeVar("T")
POLL = 0.2  # seconds between checks for a stop signal or the deadline while waiting


def call_abandonable(
    fn: Callable[[], T], stop: threading.Event, deadline: float | None, report: RunReport
) -> T | None:
    """``fn()`` on a daemon thread, given up on a stop signal or at the deadline (None then,
    with ``report.stopped`` saying why): a hung ``sites.list`` or token request cannot hold
    the run past either."""
    if stop.is_set():
        report.stopped = "signal"
        return None
    with DaemonPool(1) as pool:
        fut = pool.submit(fn)
        while not wait([fut], timeout=POLL).done:  # at once when it is done
            if stop.is_set():
                report.stopped = "signal"
            elif deadline is not None and time.monotonic() >= deadline:
                report.stopped = "deadline"
            else:
                continue
            log.warning("stopping (%s) before the work began", report.stopped)
            return None
        try:
            result: T = fut.result()
        except ClientClosed:  # the client saw the stop or the deadline first
            report.stopped = "signal" if stop.is_set() else "deadline"
            return None
        return result


class DaemonPool:
    """A fixed pool of daemon worker threads: work in flight never delays the exit."""

    def __init__(self, workers: int, name: str = "gscsync-fetch") -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            fut, fn = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # handed to the writer through the future
                    fut.set_exception(exc)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self._queue.put((fut, lambda: fn(*args)))
        return fut

    def __enter__(self) -> DaemonPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in self._threads:
            self._queue.put(None)  # idle workers end; busy ones end with the process


def result_of(fut: Future[Any]) -> Any:
    """A worker's result; a bug in a worker becomes a WorkerError for its work alone."""
    try:
        return fut.result()
    except GscSyncError:
        raise
    except Exception as exc:
        log.debug("worker failed", exc_info=exc)
        raise WorkerError(f"internal error: {type(exc).__name__}: {exc}") from exc


class Shared(Generic[T]):
    """One result that several workers need (a job's search appearance, for its chunks).

    Made on a thread of its own at once when ``bound`` has room (at most that many such
    threads at a time), else by the first worker to ask. When that attempt failed, the
    next worker to ask makes it again, and its failure (a quota answer, say) reaches that
    worker and the engine; the other workers wait for it rather than each asking.
    """

    def __init__(self, make: Callable[[], T], bound: threading.Semaphore | None = None) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._made: list[T] = []
        self._fut: Future[T] | None = None
        if bound is not None and bound.acquire(blocking=False):

            def run() -> T:
                try:
                    return make()
                finally:
                    bound.release()

            try:
                with DaemonPool(1, "gscsync-side") as pool:
                    self._fut = pool.submit(run)
            except RuntimeError:  # no thread to be had (a process limit): made on demand
                bound.release()

    def get(self) -> T:
        fut = self._fut
        if fut is not None:
            try:
                return fut.result()
            except Exception as exc:  # noqa: BLE001 - made again below, its failure raised
                log.debug("shared work failed (%s): made again", exc)
        with self._lock:
            if not self._made:
                self._made.append(self._make())
            return self._made[0]


def fan_out(calls: Sequence[Callable[[], T]]) -> list[T]:
    """``calls`` side by side on daemon threads (the client's slots bound the requests in
    flight), their results in order; the first failure is raised once all have ended."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with DaemonPool(len(calls), "gscsync-fan") as pool:
        futures = [pool.submit(call) for call in calls]
        wait(futures)
    return [fut.result() for fut in futures]
