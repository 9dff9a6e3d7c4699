"""Plain data passed between the layers: search types, jobs, rows, ledger, runs, reports.

Nothing here does I/O. Rows are NamedTuples (cheap, and still plain tuples for SQLite);
statuses are Literals, so mypy checks every spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal, NamedTuple, Protocol

# -- search types: the one table of what each type allows ----------------------------------


@dataclass(frozen=True)
class SearchType:
    """A Search Analytics ``type`` and what the API allows for it."""

    name: str
    dimensions: tuple[str, ...]  # detail dimensions the API accepts (group and filter)
    has_position: bool  # whether answers carry ``position``
    label: str  # as Search Console names it


DETAIL_DIMENSIONS = ("date", "query", "page", "country", "device")
SEARCH_TYPES: dict[str, SearchType] = {
    t.name: t
    for t in (
        SearchType("web", DETAIL_DIMENSIONS, True, "Web"),
        SearchType("image", DETAIL_DIMENSIONS, True, "Image"),
        SearchType("video", DETAIL_DIMENSIONS, True, "Video"),
        SearchType("news", DETAIL_DIMENSIONS, True, "News tab"),
        SearchType("discover", ("date", "page", "country"), False, "Discover"),
        SearchType("googleNews", ("date", "page", "country", "device"), False, "Google News"),
    )
}
SEARCH_TYPE_NAMES: tuple[str, ...] = tuple(SEARCH_TYPES)


# -- statuses -------------------------------------------------------------------------------

DayStatus = Literal["final", "fresh", "failed"]
RunStatus = Literal["running", "ok", "partial", "failed", "skipped", "interrupted"]
StopReason = Literal["quota", "deadline", "signal", "breaker"]
BreakerPhase = Literal["closed", "open"]
DataState = Literal["final", "all"]


# -- rows -----------------------------------------------------------------------------------


class Totals(NamedTuple):
    clicks: int
    impressions: int
    ctr: float
    position: float | None


class DetailRow(NamedTuple):
    query: str
    page: str
    country: str
    device: str
    clicks: int
    impressions: int
    ctr: float
    position: float | None


class AppearanceRow(NamedTuple):
    appearance: str
    clicks: int
    impressions: int
    ctr: float
    position: float | None


ZERO_TOTALS = Totals(0, 0, 0.0, None)

# by-property report tables, one row per query, page, country or device and day
REPORTS = ("by_query", "by_page", "by_country", "by_device")
APPEARANCE_DETAIL = "search_appearance_detail"  # the report of AppearanceDetailRow
HOURLY = "hourly"  # the report name of the hourly tables in the report ledger
TABLES = (*REPORTS, APPEARANCE_DETAIL)  # what GSCSYNC_TABLES may name
REPORT_DIMENSION = {"by_query": "query", "by_page": "page", "by_country": "country"}
REPORT_DIMENSION["by_device"] = "device"


def report_allowed(search_type: str, table: str) -> bool:
    """Whether the API can answer ``table`` for ``search_type`` (Discover has no query and
    no device, Google News no query)."""
    dims = SEARCH_TYPES[search_type].dimensions
    if table == APPEARANCE_DETAIL:
        return "page" in dims
    return REPORT_DIMENSION[table] in dims


def by_property(search_type: str, table: str) -> bool:
    """Whether ``table`` is asked by property: the UI's numbers. The API refuses it for
    page grouping and for Discover and Google News (which report no position)."""
    return (
        table in ("by_query", "by_country", "by_device") and SEARCH_TYPES[search_type].has_position
    )


class ReportRow(NamedTuple):
    """One row of a report table: ``key`` is the query, page, country or device."""

    key: str
    clicks: int
    impressions: int
    ctr: float
    position: float | None


class AppearanceDetailRow(NamedTuple):
    """One row of ``search_appearance_detail``."""

    appearance: str
    page: str
    query: str
    clicks: int
    impressions: int
    ctr: float
    position: float | None


class ReportDay(NamedTuple):
    """One report's rows for one day."""

    rows: list[Any]  # ReportRow, or AppearanceDetailRow for "search_appearance_detail"
    truncated: bool = False


class HourRow(NamedTuple):
    """One row of ``search_analytics_hourly``: ``hour`` ISO-8601 with its Pacific offset."""

    hour: str
    query: str
    page: str
    country: str
    device: str
    clicks: int
    impressions: int
    ctr: float
    position: float | None


class HourData(NamedTuple):
    """One Pacific day's hourly data, written in one transaction."""

    site_url: str
    search_type: str
    date: str
    totals: list[tuple[str, Totals]]  # (hour ISO with offset, totals)
    rows: list[HourRow]
    complete: bool  # every hour of the day is final
    truncated: bool = False  # the API's row cap was reached


