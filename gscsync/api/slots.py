"""The run's requests in flight, at most its concurrency; a free slot goes first to the
waiting request that the most others wait on.

A job's requests form chains: its probe, then its sizing and its appearance listing, then
its detail pages and the appearance requests. When more requests wait than the
concurrency admits, the one heading the longest chain goes first, so the last chains of a
run do not start late and leave workers idle at its end.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable


class Slots:
    """A semaphore whose waiters are served by ``follows`` (most first), then in order."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # heap of (-follows, arrival)
        self._arrivals = itertools.count()

    def acquire(
        self, follows: int = 0, check: Callable[[], None] | None = None, poll: float = 0.2
    ) -> None:
        """Take a slot for a request that ``follows`` others wait on in a row. While it
        waits, ``check()`` runs every ``poll`` seconds: whatever it raises ends the wait
        (the request is then no longer in line)."""
        me = (-follows, next(self._arrivals))
        with self._cond:
            heapq.heappush(self._waiting, me)
            try:
                while self._free == 0 or self._waiting[0] != me:
                    self._cond.wait(poll if check is not None else None)
                    if check is not None:
                        check()
            except BaseException:
                self._waiting.remove(me)
                heapq.heapify(self._waiting)
                self._cond.notify_all()  # the next in line may go now
                raise
            heapq.heappop(self._waiting)
            self._free -= 1
            if self._free and self._waiting:
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()
