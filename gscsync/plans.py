"""Which days a run asks about, and the dry runs: the planner's view of the ledgers
(the detail's and the report tables'), and ``sync --dry-run`` / ``backfill --dry-run``,
which check what they can without the network and fetch nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from gscsync.api import load_credentials, open_client
from gscsync.config import Settings
from gscsync.dates import pacific_today
from gscsync.errors import ConfigError
from gscsync.fetch import resolve_sites
from gscsync.models import Job
from gscsync.planner import (
    Estimate,
    backfill_jobs,
    backfill_range,
    estimate,
    sync_jobs,
)
from gscsync.shard import shard_sites
from gscsync.store import Store, check_db_path, memory_store, open_store_readonly

if TYPE_CHECKING:
    from google.auth.credentials import Credentials


Stored = dict[date, tuple[bool, frozenset[str]]]  # by day: detail final, reports final


class Ledgers:
    """The ledgers one planning pass reads, each once per site and type: the detail's
    (``sync_days``) and the report tables' (``report_days``)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store, self._settings = store, settings
        self._read: dict[tuple[str, str], tuple[dict[date, str], Stored]] = {}

    def _of(self, site: str, search_type: str) -> tuple[dict[date, str], Stored]:
        key = (site, search_type)
        if key not in self._read:
            entries = self._store.ledger(site, search_type).items()
            statuses: dict[date, str] = {date.fromisoformat(d): e.status for d, e in entries}
            reports = self._settings.reports_for(search_type)
            final_reports: dict[date, set[str]] = {}
            if reports:
                for (report, day), e in self._store.report_ledger(site, search_type).items():
                    if e.status == "final" and report in reports:
                        final_reports.setdefault(date.fromisoformat(day), set()).add(report)
            detail = {d for d, status in statuses.items() if status == "final"}
            stored = _Missing(
                {
                    day: (day in detail, frozenset(final_reports.get(day, ())))
                    for day in detail | set(final_reports)
                }
            )
            self._read[key] = statuses, stored
        return self._read[key]

    def ledger(self, site: str, search_type: str) -> dict[date, str]:
        """The ledger the planner sees (a LedgerOf): a day is final when its detail and
        every report table kept for its type are stored final; ``reports`` when only a
        report table is missing (the detail is final: catch-up counts it)."""
        statuses, stored = self._of(site, search_type)
        reports = self._settings.reports_for(search_type)
        return {
            day: "reports"
            if status == "final" and not stored[day][1].issuperset(reports)
            else status
            for day, status in statuses.items()
        }

    def with_reports(self, jobs: list[Job], *, force: bool = False) -> list[Job]:
        """Each job with the report tables its type keeps and what of them is stored."""
        return [
            replace(
                job,
                reports=self._settings.reports_for(job.search_type),
                stored={} if force else self._of(job.site_url, job.search_type)[1],
            )
            for job in jobs
        ]


class _Missing(dict[date, tuple[bool, frozenset[str]]]):
    def __missing__(self, key: date) -> tuple[bool, frozenset[str]]:
        return (False, frozenset())


@dataclass(frozen=True)
class BackfillPlan:
    """``backfill --dry-run``: the range and what it covers; nothing fetched."""

    start: date
    end: date
    force: bool
    sites: tuple[str, ...]
    search_types: tuple[str, ...]
    estimates: tuple[Estimate, ...] = ()
    qpm: int = 300


def _check_offline(settings: Settings) -> Credentials:
    """What a dry run can check without the network, as a real run would (exit 2 on a bad
    file): the credentials file reads, the database and lock paths can be used."""
    credentials = load_credentials(
        settings.credentials, settings.sources.get("credentials", "GSCSYNC_CREDENTIALS")
    )
    check_db_path(settings.db)
    lock_dir = settings.lock_path.parent
    if not lock_dir.is_dir():
        raise ConfigError(
            f"lock file directory {lock_dir} does not exist; create it or set GSCSYNC_LOCK_FILE"
        )
    return credentials


def _plan_sites(settings: Settings, credentials: Credentials) -> list[str]:
    """The configured sites, or (GSCSYNC_SITES empty) what sites.list answers; with
    ``--shard K/N``, its share of them."""
    if settings.sites:
        return shard_sites(settings.sites, settings.shard)
    with open_client(settings, credentials) as client:
        return shard_sites(resolve_sites(settings.sites, client), settings.shard)


def plan_sync(settings: Settings, *, today: date | None = None) -> list[Job]:
    """``sync --dry-run``: the days each site and type would be asked about; nothing fetched.

    Which of them are final is the API's answer at run time, so the plan lists candidates.
    """
    today = today or pacific_today()
    credentials = _check_offline(settings)
    store = open_store_readonly(settings.db) if settings.db.exists() else memory_store()
    with store:
        sites = _plan_sites(settings, credentials)
        return sync_jobs(
            sites,
            settings.search_types,
            Ledgers(store, settings).ledger,
            today=today,
            window=settings.sync_days,
        )


def plan_backfill(
    settings: Settings, *, start: date | None, end: date | None, force: bool
) -> BackfillPlan:
    """``backfill --dry-run``: the range after defaults and checks, and per site and type
    the days it would fetch and what they would likely cost (from the stored history)."""
    first, last = backfill_range(pacific_today(), start, end)
    credentials = _check_offline(settings)
    store = open_store_readonly(settings.db) if settings.db.exists() else memory_store()
    with store:
        sites = _plan_sites(settings, credentials)
        jobs = backfill_jobs(
            sites, settings.search_types, Ledgers(store, settings).ledger, first=first, last=last,
            force=force,
        )  # fmt: skip
        estimates = []
        for job in jobs:
            size = store.day_size(job.site_url, job.search_type)
            reports = len(settings.reports_for(job.search_type))
            estimates.append(
                estimate(job.site_url, job.search_type, len(job.candidates), size, reports)
            )
    return BackfillPlan(
        first, last, force, tuple(sites), settings.search_types, tuple(estimates), settings.qpm
    )