# -- work -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One site and search type, with the days worth asking about."""

    site_url: str
    search_type: str
    candidates: Sequence[date]
    reports: tuple[str, ...] = ()  # the report tables kept for this type
    # what is stored final already, by day: (the detail, the reports); a day absent has
    # neither (or the run refetches everything: backfill --force)
    stored: Mapping[date, tuple[bool, frozenset[str]]] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class DayTask:
    """One day of one site and search type to fetch; ``fresh`` when not final yet."""

    site_url: str
    search_type: str
    date: str
    fresh: bool = False
    detail: bool = True  # False: the detail is stored final; only ``reports`` are wanted
    reports: tuple[str, ...] = ()  # the report tables to fetch for the day


class JobAppearance(Protocol):
    """A job's search appearance by day, fetched beside the job's detail requests
    (pool.Shared): its chunks ask for it once their own detail is in."""

    def get(self) -> dict[str, list[AppearanceRow]]: ...


@dataclass(frozen=True)
class Chunk:
    """Consecutive days of one site and type fetched by one detail request (packed small
    days, their detail rows bounded by ``ROW_LIMIT``), or one day on its own; each day is
    still written and recorded on its own."""

    site_url: str
    search_type: str
    days: tuple[tuple[DayTask, Totals], ...]  # oldest first, all final or all fresh
    big: bool = False  # may hold a capped day: counts against the memory budget
    # the job's search appearance by day, fetched beside its detail requests, else None
    appearance: JobAppearance | None = None

    @property
    def newest(self) -> str:
        return self.days[-1][0].date


@dataclass(frozen=True)
class Packing:
    """The days of one job that need a detail request: their row bounds decide the chunks."""

    site_url: str
    search_type: str
    days: tuple[tuple[DayTask, Totals], ...]  # oldest first


@dataclass
class DayData:
    """Everything fetched for one day, written in one transaction."""

    task: DayTask
    rows: list[DetailRow] = field(default_factory=list)
    appearance: list[AppearanceRow] = field(default_factory=list)
    totals: Totals = ZERO_TOTALS
    truncated: bool = False  # the cap still bites (after splitting, when it was tried)
    split_requests: int = 0  # extra requests spent refetching a capped day as slices
    recovered: int = 0  # rows the slices gave beyond the capped answer
    # False: only ``reports`` are new; the day's detail rows, appearance, totals and its
    # sync_days row stay as they are
    detail: bool = True
    reports: dict[str, ReportDay] = field(default_factory=dict)  # REPORTS, APPEARANCE_DETAIL
    page_totals: Totals | None = None  # the day's by-page totals, when known
    # why the report tables failed while the detail came (they are recorded failed and
    # fetched again; the detail is written)
    report_error: str | None = None

    @property
    def status(self) -> DayStatus:
        return "fresh" if self.task.fresh else "final"


class RunCounts(NamedTuple):
    """The counters a ``runs`` row keeps."""

    days_ok: int = 0
    days_failed: int = 0
    rows_written: int = 0
    requests: int = 0


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
    stopped: StopReason | None = None  # why scheduling stopped early
    # per (site, search type): [days ok, days failed, rows written]
    by_job: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def day_written(self, task: DayTask, rows: int) -> None:
        self.days_ok += 1
        self.rows_written += rows
        tally = self.by_job.setdefault((task.site_url, task.search_type), [0, 0, 0])
        tally[0] += 1
        tally[2] += rows

    def day_failed(self, task: DayTask, message: str) -> None:
        self.days_failed += 1
        self.failures.append((task, message))
        self.by_job.setdefault((task.site_url, task.search_type), [0, 0, 0])[1] += 1

    @property
    def counts(self) -> RunCounts:
        return RunCounts(self.days_ok, self.days_failed, self.rows_written, self.requests)

    @property
    def days_done(self) -> int:
        return self.days_ok + self.days_failed

    @property
    def status(self) -> RunStatus:
        """``ok``, ``partial`` or ``failed``, from the days alone."""
        if self.days_failed == 0 and self.stopped is None:
            return "ok"
        if self.days_ok == 0 and self.days_failed > 0:
            return "failed"
        return "partial"


ProgressCallback = Callable[[RunReport], None]


# -- storage records ------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerDay:
    """One ``sync_days`` row."""

    date: str
    status: DayStatus
    rows: int
    attempts: int
    error: str | None


@dataclass(frozen=True)
class BreakerState:
    """What is persisted of the circuit breaker: one row of the ``breaker`` table."""

    state: BreakerPhase = "closed"
    failures: int = 0  # consecutive failed requests
    opened_at: float | None = None  # epoch seconds
    cooldown: int = 0  # seconds; 0 means the configured base
    reason: str | None = None

    def reopens_at(self, base: int) -> float | None:
        if self.state != "open" or self.opened_at is None:
            return None
        return self.opened_at + (self.cooldown or base)


