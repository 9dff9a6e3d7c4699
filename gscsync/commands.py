"""The use cases, free of CLI concerns: settings in, an outcome or a typed error out.

``sync``, ``backfill`` and their plans, ``status``, ``sites`` and ``check``. Progress is
reported through a callback; every failure is a :class:`gscsync.errors.GscSyncError`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from gscsync.api import Breaker, GscClient, identity, load_credentials, open_client
from gscsync.config import Settings
from gscsync.dates import iso_utc, pacific_today
from gscsync.engine import Engine
from gscsync.errors import (
    ApiError,
    BreakerOpen,
    ConfigError,
    GscSyncError,
    LockHeld,
    PermissionDenied,
)
from gscsync.fetch import resolve_sites
from gscsync.hourly import sync_hourly
from gscsync.lock import hold_lock
from gscsync.models import (
    Check,
    Job,
    Outcome,
    ProgressCallback,
    RunReport,
    SiteListing,
    StatusReport,
)
from gscsync.planner import (
    LedgerOf,
    backfill_jobs,
    backfill_range,
    sync_jobs,
)
from gscsync.plans import BackfillPlan, Ledgers, plan_backfill, plan_sync
from gscsync.pool import call_abandonable
from gscsync.runlog import RunLog, error_for, metrics_disabled, ping_disabled
from gscsync.shard import shard_sites
from gscsync.store import check_db_path, open_store, open_store_readonly

if TYPE_CHECKING:
    pass

log = logging.getLogger("gscsync")

JobsFactory = Callable[[LedgerOf, list[str], date], list[Job]]


# -- sync and backfill ----------------------------------------------------------------------


def run_sync(
    settings: Settings,
    *,
    today: date | None = None,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    reset_breaker: bool = False,
) -> Outcome:
    """``gscsync sync``: fetch what the ledger and the API say is missing."""

    def jobs(ledger_of: LedgerOf, sites: list[str], day: date) -> list[Job]:
        return sync_jobs(
            sites, settings.search_types, ledger_of, today=day, window=settings.sync_days
        )

    return _fetching_run(
        "sync", settings, jobs, today, on_progress, stop, reset_breaker=reset_breaker
    )


def run_backfill(
    settings: Settings,
    *,
    start: date | None = None,
    end: date | None = None,
    force: bool = False,
    today: date | None = None,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """``gscsync backfill``: every day of a range not stored final (all with ``force``)."""
    today = today or pacific_today()
    first, last = backfill_range(today, start, end)

    def jobs(ledger_of: LedgerOf, sites: list[str], _day: date) -> list[Job]:
        return backfill_jobs(
            sites, settings.search_types, ledger_of, first=first, last=last, force=force
        )

    return _fetching_run("backfill", settings, jobs, today, on_progress, stop, force=force)


def _fetching_run(
    command: str,
    settings: Settings,
    make_jobs: JobsFactory,
    today: date | None,
    on_progress: ProgressCallback | None,
    stop: threading.Event | None,
    *,
    reset_breaker: bool = False,
    force: bool = False,
) -> Outcome:
    if not settings.enabled:
        log.info("GSCSYNC_ENABLED is off: %s is disabled, nothing was done", command)
        ping_disabled(settings.healthcheck_url, command)
        metrics_disabled(settings, command)
        return Outcome(command, RunReport(), "skipped", 0, f"{command} is disabled", skipped=True)
    started = time.monotonic()
    today = today or pacific_today()
    credentials = load_credentials(
        settings.credentials, settings.sources.get("credentials", "GSCSYNC_CREDENTIALS")
    )  # bad file: exit 2, DB untouched
    check_db_path(settings.db)
    with (
        hold_lock(settings.lock_path),
        open_store(settings.db, checked=True, mode=settings.file_mode) as store,
    ):
        run = RunLog(command, settings, store, started)  # fails: the CLI pings the error
        breaker = Breaker(
            store.load_breaker(),
            threshold=settings.breaker_threshold,
            cooldown=settings.breaker_cooldown,
        )
        if reset_breaker:
            log.info("circuit breaker closed by hand (--reset-breaker)")
            breaker.reset()
        report = RunReport()
        stop = stop or threading.Event()
        deadline = started + settings.max_runtime if settings.max_runtime else None
        try:
            breaker.admit_run()
            run.ping_start()
            with open_client(
                settings, credentials, breaker, stop=stop, deadline=deadline
            ) as client:
                sites = call_abandonable(
                    lambda: resolve_sites(settings.sites, client), stop, deadline, report
                )
                if sites is not None:
                    sites = shard_sites(sites, settings.shard)  # --shard K/N: its share
                    report.sites = sites
                    engine = Engine(
                        store,
                        client,
                        today=today,
                        concurrency=settings.concurrency,
                        data_state=settings.data_state,
                        on_progress=on_progress,
                        stop=stop,
                        deadline=deadline,
                        breaker=breaker,
                        report=report,
                        quota_cooloff=settings.quota_cooloff,
                        quota_patience=settings.quota_patience,
                        split_budget=settings.split_budget,
                    )
                    ledgers = Ledgers(store, settings)
                    jobs = make_jobs(ledgers.ledger, sites, today)
                    engine.run(ledgers.with_reports(jobs, force=force))
                    if command == "sync" and settings.hourly and report.stopped is None:
                        sync_hourly(
                            store,
                            client,
                            sites,
                            settings.search_types,
                            today,
                            report,
                            stop=stop,
                            deadline=deadline,
                        )
        except BreakerOpen as exc:
            run.close(report, "skipped", exc.exit_code, breaker, error=str(exc))
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: the open transaction rolled back
            run.close(report, "interrupted", 130, breaker, error="aborted by the user")
            raise
        except GscSyncError as exc:
            run.close(report, "failed", exc.exit_code, breaker, error=str(exc))
            raise
        except Exception as exc:  # a bug: the run is still closed, pinged and measured
            bug = f"internal error: {type(exc).__name__}: {exc}"
            run.close(report, "failed", 1, breaker, error=bug)
            raise
        outcome = run.finish(report, breaker)
        store.prune_runs(settings.retention_days)
    error = error_for(outcome)
    if error is not None:
        error.outcome = outcome  # for --json
        raise error
    return outcome


# -- status -------------------------------------------------------------------------------


def status(
    settings: Settings, *, max_age_hours: float, now: datetime | None = None
) -> StatusReport:
    """``gscsync status``: coverage, recent runs, the breaker, and what is unhealthy."""
    with open_store_readonly(settings.db) as store:
        runs = store.recent_runs(5)
        if not any(r.command == "sync" for r in runs):
            runs += store.recent_runs(1, command="sync")
        report = StatusReport(store.coverage(), runs, store.load_breaker())
    report.problems = health(report, max_age_hours=max_age_hours, now=now)
    return report


def health(report: StatusReport, *, max_age_hours: float, now: datetime | None = None) -> list[str]:
    """Why the data is unhealthy (an empty list means healthy)."""
    now = now or datetime.now(UTC)
    problems = []
    syncs = [r for r in report.runs if r.command == "sync"]
    running = [r for r in syncs if r.status == "running" and _alive(r.pid)]
    done = [r for r in syncs if r not in running]
    if not done:
        problems.append("no sync has finished yet")
    else:
        last = done[0]
        finished = datetime.fromisoformat(last.finished_at or last.started_at)
        age = (now - finished).total_seconds() / 3600
        if age > max_age_hours:
            problems.append(f"the last sync finished {age:.1f} h ago (over {max_age_hours:g} h)")
        if last.status == "failed":
            problems.append(f"the last sync failed: {last.error or 'see the runs table'}")
        elif last.status in ("interrupted", "running"):  # stopped, killed, or crashed
            why = last.error or f"its process (pid {last.pid}) is gone"
            problems.append(f"the last sync did not finish: {why}")
    b = report.breaker
    if b.state == "open":
        reopens = iso_utc(b.opened_at + b.cooldown) if b.opened_at is not None else "?"
        problems.append(f"the circuit breaker is open until {reopens}: {b.reason}")
    empty = sorted(d for c in report.coverage for d in c.empty_with_impressions)
    if empty:
        problems.append(
            f"{len(empty)} final day(s) stored with no rows although their totals show "
            f"impressions (first {empty[0]}); refetch them with `gscsync backfill --force "
            f"--start {empty[0]} --end {empty[-1]}`"
        )
    failed = sum(len({f["date"] for f in c.failed}) for c in report.coverage)
    if failed:
        problems.append(f"{failed} day(s) failed and wait for the next sync")
    return problems


def _alive(pid: int | None) -> bool:
    """Whether the process that wrote a ``running`` row still exists."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- sites and check ----------------------------------------------------------------------


