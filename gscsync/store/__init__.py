"""Storage: the one seam between the core and where the data lives.

:class:`Store` is everything the core asks of storage; :mod:`gscsync.store.sqlite` is the
SQLite implementation (another output, PostgreSQL say, would be a sibling module that
satisfies the same protocol). Only this package imports ``sqlite3`` or ``sqlite_utils``,
and nothing outside it writes SQL.
"""

from __future__ import annotations

from typing import Protocol

from gscsync.models import (
    BreakerState,
    Coverage,
    DayData,
    DayTask,
    HourData,
    LedgerDay,
    RunCounts,
    RunRecord,
    RunStatus,
)
from gscsync.store.schema import check_db_path
from gscsync.store.sqlite import SqliteStore, memory_store, open_store, open_store_readonly


class Store(Protocol):
    """What the core needs from storage. Writes come from one thread, the writer. A write
    the storage refuses (locked past its timeout, disk full) raises
    :class:`gscsync.errors.StorageError` after rolling back: nothing is half-written."""

    def close(self) -> None: ...

    # the ledger and the days
    def ledger(self, site_url: str, search_type: str) -> dict[str, LedgerDay]: ...
    def write_day(self, data: DayData) -> None: ...
    def final_rows(self, task: DayTask) -> int: ...
    def mark_failed(self, task: DayTask, error: str) -> None: ...

    # the reports' ledger and the hours (reports of a day come with ``write_day``)
    def report_ledger(
        self, site_url: str, search_type: str
    ) -> dict[tuple[str, str], LedgerDay]: ...
    def mark_report_failed(self, task: DayTask, report: str, error: str) -> None: ...
    def write_hours(self, data: HourData) -> None: ...

    # the audit log
    def start_run(self, command: str) -> int: ...
    def finish_run(
        self, run_id: int, status: RunStatus, counts: RunCounts, error: str | None
    ) -> None: ...
    def prune_runs(self, retention_days: int) -> int: ...
    def recent_runs(self, limit: int = 5, command: str | None = None) -> list[RunRecord]: ...

    # the circuit breaker
    def load_breaker(self) -> BreakerState: ...
    def save_breaker(self, state: BreakerState) -> None: ...

    # coverage
    def newest_final_days(self) -> dict[tuple[str, str], str]: ...
    def day_size(self, site_url: str, search_type: str) -> tuple[float, float] | None: ...
    def coverage(self) -> list[Coverage]: ...


__all__ = [
    "SqliteStore",
    "Store",
    "check_db_path",
    "memory_store",
    "open_store",
    "open_store_readonly",
]
