"""The engine, scheduling only: probes first, then days newest first across all jobs,
``GSCSYNC_CONCURRENCY`` requests in flight on a pool, the calling thread alone writing
(one day per transaction). A failure is recorded against the days it concerns and the
rest goes on; a quota answer, a deadline or a stop request ends the scheduling of new
work, and whatever was not started stays pending for the next run."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from gscsync.api.breaker import Breaker
from gscsync.api.client import DAILY_ROW_CAP, ClientClosed, GscClient
from gscsync.api.slots import Slots
from gscsync.budget import BIG_INFLIGHT, Cooloff, MemoryBudget
from gscsync.errors import (
    AccessRefused,
    ApiError,
    AuthError,
    PermissionDenied,
    QuotaExceeded,
    Tripped,
    Unauthorized,
)
from gscsync.fetch import Probe, fetch_chunk, probe, size_job
from gscsync.logs import scrub
from gscsync.models import (
    ZERO_TOTALS,
    Chunk,
    DataState,
    DayData,
    DayTask,
    Job,
    Packing,
    ProgressCallback,
    ReportDay,
    RunReport,
    Totals,
)
from gscsync.parse import scheme_hint
from gscsync.planner import assumed_final, day_task, pack, plan_days
from gscsync.pool import POLL, DaemonPool, result_of
from gscsync.reports import page_sums
from gscsync.store import Store

log = logging.getLogger("gscsync")
# errors about the run or the whole site, not a day: splitting a chunk would not help
RUN_OR_SITE = (PermissionDenied, Unauthorized, AccessRefused, Tripped, ClientClosed)
Work = Job | Packing | Chunk  # a probe, a sizing request, or a chunk of days to fetch


def task_key(task: DayTask) -> tuple[str, str, str]:
    return task.site_url, task.search_type, task.date


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
    big_inflight: int = field(default_factory=lambda: BIG_INFLIGHT)
    budget: MemoryBudget = field(init=False)
    _page_totals: dict[tuple[str, str, str], Totals] = field(default_factory=dict, init=False)
    split_budget: int = 40  # extra requests per capped day to refetch it as slices
    cooloff: Cooloff = field(init=False)

    def run(self, jobs: Iterable[Job]) -> RunReport:
        """Probe every job first, then size its days (one request per job), then fetch the
        chunks newest first across all jobs, so a run cut short holds the most recent data."""
        report = self.report
        self._probes: deque[Job] = deque(job for job in jobs if job.candidates)
        self._packings: deque[Packing] = deque()
        self._chunks: list[tuple[int, int, Chunk]] = []  # heap: newest first, then order
        self._seq = 0
        inflight: dict[Future[Any], Work] = {}
        self.budget = MemoryBudget(self._page_totals)
        self.cooloff = Cooloff(self.quota_cooloff, self.quota_patience, self.clock)
        big = min(self.big_inflight, self.concurrency)
        self.client.slots = Slots(self.concurrency)  # work may fan out
        self.client.hold = self._hold_while_cooling
        self.client.on_quota = self.cooloff.on_quota  # the pause starts as the answer comes
        self._side = threading.Semaphore(self.concurrency)  # appearance threads at once
        # Work in flight: the concurrency and some to spare, so that a freed request slot
        # has work waiting for it while this thread writes (the slots bound the requests).
        admitted = self.concurrency + max(1, self.concurrency // 2)
        with DaemonPool(admitted) as pool, DaemonPool(big, "gscsync-big") as big_pool:
            self._big_pool = big_pool
            while self._probes or self._packings or self._chunks or inflight:
                self._admit(pool, inflight, admitted)
                if not inflight:
                    if self._cooling() and not self._should_stop():
                        self.stop.wait(POLL)  # a signal ends the wait at once
                        continue
                    break
                done, _ = wait(inflight, timeout=POLL, return_when=FIRST_COMPLETED)
                # Failures, probes, sizings and big days first (what they plan, or a quota
                # pause, is known before anything new starts; a big day's rows go before
                # another may come); then new work goes out; then the other chunks' days
                # are written while it runs. On a stop the work done is still written.
                later = []
                for fut in done:
                    work = inflight.pop(fut)
                    if isinstance(work, Chunk) and fut.exception() is None:
                        for data in fut.result():  # how big its days were, before more come
                            self.budget.learn(data)
                        if not self.budget.holds(fut):
                            later.append((work, fut))
                            continue
                    self.budget.done(fut)
                    self._after(work, fut)
                    self._progress()
                stopping = self._abandon(inflight)
                if not stopping:
                    self._admit(pool, inflight, admitted)
                for work, fut in later:
                    self._after(work, fut)
                    self._progress()
                if stopping:
                    break
        report.requests = self.client.requests
        return report

    def _admit(self, pool: DaemonPool, inflight: dict[Future[Any], Work], most: int) -> None:
        while self._has_work() and len(inflight) < most:
            work = self._next(inflight)
            if work is None:
                break
            inflight[self._submit(pool, work)] = work

    def _hold_while_cooling(self) -> None:
        """Before each request: none goes out while the run cools off after a quota answer,
        not even for work admitted before it came; a stop or the deadline ends the wait."""
        while self.cooloff.cooling() and not self.stop.is_set():
            if self.deadline is not None and self.clock() >= self.deadline:
                return
            self.stop.wait(POLL)

    def _progress(self) -> None:
        self.report.requests = self.client.requests
        if self.on_progress is not None:
            self.on_progress(self.report)

    def _next(self, inflight: dict[Future[Any], Work]) -> Work | None:
        """The next work to start: probes, then sizing, then the newest chunk that the
        memory budget admits (at most ``big_inflight`` chunks that may hold capped days)."""
        if self._probes:
            return self._probes.popleft()
        if self._packings:
            return self._packings.popleft()
        big = self.budget.in_flight(inflight)
        held: list[tuple[int, int, Chunk]] = []
        found: Chunk | None = None
        while self._chunks and found is None:
            entry = heapq.heappop(self._chunks)
            chunk = entry[2]
            if chunk.site_url in self.report.denied_sites:
                for task, _ in chunk.days:
                    self._fail(task, self.report.denied_sites[chunk.site_url])
            elif self.budget.is_big(chunk) and big >= self.big_inflight:
                held.append(entry)
            else:
                found = chunk
        for entry in held:
            heapq.heappush(self._chunks, entry)
        return found

    def _submit(self, pool: DaemonPool, work: Work) -> Future[Any]:
        if isinstance(work, Job):
            return pool.submit(self._probe, work)
        if isinstance(work, Packing):
            return pool.submit(size_job, self.client, work, self._side)
        if self.budget.is_big(work):  # on the big-day thread: see BIG_INFLIGHT
            return self.budget.submitted(
                self._big_pool.submit(fetch_chunk, self.client, work, self.split_budget)
            )
        return pool.submit(fetch_chunk, self.client, work, self.split_budget)

    def _after(self, work: Work, fut: Future[Any]) -> None:
        if isinstance(work, Job):
            self._after_probe(work, fut)
        elif isinstance(work, Packing):
            self._after_packing(work, fut)
        else:
            self._after_chunk(work, fut)

    def _push(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self._seq += 1
            key = -date.fromisoformat(chunk.newest).toordinal()
            heapq.heappush(self._chunks, (key, self._seq, chunk))

    def _requeue(self, work: Work) -> None:
        if isinstance(work, Job):
            self._probes.appendleft(work)
        elif isinstance(work, Packing):
            self._packings.appendleft(work)
        else:
            self._push([work])

    def _has_work(self) -> bool:
        queued = self._probes or self._packings or self._chunks
        return bool(queued) and not self._cooling() and not self._should_stop()

    def _cooling(self) -> bool:
        return self.cooloff.cooling()

    def _quota(self, exc: QuotaExceeded, work: Work) -> None:
        """A quota answer: put the work back, pause new requests, and stop past the bound."""
        self._requeue(work)
        if self.cooloff.on_quota(exc) == "stop" and self.report.stopped is None:
            self.report.stopped = "quota"
            log.error(
                "quota exceeded (%s) after %.0f s of cool-off: no more requests this run; "
                "finished days are kept and the rest is fetched by the next run",
                exc,
                self.cooloff.waited,
            )

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

    def _after_probe(self, job: Job, fut: Future[Any]) -> None:
        try:
            result: Probe = result_of(fut)
        except QuotaExceeded as exc:
            self._quota(exc, job)
            return
        except ApiError as exc:
            self._job_failed(job, exc)
            return
        self.cooloff.answered()
        planned = plan_days(job.candidates, result.finality, data_state=self.data_state)
        days = [
            (day_task(job, d, fresh), result.totals.get(d.isoformat(), ZERO_TOTALS))
            for d, fresh in sorted(planned)
        ]
        self.report.days_planned += len(days)
        log.info(
            "%s %s: %d day(s) to fetch, final through %s",
            job.site_url,
            job.search_type,
            len(days),
            result.finality.final_through or "unknown",
        )
        # A day without impressions has no row to ask for: final and empty, no request.
        for task, totals in days:
            if not totals.impressions and not task.detail:
                continue  # a stored final day the API no longer serves: keep what it has
            if not totals.impressions:
                empty = {r: ReportDay([]) for r in task.reports}
                self._write(DayData(task=task, totals=totals, detail=task.detail, reports=empty))
        wanted = tuple(d for d in days if d[1].impressions)
        if len(wanted) > 1:  # size them (one request) to pack the small ones together
            self._packings.append(Packing(job.site_url, job.search_type, wanted))
        else:
            self._push(pack(wanted, None))

    def _after_packing(self, packing: Packing, fut: Future[Any]) -> None:
        try:
            page_totals, appearance = result_of(fut)
        except QuotaExceeded as exc:
            self._quota(exc, packing)
            return
        except ApiError as exc:
            if self._record_error(packing.site_url, exc, f"{packing.site_url} sizing"):
                self._push(pack(packing.days, None))  # fetch day by day instead
            return
        self.cooloff.answered()
        bounds = {day: totals.impressions for day, totals in page_totals.items()}
        for task, _ in packing.days:
            if task.date in page_totals:  # a day the answer left out stays unknown
                self._page_totals[task_key(task)] = page_totals[task.date]
        self._push(pack(packing.days, bounds, appearance))

    def _after_chunk(self, chunk: Chunk, fut: Future[Any]) -> None:
        try:
            days: list[DayData] = result_of(fut)
        except QuotaExceeded as exc:
            self._quota(exc, chunk)
            return
        except ApiError as exc:
            if len(chunk.days) > 1 and not isinstance(exc, RUN_OR_SITE):
                log.warning(
                    "%s: a packed request failed (%s); fetching its days one by one",
                    chunk.site_url,
                    exc,
                )
                self._push(pack(chunk.days, None))  # so a bad day fails alone
                return
            for task, _ in chunk.days:
                self._day_failed(task, exc)
            return
        self.cooloff.answered()
        for data in days:  # the budget learnt from them as they came (run)
            self._write(data)

    def _write(self, data: DayData) -> None:
        task = data.task
        data.page_totals = (
            data.page_totals or self._page_totals.get(task_key(task)) or page_sums(data)
        )
        if (
            data.detail
            and not data.rows
            and not task.fresh
            and (kept := self.store.final_rows(task))
        ):
            log.warning(
                "%s %s %s: the API now answers no rows for this final day; keeping the %d "
                "stored rows (past the API's 16-month edge, or an answer that lost its data)",
                task.site_url,
                task.search_type,
                task.date,
                kept,
            )
            self.report.day_written(task, 0)
            return
        self.store.write_day(data)
        if data.report_error is not None:  # the detail is in: the reports fail alone
            log.error("%s %s %s: report tables: %s", *task_key(task), data.report_error)
            self._fail(replace(task, detail=False), data.report_error)
        self.report.day_written(task, len(data.rows))
        if data.truncated:
            log.warning(
                "%s %s %s: the API's %d-row daily cap was reached; rows past it are not served",
                task.site_url,
                task.search_type,
                task.date,
                DAILY_ROW_CAP,
            )
        log.debug("%s %s %s: %s, %d rows", *task_key(task), data.status, len(data.rows))

    def _job_failed(self, job: Job, exc: ApiError) -> None:
        if self._record_error(
            job.site_url, exc, f"{job.site_url} {job.search_type}: freshness check failed"
        ):
            for day in assumed_final(job.candidates, self.today):
                self._fail(day_task(job, day, False), str(exc))

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
                scheme_hint(site_url),
            )

    def _fail(self, task: DayTask, message: str) -> None:
        message = scrub(message)
        if task.detail:
            self.store.mark_failed(task, message)
        for report in task.reports:
            self.store.mark_report_failed(task, report, message)
        self.report.day_failed(task, message)
