"""What a run may spend: memory (which chunks may hold a capped day, and how many are in
flight) and patience with the load quota (how long it cools off before it stops).

A capped day is about 25 MB while its pages are parsed; a run holds at most
``BIG_INFLIGHT`` chunks that may hold one, on a thread of their own (the C allocator keeps
a freed peak in the arena of the thread that made it, so big days spread over every fetch
thread would grow RSS with the concurrency). Measured (benchmarks/bench_scenarios.py part
4): peak RSS 118-123 MB at concurrency 1, 4 and 8 with one in flight; 149-156 MB with two,
for 11% less wall time (parsing and writing hold the GIL, so a second overlaps little).

Which chunks are big: the planner marks a lone day whose page-aggregated impressions (its
bound: each detail row has at least one impression) pass the packing limit. A bound
overstates rows by far (a 3,000-row day can show 60,000 impressions), so once a day of a
job is in, its rows per bound (the job's density, the highest seen) say which of the job's
other days can reach the limit, with a margin, and so does the most rows a day of the job
held (impressions per row vary widely from day to day, rows far less); until a day of
the job is in, every marked day may be big.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from gscsync.errors import DailyLimitExceeded, QuotaExceeded
from gscsync.models import Chunk, DayData, DayTask, Totals
from gscsync.planner import ROW_LIMIT

BIG_INFLIGHT = 1
BIG_MARGIN = 2.0  # a day counts as big while bound x density x this reaches ROW_LIMIT


class MemoryBudget:
    """``page_totals``: the by-page totals the sizing requests answered, by (site, type,
    day), as the engine keeps them; their impressions are the days' bounds."""

    def __init__(self, page_totals: Mapping[tuple[str, str, str], Totals]) -> None:
        self._page_totals = page_totals
        self._density: dict[tuple[str, str], float] = {}
        self._most_rows: dict[tuple[str, str], int] = {}
        self._futures: set[Future[Any]] = set()

    def _bound(self, task: DayTask, otherwise: int) -> int:
        sized = self._page_totals.get((task.site_url, task.search_type, task.date))
        return sized.impressions if sized is not None else otherwise

    def is_big(self, chunk: Chunk) -> bool:
        if not chunk.big:
            return False
        job = (chunk.site_url, chunk.search_type)
        density = self._density.get(job)
        if density is None:
            return True
        if self._most_rows[job] * BIG_MARGIN >= ROW_LIMIT:  # a day of the job came near
            return True
        task, totals = chunk.days[0]
        bound = self._bound(task, totals.impressions)
        return bound * density * BIG_MARGIN >= ROW_LIMIT

    def learn(self, data: DayData) -> None:
        """A fetched day's rows per bound: the density of its job's days."""
        task = data.task
        if not task.detail:  # its report tables alone: no detail rows to learn from
            return
        bound = self._bound(task, 0) or data.totals.impressions
        job = (task.site_url, task.search_type)
        self._most_rows[job] = max(self._most_rows.get(job, 0), len(data.rows))
        if data.truncated:
            self._most_rows[job] = ROW_LIMIT  # at the cap: the job's days are big
        if bound:
            self._density[job] = max(self._density.get(job, 0.0), len(data.rows) / bound)

    def submitted(self, fut: Future[Any]) -> Future[Any]:
        self._futures.add(fut)
        return fut

    def holds(self, fut: Future[Any]) -> bool:
        """Whether ``fut`` is a chunk that may hold a big day."""
        return fut in self._futures

    def done(self, fut: Future[Any]) -> None:
        self._futures.discard(fut)

    def in_flight(self, inflight: Iterable[Future[Any]]) -> int:
        return len(self._futures.intersection(inflight))


log = logging.getLogger("gscsync")


class Cooloff:
    """After a quota answer no new request for ``cooloff`` seconds, doubled for each
    further answer without a success between; past ``patience`` seconds in all (or on
    the daily limit) the run stops."""

    def __init__(self, cooloff: float, patience: float, clock: Callable[[], float]) -> None:
        self.cooloff, self.patience, self.clock = cooloff, patience, clock
        self.waited = 0.0
        self._pauses = 0
        self._resume_at: float | None = None
        self._lock = threading.Lock()  # the client's workers report quota answers too

    def cooling(self) -> bool:
        return self._resume_at is not None and self.clock() < self._resume_at

    def answered(self) -> None:
        """A request succeeded: the next pause starts from ``cooloff`` again."""
        self._pauses = 0

    def on_quota(self, exc: QuotaExceeded) -> str:
        """``"pause"``, ``"stop"``, or ``"ignored"`` (an answer to a request sent before
        the pause began)."""
        with self._lock:
            return self._decide(exc)

    def _decide(self, exc: QuotaExceeded) -> str:
        if self.cooling():
            return "ignored"
        wait_s = exc.retry_after or self.cooloff * 2**self._pauses
        if isinstance(exc, DailyLimitExceeded) or self.waited + wait_s > self.patience:
            return "stop"
        self._pauses += 1
        self.waited += wait_s
        self._resume_at = self.clock() + wait_s
        log.warning("quota exceeded (%s): no new request for %.0f s, then going on", exc, wait_s)
        return "pause"
