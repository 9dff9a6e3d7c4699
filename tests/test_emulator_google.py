"""The emulator against Google's documented behaviour: totals by property vs by page, and
hourly data (``dataState: hourly_all``, GSC-API.md sections 2-5)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gscsync.emulator import Emulator, EmulatorConfig, SiteData
from gscsync.emulator.server import ApiAnswer

SITE = "sc-domain:shop.example"
PACIFIC = ZoneInfo("America/Los_Angeles")
# the emulator's clock: final through 2025-11-02, the day daylight saving time ends (25 hours)
NOW = datetime(2025, 11, 5, 10, 30, tzinfo=PACIFIC)
SPRING = datetime(2025, 3, 12, 15, 20, tzinfo=PACIFIC)  # 2025-03-09 had 23 hours
Totals = dict[tuple[str, ...], tuple[int, int]]


def emulator(
    monkeypatch: pytest.MonkeyPatch, now: datetime = NOW, rows: int = 300, **config: Any
) -> Emulator:
    site = SiteData(SITE, rows_per_day={"web": rows, "discover": 20})
    config.setdefault("property_overlap", True)
    emu = Emulator(EmulatorConfig(sites=[site], **config))
    monkeypatch.setattr(emu, "now", lambda: now)
    return emu


def ask(emu: Emulator, start: date, end: date, **body: Any) -> dict[str, Any]:
    body = {"startDate": start.isoformat(), "endDate": end.isoformat(), "rowLimit": 25000, **body}
    return emu.query(SITE, body)


def bad(emu: Emulator, **body: Any) -> str:
    day = emu.today()
    with pytest.raises(ApiAnswer) as info:
        ask(emu, day, day, **body)
    assert info.value.status == 400
    return str(info.value.body["error"]["message"])


def totals(doc: dict[str, Any], day_of: int | None = None) -> Totals:
    """(clicks, impressions) by keys; with ``day_of``, that key cut to its day (an hour's
    day) and summed."""
    out: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for r in doc.get("rows", []):
        keys = list(r["keys"])
        if day_of is not None:
            keys[day_of] = keys[day_of][:10]
        out[tuple(keys)][0] += r["clicks"]
        out[tuple(keys)][1] += r["impressions"]
    return {k: (c, i) for k, (c, i) in out.items()}


def page_filter(expression: str) -> list[dict[str, Any]]:
    return [{"filters": [{"dimension": "page", "operator": "contains", "expression": expression}]}]


# -- by property vs by page --------------------------------------------------------------
def test_by_property_totals_are_at_most_by_page_and_smaller_on_some_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator(monkeypatch)
    end = emu.final_through()
    start = end - timedelta(days=13)
    by_property = totals(ask(emu, start, end, dimensions=["date"], aggregationType="byProperty"))
    by_page = totals(ask(emu, start, end, dimensions=["date"], aggregationType="byPage"))
    assert by_property.keys() == by_page.keys() and len(by_page) == 14
    for day, (clicks, impressions) in by_property.items():
        assert clicks <= by_page[day][0] and impressions <= by_page[day][1]
    smaller = [d for d in by_page if by_property[d][1] < by_page[d][1]]
    assert len(smaller) >= 7  # most days show a search with several of the site's pages
    # the switch off: both sum every row, as before
    emu.config.property_overlap = False
    assert totals(ask(emu, start, end, dimensions=["date"])) == by_page


def test_by_property_counts_a_search_once_at_its_topmost_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One search (day, query, country, device) showing several pages: its impressions and
    clicks are the most any of its pages had, its position the topmost."""
    emu = emulator(monkeypatch)
    end = emu.final_through()
    start = end - timedelta(days=4)
    detail = ask(emu, start, end, dimensions=["date", "query", "page", "country", "device"])
    assert detail["responseAggregationType"] == "byPage"
    pages: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in detail["rows"]:
        d, query, _, country, device = r["keys"]
        pages[(d, query, country, device)].append(r)
    searches = ask(
        emu,
        start,
        end,
        dimensions=["date", "query", "country", "device"],
        aggregationType="byProperty",
    )
    got = {tuple(r["keys"]): r for r in searches["rows"]}
    assert got.keys() == pages.keys()
    for key, rows in pages.items():
        assert got[key]["impressions"] == max(r["impressions"] for r in rows)
        assert got[key]["clicks"] == max(r["clicks"] for r in rows)
        assert got[key]["position"] == min(r["position"] for r in rows)
    assert sum(len(rows) > 1 for rows in pages.values()) >= 5