def list_sites(settings: Settings) -> list[SiteListing]:
    """``gscsync sites``: visible properties, marking those ``sync`` will take."""
    with open_client(
        settings,
        load_credentials(
            settings.credentials, settings.sources.get("credentials", "GSCSYNC_CREDENTIALS")
        ),
    ) as client:
        visible = client.list_sites()
    configured = set(settings.sites)
    out = [
        SiteListing(s.url, s.permission, s.url in configured if configured else s.has_data_access)
        for s in visible
    ]
    seen = {s.url for s in visible}
    out += [SiteListing(url, None, True) for url in settings.sites if url not in seen]
    return out


def run_checks(load: Callable[[], Settings], *, today: date) -> list[Check]:
    """``gscsync check``, in SPEC order: settings, credentials (a token is obtained),
    database (opens and migrates), lock (can be taken), and a minimal query per site.
    Nothing is checked past bad settings."""
    try:
        settings = load()
    except ConfigError as exc:
        return [Check("settings", False, str(exc), 2)]
    sites = ", ".join(settings.sites) or "every property the credentials can read"
    detail = f"sites: {sites}; database: {settings.db}"
    if not settings.enabled:
        detail += "; GSCSYNC_ENABLED is false: sync and backfill do nothing until it is true"
    configured = Check("settings", True, detail)
    credentials, *site_checks = _check_api(settings, today)
    return [configured, credentials, _check_database(settings), _check_lock(settings), *site_checks]


