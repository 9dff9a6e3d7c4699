"""The engine: probe finality, plan days, fetch them concurrently, write them one by one.

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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from gscsync.breaker import Breaker, Tripped
from gscsync.client import GscClient, first_incomplete_date
from gscsync.config import Settings
from gscsync.db import Store
from gscsync.errors import (
    ApiError,
    AuthError,
    NoAccessibleSite,
    PermissionDenied,
    QuotaExceeded,
    Unauthorized,
)
from gscsync.models import ZERO_TOTALS, AppearanceRow, DayData, DayTask, DetailRow, Totals
from gscsync.planner import Finality, finality, plan_days

log = logging.getLogger("gscsync")

DAILY_ROW_CAP = 50_000
POLL = 0.2  # seconds between checks for a stop signal or the deadline while waiting
DETAIL_DIMENSIONS = ("date", "query", "page", "country", "device")
UNSUPPORTED = {"discover": {"query", "device"}, "googleNews": {"query"}}
# When a site refuses access before we learn which days are final, the days at least
# this old are recorded as failed (Google finalises days within 2-3 days).
ASSUMED_FINAL_LAG = 3


def dimensions_for(search_type: str) -> list[str]:
    """Detail dimensions the API allows for ``search_type``."""
    skip = UNSUPPORTED.get(search_type, set())
    return [d for d in DETAIL_DIMENSIONS if d not in skip]


@dataclass(frozen=True)
class Job:
    """One site and search type, with the days worth asking about."""

    site_url: str
    search_type: str
    candidates: Sequence[date]


@dataclass
class Probe:
    """The freshness probe's answer: finality and per-day totals."""

    finality: Finality
    totals: dict[str, Totals]


@dataclass
class RunReport:
    """What a run did; updated as it goes and handed to the progress callback."""

    sites: list[str] = field(default_factory=list)
    days_planned: int = 0
    days_ok: int = 0
    days_failed: int = 0
    rows_written: int = 0
    requests: int = 0
    denied_sites: dict[str, str] = field(default_factory=dict)  # site -> the API's message
    failures: list[tuple[DayTask, str]] = field(default_factory=list)
    stopped: str | None = None  # why scheduling stopped early: quota, deadline, signal

    @property
    def days_done(self) -> int:
        return self.days_ok + self.days_failed

    @property
    def status(self) -> str:
        """``ok``, ``partial`` or ``failed``, as stored in ``runs``."""
        if self.days_failed == 0 and self.stopped is None:
            return "ok"
        if self.days_ok == 0 and self.days_failed > 0:
            return "failed"
        return "partial"


ProgressCallback = Callable[[RunReport], None]


def resolve_sites(settings: Settings, client: GscClient) -> list[str]:
    """``GSCSYNC_SITES``, or every property the credentials can read."""
    if settings.sites:
        return list(settings.sites)
    sites = [s.url for s in client.list_sites() if s.has_data_access]
    if not sites:
        raise NoAccessibleSite(
            "the credentials can read no Search Console property; add the service account's "
            "client_email as a user of each property (Settings > Users and permissions)"
        )
    return sites


def to_detail(row: dict[str, Any], dims: Sequence[str]) -> tuple[tuple[str, ...], DetailRow]:
    """An API row as (key, detail row); dimensions not requested are ``''``."""
    keys = dict(zip(dims, row.get("keys") or [], strict=False))
    query, page, country, device = (str(keys.get(d, "")) for d in DETAIL_DIMENSIONS[1:])
    return (query, page, country, device), (
        query,
        page,
        country,
        device,
        *_metrics(row),
    )


def _metrics(row: dict[str, Any]) -> tuple[int, int, float, float | None]:
    position = row.get("position")
    return (
        int(row.get("clicks") or 0),
        int(row.get("impressions") or 0),
        float(row.get("ctr") or 0.0),
        float(position) if position is not None else None,
    )


def probe(client: GscClient, site_url: str, search_type: str, start: date, end: date) -> Probe:
    """One ``dataState: all`` request grouped by date: finality and daily totals."""
    result = client.query(
        site_url,
        {
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "dimensions": ["date"],
            "type": search_type,
            "dataState": "all",
        },
    )
    totals: dict[str, Totals] = {}
    for row in result.rows:
        keys = row.get("keys") or []
        if keys:
            totals[str(keys[0])[:10]] = _metrics(row)
    marker = first_incomplete_date(result.metadata)
    first_incomplete = date.fromisoformat(marker) if marker else None
    row_dates = [date.fromisoformat(d) for d in totals]
    return Probe(finality(row_dates, first_incomplete), totals)


def fetch_day(client: GscClient, task: DayTask, totals: Totals) -> DayData:
    """Every detail row and appearance row of one day."""
    base = {
        "startDate": task.date,
        "endDate": task.date,
        "type": task.search_type,
        "dataState": "all" if task.fresh else "final",
    }
    dims = dimensions_for(task.search_type)
    rows: dict[tuple[str, ...], DetailRow] = {}
    served = 0
    for page in client.pages(task.site_url, {**base, "dimensions": dims}):
        for api_row in page.get("rows", []):  # reduced page by page: the JSON goes at once
            key, row = to_detail(api_row, dims)
            rows[key] = row  # ties across pages can repeat a row: keep one
        served += len(page.get("rows", []))
    appearance: dict[str, AppearanceRow] = {}
    for api_row in client.query(task.site_url, {**base, "dimensions": ["searchAppearance"]}).rows:
        name = str((api_row.get("keys") or [""])[0])
        appearance[name] = (name, *_metrics(api_row))
    return DayData(
        task=task,
        rows=list(rows.values()),
        appearance=list(appearance.values()),
        totals=totals,
        truncated=served >= DAILY_ROW_CAP,
    )


