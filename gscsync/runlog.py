"""One run's record: its ``runs`` row, how it ended (status, exit code, summary), the
health-check pings and the Prometheus textfile. The one place a report becomes an outcome.
"""

from __future__ import annotations

import calendar
import logging
import time
from datetime import date
from pathlib import Path

import httpx

from gscsync.api.breaker import Breaker
from gscsync.config import Settings
from gscsync.errors import GscSyncError, Interrupted, NoAccessibleSite, StorageError
from gscsync.files import write_atomic
from gscsync.logs import scrub
from gscsync.models import Outcome, RunReport, RunStatus
from gscsync.store import Store

log = logging.getLogger("gscsync")
PING_TIMEOUT = 10.0
METRICS_MODE = 0o640  # node_exporter's group may read it; nobody else


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
    """The error a finished run ends with, if its exit code calls for one."""
    r = outcome.report
    if outcome.exit_code == NoAccessibleSite.exit_code:
        return NoAccessibleSite(
            "no configured site is accessible: "
            + "; ".join(f"{s}: {m}" for s, m in r.denied_sites.items())
        )
    if outcome.exit_code == Interrupted.exit_code:
        return Interrupted(
            f"interrupted: {r.days_ok} day(s) committed, nothing half-written; "
            f"run `gscsync {outcome.command}` again to continue"
        )
    return None


class RunLog:
    """The bookkeeping of one fetching run: opened under the lock, finished exactly once."""

    def __init__(self, command: str, settings: Settings, store: Store, started: float) -> None:
        self.command = command
        self.settings = settings
        self.store = store
        self.started = started
        self.run_id = store.start_run(command)

    def finish(self, report: RunReport, breaker: Breaker) -> Outcome:
        """Close the run from its report: the usual ending."""
        status, code = conclude(report)
        return self.close(report, status, code, breaker, error=summary_error(report))

    def close(
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
        if status != "skipped":
            ping(self.settings.healthcheck_url, "success" if code == 0 else "fail", summary)
        if self.settings.metrics_file is not None:
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
                )
            except OSError as exc:
                log.error("metrics file %s not written: %s", self.settings.metrics_file, exc)
        return Outcome(self.command, report, status, code, summary, skipped=status == "skipped")


def ping(url: str | None, kind: str, body: str = "") -> None:
    """``<url>/start``, ``<url>`` (success) or ``<url>/fail``; a failed ping only warns."""
    if not url:
        return
    target = url if kind == "success" else f"{url}/{kind}"
    try:
        httpx.post(target, content=scrub(body).encode(), timeout=PING_TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning("healthcheck ping %s failed: %s", kind, type(exc).__name__)


def label_value(text: str) -> str:
    """A Prometheus label value: scrubbed, with backslash, quote and newline escaped."""
    return scrub(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_metrics(
    path: Path,
    *,
    command: str,
    status: str,
    exit_code: int,
    duration: float,
    counts: dict[str, int],
    breaker_open: bool,
    newest_final: dict[tuple[str, str], str],
) -> None:
    """Rewrite the node_exporter textfile atomically."""
    labels = f'command="{command}"'
    lines = [
        "# HELP gscsync_last_run_timestamp_seconds When the last run finished.",
        "# TYPE gscsync_last_run_timestamp_seconds gauge",
        f"gscsync_last_run_timestamp_seconds{{{labels}}} {time.time():.0f}",
        "# HELP gscsync_last_run_exit_code Exit code of the last run.",
        "# TYPE gscsync_last_run_exit_code gauge",
        f'gscsync_last_run_exit_code{{{labels},status="{status}"}} {exit_code}',
        "# HELP gscsync_last_run_duration_seconds Wall time of the last run.",
        "# TYPE gscsync_last_run_duration_seconds gauge",
        f"gscsync_last_run_duration_seconds{{{labels}}} {duration:.3f}",
    ]
    for name, value in sorted(counts.items()):
        lines += [
            f"# TYPE gscsync_last_run_{name} gauge",
            f"gscsync_last_run_{name}{{{labels}}} {value}",
        ]
    lines += [
        "# HELP gscsync_breaker_open 1 while the circuit breaker is open.",
        "# TYPE gscsync_breaker_open gauge",
        f"gscsync_breaker_open {int(breaker_open)}",
        "# HELP gscsync_newest_final_day_timestamp_seconds Newest final day stored (UTC midnight).",
        "# TYPE gscsync_newest_final_day_timestamp_seconds gauge",
    ]
    for (site, search_type), day in sorted(newest_final.items()):
        epoch = calendar.timegm(date.fromisoformat(day).timetuple())
        site_label = label_value(site)
        lines.append(
            f'gscsync_newest_final_day_timestamp_seconds{{site="{site_label}",'
            f'search_type="{search_type}"}} {epoch:.0f}'
        )
    write_atomic(path, "\n".join(lines) + "\n", mode=METRICS_MODE)