@dataclass(frozen=True)
class RunRecord:
    """One ``runs`` row."""

    id: int
    command: str
    started_at: str
    finished_at: str | None
    status: RunStatus
    days_ok: int
    days_failed: int
    rows_written: int
    requests: int
    error: str | None
    pid: int | None
    version: str | None


@dataclass
class Coverage:
    """How complete one site × search type is.

    The shares compare like with like: the detail rows are aggregated by page, so on the
    final days whose by-page totals are known (``daily_totals.page_clicks`` and
    ``page_impressions``) they are set against those, on the others against the
    by-property totals (which anonymized queries are part of and a query shown on several
    pages counts in once): ``*_share_basis`` says which, ``mixed`` when both."""

    site_url: str
    search_type: str
    first_final: str | None
    newest_final: str | None
    days_final: int
    days_fresh: int
    gaps: list[str]  # days between first and newest final that are not final
    failed: list[dict[str, str]]  # [{"date", "error"}]
    truncated: list[str]
    # final days stored with no detail row although their totals show impressions: a
    # day taken as final from an answer that was not (refetch it with backfill --force)
    empty_with_impressions: list[str]
    rows: int
    clicks_detail: int
    clicks_total: int  # by property, over the final days with totals
    impressions_detail: int
    impressions_total: int  # by property, over the final days with totals
    days_split: int = 0  # capped days refetched as slices (truncated: those still capped)
    rows_recovered: int = 0  # rows the slices gave beyond the capped answers
    # what each share is computed against: per final day with totals, its by-page total
    # when known, else its by-property total
    clicks_share_total: int = 0
    impressions_share_total: int = 0
    days_with_totals: int = 0  # final days with a daily_totals row
    clicks_share_days_by_page: int = 0  # of those, the days whose by-page clicks are known
    impressions_share_days_by_page: int = 0  # ... whose by-page impressions are known
    days_capped_before_split: int = 0  # final days that reached the row cap
    days_capped_after_split: int = 0  # final days still capped after splitting
    # final, uncapped by_query days with totals: their by-property clicks and the clicks
    # of their by_query rows (the difference: clicks of anonymized queries)
    anonymized_clicks_days: int = 0
    anonymized_clicks_total: int = 0
    anonymized_clicks_by_query: int = 0
    # per report table (and "hourly"): the days final in report_days
    report_days_final: dict[str, int] = field(default_factory=dict)

    @property
    def clicks_share(self) -> float | None:
        """Share of the like-for-like clicks the detail rows account for (the cap)."""
        return self.clicks_detail / self.clicks_share_total if self.clicks_share_total else None

    @property
    def impressions_share(self) -> float | None:
        total = self.impressions_share_total
        return self.impressions_detail / total if total else None

    @property
    def clicks_share_basis(self) -> Literal["by_page", "by_property", "mixed"] | None:
        """``by_page``, ``by_property`` or ``mixed`` (None: no totals, no share)."""
        return self._basis(self.clicks_share_days_by_page, self.days_with_totals)

    @property
    def impressions_share_basis(self) -> Literal["by_page", "by_property", "mixed"] | None:
        return self._basis(self.impressions_share_days_by_page, self.days_with_totals)

    @property
    def anonymized_clicks_share(self) -> float | None:
        """Share of the by-property clicks no by_query row accounts for (anonymized
        queries), over the final uncapped by_query days; None without such a day."""
        total = self.anonymized_clicks_total
        return (total - self.anonymized_clicks_by_query) / total if total else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["clicks_share"] = self.clicks_share
        doc["impressions_share"] = self.impressions_share
        doc["clicks_share_basis"] = self.clicks_share_basis
        doc["impressions_share_basis"] = self.impressions_share_basis
        doc["anonymized_clicks_share"] = self.anonymized_clicks_share
        return doc

    @staticmethod
    def _basis(days_by_page: int, days: int) -> Literal["by_page", "by_property", "mixed"] | None:
        if not days:
            return None
        return "by_page" if days_by_page >= days else "mixed" if days_by_page else "by_property"


@dataclass
class StatusReport:
    """Everything ``gscsync status`` reports."""

    coverage: list[Coverage] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    breaker: BreakerState = field(default_factory=BreakerState)
    problems: list[str] = field(default_factory=list)  # empty when healthy

    @property
    def healthy(self) -> bool:
        return not self.problems


# -- command results ------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteListing:
    """A property the credentials see (or one configured that they do not)."""

    site_url: str
    permission_level: str | None  # None: configured but not visible to the credentials
    synced: bool


@dataclass(frozen=True)
class Check:
    """One line of ``gscsync check``."""

    name: str
    ok: bool
    detail: str
    exit_code: int = 0  # what a failure of this check exits with


@dataclass
class Outcome:
    """A finished fetching run: its report, how it ended, and the exit code it calls for."""

    command: str
    report: RunReport
    status: RunStatus
    exit_code: int
    summary: str
    skipped: bool = False
