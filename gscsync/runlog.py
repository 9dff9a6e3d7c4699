"""One run's record: its ``runs`` row, how it ended (status, exit code, summary), the
health-check pings and the Prometheus textfile. The one place a report becomes an outcome.

The ping contract (healthchecks.io's pinging API): ``<url>/start`` when a run starts,
``<url>`` when it ends with exit 0, ``<url>/<exit code>`` when it ends with any other
(healthchecks.io takes 1-255 as a failure and shows the code), each with ``?rid=<uuid>``,
one per run, so the start and the end of a run pair up even when runs overlap. An error
before a run could start (bad settings: 2, the lock held: 75) is pinged the same way by
:func:`notify_failure`, and a run disabled by ``GSCSYNC_ENABLED`` pings success with a body
saying so (:func:`ping_disabled`). A ping never fails a run: a refused connection, a
timeout or an answer other than 2xx is one warning.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx

from gscsync import __version__, parse
from gscsync.api.breaker import Breaker
from gscsync.config import Settings
from gscsync.errors import (
    ConfigError,
    GscSyncError,
    Interrupted,
    LockHeld,
    NoAccessibleSite,
    StorageError,
)
from gscsync.logs import peek_setting, scrub
from gscsync.models import Outcome, RunReport, RunStatus
from gscsync.store import Store

log = logging.getLogger("gscsync")
PING_TIMEOUT = 10.0
USER_AGENT = f"gscsync/{__version__}"
_REPORTED = "_gscsync_pinged"  # set on an error whose ending was already pinged


def conclude(report: RunReport) -> tuple[RunStatus, int]:
    """The run's status and exit code from what it did."""
    if report.sites and set(report.denied_sites) >= set(report.sites):
        return "failed", NoAccessibleSite.exit_code
    if report.stopped == "signal":
        return "interrupted", Interrupted.exit_code
    return report.status, 0 if report.status == "ok" else 1


def summary_error(report: RunReport) -> str | None:
    """Why a run was not simply ok, in one line (None when it was)."""
    parts = []
    if report.stopped:
        parts.append(f"stopped early: {report.stopped}")
    if report.failures:
        task, message = report.failures[0]
        parts.append(
            f"{report.days_failed} day(s) failed, first {task.site_url} {task.search_type} "
            f"{task.date}: {message}"
        )
    return "; ".join(parts) or None


def summary_line(command: str, status: str, report: RunReport, error: str | None) -> str:
    """The one summary of a run: logged, stored as the ping body, shown by the CLI."""
    return (
        f"gscsync {command} {status}: {report.days_ok} day(s) written, "
        f"{report.days_failed} failed, {report.rows_written:,} rows, {report.requests} requests, "
        f"{len(report.sites)} site(s)" + (f"; {error}" if error else "")
    )


def error_for(outcome: Outcome) -> GscSyncError | None:
    """The error a finished run ends with, if its exit code calls for one (its ending
    was pinged when the run closed)."""
    r = outcome.report
    error: GscSyncError | None = None
    if outcome.exit_code == NoAccessibleSite.exit_code:
        error = NoAccessibleSite(
            "no configured site is accessible: "
            + "; ".join(f"{s}: {m}" for s, m in r.denied_sites.items())
        )
    elif outcome.exit_code == Interrupted.exit_code:
        error = Interrupted(
            f"interrupted: {r.days_ok} day(s) committed, nothing half-written; "
            f"run `gscsync {outcome.command}` again to continue"
        )
    if error is not None:
        mark_reported(error)
    return error


class RunLog:
    """The bookkeeping of one fetching run: opened under the lock, finished exactly once."""

    def __init__(self, command: str, settings: Settings, store: Store, started: float) -> None:
        self.command = command
        self.settings = settings
        self.store = store
        self.started = started
        self.rid = new_rid()  # the health check's run id: on the start and the end ping
        self.run_id = store.start_run(command)

    def ping_start(self) -> None:
        """``<url>/start?rid=...``: the health check's timer for this run."""
        ping(self.settings.healthcheck_url, "start", rid=self.rid)

    def finish(self, report: RunReport, breaker: Breaker) -> Outcome:
        """Close the run from its report: the usual ending."""
        status, code = conclude(report)
        return self._record(report, status, code, breaker, error=summary_error(report))

    def close(
        self,
        report: RunReport,
        status: RunStatus,
        code: int,
        breaker: Breaker,
        *,
        error: str | None,
    ) -> Outcome:
        """Close the run that an exception ends, from the handler of that exception: it is
        marked as pinged (:func:`reported`), so the CLI does not ping it a second time."""
        handled = sys.exception()
        if handled is not None:
            mark_reported(handled)
        return self._record(report, status, code, breaker, error=error)

    def _record(
        self,
        report: RunReport,
        status: RunStatus,
        code: int,
        breaker: Breaker,
        *,
        error: str | None,
    ) -> Outcome:
        """Record the outcome: runs row, breaker state, ping, metrics. A database that
        refuses the runs row (locked, full) does not stop the ping and the metrics."""
        counts = report.counts
        error = scrub(error) if error else error
        newest: dict[tuple[str, str], str] = {}
        try:
            self.store.finish_run(self.run_id, status, counts, error)
            self.store.save_breaker(breaker.state)
            newest = self.store.newest_final_days()
        except StorageError as exc:
            log.error("the run could not be recorded: %s", exc)
        summary = summary_line(self.command, status, report, error)
        ping(self.settings.healthcheck_url, end_kind(code), summary, rid=self.rid)
        if self.settings.metrics_file is not None:
            from gscsync.metrics import write_metrics  # prometheus_client: only when used

            try:
                write_metrics(
                    self.settings.metrics_file,
                    command=self.command,
                    status=status,
                    exit_code=code,
                    duration=time.monotonic() - self.started,
                    counts=counts._asdict(),
                    breaker_open=breaker.state.state == "open",
                    newest_final=newest,
                    mode=self.settings.file_mode,
                )
            except OSError as exc:
                log.error("metrics file %s not written: %s", self.settings.metrics_file, exc)
        return Outcome(self.command, report, status, code, summary, skipped=status == "skipped")