def checks_exit_code(checks: list[Check]) -> int:
    """0 when every check passed, else the code of the first failure."""
    return next((c.exit_code for c in checks if not c.ok), 0)


def _check_database(settings: Settings) -> Check:
    try:
        open_store(settings.db, mode=settings.file_mode).close()
    except ConfigError as exc:
        return Check("database", False, str(exc), 1)
    return Check("database", True, f"{settings.db} opens and is migrated")


def _check_lock(settings: Settings) -> Check:
    """The lock can be taken, or a live gscsync run holds it: information (a smoke run or
    a health probe beside the 04:00 sync), not a failure."""
    try:
        with hold_lock(settings.lock_path):
            pass
    except LockHeld as exc:
        try:
            since = iso_utc(settings.lock_path.stat().st_mtime)
        except OSError:
            since = "an unknown time"
        holder = f"pid {exc.pid}" if exc.pid else "another process"
        return Check("lock", True, f"a gscsync run is going on ({holder}, since {since})")
    except GscSyncError as exc:
        return Check("lock", False, str(exc), 1)
    return Check("lock", True, f"{settings.lock_path} can be taken")


def _check_api(settings: Settings, today: date) -> list[Check]:
    """The credentials check, then one check per site (none when credentials fail)."""
    try:
        with open_client(
            settings,
            load_credentials(
                settings.credentials, settings.sources.get("credentials", "GSCSYNC_CREDENTIALS")
            ),
        ) as client:
            who = identity(client)
            checks = [Check("credentials", True, f"a token was obtained for {who}")]
            try:
                sites = resolve_sites(settings.sites, client)
            except GscSyncError as exc:
                return [*checks, Check("sites", False, str(exc), exc.exit_code)]
            day = (today - timedelta(days=3)).isoformat()
            return [*checks, *(_check_site(client, site, day, who) for site in sites)]
    except GscSyncError as exc:
        fix = ""
        if isinstance(exc, ConfigError):
            fix = "; fix: point GSCSYNC_CREDENTIALS at the key file downloaded from Google"
        return [Check("credentials", False, f"{exc}{fix}", 3)]


def _check_site(client: GscClient, site: str, day: str, who: str) -> Check:
    try:
        client.query_page(site, {"startDate": day, "endDate": day, "rowLimit": 1})
    except PermissionDenied as exc:
        return Check(
            f"site {site}",
            False,
            f"{exc.message}; fix: add {who} as a user of {site} in Search Console "
            "(Settings > Users and permissions), or spell the property as `gscsync sites` "
            "lists it",
            3,
        )
    except ApiError as exc:
        return Check(f"site {site}", False, str(exc), 1)
    return Check(f"site {site}", True, "answers a query")


__all__ = ["BackfillPlan", "plan_backfill", "plan_sync"]  # the dry runs, for the CLI
