"""Every answer is checked against its request before anything is stored (issue: never
wrong, never stuck): an invalid row makes the whole answer a BadResponse, retried by
sending the request again, then that day fails alone; nothing else ever escapes."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from gscsync.api.answers import InvalidAnswer, parse_query, parse_sites
from gscsync.api.client import GscClient, make_retrying
from gscsync.errors import ApiError, BadResponse, TransientError
from gscsync.fetch import fetch_day, probe, read_marker
from gscsync.models import ZERO_TOTALS, DayTask

API = "https://gsc.test"
SITE = "sc-domain:a.com"
ATTEMPTS = 3
DAY = "2026-03-05"
DETAIL = {
    "startDate": DAY,
    "endDate": DAY,
    "dimensions": ["date", "query", "page", "country", "device"],
    "type": "web",
}
KEYS = '["2026-03-05", "q", "https://a.com/p", "usa", "MOBILE"]'


def client(attempts: int = ATTEMPTS, **kwargs: Any) -> GscClient:
    retrying = make_retrying(attempts, sleep=lambda _: None)
    return GscClient(httpx.Client(), base_url=API, retrying=retrying, **kwargs)


def row(keys: str = KEYS, **fields: str) -> str:
    """One row as JSON text (so NaN, Infinity and 2**63 go out exactly as written)."""
    metrics = {"clicks": "3", "impressions": "10", "ctr": "0.3", "position": "2.5", **fields}
    parts = [f'"keys": {keys}'] if keys else []
    parts += [f'"{k}": {v}' for k, v in metrics.items() if v != "-"]
    return "{" + ", ".join(parts) + "}"


def answer(*rows: str) -> str:
    return '{"rows": [' + ", ".join(rows) + '], "responseAggregationType": "byPage"}'


GOOD = row()
INVALID = [
    ("nan", answer(GOOD, row(clicks="NaN")), "clicks is not a finite non-negative integer"),
    ("infinity", answer(row(impressions="Infinity")), "impressions is not a finite"),
    ("minus infinity", answer(row(ctr="-Infinity")), "ctr is not a finite"),
    ("string number", answer(row(clicks='"12abc"')), "clicks is not a finite"),
    ("numeric string", answer(row(clicks='"12"')), "clicks is not a finite"),
    ("2**63", answer(row(impressions=str(2**63))), "impressions is not a finite"),
    ("1e19 float", answer(row(clicks="1e19")), "clicks is not a finite"),
    ("fraction", answer(row(clicks="2.5")), "clicks is not a finite"),
    ("negative", answer(row(clicks="-1")), "clicks is not a finite"),
    ("bool", answer(row(clicks="true")), "clicks is not a finite"),
    ("null clicks", answer(row(clicks="null")), "clicks is not a finite"),
    ("no impressions", answer(row(impressions="-")), "impressions is not a finite"),
    ("position string", answer(row(position='"2.5"')), "position is not a finite"),
    ("position NaN", answer(row(position="NaN")), "position is not a finite"),
    ("keys not a list", answer(row(keys='"2026-03-05,q,p,usa,MOBILE"')), "keys is not a list"),
    ("short keys", answer(row(keys='["2026-03-05", "q", "p", "usa"]')), "4 keys for 5"),
    ("no keys", answer(GOOD, row(keys="")), "keys is not a list of 5 strings"),
    ("key not a string", answer(row(keys='["2026-03-05", 7, "p", "usa", "M"]')), "not a string"),
    (
        "another day",
        answer(GOOD, row(keys=KEYS.replace("03-05", "03-04"))),
        "date key is not the requested day 2026-03-05",
    ),
    ("row not an object", answer(GOOD, "[1, 2]"), "row 1: not an object"),
    ("rows not a list", '{"rows": {"0": {}}}', "rows is not a list"),
]


@pytest.mark.parametrize(("body", "needle"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_an_invalid_row_is_a_bad_response_retried_by_sending_again(
    httpx_mock: HTTPXMock, body: str, needle: str
) -> None:
    httpx_mock.add_response(text=body, is_reusable=True)
    with pytest.raises(BadResponse, match=needle) as info:
        client().query_page(SITE, DETAIL)
    assert len(httpx_mock.get_requests()) == ATTEMPTS  # each try sent the request again
    message = str(info.value)
    assert "\n" not in message and len(message) < 200


def test_a_retry_after_an_invalid_answer_gets_the_good_one(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text=answer(row(clicks="NaN")))
    httpx_mock.add_response(text=answer(GOOD))
    page = client().query_page(SITE, DETAIL)
    assert page.rows == [(("2026-03-05", "q", "https://a.com/p", "usa", "MOBILE"), 3, 10, 0.3, 2.5)]
    assert len(httpx_mock.get_requests()) == 2


def test_what_google_sends_is_accepted_as_typed_rows() -> None:
    body = answer(
        row(clicks="3.0", impressions="1e1", ctr="0", position="1"),  # whole floats, ints
        row(position="-"),  # no position (Discover, Google News)
        row(position="null"),
    )
    rows = parse_query(json.loads(body), DETAIL).rows
    assert [r[1:] for r in rows] == [(3, 10, 0.0, 1.0), (3, 10, 0.3, None), (3, 10, 0.3, None)]
    assert all(type(r.clicks) is int and type(r.ctr) is float for r in rows)
    no_dims = {"startDate": DAY, "endDate": DAY}
    assert parse_query(json.loads(answer(row(keys=""))), no_dims).rows[0].keys == ()
    assert parse_query({}, DETAIL).rows == []  # no data: Google leaves rows out


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ('"2026-02-30"', "date key is not a day from 2026-03-01 to 2026-03-07"),
        ('"20260303"', "date key is not a day"),  # fromisoformat would take it
        ('"2026-W10-2"', "date key is not a day"),
        ('"2026-03-03T00:00:00"', "date key is not a day"),
        ('"2026-02-28"', "date key is not a day"),  # a real day, outside the range
        ('"2026-03-08"', "date key is not a day"),
    ],
)
def test_a_probe_key_that_is_not_a_day_of_the_range_fails_the_probe(
    httpx_mock: HTTPXMock, key: str, needle: str
) -> None:
    days = [row(keys=f'["2026-03-0{d}"]') for d in range(1, 4)]
    httpx_mock.add_response(text=answer(*days, row(keys=f"[{key}]")), is_reusable=True)
    with pytest.raises(BadResponse, match=needle):
        probe(client(), SITE, "web", date(2026, 3, 1), date(2026, 3, 7))
    assert len(httpx_mock.get_requests()) == ATTEMPTS


def test_a_row_of_another_day_never_overwrites_a_row_of_this_one(httpx_mock: HTTPXMock) -> None:
    other_day = row(keys=KEYS.replace("03-05", "03-04"), clicks="1000", impressions="2000")
    httpx_mock.add_response(text=answer(GOOD, other_day), is_reusable=True)
    with pytest.raises(BadResponse, match="row 1: date key is not the requested day"):
        fetch_day(client(), DayTask(SITE, "web", DAY), ZERO_TOTALS)


def test_an_invalid_answer_counts_as_an_answer_for_the_breaker(httpx_mock: HTTPXMock) -> None:
    outcomes: list[BaseException | None] = []
    httpx_mock.add_response(text=answer(row(clicks="NaN")), is_reusable=True)
    with pytest.raises(InvalidAnswer):
        client(on_outcome=outcomes.append).query_page(SITE, DETAIL)
    assert outcomes == [None]  # the API is up; the day fails alone


def test_a_redirect_is_an_error_never_followed_nor_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        status_code=302,
        headers={"Location": "https://accounts.example/login"},
        json={"responseAggregationType": "byProperty"},  # would read as a day without rows
        is_reusable=True,
    )
    with pytest.raises(ApiError, match=r"unexpected redirect \(HTTP 302\) to https://accounts"):
        client().query_page(SITE, DETAIL)
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("status", [201, 204])
def test_other_2xx_must_still_be_a_json_object(httpx_mock: HTTPXMock, status: int) -> None:
    httpx_mock.add_response(status_code=status, text="" if status == 204 else answer(GOOD))
    if status == 204:
        with pytest.raises(BadResponse, match="not JSON"):
            client(1).query_page(SITE, DETAIL)
    else:
        assert len(client().query_page(SITE, DETAIL).rows) == 1


def test_an_answer_past_the_size_cap_is_a_bad_response(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text=answer(GOOD) + " " * 5000, is_reusable=True)
    with pytest.raises(BadResponse, match="answer larger than"):
        client(max_body=4096).query_page(SITE, DETAIL)
    assert len(httpx_mock.get_requests()) == ATTEMPTS


class Chunks(httpx.SyncByteStream):
    """A body arriving in network-sized pieces, never read whole."""

    def __init__(self, data: bytes, size: int = 16384) -> None:
        self.data, self.size, self.sent = data, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for at in range(0, len(self.data), self.size):
            self.sent += self.size
            yield self.data[at : at + self.size]


def test_a_gzip_bomb_is_stopped_while_it_inflates() -> None:
    bomb = gzip.compress(answer(GOOD).encode() + b" " * (256 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 400_000  # 256 MB once inflated
    body = Chunks(bomb)
    http = httpx.Client(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=body)
        )
    )
    with pytest.raises(BadResponse, match="answer larger than 1 MB"):
        GscClient(http, base_url=API, max_body=1024 * 1024).query_page(SITE, DETAIL)
    assert body.sent < 20_000  # stopped after the first pieces, not inflated whole


def test_error_answers_are_read_only_so_far_and_quoted_in_one_short_line(
    httpx_mock: HTTPXMock,
) -> None:
    message = "Backend\nError " + "x" * 5_000_000
    body = {"error": {"code": 500, "message": message, "errors": [{"reason": "backendError"}]}}
    httpx_mock.add_response(status_code=500, json=body)
    with pytest.raises(TransientError) as info:
        client(1).query_page(SITE, DETAIL)
    text = str(info.value)  # the body was cut at 256 KB: not JSON, so the status speaks
    assert "\n" not in text and len(text) < 400


def test_sites_list_entries_are_checked() -> None:
    assert parse_sites({"siteEntry": [{"siteUrl": "sc-domain:a.com"}, {"siteUrl": 7}]}) == [
        parse_sites({"siteEntry": [{"siteUrl": "sc-domain:a.com", "permissionLevel": ""}]})[0]
    ]
    for bad in ({"siteEntry": "sc-domain:a.com"}, {"siteEntry": ["sc-domain:a.com"]}):
        with pytest.raises(BadResponse):
            parse_sites(bad)


@pytest.mark.parametrize(
    "marker", ["20260311", "2026-W11-3", "2026-03-08xyz", "2026-3-8", 20260308, ["2026-03-08"]]
)
def test_a_marker_not_spelled_yyyy_mm_dd_is_never_read(marker: object) -> None:
    assert read_marker({"firstIncompleteDate": marker}, date(2026, 3, 10)) is None


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["2026-03-05", "2026-02-30", "q", "", "12", "NaN"]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
ROWISH = st.fixed_dictionaries(
    {},
    optional={
        "keys": JSONISH | st.lists(st.sampled_from(["2026-03-05", "q", "p"]), max_size=6),
        "clicks": JSONISH,
        "impressions": JSONISH,
        "ctr": JSONISH,
        "position": JSONISH,
    },
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(ROWISH | JSONISH, max_size=4), metadata=JSONISH)
def test_any_answer_is_typed_rows_or_a_bad_response_never_another_error(
    rows: list[Any], metadata: Any
) -> None:
    try:
        answer_ = parse_query({"rows": rows, "metadata": metadata}, DETAIL)
    except BadResponse:
        return
    for r in answer_.rows:
        assert len(r.keys) == 5 and r.keys[0] == DAY and all(type(k) is str for k in r.keys)
        assert type(r.clicks) is int and 0 <= r.clicks < 2**63
        assert type(r.impressions) is int and 0 <= r.impressions < 2**63
        assert math.isfinite(r.ctr) and (r.position is None or math.isfinite(r.position))


def test_rows_are_typed_as_decoded_and_share_their_key_strings(httpx_mock: HTTPXMock) -> None:
    # A 25,000-row page repeats the same pages and queries: each distinct string is held
    # once (the memory of a capped day), whatever the JSON decoder made of it.
    keys = '["2026-03-05", "q", "https://a.com/p", "usa", "MOBILE"]'
    httpx_mock.add_response(text=answer(row(keys), row(keys.replace('"q"', '"r"'))))
    first, second = client().query_page(SITE, DETAIL).rows
    assert first.keys[2] == second.keys[2] == "https://a.com/p"
    assert first.keys[2] is second.keys[2] and first.keys[3] is second.keys[3]
    assert first.keys[1] != second.keys[1]