def _scheme_hint(site_url: str) -> str:
    """http:// and https:// are different properties to Search Console."""
    for a, b in (("http://", "https://"), ("https://", "http://")):
        if site_url.startswith(a):
            return (
                f" (Search Console treats {a} and {b} as different properties: is it {b}"
                f"{site_url[len(a) :]}?)"
            )
    return ""


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


class Engine:
    """Runs jobs: probe, plan, fetch on the pool, write on the calling thread."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: GscClient,
        *,
        today: date,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        breaker: Breaker | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.today = today
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.deadline = deadline
        self.clock = clock
        self.breaker = breaker
        self.report = RunReport()

    def run(self, jobs: Iterable[Job]) -> RunReport:
        """Probe, plan, fetch and write every job's days: probes first, then days newest first
        across all jobs, so a run cut short holds the most recent data."""
        report = self.report
        probes: deque[Job] = deque(job for job in jobs if job.candidates)
        days: list[tuple[int, DayTask, Totals]] = []  # heap on -ordinal: newest date first
        limit = self.settings.concurrency
        inflight: dict[Future[Any], Job | DayTask] = {}
        with DaemonPool(limit) as pool:
            while probes or days or inflight:
                while (probes or days) and len(inflight) < limit and not self._should_stop():
                    if probes:
                        job = probes.popleft()
                        inflight[pool.submit(self._probe, job)] = job
                        continue
                    _, task, totals = heapq.heappop(days)
                    if task.site_url in report.denied_sites:
                        self._fail(task, report.denied_sites[task.site_url])
                        continue
                    inflight[pool.submit(fetch_day, self.client, task, totals)] = task
                if not inflight:
                    break
                done, _ = wait(inflight, timeout=POLL, return_when=FIRST_COMPLETED)
                if self._abandon(inflight):
                    break
                for fut in done:
                    item = inflight.pop(fut)
                    if isinstance(item, Job):
                        for task, totals in self._after_probe(item, fut):
                            key = -date.fromisoformat(task.date).toordinal()
                            heapq.heappush(days, (key, task, totals))
                    else:
                        self._after_day(item, fut)
                    report.requests = self.client.requests
                    self._progress()
        report.requests = self.client.requests
        return report

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

    def _abandon(self, inflight: dict[Future[Any], Job | DayTask]) -> bool:
        """On a signal or at the deadline, stop waiting for requests in flight.

        Their days are not written (nothing is half-written: only this thread writes);
        they stay pending for the next run. Their threads are daemons and die with us.
        """
        if not self._should_stop() or self.report.stopped not in ("signal", "deadline"):
            return False
        if inflight:
            log.warning("abandoning %d request(s) in flight", len(inflight))
        return True

    def _after_probe(self, job: Job, fut: Future[Any]) -> list[tuple[DayTask, Totals]]:
        try:
            result: Probe = fut.result()
        except ApiError as exc:
            self._job_failed(job, exc)
            return []
        planned = plan_days(job.candidates, result.finality, data_state=self.settings.data_state)
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

    def _after_day(self, task: DayTask, fut: Future[Any]) -> None:
        try:
            data: DayData = fut.result()
        except ApiError as exc:
            self._day_failed(task, exc)
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
        if self._ends_run(exc):
            return
        if isinstance(exc, PermissionDenied):
            self._deny(job.site_url, exc)
        else:
            log.error("%s %s: freshness check failed: %s", job.site_url, job.search_type, exc)
        assumed_final = self.today - timedelta(days=ASSUMED_FINAL_LAG)
        for day in job.candidates:
            if day <= assumed_final:
                self._fail(DayTask(job.site_url, job.search_type, day.isoformat()), str(exc))

    def _day_failed(self, task: DayTask, exc: ApiError) -> None:
        if self._ends_run(exc):
            return
        if isinstance(exc, PermissionDenied):
            self._deny(task.site_url, exc)
        else:
            log.error("%s %s %s: %s", task.site_url, task.search_type, task.date, exc)
        self._fail(task, str(exc))

    def _ends_run(self, exc: ApiError) -> bool:
        """Errors that are about the run, not the day: nothing is recorded against it."""
        if isinstance(exc, Unauthorized):
            raise AuthError(f"the API refused the access token: {exc}") from None
        if isinstance(exc, Tripped):
            self.report.stopped = self.report.stopped or "breaker"
            return True
        if isinstance(exc, QuotaExceeded):
            if self.report.stopped is None:
                self.report.stopped = "quota"
                log.error(
                    "Search Analytics load quota exceeded (%s): no more requests this run; "
                    "finished days are kept and the rest is fetched by the next run",
                    exc,
                )
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
        self.store.mark_failed(task, message)
        self.report.days_failed += 1
        self.report.failures.append((task, message))

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)
