"""The engine, scheduling only: probes first, then days newest first across all jobs,
``concurrency`` requests in flight, one writer, deadlines and stop requests.

Fetching happens on a thread pool (``GSCSYNC_CONCURRENCY`` requests in flight); the
calling thread alone writes to SQLite, one day per transaction. A failure is recorded
against the days it concerns and the rest goes on; a load-quota answer, a deadline or a
stop request ends the scheduling of new work, and whatever was not started stays
pending for the next run.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from gscsync.api.breaker import Breaker
from gscsync.api.client import ClientClosed, GscClient
from gscsync.errors import (
    AccessRefused,
    ApiError,
    AuthError,
    DailyLimitExceeded,
    GscSyncError,
    PermissionDenied,
    QuotaExceeded,
    Tripped,
    Unauthorized,
    WorkerError,
)
from gscsync.fetch import DAILY_ROW_CAP, Probe, fetch_day, probe
from gscsync.logs import scrub
from gscsync.models import (
    ZERO_TOTALS,
    DataState,
    DayData,
    DayTask,
    Job,
    ProgressCallback,
    RunReport,
    Totals,
)
from gscsync.planner import assumed_final, plan_days
from gscsync.store import Store

log = logging.getLogger("gscsync")

T = TypeVar("T")
POLL = 0.2  # seconds between checks for a stop signal or the deadline while waiting


def _scheme_hint(site_url: str) -> str:
    """http:// and https:// are different properties to Search Console."""
    for a, b in (("http://", "https://"), ("https://", "http://")):
        if site_url.startswith(a):
            return (
                f" (Search Console treats {a} and {b} as different properties: is it {b}"
                f"{site_url[len(a) :]}?)"
            )
    return ""


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
        while not fut.done():
            if stop.wait(POLL):
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

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"gscsync-fetch-{n}", daemon=True)
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


