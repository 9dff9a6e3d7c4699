"""Plain data passed between the layers: search types, jobs, rows, ledger, runs, reports.

Nothing here does I/O. Rows are NamedTuples (cheap, and still plain tuples for SQLite);
statuses are Literals, so mypy checks every spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal, NamedTuple

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


# -- work -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One site and search type, with the days worth asking about."""

    site_url: str
    search_type: str
    candidates: Sequence[date]


@dataclass(frozen=True, order=True)
class DayTask:
    """One day of one site and search type to fetch; ``fresh`` when not final yet."""

    site_url: str
    search_type: str
    date: str
    fresh: bool = False


@dataclass(frozen=True)
class Chunk:
    """Consecutive days of one site and type fetched by one detail request (packed small
    days, their detail rows bounded by ``ROW_LIMIT``), or one day on its own; each day is
    still written and recorded on its own."""

    site_url: str
    search_type: str
    days: tuple[tuple[DayTask, Totals], ...]  # oldest first, all final or all fresh
    big: bool = False  # may hold a capped day: counts against the memory budget
    # each day's search appearance when already fetched for the whole job, else None
    appearance: tuple[tuple[AppearanceRow, ...], ...] | None = None

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
    """How complete one site × search type is."""

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
    clicks_total: int
    impressions_detail: int
    impressions_total: int
    days_split: int = 0  # capped days refetched as slices (truncated: those still capped)
    rows_recovered: int = 0  # rows the slices gave beyond the capped answers

    @property
    def clicks_share(self) -> float | None:
        """Share of total clicks the detail rows account for (anonymization, the cap)."""
        return self.clicks_detail / self.clicks_total if self.clicks_total else None

    @property
    def impressions_share(self) -> float | None:
        return self.impressions_detail / self.impressions_total if self.impressions_total else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["clicks_share"] = self.clicks_share
        doc["impressions_share"] = self.impressions_share
        return doc


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
