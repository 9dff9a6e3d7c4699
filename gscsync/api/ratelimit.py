"""A request-rate ceiling shared by every request of a run.

A sliding log of send times: a request may go when fewer than ``rate`` requests went in
the last 60 seconds, so no 60-second window ever holds more than the ceiling. Each
rate-limit answer (429) halves the rate, at most once per ``SLOWDOWN_EVERY`` seconds (a
burst of 429s from requests sent together counts once), never below a floor of a tenth of
the ceiling; each quiet minute after that (no 429) gives back a tenth of the ceiling, up
to the ceiling, so sporadic 429s cannot take a run down to a crawl for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("gscsync")
WINDOW = 60.0
SLOWDOWN_EVERY = 10.0
RECOVER_EVERY = 60.0  # quiet seconds before each step back up
MIN_WAIT = 0.001


class RateLimiter:
    """At most ``qpm`` requests in any 60-second window."""

    def __init__(
        self,
        qpm: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = qpm
        self.ceiling = qpm
        self.floor = max(1, qpm // 10)
        self.step = max(1, qpm // 10)
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._slowed_at: float | None = None
        self._changed_at: float | None = None

    def acquire(self, sleep: Callable[[float], None] | None = None) -> None:
        """Wait until one more request fits under the ceiling, then count it.

        ``sleep`` replaces the limiter's own for this wait: one that raises (a stop
        request, the run's deadline) gives up the turn, and the next waiter goes on."""
        sleep = sleep or self.sleep
        with self._lock:  # waiters queue here in turn: the ceiling holds across threads
            self._recover(self.clock())
            while True:
                now = self.clock()
                # one expression (t + WINDOW) both here and in the wait below, so float
                # rounding cannot make them disagree and spin
                while self._sent and self._sent[0] + WINDOW <= now:
                    self._sent.popleft()
                if len(self._sent) < self.rate:
                    self._sent.append(now)
                    return
                sleep(max(MIN_WAIT, self._sent[-self.rate] + WINDOW - now))

    def slow_down(self) -> None:
        """A 429 came back: halve the rate (never below the floor)."""
        with self._lock:
            now = self.clock()
            if self._slowed_at is not None and now - self._slowed_at < SLOWDOWN_EVERY:
                return
            self._slowed_at = self._changed_at = now
            new = max(self.floor, self.rate // 2)
            if new != self.rate:
                log.warning("rate limited: lowering to %d requests per minute", new)
            self.rate = new

    def _recover(self, now: float) -> None:
        """A step back towards the ceiling per quiet minute since the last change."""
        if self.rate >= self.ceiling or self._changed_at is None:
            return
        if now - self._changed_at < RECOVER_EVERY:
            return
        self._changed_at = now
        self.rate = min(self.ceiling, self.rate + self.step)
        log.info("no rate limit for a minute: raising to %d requests per minute", self.rate)