def test_by_property_per_search_appearance_too(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(monkeypatch, rows=1000)
    end = emu.final_through()
    start = end - timedelta(days=6)
    for agg in ("byProperty", "byPage"):
        assert ask(emu, start, end, dimensions=["searchAppearance"], aggregationType=agg)["rows"]
    by_property = totals(ask(emu, start, end, dimensions=["searchAppearance"]))
    by_page = totals(
        ask(emu, start, end, dimensions=["searchAppearance"], aggregationType="byPage")
    )
    assert by_property.keys() == by_page.keys()
    assert all(by_property[k][1] <= by_page[k][1] for k in by_page)
    assert any(by_property[k][1] < by_page[k][1] for k in by_page)
    (shared,) = [k for k in by_page if by_property[k][1] < by_page[k][1]][:1]
    flt = [{"filters": [{"dimension": "searchAppearance", "expression": shared[0]}]}]
    one = totals(ask(emu, start, end, dimensions=["date"], dimensionFilterGroups=flt))
    one_by_page = totals(
        ask(
            emu,
            start,
            end,
            dimensions=["date"],
            dimensionFilterGroups=flt,
            aggregationType="byPage",
        )
    )
    assert sum(i for _, i in one.values()) < sum(i for _, i in one_by_page.values())


def test_auto_is_by_property_unless_page_is_grouped_or_filtered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator(monkeypatch)
    end = emu.final_through()
    start = end - timedelta(days=6)
    dims = ["date"]
    auto = ask(emu, start, end, dimensions=dims)
    assert auto["responseAggregationType"] == "byProperty"
    assert auto == ask(emu, start, end, dimensions=dims, aggregationType="BY_PROPERTY")
    assert totals(auto) != totals(ask(emu, start, end, dimensions=dims, aggregationType="byPage"))
    # page filtered: by page
    flt = page_filter("/web/p")
    filtered = ask(emu, start, end, dimensions=dims, dimensionFilterGroups=flt)
    assert filtered["responseAggregationType"] == "byPage"
    assert filtered == ask(
        emu, start, end, dimensions=dims, dimensionFilterGroups=flt, aggregationType="byPage"
    )
    assert totals(filtered) != totals(auto)
    # page grouped: by page, and page rows add up to the by-page totals
    grouped = ask(emu, start, end, dimensions=["date", "page"])
    assert grouped["responseAggregationType"] == "byPage"
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (day, _), (c, i) in totals(grouped).items():
        sums[day][0] += c
        sums[day][1] += i
    assert {(d,): tuple(v) for d, v in sums.items()} == totals(filtered)
    # Discover and Google News refuse byProperty: auto is by page there
    assert ask(emu, start, end, type="discover")["responseAggregationType"] == "byPage"
    assert "property" in bad(emu, type="discover", aggregationType="byProperty")
    assert "property" in bad(emu, dimensions=["page"], aggregationType="byProperty")


# -- hourly data -------------------------------------------------------------------------
def test_hourly_refusals_are_400s(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(monkeypatch)
    assert "hour" in bad(emu, dataState="HOURLY_ALL")
    assert "hour" in bad(emu, dataState="hourly_all", dimensions=["date"])
    assert "together with date" in bad(emu, dataState="hourly_all", dimensions=["hour", "date"])
    assert "HOURLY_ALL" in bad(emu, dimensions=["hour"], dataState="all")
    assert "search appearance" in bad(
        emu, dataState="hourly_all", dimensions=["hour", "searchAppearance"]
    )
    day = emu.today()
    dims = ["HOUR", "query", "page", "country", "device"]
    assert ask(emu, day, day, dataState="HOURLY_ALL", dimensions=dims)["rows"]


@pytest.mark.parametrize("aggregation", ["auto", "byPage"])
def test_the_hours_of_each_day_add_up_to_the_day_exactly(
    monkeypatch: pytest.MonkeyPatch, aggregation: str
) -> None:
    emu = emulator(monkeypatch, rows=200)
    today, final = emu.today(), emu.final_through()
    start = today - timedelta(days=9)
    body = {"aggregationType": aggregation}
    hourly = ask(emu, start, today, dimensions=["hour"], dataState="hourly_all", **body)
    daily = ask(emu, start, today, dimensions=["date"], dataState="all", **body)
    by_day = totals(hourly, day_of=0)
    assert by_day == totals(daily)  # final days, fresh days and today
    assert len(by_day) == 10 and (final.isoformat(),) in by_day and (today.isoformat(),) in by_day
    assert all(r["clicks"] <= r["impressions"] for r in hourly["rows"])
    # grouped by hour and query, filtered by query
    flt = [{"filters": [{"dimension": "query", "operator": "contains", "expression": "shoes"}]}]
    hq = ask(
        emu,
        start,
        today,
        dimensions=["query", "hour"],
        dataState="hourly_all",
        dimensionFilterGroups=flt,
        **body,
    )
    dq = ask(
        emu,
        start,
        today,
        dimensions=["query", "date"],
        dataState="all",
        dimensionFilterGroups=flt,
        **body,
    )
    assert hq["rows"] and all("shoes" in r["keys"][0] for r in hq["rows"])
    assert totals(hq, day_of=1) == totals(dq)
    assert all(r["clicks"] <= r["impressions"] for r in hq["rows"])


def test_an_hour_has_its_rows_position(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(monkeypatch, rows=100)
    day = emu.final_through() + timedelta(days=1)  # a fresh day
    detail = ["query", "page", "country", "device"]
    daily = ask(emu, day, day, dimensions=["date", *detail], dataState="all")["rows"]
    position = {tuple(r["keys"][1:]): r["position"] for r in daily}
    hourly = ask(emu, day, day, dimensions=[*detail, "hour"], dataState="hourly_all")["rows"]
    assert {tuple(r["keys"][:-1]) for r in hourly} == position.keys()
    assert all(r["position"] == position[tuple(r["keys"][:-1])] for r in hourly)
    assert len(hourly) > 2 * len(daily)  # rows really spread over hours


def hour_keys(emu: Emulator, day: date) -> list[str]:
    doc = ask(emu, day, day, dimensions=["hour"], dataState="hourly_all")
    return [r["keys"][0] for r in doc["rows"]]


def assert_pacific(keys: list[str]) -> None:
    instants = [datetime.fromisoformat(k) for k in keys]
    for key, at in zip(keys, instants, strict=True):
        assert at.utcoffset() == at.astimezone(PACIFIC).utcoffset()
        assert key == at.astimezone(PACIFIC).isoformat() and at.minute == at.second == 0
    assert all(b - a == timedelta(hours=1) for a, b in zip(instants, instants[1:], strict=False))


def test_hour_keys_carry_the_pacific_offset_through_daylight_saving_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator(monkeypatch)
    autumn = hour_keys(emu, date(2025, 11, 2))  # clocks back at 02:00 PDT
    assert len(autumn) == 25
    assert autumn[0] == "2025-11-02T00:00:00-07:00" and autumn[-1] == "2025-11-02T23:00:00-08:00"
    assert {"2025-11-02T01:00:00-07:00", "2025-11-02T01:00:00-08:00"} <= set(autumn)
    assert_pacific(autumn)
    plain = hour_keys(emu, date(2025, 11, 4))
    assert len(plain) == 24 and plain[13] == "2025-11-04T13:00:00-08:00"
    assert_pacific(plain)
    spring = hour_keys(emulator(monkeypatch, SPRING), date(2025, 3, 9))  # 02:00 never happened
    assert len(spring) == 23 and not any("T02:" in k for k in spring)
    assert spring[2] == "2025-03-09T03:00:00-07:00" and spring[1] == "2025-03-09T01:00:00-08:00"
    assert_pacific(spring)


def test_hourly_data_covers_the_last_ten_days_up_to_the_current_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator(monkeypatch, rows=50)
    today = emu.today()
    daily = ask(emu, today - timedelta(days=30), today, dimensions=["date"], dataState="all")
    assert len(daily["rows"]) == 31  # daily: the whole range is served
    hourly = ask(
        emu,
        today - timedelta(days=30),
        today + timedelta(days=2),
        dimensions=["hour"],
        dataState="hourly_all",
    )
    days = sorted({r["keys"][0][:10] for r in hourly["rows"]})
    assert days == [(today - timedelta(days=n)).isoformat() for n in range(9, -1, -1)]
    now_keys = [k for k in (r["keys"][0] for r in hourly["rows"]) if k.startswith(days[-1])]
    assert now_keys[-1] == "2025-11-05T10:00:00-08:00" and len(now_keys) == 11
    old = today - timedelta(days=10)
    assert "rows" not in ask(emu, old, old, dimensions=["hour"], dataState="hourly_all")
    # an hour later, the answer (cached per query) has one more hour
    monkeypatch.setattr(emu, "now", lambda: NOW + timedelta(hours=1))
    later = ask(emu, today, today, dimensions=["hour"], dataState="hourly_all")
    assert later["rows"][-1]["keys"] == ["2025-11-05T11:00:00-08:00"]


def test_first_incomplete_hour_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(monkeypatch, rows=50)
    today, final = emu.today(), emu.final_through()
    hourly = {"dimensions": ["hour"], "dataState": "hourly_all"}
    marker = "2025-11-03T00:00:00-08:00"  # the first hour of the first day not final
    assert final == date(2025, 11, 2)
    assert ask(emu, today - timedelta(days=5), today, **hourly)["metadata"] == {
        "firstIncompleteHour": marker
    }
    assert "metadata" not in ask(emu, today - timedelta(days=5), final, **hourly)
    emu.config.marker_key = "first_incomplete_date"
    fresh = final + timedelta(days=1)
    doc = ask(emu, fresh, fresh, dimensions=["query", "hour"], dataState="HOURLY_ALL")
    assert doc["metadata"] == {"first_incomplete_hour": marker}
    daily = ask(emu, fresh, fresh, dimensions=["date"], dataState="all")
    assert daily["metadata"] == {"first_incomplete_date": fresh.isoformat()}
    emu.config.omit_marker = True
    assert "metadata" not in ask(emu, fresh, fresh, **hourly)
    # the marker is in Pacific time: in summer its offset is -07:00
    summer = emulator(monkeypatch, datetime(2025, 7, 10, 9, tzinfo=PACIFIC), rows=50)
    day = summer.today()
    assert ask(summer, day, day, **hourly)["metadata"] == {
        "firstIncompleteHour": "2025-07-08T00:00:00-07:00"
    }


def test_the_row_cap_counts_hours_by_their_day(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator(monkeypatch, rows=100, row_cap=7)
    today = emu.today()
    doc = ask(
        emu, today - timedelta(days=3), today, dimensions=["hour", "query"], dataState="hourly_all"
    )
    per_day: dict[str, int] = defaultdict(int)
    for r in doc["rows"]:
        per_day[r["keys"][0][:10]] += 1
    assert per_day == {(today - timedelta(days=n)).isoformat(): 7 for n in range(4)}
    # grouped by hour alone: each day's 7 busiest hours, in time order
    day = today - timedelta(days=1)
    kept = ask(emu, day, day, dimensions=["hour"], dataState="hourly_all")["rows"]
    emu.config.row_cap = 50_000
    every = ask(emu, day, day, dimensions=["hour"], dataState="hourly_all")["rows"]
    assert len(every) == 24 and [r["keys"] for r in kept] == sorted(r["keys"] for r in kept)
    top = sorted(every, key=lambda r: (-r["clicks"], -r["impressions"], r["keys"]))[:7]
    assert kept == sorted(top, key=lambda r: r["keys"])
