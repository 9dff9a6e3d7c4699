"""Coverage that means what it says: the detail rows (aggregated by page) set against the
by-page totals where they are known and the by-property ones elsewhere, saying which; the
days that reached the row cap before and after splitting; the clicks of anonymized
queries (daily_totals minus by_query); the days final per report table. Each database is
a real SQLite file written through the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from gscsync import render
from gscsync.models import (
    Coverage,
    DayData,
    DayTask,
    DetailRow,
    HourData,
    ReportDay,
    ReportRow,
    StatusReport,
    Totals,
)
from gscsync.store import SqliteStore, open_store, open_store_readonly
from tests.conftest import run_cli

SITE = "sc-domain:a.com"
OTHER = "https://www.b.example/"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "g.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    with open_store(path, busy_timeout_ms=200) as s:
        yield s


def day(
    date: str,
    seen: tuple[int, int] = (0, 0),
    totals: tuple[int, int] = (0, 0),
    page: tuple[int, int] | None = None,
    *,
    fresh: bool = False,
    site: str = SITE,
    by_query: list[int] | None = None,  # clicks of each by_query row
    by_query_capped: bool = False,
    reports: dict[str, ReportDay] | None = None,
    **more: object,
) -> DayData:
    """One day: one detail row holding ``seen`` (clicks, impressions), its by-property
    ``totals``, its by-page totals ``page`` (None: not known) and its by_query rows."""
    reports = dict(reports or {})
    if by_query is not None:
        rows = [ReportRow(f"q{i}", c, 10 * c, 0.1, 2.0) for i, c in enumerate(by_query)]
        reports["by_query"] = ReportDay(rows, truncated=by_query_capped)
    return DayData(
        task=DayTask(site, "web", date, fresh),
        rows=[DetailRow("q", "https://a.com/", "usa", "MOBILE", *seen, 0.1, 1.0)],
        totals=Totals(*totals, 0.1, 2.0),
        page_totals=None if page is None else Totals(*page, 0.1, 1.5),
        reports=reports,
        **more,  # type: ignore[arg-type]
    )


def coverage_of(store: SqliteStore, site: str = SITE) -> Coverage:
    """What status says, read as status reads it: a read-only connection of its own."""
    with open_store_readonly(Path(store.path), busy_timeout_ms=200) as reader:
        return next(c for c in reader.coverage() if c.site_url == site)


# -- the shares, like for like --------------------------------------------------------------


def test_shares_are_against_the_by_page_totals_when_every_day_has_them(
    store: SqliteStore,
) -> None:
    store.write_day(day("2026-03-01", (8, 120), (10, 100), (9, 150)))
    store.write_day(day("2026-03-02", (5, 40), (6, 50), (5, 60)))
    store.write_day(day("2026-03-03", (50, 500), (60, 600), fresh=True))  # not final: out
    c = coverage_of(store)
    assert (c.clicks_detail, c.impressions_detail) == (13, 160)
    assert (c.clicks_total, c.impressions_total) == (16, 150)  # by property, as before
    assert (c.clicks_share_total, c.impressions_share_total) == (14, 210)
    assert c.clicks_share == pytest.approx(13 / 14)
    assert c.impressions_share == pytest.approx(160 / 210)  # not 160 / 150 = 107%
    assert (c.clicks_share_basis, c.impressions_share_basis) == ("by_page", "by_page")
    assert (c.days_with_totals, c.clicks_share_days_by_page) == (2, 2)
    assert c.impressions_share_days_by_page == 2


def test_shares_are_against_the_by_property_totals_when_no_day_has_by_page_ones(
    store: SqliteStore,
) -> None:
    store.write_day(day("2026-03-01", (8, 120), (10, 100)))
    store.write_day(day("2026-03-02", (5, 40), (6, 50)))
    c = coverage_of(store)
    assert (c.clicks_share_total, c.impressions_share_total) == (16, 150)
    assert c.clicks_share == pytest.approx(13 / 16)
    assert c.impressions_share == pytest.approx(160 / 150)
    assert (c.clicks_share_basis, c.impressions_share_basis) == ("by_property", "by_property")
    assert (c.days_with_totals, c.clicks_share_days_by_page) == (2, 0)


def test_shares_are_mixed_when_some_days_have_by_page_totals(store: SqliteStore) -> None:
    store.write_day(day("2026-03-01", (8, 120), (10, 100), (9, 150)))
    store.write_day(day("2026-03-02", (5, 40), (6, 50)))
    store.write_day(day("2026-03-04", (1, 10), (2, 20), (2, 30)))
    c = coverage_of(store)
    # each day against its own like-for-like total: by page on the 1st and 4th only
    assert (c.clicks_share_total, c.impressions_share_total) == (9 + 6 + 2, 150 + 50 + 30)
    assert c.clicks_share == pytest.approx(14 / 17)
    assert c.impressions_share == pytest.approx(170 / 230)
    assert (c.clicks_share_basis, c.impressions_share_basis) == ("mixed", "mixed")
    assert (c.days_with_totals, c.clicks_share_days_by_page) == (3, 2)
    assert c.impressions_share_days_by_page == 2
    # by-page totals given later, with the reports alone, turn the day by-page
    store.write_day(day("2026-03-02", page=(6, 70), detail=False))
    c = coverage_of(store)
    assert c.clicks_share_basis == "by_page" and c.clicks_share_total == 9 + 6 + 2
    assert c.impressions_share == pytest.approx(170 / 250)


def test_no_totals_no_share_and_no_basis(store: SqliteStore) -> None:
    store.write_day(day("2026-03-01", fresh=True))
    c = coverage_of(store)
    assert c.clicks_share is None and c.impressions_share is None
    assert c.clicks_share_basis is None and c.impressions_share_basis is None


# -- the row cap ----------------------------------------------------------------------------


def test_days_capped_before_and_after_splitting(store: SqliteStore) -> None:
    store.write_day(day("2026-03-01", truncated=True))  # capped, split not tried
    store.write_day(day("2026-03-02", split_requests=3, recovered=40))  # split: complete
    store.write_day(day("2026-03-03", split_requests=2, recovered=10, truncated=True))
    store.write_day(day("2026-03-04"))  # never capped
    store.write_day(day("2026-03-05", truncated=True, fresh=True))  # not final
    c = coverage_of(store)
    assert (c.days_capped_before_split, c.days_capped_after_split) == (3, 2)
    assert (c.days_split, c.rows_recovered) == (2, 50)
    assert c.truncated == ["2026-03-01", "2026-03-03", "2026-03-05"]  # as before: every day


# -- anonymized queries ---------------------------------------------------------------------


def test_the_anonymized_click_share_is_daily_totals_minus_by_query(store: SqliteStore) -> None:
    store.write_day(day("2026-03-01", totals=(10, 100), by_query=[3, 4]))  # 3 anonymized
    store.write_day(day("2026-03-02", totals=(6, 60), by_query=[5]))  # 1
    store.write_day(day("2026-03-03", totals=(2, 20), by_query=[]))  # all 2: no query row
    # left out: by_query capped (the cap hides queries too), fresh, failed, or no totals
    store.write_day(day("2026-03-04", totals=(20, 200), by_query=[1], by_query_capped=True))
    store.write_day(day("2026-03-05", totals=(30, 300), by_query=[1], fresh=True))
    store.write_day(day("2026-03-06", totals=(40, 400), by_query=[1]))
    store.mark_report_failed(DayTask(SITE, "web", "2026-03-06"), "by_query", "500")
    store.write_day(day("2026-03-07", by_query=[9], detail=False))  # no daily_totals row
    store.write_day(day("2026-03-08", totals=(50, 500)))  # no by_query
    # another property's rows on the same days are its own
    store.write_day(day("2026-03-01", totals=(200, 900), by_query=[100], site=OTHER))
    c = coverage_of(store)
    assert c.anonymized_clicks_days == 3
    assert (c.anonymized_clicks_total, c.anonymized_clicks_by_query) == (18, 12)
    assert c.anonymized_clicks_share == pytest.approx(6 / 18)
    assert coverage_of(store, OTHER).anonymized_clicks_share == pytest.approx(0.5)


def test_no_by_query_day_no_anonymized_share(store: SqliteStore) -> None:
    store.write_day(day("2026-03-01", totals=(10, 100)))
    store.write_day(day("2026-03-02", totals=(10, 100), by_query=[1], fresh=True))
    c = coverage_of(store)
    assert c.anonymized_clicks_share is None and c.anonymized_clicks_days == 0


# -- the report tables ----------------------------------------------------------------------


def test_days_final_per_report_table(store: SqliteStore) -> None:
    store.write_day(day("2026-03-01", by_query=[1]))
    store.write_day(day("2026-03-02", by_query=[1]))
    store.write_day(day("2026-03-03", by_query=[1], fresh=True))
    country = {"by_country": ReportDay([ReportRow("usa", 1, 2, 0.5, 1.0)])}
    store.write_day(day("2026-03-01", detail=False, reports=country))
    hour = "2026-03-02T00:00:00-08:00"
    store.write_hours(HourData(SITE, "web", "2026-03-02", [(hour, Totals(1, 2, 0.5, 1.0))], [],
                               complete=True))  # fmt: skip
    store.write_hours(HourData(SITE, "web", "2026-03-03", [], [], complete=False))
    assert coverage_of(store).report_days_final == {
        "by_query": 2,
        "by_page": 0,
        "by_country": 1,
        "by_device": 0,
        "search_appearance_detail": 0,
        "hourly": 1,
    }
    # a property with reports only (no detail day yet) is listed too
    store.write_hours(HourData(OTHER, "web", "2026-03-02", [], [], complete=True))
    other = coverage_of(store, OTHER)
    assert other.report_days_final["hourly"] == 1 and other.days_final == 0


# -- what status shows ----------------------------------------------------------------------

NEW_KEYS = {
    "clicks_share_total": 9 + 6,
    "impressions_share_total": 150 + 50,
    "days_with_totals": 2,
    "clicks_share_days_by_page": 1,
    "impressions_share_days_by_page": 1,
    "clicks_share_basis": "mixed",
    "impressions_share_basis": "mixed",
    "days_capped_before_split": 2,
    "days_capped_after_split": 1,
    "anonymized_clicks_days": 2,
    "anonymized_clicks_total": 16,
    "anonymized_clicks_by_query": 12,
    "anonymized_clicks_share": 0.25,
    "report_days_final": {
        "by_query": 2,
        "by_page": 0,
        "by_country": 0,
        "by_device": 0,
        "search_appearance_detail": 0,
        "hourly": 0,
    },
}


def mixed_database(store: SqliteStore) -> None:
    store.write_day(
        day("2026-03-01", (8, 120), (10, 100), (9, 150), by_query=[3, 4], truncated=True,
            split_requests=2, recovered=7)
    )  # fmt: skip
    store.write_day(day("2026-03-02", (6, 50), (6, 50), by_query=[5], split_requests=1))


def test_status_json_adds_every_new_field_and_keeps_the_old_keys(
    store: SqliteStore, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed_database(store)
    run_cli("status", "--json", "--db", str(path))
    (cov,) = json.loads(capsys.readouterr().out)["coverage"]
    assert {k: cov[k] for k in NEW_KEYS} == NEW_KEYS
    # the keys that were there keep their names and their kinds of value
    assert (cov["clicks_detail"], cov["clicks_total"]) == (14, 16)
    assert (cov["impressions_detail"], cov["impressions_total"]) == (170, 150)
    assert cov["clicks_share"] == pytest.approx(14 / 15)
    assert cov["impressions_share"] == pytest.approx(170 / 200)
    assert (cov["days_split"], cov["rows_recovered"], cov["truncated"]) == (2, 7, ["2026-03-01"])


def test_status_table_shows_each_share_with_its_basis(store: SqliteStore) -> None:
    mixed_database(store)
    store.write_day(day("2026-03-01", (1, 1), (2, 2), (2, 2), site=OTHER))
    store.write_day(day("2026-03-01", (1, 1), (4, 4), site="sc-domain:c.com"))
    with open_store_readonly(Path(store.path)) as reader:
        report = StatusReport(coverage=reader.coverage())
    out = Console(record=True, width=80)
    render.status_table(report, out)
    text = out.export_text()
    assert max(map(len, text.splitlines())) <= 80  # readable in an 80-column terminal
    groups = {g.splitlines()[0]: g for g in text.split("\n\n") if g.startswith(("sc-", "http"))}

    def share_row(site: str) -> list[str]:
        line = next(
            r for r in groups[site].splitlines() if r.strip().startswith("web") and "%" in r
        )
        return line.split()

    # clicks 14/15 = 93.3%, impressions 170/200 = 85%, both by page on 1 of the 2 days;
    # capped 2 days, 1 after splitting, 7 rows recovered, 4 of 16 clicks anonymized
    assert share_row(SITE) == ["web", "93.3%", "page", "1/2", "85.0%", "page", "1/2", "2", "1",
                               "7", "25.0%"]  # fmt: skip
    assert share_row(OTHER)[1:3] == ["50.0%", "page"]
    assert share_row("sc-domain:c.com")[1:3] == ["25.0%", "prop."]
    assert "page 4/7: by-page totals on" in text  # the legend, when mixed
    assert "report tables: days final" in text


def test_a_failed_report_day_is_listed_and_makes_status_unhealthy(
    store: SqliteStore, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.write_day(day("2026-03-01", (5, 50), (5, 50), by_query=[5]))
    store.mark_report_failed(DayTask(SITE, "web", "2026-03-01"), "by_country", "500 oops")
    cov = coverage_of(store)
    assert cov.failed == [{"date": "2026-03-01", "error": "500 oops", "report": "by_country"}]
    assert run_cli("status", "--json", "--db", str(path)) == 1
    doc = json.loads(capsys.readouterr().out)
    assert any("failed" in p for p in doc["problems"])
