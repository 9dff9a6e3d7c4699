"""Hourly answers are untrusted like the rest: hour keys checked, the marker read in both
spellings and never guessed when absent."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gscsync.api.answers import InvalidAnswer
from gscsync.api.client import GscClient, make_retrying
from gscsync.hourly import fetch_hours

API = "https://gsc.test"
SITE = "sc-domain:a.com"
TODAY = date(2026, 3, 10)


def client() -> GscClient:
    return GscClient(httpx.Client(), base_url=API, retrying=make_retrying(1, sleep=lambda _: None))


def answer(rows: list[dict[str, Any]], metadata: dict[str, str] | None = None) -> str:
    doc: dict[str, Any] = {"rows": rows, "responseAggregationType": "byProperty"}
    if metadata:
        doc["metadata"] = metadata
    return json.dumps(doc)


def hour_row(key: str, *more: str) -> dict[str, Any]:
    return {"keys": [key, *more], "clicks": 1, "impressions": 4, "ctr": 0.25, "position": 3.0}


@pytest.mark.parametrize("spelling", ["first_incomplete_hour", "firstIncompleteHour"])
def test_days_before_the_marker_are_complete_in_either_spelling(
    httpx_mock: HTTPXMock, spelling: str
) -> None:
    hours = ["2026-03-08T23:00:00-07:00", "2026-03-09T05:00:00-07:00"]
    httpx_mock.add_response(
        text=answer([hour_row(h) for h in hours], {spelling: "2026-03-09T06:00:00-07:00"})
    )
    httpx_mock.add_response(text=answer([]))  # paged to the empty page
    httpx_mock.add_response(text=answer([hour_row(hours[0], "q", "p", "usa", "MOBILE")]))
    httpx_mock.add_response(text=answer([]))
    got = fetch_hours(client(), SITE, "web", ["2026-03-08", "2026-03-09"], TODAY)
    assert [(d.date, d.complete, len(d.totals), len(d.rows)) for d in got] == [
        ("2026-03-08", True, 1, 1),
        ("2026-03-09", False, 1, 0),
    ]


def test_without_a_marker_only_old_days_count_as_complete(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text=answer([hour_row("2026-03-09T05:00:00-07:00")]))
    httpx_mock.add_response(text=answer([]), is_reusable=True)
    days = ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"]
    got = fetch_hours(client(), SITE, "web", days, TODAY)
    assert [d.complete for d in got] == [True, True, False, False]


@pytest.mark.parametrize(
    "key",
    [
        "2026-03-09",  # a date, not an hour
        "2026-03-09T05:30:00-07:00",  # not on the hour
        "2026-03-01T05:00:00-07:00",  # a day not asked for
        "2026-03-09T25:00:00-07:00",  # no such hour
        "2026-03-09T05:00:00",  # no offset
    ],
)
def test_a_bad_hour_key_is_an_invalid_answer(httpx_mock: HTTPXMock, key: str) -> None:
    httpx_mock.add_response(text=answer([hour_row(key)]))
    httpx_mock.add_response(text=answer([]))
    with pytest.raises((InvalidAnswer, ValueError)):
        fetch_hours(client(), SITE, "web", ["2026-03-09"], TODAY)