# -- health-check pings -------------------------------------------------------------------


def new_rid() -> str:
    """A run id as healthchecks.io wants it: a UUID in canonical lowercase form."""
    return str(uuid.uuid4())


def end_kind(exit_code: int) -> str:
    """What an ending pings: ``success`` for 0; ``log`` for 75 (another run holds the
    lock: this one never started, which is not a failure — the check stays up and the
    event shows in its log); else the exit code (``<url>/4``), a failure."""
    if exit_code == 0:
        return "success"
    return "log" if exit_code == LockHeld.exit_code else str(exit_code)


def ping_url(url: str, kind: str, rid: str | None = None) -> httpx.URL:
    """``<url>`` for success, else ``<url>/<kind>``, plus ``?rid=``; a query the URL
    already has (``?create=1`` for a slug URL) is kept."""
    base = httpx.URL(url)
    path = base.path.rstrip("/") + ("" if kind == "success" else f"/{kind}")
    target = base.copy_with(path=path)
    return target.copy_merge_params({"rid": rid}) if rid else target


def ping(url: str | None, kind: str, body: str = "", *, rid: str | None = None) -> None:
    """POST ``body`` (scrubbed) to the ping URL of ``kind``: ``start``, ``success``, an
    exit code, or ``fail``/``log``. Never raises: whatever goes wrong is one warning."""
    if not url:
        return
    try:
        answer = httpx.post(
            ping_url(url, kind, rid),
            content=scrub(body).encode(),
            headers={"User-Agent": USER_AGENT},
            timeout=PING_TIMEOUT,
        )
    except Exception as exc:  # a ping never fails the run, whatever happens to it
        log.warning("healthcheck ping %s failed: %s", kind, type(exc).__name__)
        return
    if not answer.is_success:
        log.warning(
            "healthcheck ping %s failed: the monitor answered %d %s (is "
            "GSCSYNC_HEALTHCHECK_URL the check's ping URL?)",
            kind,
            answer.status_code,
            answer.reason_phrase,
        )


def ping_disabled(url: str | None, command: str) -> None:
    """A run disabled by ``GSCSYNC_ENABLED``: a success ping whose body says so, so the
    check stays up through a planned pause (healthchecks.io shows the body)."""
    body = f"gscsync {command} is disabled (GSCSYNC_ENABLED is off): nothing was done"
    ping(url, "success", body, rid=new_rid())


def notify_failure(
    environ: Mapping[str, str], env_file: Path | None, exit_code: int, message: str
) -> None:
    """Ping the failure of a run that ended before it could ping itself: bad settings
    (exit 2), the lock held by another run (75), a database that cannot be opened. The
    URL is ``GSCSYNC_HEALTHCHECK_URL`` from ``environ``, else from the ``.env`` file
    (``env_file``, else ``./.env``); a missing, unreadable or invalid one pings nothing."""
    if exit_code == 0:
        return
    raw = peek_setting("GSCSYNC_HEALTHCHECK_URL", environ, env_file)
    try:
        url = parse.optional(parse.url)(raw, "GSCSYNC_HEALTHCHECK_URL")
    except ConfigError:
        return
    ping(url, end_kind(exit_code), message, rid=new_rid())


def mark_reported(exc: BaseException) -> None:
    """Note that the run ``exc`` ends has pinged its ending already."""
    setattr(exc, _REPORTED, True)


def reported(exc: BaseException) -> bool:
    """Whether the ending ``exc`` brings was pinged already (by the run it ended)."""
    return bool(getattr(exc, _REPORTED, False))


def metrics_disabled(settings: Settings, command: str) -> None:
    """A run disabled by ``GSCSYNC_ENABLED``: the metrics file says so (``gscsync_enabled
    0``, the run ``skipped``), keeping what the last real run left; never raises."""
    if settings.metrics_file is None:
        return
    from gscsync.metrics import write_metrics  # prometheus_client: only when used

    zero = {"days_ok": 0, "days_failed": 0, "rows_written": 0, "requests": 0}
    try:
        write_metrics(
            settings.metrics_file,
            command=command,
            status="skipped",
            exit_code=0,
            duration=0.0,
            counts=zero,
            breaker_open=False,
            newest_final=None,
            mode=settings.file_mode,
        )
    except OSError as exc:
        log.warning("metrics file %s not written: %s", settings.metrics_file, exc)
