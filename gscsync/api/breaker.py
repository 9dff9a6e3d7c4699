"""A circuit breaker whose state lives in the database, so it outlives each cron process.

Closed: requests flow; ``threshold`` consecutive failed requests (after retries) open it.
Open: runs are skipped (exit 4) without calling the API until the cooldown has passed.
Then the next run is half-open: one probe request goes alone; success closes the
breaker, failure opens it again with the cooldown doubled (capped at a day). A probe
abandoned without an outcome (the run was stopped) hands the turn to the next request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gscsync.dates import iso_utc
from gscsync.errors import BreakerOpen, TransientError, Tripped
from gscsync.models import BreakerState

log = logging.getLogger("gscsync")
MAX_COOLDOWN = 86_400


@dataclass(eq=False)
class Breaker:
    """The in-run breaker; ``state`` is what to persist at the end."""

    state: BreakerState
    threshold: int
    cooldown: int  # the base cooldown in seconds; doubled after a failed probe
    clock: Callable[[], float] = time.time
    half_open: bool = field(default=False, init=False)
    _probe_sent: bool = field(default=False, init=False)
    _prober: int | None = field(default=None, init=False)  # the thread sending the probe
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)

    def admit_run(self) -> None:
        """Raise BreakerOpen while the cooldown lasts; after it, go half-open."""
        reopens = self.state.reopens_at(self.cooldown)
        if reopens is None:
            return
        if self.clock() < reopens:
            raise BreakerOpen(
                f"circuit breaker open since {iso_utc(self.state.opened_at or 0)} after "
                f"{self.state.reason or 'repeated failures'}; no request until {iso_utc(reopens)} "
                "(or run `gscsync sync --reset-breaker`)"
            )
        log.warning("circuit breaker cooldown over: one probe request decides")
        self.half_open = True

    def reset(self) -> None:
        """Close by hand (``sync --reset-breaker``)."""
        with self._cond:
            self.state = BreakerState()
            self.half_open = False
            self._cond.notify_all()

    @property
    def is_open(self) -> bool:
        return self.state.state == "open" and not self.half_open

    def before_request(self) -> None:
        """Gate every request: while half-open only the probe goes; once open, none."""
        with self._cond:
            if self.is_open:
                raise Tripped("circuit breaker open: no more requests this run")
            if not self.half_open:
                return
            while self.half_open and self._probe_sent:
                self._cond.wait()
            if self.is_open:
                raise Tripped("circuit breaker open: no more requests this run")
            if self.half_open:  # no probe in flight: this request is the probe
                self._probe_sent = True
                self._prober = threading.get_ident()

    def abandoned(self) -> None:
        """This thread's request ended without an outcome (the run is stopping): if it was
        the probe, the next waiting request goes as the probe instead of waiting for ever."""
        with self._cond:
            if self.half_open and self._probe_sent and self._prober == threading.get_ident():
                self._probe_sent = False
                self._cond.notify_all()

    def record(self, error: BaseException | None) -> None:
        """The outcome of one request after its retries."""
        with self._cond:
            if error is None or not isinstance(error, TransientError):
                if self.half_open or self.state.failures:
                    if self.half_open:
                        log.warning("circuit breaker probe succeeded: closed")
                    self.state = BreakerState()
                    self.half_open = False
                    self._cond.notify_all()
                return
            failures = self.state.failures + 1
            if self.half_open:
                cooldown = min(MAX_COOLDOWN, 2 * (self.state.cooldown or self.cooldown))
                self._open(failures, cooldown, error)
            elif self.state.state == "closed" and failures >= self.threshold:
                self._open(failures, self.cooldown, error)
            else:
                self.state = replace(self.state, failures=failures)

    def _open(self, failures: int, cooldown: int, error: BaseException) -> None:
        self.state = BreakerState("open", failures, self.clock(), cooldown, str(error)[:300])
        self.half_open = False
        log.error(
            "circuit breaker opened after %d failed request(s) (%s); next try after %ds",
            failures,
            error,
            cooldown,
        )
        self._cond.notify_all()
