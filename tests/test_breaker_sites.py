"""The circuit breaker counts the data endpoint's failures: a ``sites.list`` that answers
while Search Analytics fails neither resets the count nor closes the breaker."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gscsync.api.breaker import Breaker
from gscsync.api.client import GscClient, make_retrying
from gscsync.errors import TransientError
from gscsync.models import BreakerState

API = "https://gsc.test"
SITE = "sc-domain:a.com"
BODY = {"startDate": "2026-03-01", "endDate": "2026-03-01", "dimensions": ["date"]}


def one_run(state: BreakerState, *, list_sites: bool) -> BreakerState:
    breaker = Breaker(state, threshold=5, cooldown=600)
    breaker.admit_run()
    client = GscClient(
        httpx.Client(),
        base_url=API,
        retrying=make_retrying(1, sleep=lambda _: None),
        gate=breaker.before_request,
        on_outcome=breaker.record,
        on_abandon=breaker.abandoned,
    )
    if list_sites:  # GSCSYNC_SITES empty: every run starts with sites.list
        assert [s.url for s in client.list_sites()] == [SITE]
    with pytest.raises(TransientError):
        client.query_page(SITE, BODY)
    return breaker.state


@pytest.mark.parametrize("list_sites", [True, False], ids=["sites listed", "sites configured"])
def test_the_breaker_opens_on_the_fifth_failing_run_either_way(
    httpx_mock: HTTPXMock, list_sites: bool
) -> None:
    httpx_mock.add_response(
        method="GET",
        json={"siteEntry": [{"siteUrl": SITE, "permissionLevel": "siteOwner"}]},
        is_reusable=True,
        is_optional=True,
    )
    httpx_mock.add_response(method="POST", status_code=500, is_reusable=True)
    state = BreakerState()
    for run in range(1, 6):
        state = one_run(state, list_sites=list_sites)
        assert state.failures == run
    assert state.state == "open"


def test_a_connection_failing_after_a_stop_request_is_not_retried_nor_warned(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from gscsync.api.client import ClientClosed

    stop = threading.Event()

    def dropped(request: httpx.Request) -> httpx.Response:
        stop.set()  # SIGTERM arrives while the request is in flight; its socket is closed
        raise httpx.ReadError("[Errno 9] Bad file descriptor")

    httpx_mock.add_callback(dropped)
    client = GscClient(
        httpx.Client(), base_url=API, retrying=make_retrying(3, sleep=lambda _: None), stop=stop
    )
    with pytest.raises(ClientClosed):
        client.query_page(SITE, BODY)
    assert len(httpx_mock.get_requests()) == 1
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
