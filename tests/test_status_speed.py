"""``status`` stays fast on big databases: coverage reads the ledger (a row per day), never
the detail rows, so its work does not grow with them. Measured deterministically, as the
SQLite virtual-machine instructions it runs, not as time."""

from __future__ import annotations

from pathlib import Path

from gscsync.models import DayData, DayTask
from gscsync.store import open_store, open_store_readonly

SITE = "sc-domain:a.com"


def database(path: Path, rows_per_day: int) -> Path:
    with open_store(path) as store:
        for n in range(1, 11):
            for stype in ("web", "image"):
                store.write_day(
                    DayData(
                        DayTask(SITE, stype, f"2026-01-{n:02d}", fresh=n == 10),
                        rows=[
                            (f"q{i}", f"p{i % 9}", "usa", "MOBILE", 1, 3, 0.3, 2.0)
                            for i in range(rows_per_day)
                        ],
                        totals=(2 * rows_per_day, 4 * rows_per_day, 0.5, 2.0),
                    )
                )
    return path


def coverage_work(path: Path) -> tuple[int, list[object]]:
    """The VM instructions (in thousands) coverage() runs, and what it says."""
    with open_store_readonly(path) as store:
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        store.db.conn.set_progress_handler(count, 1000)
        coverage = store.coverage()
        store.db.conn.set_progress_handler(None, 0)
    return steps[0], [(c.days_final, c.rows, c.clicks_detail, c.clicks_total) for c in coverage]


def test_status_work_does_not_grow_with_the_detail_rows(tmp_path: Path) -> None:
    small, small_says = coverage_work(database(tmp_path / "small.db", 10))
    big, big_says = coverage_work(database(tmp_path / "big.db", 2000))  # 200 times the rows
    assert big_says == [(9, 9 * 2000 + 2000, 9 * 2000, 9 * 4000)] * 2
    assert small_says == [(9, 9 * 10 + 10, 9 * 10, 9 * 20)] * 2
    assert big <= small + 1  # the same ledger, the same work
