"""Which days a run asks about, and the dry runs: the planner's view of the ledgers
(the detail's and the report tables'), and ``sync --dry-run`` / ``backfill --dry-run``,
which check what they can without the network and fetch nothing."""

from __future__ import annotations

from collections.abc import Sequence
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
    LedgerOf,
    backfill_jobs,
    backfill_range,
    estimate,
    sync_jobs,
)
from gscsync.shard import shard_sites
from gscsync.store import Store, check_db_path, memory_store, open_store_readonly

if TYPE_CHECKING:
    from google.auth.credentials import Credentials


def ledger_of(store: Store, settings: Settings) -> LedgerOf:
    """The ledger the planner sees: a day is final when its detail and every report table
    kept for its type are stored final."""

    def ledger(site: str, search_type: str) -> dict[date, str]:
        days: dict[date, str] = {
            date.fromisoformat(d): e.status for d, e in store.ledger(site, search_type).items()
        }
        reports = settings.reports_for(search_type)
        if reports:
            stored = _stored(store, site, search_type, reports)
            for day, status in days.items():
                if status == "final" and not stored[day][1].issuperset(reports):
                    days[day] = "reports"  # a report is missing: ask about the day again
        return days

    return ledger


def _stored(
    store: Store, site: str, search_type: str, reports: Sequence[str]
) -> dict[date, tuple[bool, frozenset[str]]]:
    """By day: whether its detail is stored final, and which report tables are."""
    final_reports: dict[date, set[str]] = {}
    for (report, day), entry in store.report_ledger(site, search_type).items():
        if entry.status == "final" and report in reports:
            final_reports.setdefault(date.fromisoformat(day), set()).add(report)
    detail = {
        date.fromisoformat(d)
        for d, e in store.ledger(site, search_type).items()
        if e.status == "final"
    }
    return _Missing(
        {
            day: (day in detail, frozenset(final_reports.get(day, ())))
            for day in detail | set(final_reports)
        }
    )


class _Missing(dict[date, tuple[bool, frozenset[str]]]):
    def __missing__(self, key: date) -> tuple[bool, frozenset[str]]:
        return (False, frozenset())


def with_reports(
    jobs: list[Job], store: Store, settings: Settings, *, force: bool = False
) -> list[Job]:
    """Each job with the report tables its type keeps and what of them is stored."""
    out = []
    for job in jobs:
        reports = settings.reports_for(job.search_type)
        stored = {} if force else _stored(store, job.site_url, job.search_type, reports)
        out.append(replace(job, reports=reports, stored=stored))
    return out


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
            ledger_of(store, settings),
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
            sites, settings.search_types, ledger_of(store, settings), first=first, last=last,
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
