"""The commands, free of CLI concerns: settings in, a report or a GscSyncError out."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from gscsync import __version__
from gscsync.auth import GoogleAuth, HttpxRequest, load_credentials
from gscsync.breaker import Breaker
from gscsync.client import GscClient, make_retrying
from gscsync.config import SEARCH_TYPES, Settings
from gscsync.dates import days, earliest_served, pacific_today
from gscsync.db import Store, check_db_path, memory_db, open_db, open_db_readonly
from gscsync.emulator import (
    DEMO_SITES,
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    SiteData,
    new_service_account_key,
)
from gscsync.errors import (
    BreakerOpen,
    ConfigError,
    GscSyncError,
    Interrupted,
    NoAccessibleSite,
)
from gscsync.lock import hold_lock
from gscsync.notify import ping, write_metrics
from gscsync.planner import candidate_days
from gscsync.ratelimit import RateLimiter
from gscsync.status import newest_final_days
from gscsync.sync import Engine, Job, ProgressCallback, RunReport, resolve_sites

log = logging.getLogger("gscsync")
USER_AGENT = f"gscsync/{__version__}"


@contextmanager
def api_client(settings: Settings, breaker: Breaker | None = None) -> Iterator[GscClient]:
    """A ready client: credentials loaded, one httpx.Client for the API, one for tokens,
    the GSCSYNC_QPM ceiling, and the circuit breaker (if given) on every request."""
    credentials = load_credentials(settings.credentials)
    timeout = httpx.Timeout(settings.timeout)
    headers = {"User-Agent": USER_AGENT}
    with httpx.Client(timeout=timeout, headers=headers) as token_http:
        auth = GoogleAuth(credentials, HttpxRequest(token_http))
        limits = httpx.Limits(max_connections=settings.concurrency + 2)
        with httpx.Client(auth=auth, timeout=timeout, headers=headers, limits=limits) as http:
            yield GscClient(
                http,
                base_url=settings.api_url,
                retrying=make_retrying(settings.max_attempts),
                limiter=RateLimiter(settings.qpm),
                gate=breaker.before_request if breaker else None,
                on_outcome=breaker.record if breaker else None,
            )


def ensure_token(client: GscClient) -> str:
    """Obtain an access token now (raises AuthError/NetworkError); returns who we are."""
    auth = client.http.auth
    if not isinstance(auth, GoogleAuth):
        return "these credentials"
    auth.token()
    creds = auth.credentials
    email = getattr(creds, "service_account_email", None)
    if isinstance(email, str):
        return email
    return f"the authorized user (OAuth client {getattr(creds, 'client_id', '?')})"


@dataclass(frozen=True)
class SiteListing:
    """A property the credentials see (or one configured that they do not)."""

    site_url: str
    permission_level: str | None  # None: configured but not visible to the credentials
    synced: bool


def list_sites(settings: Settings) -> list[SiteListing]:
    """``gscsync sites``: visible properties, marking those ``sync`` will take."""
    with api_client(settings) as client:
        visible = client.list_sites()
    configured = set(settings.sites)
    out = [
        SiteListing(
            s.url,
            s.permission,
            s.url in configured if configured else s.has_data_access,
        )
        for s in visible
    ]
    seen = {s.url for s in visible}
    out += [SiteListing(url, None, True) for url in settings.sites if url not in seen]
    return out


def ledger_dates(store: Store, site_url: str, search_type: str) -> dict[date, str]:
    """The ledger as ``{day: status}``."""
    return {
        date.fromisoformat(d): row.status for d, row in store.ledger(site_url, search_type).items()
    }


def sync_jobs(settings: Settings, store: Store, sites: list[str], today: date) -> list[Job]:
    """Every site × search type with the days ``sync`` should ask about."""
    earliest = earliest_served(today)
    return [
        Job(
            site,
            search_type,
            candidate_days(
                today=today,
                window=settings.sync_days,
                ledger=ledger_dates(store, site, search_type),
                earliest=earliest,
            ),
        )
        for site in sites
        for search_type in settings.search_types
    ]


@dataclass
class Outcome:
    """A finished run: its report and the exit code it calls for."""

    report: RunReport
    exit_code: int
    skipped: bool = False


JobsFactory = Callable[[Store, list[str], date], list[Job]]


def run_sync(
    settings: Settings,
    *,
    today: date | None = None,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    reset_breaker: bool = False,
) -> Outcome:
    """``gscsync sync``: fetch what the ledger and the API say is missing."""
    return _fetching_run(
        "sync",
        settings,
        lambda store, sites, day: sync_jobs(settings, store, sites, day),
        today=today,
        on_progress=on_progress,
        stop=stop,
        reset_breaker=reset_breaker,
    )


def backfill_range(today: date, start: date | None, end: date | None) -> tuple[date, date]:
    """The backfill range, defaulted and checked against what the API serves."""
    earliest = earliest_served(today)
    valid = f"the API serves {earliest} through {today} (Pacific Time)"
    start = start or earliest
    end = end or today
    if end > today:
        raise ConfigError(f"--end {end} is in the future; {valid}")
    if start < earliest:
        raise ConfigError(f"--start {start} is older than the API keeps; {valid}")
    if start > end:
        raise ConfigError(f"--end {end} is before --start {start}; {valid}")
    return start, end


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

    def jobs(store: Store, sites: list[str], day: date) -> list[Job]:
        out = []
        for site in sites:
            for search_type in settings.search_types:
                ledger = ledger_dates(store, site, search_type)
                wanted = [d for d in days(first, last) if force or ledger.get(d) != "final"]
                out.append(Job(site, search_type, wanted))
        return out

    return _fetching_run(
        "backfill", settings, jobs, today=today, on_progress=on_progress, stop=stop
    )


def _fetching_run(
    command: str,
    settings: Settings,
    make_jobs: JobsFactory,
    *,
    today: date | None,
    on_progress: ProgressCallback | None,
    stop: threading.Event | None,
    reset_breaker: bool = False,
) -> Outcome:
    if not settings.enabled:
        log.info("GSCSYNC_ENABLED is off: %s is disabled, nothing was done", command)
        return Outcome(RunReport(), 0, skipped=True)
    started = time.monotonic()
    today = today or pacific_today()
    load_credentials(settings.credentials)  # a bad file is exit 2 before the DB is touched
    check_db_path(settings.db)
    with hold_lock(settings.lock_path), open_db(settings.db) as db:
        store = Store(db)
        run = _Run(command, settings, store, started)
        breaker = Breaker(
            store.load_breaker(),
            threshold=settings.breaker_threshold,
            cooldown=settings.breaker_cooldown,
        )
        if reset_breaker:
            log.info("circuit breaker closed by hand (--reset-breaker)")
            breaker.reset()
        try:
            breaker.admit_run()
        except BreakerOpen as exc:
            run.finish(RunReport(), "skipped", exc.exit_code, breaker, error=str(exc))
            raise
        try:
            ping(settings.healthcheck_url, "start")
            with api_client(settings, breaker) as client:
                sites = resolve_sites(settings, client)
                engine = Engine(
                    settings,
                    store,
                    client,
                    today=today,
                    on_progress=on_progress,
                    stop=stop,
                    deadline=started + settings.max_runtime if settings.max_runtime else None,
                    breaker=breaker,
                )
                engine.report.sites = sites
                report = engine.run(make_jobs(store, sites, today))
        except KeyboardInterrupt:  # a second Ctrl-C: the open transaction rolled back
            run.finish(RunReport(), "interrupted", 130, breaker, error="aborted by the user")
            raise
        except GscSyncError as exc:
            run.finish(RunReport(), "failed", exc.exit_code, breaker, error=str(exc))
            raise
        all_denied = bool(sites) and set(report.denied_sites) >= set(sites)
        status, code = report.status, 0 if report.status == "ok" else 1
        if all_denied:
            status, code = "failed", NoAccessibleSite.exit_code
        elif report.stopped == "signal":
            status, code = "interrupted", Interrupted.exit_code
        run.finish(report, status, code, breaker, error=_summary_error(report))
        store.prune_runs(settings.retention_days)
    if all_denied:
        raise NoAccessibleSite(
            "no configured site is accessible: "
            + "; ".join(f"{s}: {m}" for s, m in report.denied_sites.items())
        )
    if report.stopped == "signal":
        raise Interrupted(
            f"interrupted: {report.days_ok} day(s) committed, nothing half-written; "
            f"run `gscsync {command}` again to continue"
        )
    return Outcome(report, code)


@dataclass
class _Run:
    """The bookkeeping of one fetching run: runs row, breaker, pings, metrics."""

    command: str
    settings: Settings
    store: Store
    started: float

    def __post_init__(self) -> None:
        self.run_id = self.store.start_run(self.command)

    def finish(
        self, report: RunReport, status: str, code: int, breaker: Breaker, *, error: str | None
    ) -> None:
        counts = {
            "days_ok": report.days_ok,
            "days_failed": report.days_failed,
            "rows_written": report.rows_written,
            "requests": report.requests,
        }
        self.store.finish_run(self.run_id, status=status, error=error, **counts)
        self.store.save_breaker(breaker.state)
        summary = (
            f"gscsync {self.command} {status}: {report.days_ok} day(s) written, "
            f"{report.days_failed} failed, {report.rows_written} rows, {report.requests} requests"
            + (f"; {error}" if error else "")
        )
        if status != "skipped":
            ping(self.settings.healthcheck_url, "success" if code == 0 else "fail", summary)
        if self.settings.metrics_file is not None:
            write_metrics(
                self.settings.metrics_file,
                command=self.command,
                status=status,
                exit_code=code,
                duration=time.monotonic() - self.started,
                counts=counts,
                breaker_open=breaker.state.state == "open",
                newest_final=newest_final_days(self.store.db),
            )


def _summary_error(report: RunReport) -> str | None:
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


def plan_sync(settings: Settings, *, today: date | None = None) -> list[Job]:
    """``sync --dry-run``: the days each site and type would be asked about; nothing fetched.

    Which of them are final is the API's answer at run time, so the plan lists candidates.
    """
    today = today or pacific_today()
    db = open_db_readonly(settings.db) if settings.db.exists() else memory_db()
    try:
        if settings.sites:
            sites = list(settings.sites)
        else:
            with api_client(settings) as client:
                sites = resolve_sites(settings, client)
        return sync_jobs(settings, Store(db), sites, today)
    finally:
        db.close()


def run_demo(
    db_path: Path, *, on_progress: ProgressCallback | None = None
) -> tuple[Outcome, Settings]:
    """``gscsync demo``: the real sync path against the built-in emulator, no Google account.

    Starts the emulator on a free loopback port, writes a throwaway service-account key
    whose ``token_uri`` points at it, and syncs the demo properties for every search type.
    """
    key = new_service_account_key()
    config = EmulatorConfig(
        sites=[SiteData(url) for url in DEMO_SITES],
        public_keys={key.client_email: key.public_pem},
    )
    with EmulatorServer(Emulator(config)) as server, tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(
            Settings(),
            credentials=key.write(Path(tmp) / "demo-key.json", f"{server.url}/token"),
            sites=DEMO_SITES,
            search_types=SEARCH_TYPES,
            db=db_path,
            api_url=server.url,
            timeout=10.0,
        )
        return run_sync(settings, on_progress=on_progress), settings
