"""The API client: paging, property encoding, error parsing, rows without position."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gscsync.api import client as client_module
from gscsync.api.answers import parse_query
from gscsync.api.client import ROW_LIMIT, GscClient, encode_site, error_from_response
from gscsync.api.slots import Slots
from gscsync.errors import (
    ApiError,
    BadRequest,
    BadResponse,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServerError,
    Unauthorized,
)
from gscsync.fetch import to_detail
from tests.fakes import error

API = "https://gsc.test"
BY_QUERY = {"dimensions": ["query"]}


def rows(n: int, offset: int = 0) -> list[dict[str, object]]:
    return [
        {"keys": [f"q{offset + i}"], "clicks": 1, "impressions": 2, "ctr": 0.5, "position": 1.0}
        for i in range(n)
    ]


@pytest.fixture
def client() -> GscClient:
    return GscClient(httpx.Client(), base_url=API)


def test_paging_goes_past_a_short_page_until_an_empty_one(
    httpx_mock: HTTPXMock, client: GscClient
) -> None:
    httpx_mock.add_response(json={"rows": rows(ROW_LIMIT)})
    httpx_mock.add_response(json={"rows": rows(7, ROW_LIMIT)})  # short, mid-stream
    httpx_mock.add_response(json={"rows": rows(ROW_LIMIT, ROW_LIMIT + 7)})
    httpx_mock.add_response(json={"responseAggregationType": "byPage"})  # 0 rows: the end
    result = client.query("sc-domain:example.com", {"startDate": "2026-01-01", **BY_QUERY})
    assert len(result.rows) == 2 * ROW_LIMIT + 7 and result.pages == 3
    starts = [json.loads(r.content)["startRow"] for r in httpx_mock.get_requests()]
    assert starts == [0, ROW_LIMIT, ROW_LIMIT + 7, 2 * ROW_LIMIT + 7]
    assert {json.loads(r.content)["rowLimit"] for r in httpx_mock.get_requests()} == {ROW_LIMIT}


def test_paging_stops_at_the_daily_cap_without_asking_for_an_empty_page(
    httpx_mock: HTTPXMock, client: GscClient
) -> None:
    httpx_mock.add_response(json={"rows": rows(ROW_LIMIT)})
    httpx_mock.add_response(json={"rows": rows(ROW_LIMIT, ROW_LIMIT)})
    pages = list(client.pages("sc-domain:example.com", BY_QUERY, cap=2 * ROW_LIMIT))
    assert len(pages) == 2 and len(httpx_mock.get_requests()) == 2


def test_paging_stops_when_the_caller_knows_every_row_is_in(
    httpx_mock: HTTPXMock, client: GscClient
) -> None:
    httpx_mock.add_response(json={"rows": rows(30)})  # e.g. a date-grouped month: 30 days
    result = client.query("sc-domain:example.com", BY_QUERY, complete=lambda n: n >= 30)
    assert len(result.rows) == 30 and len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    ("body", "kind", "needle"),
    [
        (
            {
                "code": 403,
                "message": "Google Search Console API has not been used in project 123456 "
                "before or it is disabled.",
                "errors": [{"reason": "accessNotConfigured", "domain": "usageLimits"}],
                "status": "PERMISSION_DENIED",
            },
            "ApiNotEnabled",
            "not enabled in project 123456",
        ),
        (
            {
                "code": 403,
                "message": "Permission denied",
                "status": "PERMISSION_DENIED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "SERVICE_DISABLED",
                        "metadata": {"consumer": "projects/98765"},
                    }
                ],
            },
            "ApiNotEnabled",
            "project 98765",
        ),
        (
            {
                "code": 403,
                "message": "Your application is authenticating by using local Application "
                "Default Credentials. The searchconsole.googleapis.com API requires a quota "
                "project, which is not set by default.",
                "errors": [{"reason": "forbidden"}],
            },
            "QuotaProjectMissing",
            "set-quota-project",
        ),
        (
            {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [{"reason": "insufficientPermissions"}],
            },
            "InsufficientScope",
            "webmasters.readonly",
        ),
    ],
)
def test_googles_other_403s_end_the_run_with_exit_3_and_the_fix(
    body: dict[str, object], kind: str, needle: str
) -> None:
    exc = error_from_response(httpx.Response(403, json={"error": body}))
    assert type(exc).__name__ == kind and exc.exit_code == 3
    assert needle in str(exc)


def test_an_empty_answer_without_rows_is_one_page(httpx_mock: HTTPXMock, client: GscClient) -> None:
    httpx_mock.add_response(json={"responseAggregationType": "byProperty"})
    result = client.query("sc-domain:example.com", {})
    assert result.rows == [] and result.pages == 1


@pytest.mark.parametrize(
    ("site", "segment"),
    [
        ("sc-domain:example.com", "sc-domain%3Aexample.com"),
        ("https://www.example.com/", "https%3A%2F%2Fwww.example.com%2F"),
        ("http://example.com/blog/", "http%3A%2F%2Fexample.com%2Fblog%2F"),
    ],
)
def test_site_is_one_percent_encoded_segment(
    httpx_mock: HTTPXMock, client: GscClient, site: str, segment: str
) -> None:
    httpx_mock.add_response(json={})
    client.query_page(site, {})
    (request,) = httpx_mock.get_requests()
    assert request.url.raw_path.decode() == (
        f"/webmasters/v3/sites/{segment}/searchAnalytics/query"
    )
    assert encode_site(site) == segment


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (400, "badRequest", BadRequest),
        (401, "authError", Unauthorized),
        (403, "forbidden", PermissionDenied),
        (403, "quotaExceeded", QuotaExceeded),
        (429, "quotaExceeded", QuotaExceeded),
        (403, "rateLimitExceeded", RateLimited),
        (403, "userRateLimitExceeded", RateLimited),
        (429, "rateLimitExceeded", RateLimited),
        (500, "backendError", ServerError),
        (503, "backendError", ServerError),
        (404, "notFound", ApiError),
    ],
)
def test_error_envelope_becomes_a_typed_error(status: int, reason: str, kind: type) -> None:
    exc = error_from_response(error(status, reason, "words from Google"))
    assert type(exc) is kind
    assert exc.status == status and exc.reason == reason and exc.message == "words from Google"


def test_error_without_a_google_body_still_types(client: GscClient) -> None:
    exc = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(exc, ServerError) and exc.status == 502


def test_a_body_that_is_not_json_is_a_bad_response(
    httpx_mock: HTTPXMock, client: GscClient
) -> None:
    httpx_mock.add_response(text='{"rows": [')
    with pytest.raises(BadResponse):
        client.query_page("sc-domain:example.com", {})


def test_sites_list_reads_site_entries(httpx_mock: HTTPXMock, client: GscClient) -> None:
    httpx_mock.add_response(
        url=f"{API}/webmasters/v3/sites",
        json={
            "siteEntry": [
                {"siteUrl": "sc-domain:a.com", "permissionLevel": "siteOwner"},
                {"siteUrl": "https://b.com/", "permissionLevel": "siteUnverifiedUser"},
            ]
        },
    )
    sites = client.list_sites()
    assert [(s.url, s.has_data_access) for s in sites] == [
        ("sc-domain:a.com", True),
        ("https://b.com/", False),
    ]


def test_sites_list_without_entries_is_empty(httpx_mock: HTTPXMock, client: GscClient) -> None:
    httpx_mock.add_response(json={})
    assert GscClient(httpx.Client(), base_url=API).list_sites() == []


def test_rows_without_position_store_null_and_missing_dimensions_empty() -> None:
    dims = ["date", "page", "country"]
    api_row = {"keys": ["2026-01-01", "https://ex/p", "fra"], "clicks": 3, "impressions": 9}
    (checked,) = parse_query({"rows": [{**api_row, "ctr": 0.3}]}, {"dimensions": dims}).rows
    key, row = to_detail(checked, dims)
    assert key == ("", "https://ex/p", "fra", "")
    assert row == ("", "https://ex/p", "fra", "", 3, 9, 0.3, None)


def test_a_request_slot_is_free_while_an_answer_is_decoded(
    httpx_mock: HTTPXMock, client: GscClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One slot: the first answer's decoding waits for the second request to be sent. The
    # slot bounds the requests on the wire; were it held while decoding, the second could
    # not go until the first is decoded, and the wait below would run out.
    client.slots = Slots(1)
    second_sent, waited = threading.Event(), []

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("startDate") == "2026-01-02":
            second_sent.set()
        return httpx.Response(200, json={"rows": rows(1)})

    real_hook = client_module.row_hook

    def row_hook() -> Any:
        hook = real_hook()
        first = threading.current_thread().name == "first"

        def slow(obj: dict[str, Any]) -> Any:
            if first and not waited:
                waited.append(second_sent.wait(5))
            return hook(obj)

        return slow

    monkeypatch.setattr(client_module, "row_hook", row_hook)
    httpx_mock.add_callback(answer, is_reusable=True)

    def ask(day: str) -> None:
        client.query_page("sc-domain:example.com", {"startDate": day, **BY_QUERY})

    first = threading.Thread(target=ask, args=("2026-01-01",), name="first")
    first.start()
    while not httpx_mock.get_requests():
        time.sleep(0.001)
    second = threading.Thread(target=ask, args=("2026-01-02",), name="second")
    second.start()
    first.join(10)
    second.join(10)
    assert waited == [True]
    assert client.slots._free == 1  # every slot given back, once