@dataclass(eq=False)
class Engine:
    """Runs jobs: probe, plan, fetch on the pool, write on the calling thread."""

    store: Store
    client: GscClient
    today: date
    concurrency: int
    data_state: DataState
    on_progress: ProgressCallback | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # on ``clock``; no new work starts after it
    clock: Callable[[], float] = time.monotonic
    breaker: Breaker | None = None
    report: RunReport = field(default_factory=RunReport)
    quota_cooloff: float = 60.0  # first pause after a quota answer; doubled each time
    quota_patience: float = 900.0  # pauses in all before the run stops (Google: 15 min)
    _resume_at: float | None = field(default=None, init=False)
    _cooloffs: int = field(default=0, init=False)
    _waited: float = field(default=0.0, init=False)

    def run(self, jobs: Iterable[Job]) -> RunReport:
        """Probe, plan, fetch and write every job's days: probes first, then days newest first
        across all jobs, so a run cut short holds the most recent data."""
        report = self.report
        self._probes: deque[Job] = deque(job for job in jobs if job.candidates)
        self._days: list[tuple[int, DayTask, Totals]] = []  # heap on -ordinal: newest first
        inflight: dict[Future[Any], tuple[Job | DayTask, Totals]] = {}
        with DaemonPool(self.concurrency) as pool:
            while self._probes or self._days or inflight:
                while self._has_work() and len(inflight) < self.concurrency:
                    if self._probes:
                        job = self._probes.popleft()
                        inflight[pool.submit(self._probe, job)] = (job, ZERO_TOTALS)
                        continue
                    _, task, totals = heapq.heappop(self._days)
                    if task.site_url in report.denied_sites:
                        self._fail(task, report.denied_sites[task.site_url])
                        continue
                    inflight[pool.submit(fetch_day, self.client, task, totals)] = (task, totals)
                if not inflight:
                    if self._cooling() and not self._should_stop():
                        self.stop.wait(POLL)  # a signal ends the wait at once
                        continue
                    break
                done, _ = wait(inflight, timeout=POLL, return_when=FIRST_COMPLETED)
                if self._abandon(inflight):
                    break
                for fut in done:
                    item, totals = inflight.pop(fut)
                    if isinstance(item, Job):
                        for task, day_totals in self._after_probe(item, fut):
                            self._push_day(task, day_totals)
                    else:
                        self._after_day(item, fut, totals)
                    report.requests = self.client.requests
                    self._progress()
        report.requests = self.client.requests
        return report

    def _push_day(self, task: DayTask, totals: Totals) -> None:
        heapq.heappush(self._days, (-date.fromisoformat(task.date).toordinal(), task, totals))

    def _has_work(self) -> bool:
        return bool(self._probes or self._days) and not self._cooling() and not self._should_stop()

    # -- quota: cool off, then go on, within a bound ---------------------------------------

    def _cooling(self) -> bool:
        return self._resume_at is not None and self.clock() < self._resume_at

    def _quota(self, exc: QuotaExceeded, item: Job | DayTask, totals: Totals) -> None:
        """A quota answer: put the work back, pause new requests, and stop past the bound."""
        if isinstance(item, Job):
            self._probes.appendleft(item)
        else:
            self._push_day(item, totals)
        if self._cooling():
            return  # answers to requests sent before the pause began
        wait_s = exc.retry_after or self.quota_cooloff * 2**self._cooloffs
        if isinstance(exc, DailyLimitExceeded) or self._waited + wait_s > self.quota_patience:
            if self.report.stopped is None:
                self.report.stopped = "quota"
                log.error(
                    "quota exceeded (%s) after %.0f s of cool-off: no more requests this run; "
                    "finished days are kept and the rest is fetched by the next run",
                    exc,
                    self._waited,
                )
            return
        self._cooloffs += 1
        self._waited += wait_s
        self._resume_at = self.clock() + wait_s
        log.warning("quota exceeded (%s): no new request for %.0f s, then going on", exc, wait_s)

    def _probe(self, job: Job) -> Probe:
        return probe(self.client, job.site_url, job.search_type, min(job.candidates), self.today)

    def _should_stop(self) -> bool:
        if self.report.stopped is not None:
            return True
        if self.stop.is_set():
            self.report.stopped = "signal"
        elif self.deadline is not None and self.clock() >= self.deadline:
            self.report.stopped = "deadline"
        elif self.breaker is not None and self.breaker.is_open:
            self.report.stopped = "breaker"
        else:
            return False
        log.warning(
            "stopping (%s): no new work starts; the rest stays pending", self.report.stopped
        )
        return True

    def _abandon(self, inflight: dict[Future[Any], Any]) -> bool:
        """On a signal or at the deadline, stop waiting for requests in flight.

        Their days are not written (nothing is half-written: only this thread writes);
        they stay pending for the next run. Their threads are daemons and die with us.
        """
        if not self._should_stop() or self.report.stopped not in ("signal", "deadline"):
            return False
        if inflight:
            log.warning("abandoning %d request(s) in flight", len(inflight))
        return True

    @staticmethod
    def _result(fut: Future[Any]) -> Any:
        """The worker's result; a bug in a worker becomes a WorkerError for its work alone."""
        try:
            return fut.result()
        except GscSyncError:
            raise
        except Exception as exc:
            log.debug("worker failed", exc_info=exc)
            raise WorkerError(f"internal error: {type(exc).__name__}: {exc}") from exc

    def _after_probe(self, job: Job, fut: Future[Any]) -> list[tuple[DayTask, Totals]]:
        try:
            result: Probe = self._result(fut)
        except QuotaExceeded as exc:
            self._quota(exc, job, ZERO_TOTALS)
            return []
        except ApiError as exc:
            self._job_failed(job, exc)
            return []
        self._cooloffs = 0
        planned = plan_days(job.candidates, result.finality, data_state=self.data_state)
        tasks = [
            (
                DayTask(job.site_url, job.search_type, d.isoformat(), fresh),
                result.totals.get(d.isoformat(), ZERO_TOTALS),
            )
            for d, fresh in planned
        ]
        self.report.days_planned += len(tasks)
        log.info(
            "%s %s: %d day(s) to fetch, final through %s",
            job.site_url,
            job.search_type,
            len(tasks),
            result.finality.final_through or "unknown",
        )
        return tasks

    def _after_day(self, task: DayTask, fut: Future[Any], totals: Totals) -> None:
        try:
            data: DayData = self._result(fut)
        except QuotaExceeded as exc:
            self._quota(exc, task, totals)
            return
        except ApiError as exc:
            self._day_failed(task, exc)
            return
        self._cooloffs = 0
        if not data.rows and not task.fresh and (kept := self.store.final_rows(task)):
            log.warning(
                "%s %s %s: the API now answers no rows for this final day; keeping the %d "
                "stored rows (past the API's 16-month edge, or an answer that lost its data)",
                task.site_url,
                task.search_type,
                task.date,
                kept,
            )
            self.report.days_ok += 1
            return
        self.store.write_day(data)
        self.report.days_ok += 1
        self.report.rows_written += len(data.rows)
        if data.truncated:
            log.warning(
                "%s %s %s: the API's %d-row daily cap was reached; rows past it are not served",
                task.site_url,
                task.search_type,
                task.date,
                DAILY_ROW_CAP,
            )
        log.debug(
            "%s %s %s: %s, %d rows",
            task.site_url,
            task.search_type,
            task.date,
            data.status,
            len(data.rows),
        )

    def _job_failed(self, job: Job, exc: ApiError) -> None:
        if self._record_error(
            job.site_url, exc, f"{job.site_url} {job.search_type}: freshness check failed"
        ):
            for day in assumed_final(job.candidates, self.today):
                self._fail(DayTask(job.site_url, job.search_type, day.isoformat()), str(exc))

    def _day_failed(self, task: DayTask, exc: ApiError) -> None:
        if self._record_error(
            task.site_url, exc, f"{task.site_url} {task.search_type} {task.date}"
        ):
            self._fail(task, str(exc))

    def _record_error(self, site_url: str, exc: ApiError, what: str) -> bool:
        """Log an error; False when it ends the run rather than failing its days."""
        if self._ends_run(exc):
            return False
        if isinstance(exc, PermissionDenied):
            self._deny(site_url, exc)
        else:
            log.error("%s: %s", what, exc)
        return True

    def _ends_run(self, exc: ApiError) -> bool:
        """Errors that are about the run, not the day: nothing is recorded against it."""
        if isinstance(exc, Unauthorized):
            raise AuthError(f"the API refused the access token: {exc}") from None
        if isinstance(exc, AccessRefused):
            raise exc  # not this site's problem: every request would get the same answer
        if isinstance(exc, ClientClosed):  # stopped or past the deadline: stays pending
            return True
        if isinstance(exc, Tripped):
            self.report.stopped = self.report.stopped or "breaker"
            return True
        return False

    def _deny(self, site_url: str, exc: ApiError) -> None:
        if site_url not in self.report.denied_sites:
            self.report.denied_sites[site_url] = str(exc)
            log.error(
                "%s: access refused (%s); check the property is spelled as `gscsync sites` "
                "shows it and that these credentials are a user of it%s",
                site_url,
                exc.message,
                _scheme_hint(site_url),
            )

    def _fail(self, task: DayTask, message: str) -> None:
        message = scrub(message)
        self.store.mark_failed(task, message)
        self.report.days_failed += 1
        self.report.failures.append((task, message))

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)
