"""Properties of the planner, over random ledgers, windows and API answers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gscsync.dates import days, earliest_served, months_before
from gscsync.planner import Finality, candidate_days, finality, plan_days

TODAY = date(2026, 11, 29)
EARLIEST = earliest_served(TODAY)

day_offsets = st.integers(min_value=0, max_value=600)
statuses = st.sampled_from(["final", "fresh", "failed"])
ledgers = st.dictionaries(
    day_offsets.map(lambda n: TODAY - timedelta(days=n)), statuses, max_size=60
)
windows = st.integers(min_value=1, max_value=40)
lags = st.integers(min_value=0, max_value=6)


@given(ledgers, windows, lags, st.sampled_from(["final", "all"]))
def test_never_plans_a_final_day_nor_one_the_api_does_not_serve(
    ledger: dict[date, str], window: int, lag: int, state: str
) -> None:
    cands = candidate_days(today=TODAY, window=window, ledger=ledger, earliest=EARLIEST)
    first_incomplete = TODAY - timedelta(days=lag - 1) if lag else None
    fin = finality([d for d in cands if d <= TODAY], first_incomplete)
    for day, fresh in plan_days(cands, fin, data_state=state):
        assert ledger.get(day) != "final"
        assert EARLIEST <= day <= TODAY
        if not fresh:
            assert fin.final_through is not None and day <= fin.final_through


@given(ledgers, windows)
def test_always_includes_failed_and_fresh_days_the_api_serves(
    ledger: dict[date, str], window: int
) -> None:
    cands = set(candidate_days(today=TODAY, window=window, ledger=ledger, earliest=EARLIEST))
    for day, status in ledger.items():
        if status != "final" and day >= EARLIEST:
            assert day in cands


@given(st.integers(min_value=12, max_value=480), windows, lags)
def test_after_an_outage_plans_every_missing_day(gap: int, window: int, lag: int) -> None:
    newest_final = TODAY - timedelta(days=gap)
    ledger = {newest_final - timedelta(days=n): "final" for n in range(5)}
    cands = candidate_days(today=TODAY, window=window, ledger=ledger, earliest=EARLIEST)
    final_through = TODAY - timedelta(days=lag)
    planned = {d for d, _ in plan_days(cands, Finality(final_through, None), data_state="final")}
    start = max(newest_final + timedelta(days=1), EARLIEST)
    missing = set(days(start, final_through)) if start <= final_through else set()
    assert missing <= planned
    assert all(ledger.get(d) != "final" and d <= final_through for d in planned)


@given(ledgers, windows)
def test_the_whole_window_is_a_candidate_unless_final(ledger: dict[date, str], window: int) -> None:
    cands = set(candidate_days(today=TODAY, window=window, ledger=ledger, earliest=EARLIEST))
    for n in range(window):
        d = TODAY - timedelta(days=n)
        assert (d in cands) == (ledger.get(d) != "final" and d >= EARLIEST)


def test_fresh_days_are_planned_only_with_data_state_all() -> None:
    cands = list(days(TODAY - timedelta(days=5), TODAY))
    fin = finality([TODAY - timedelta(days=n) for n in range(1, 6)], TODAY - timedelta(days=2))
    assert fin == Finality(TODAY - timedelta(days=3), TODAY - timedelta(days=1))
    final_only = plan_days(cands, fin, data_state="final")
    assert [d for d, _ in final_only] == [TODAY - timedelta(days=n) for n in (3, 4, 5)]
    with_fresh = plan_days(cands, fin, data_state="all")
    assert [(d, f) for d, f in with_fresh if f] == [
        (TODAY - timedelta(days=1), True),
        (TODAY - timedelta(days=2), True),
    ]


def test_without_the_marker_the_newest_day_with_data_is_final() -> None:
    assert finality([date(2026, 1, 3), date(2026, 1, 1)], None) == Finality(date(2026, 1, 3), None)
    assert finality([], None) == Finality(None, None)


def test_months_before_clamps_to_the_month_end() -> None:
    assert months_before(date(2026, 6, 30), 16) == date(2025, 2, 28)
    assert months_before(date(2026, 11, 29), 16) == date(2025, 7, 29)
    assert months_before(date(2024, 6, 29), 4) == date(2024, 2, 29)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"firstIncompleteDate": "2026-03-08"}, date(2026, 3, 8)),
        ({"first_incomplete_date": "2026-03-08"}, date(2026, 3, 8)),
        ({"firstIncompleteDate": "2026-03-11"}, date(2026, 3, 11)),  # tomorrow: believable
        ({"firstIncompleteDate": "not-a-date"}, None),
        ({"firstIncompleteDate": "2999-01-01"}, None),  # far in the future: would make
        ({"first_incomplete_date": "2026-03-12"}, None),  # fresh days "final"
        ({}, None),
    ],
)
def test_only_a_believable_marker_is_read(metadata: dict[str, str], expected: date | None) -> None:
    from gscsync.fetch import read_marker

    assert read_marker(metadata, date(2026, 3, 10)) == expected
