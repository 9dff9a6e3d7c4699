"""Error taxonomy, retries, the rate limiter, the circuit breaker, and no request that
can hang: a whole-request deadline, a size cap, stop requests and the run's deadline."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from gscsync.api import load_credentials, open_client
from gscsync.api.breaker import MAX_COOLDOWN, Breaker
from gscsync.api.client import ClientClosed, GscClient, make_retrying
from gscsync.api.ratelimit import RateLimiter
from gscsync.api.transport import BoundedTransport
from gscsync.config import Settings
from gscsync.emulator import (
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    SiteData,
    new_service_account_key,
)
from gscsync.errors import (
    ApiNotEnabled,
    BadRequest,
    BadResponse,
    BreakerOpen,
    DailyLimitExceeded,
    InsufficientScope,
    NetworkError,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServerError,
    Tripped,
    Unauthorized,
)
from gscsync.models import BreakerState
from tests.fakes import error

API = "https://gsc.test"
ATTEMPTS = 4


def client(sleeps: list[float], **kwargs: object) -> GscClient:
    return GscClient(
        httpx.Client(),
        base_url=API,
        retrying=make_retrying(ATTEMPTS, sleep=sleeps.append, rng=random.Random(7)),
        **kwargs,  # type: ignore[arg-type]
    )


def google(status: int, reason: str) -> httpx.Response:
    return error(status, reason, f"{reason} from Google")


# status x reason x body -> (error raised, attempts made)
TAXONOMY = [
    (google(429, "rateLimitExceeded"), RateLimited, ATTEMPTS),
    (google(403, "rateLimitExceeded"), RateLimited, ATTEMPTS),
    (google(403, "userRateLimitExceeded"), RateLimited, ATTEMPTS),
    (google(500, "backendError"), ServerError, ATTEMPTS),
    (google(503, "backendError"), ServerError, ATTEMPTS),
    (httpx.Response(502, text="<html>Bad Gateway</html>"), ServerError, ATTEMPTS),
    (httpx.Response(200, text='{"rows": [{"keys"'), BadResponse, ATTEMPTS),
    (httpx.Response(200, text=""), BadResponse, ATTEMPTS),
    (httpx.Response(200, json=["not", "an", "object"]), BadResponse, ATTEMPTS),
    (google(403, "quotaExceeded"), QuotaExceeded, 1),
    (google(429, "quotaExceeded"), QuotaExceeded, 1),
    (google(403, "dailyLimitExceeded"), DailyLimitExceeded, 1),
    (google(403, "accessNotConfigured"), ApiNotEnabled, 1),
    (google(403, "insufficientPermissions"), InsufficientScope, 1),
    (google(403, "forbidden"), PermissionDenied, 1),
    (google(400, "badRequest"), BadRequest, 1),
    (google(400, "invalidParameter"), BadRequest, 1),
    (google(401, "authError"), Unauthorized, 1),
]


@pytest.mark.parametrize(("response", "kind", "attempts"), TAXONOMY)
def test_the_taxonomy(
    httpx_mock: HTTPXMock, response: httpx.Response, kind: type, attempts: int
) -> None:
    httpx_mock.add_callback(lambda request: response, is_reusable=True)
    sleeps: list[float] = []
    with pytest.raises(kind):
        client(sleeps).query_page("sc-domain:a.com", {})
    assert len(httpx_mock.get_requests()) == attempts
    assert len(sleeps) == attempts - 1


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed"),
    ],
)
def test_transport_errors_are_retried(httpx_mock: HTTPXMock, exc: Exception) -> None:
    for _ in range(ATTEMPTS - 1):
        httpx_mock.add_exception(exc)
    httpx_mock.add_response(json={"rows": []})
    sleeps: list[float] = []
    assert client(sleeps).query_page("sc-domain:a.com", {}).rows == []
    assert len(sleeps) == ATTEMPTS - 1


def test_retries_stop_after_max_attempts_with_network_error(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), is_reusable=True)
    with pytest.raises(NetworkError):
        client([]).query_page("sc-domain:a.com", {})
    assert len(httpx_mock.get_requests()) == ATTEMPTS


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    sleeps: list[float] = []
    retrying = make_retrying(8, sleep=sleeps.append, rng=random.Random(3), base=1.0, cap=16.0)
    with pytest.raises(ServerError):
        for attempt in retrying:
            with attempt:
                raise ServerError("x", status=500)
    assert len(sleeps) == 7
    for n, slept in enumerate(sleeps, start=1):
        assert 0 <= slept <= min(16.0, 2 ** (n - 1))
    assert max(sleeps) > 2  # the ceiling really grows


def test_retry_after_is_honoured(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        status_code=429, headers={"Retry-After": "7"}, json=google(429, "rateLimitExceeded").json()
    )
    httpx_mock.add_response(json={})
    sleeps: list[float] = []
    client(sleeps).query_page("sc-domain:a.com", {})
    assert sleeps == [7.0]


def test_each_retry_is_logged_with_its_reason(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_callback(lambda r: google(503, "backendError"))
    httpx_mock.add_response(json={})
    with caplog.at_level("WARNING", logger="gscsync"):
        client([]).query_page("sc-domain:a.com", {})
    assert "retrying after 503 backendError" in caplog.text and "attempt 1 of 4" in caplog.text


def test_429s_slow_the_shared_limiter(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(lambda r: google(429, "rateLimitExceeded"))
    httpx_mock.add_response(json={})
    limiter = RateLimiter(300)
    client([], limiter=limiter).query_page("sc-domain:a.com", {})
    assert limiter.rate == 150


# -- the rate limiter, on a simulated clock ------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@settings(max_examples=60, deadline=None)
@given(
    qpm=st.integers(min_value=1, max_value=40),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=150),
    slowdowns=st.sets(st.integers(min_value=0, max_value=149), max_size=6),
)
def test_limiter_never_exceeds_its_ceiling_in_any_60s_window(
    qpm: int, gaps: list[float], slowdowns: set[int]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(qpm, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    rates: list[tuple[float, int]] = [(0.0, qpm)]  # (when, rate) after each change

    def note(when: float) -> None:
        if limiter.rate != rates[-1][1]:
            rates.append((when, limiter.rate))

    for i, gap in enumerate(gaps):
        clock.now += gap
        if i in slowdowns:
            limiter.slow_down()
            note(clock.now)
        asked = clock.now
        limiter.acquire()  # a step back up happens as the request asks, before any wait
        note(asked)
        sent.append(clock.now)
    for i, t in enumerate(sent):
        # the window (t - 60, t], in the limiter's own arithmetic: s + 60 > t
        in_window = sum(1 for s in sent[: i + 1] if s + 60.0 > t)
        assert in_window <= qpm
    for (t0, r0), (t1, r1) in zip(rates, rates[1:], strict=False):
        assert max(1, qpm // 10) <= r1 <= qpm  # between the floor and the ceiling
        if r1 > r0:  # a step back up comes only after a quiet minute, a tenth at a time
            assert t1 - t0 >= 60.0 and r1 - r0 <= max(1, qpm // 10)


def test_limiter_recovers_a_tenth_per_quiet_minute_up_to_the_ceiling() -> None:
    clock = FakeClock()
    limiter = RateLimiter(300, clock=clock, sleep=clock.sleep)
    for _ in range(6):  # sporadic 429s: 150, 75, 37, then the floor of 30
        limiter.slow_down()
        clock.now += 11
    assert limiter.rate == 30
    clock.now += 48  # 59 s since the last 429
    limiter.acquire()
    assert limiter.rate == 30
    clock.now += 1
    limiter.acquire()
    assert limiter.rate == 60
    limiter.slow_down()  # a 429 halves it and restarts the quiet minute
    assert limiter.rate == 30
    for expected in (60, 90, 120):
        clock.now += 60
        limiter.acquire()
        assert limiter.rate == expected
    clock.now += 60 * 20
    for _ in range(20):
        clock.now += 60
        limiter.acquire()
    assert limiter.rate == 300  # never above GSCSYNC_QPM


def test_limiter_halves_at_most_every_10_seconds_and_never_below_1() -> None:
    clock = FakeClock()
    limiter = RateLimiter(8, clock=clock, sleep=clock.sleep)
    limiter.slow_down()
    limiter.slow_down()  # the same burst of 429s
    assert limiter.rate == 4
    for _ in range(5):
        clock.now += 11
        limiter.slow_down()
    assert limiter.rate == 1


# -- the circuit breaker -------------------------------------------------------------------
def breaker(state: BreakerState | None = None, now: list[float] | None = None) -> Breaker:
    clock = now if now is not None else [0.0]
    return Breaker(state or BreakerState(), threshold=3, cooldown=100, clock=lambda: clock[0])


def test_consecutive_failures_open_it_and_a_success_resets_the_count() -> None:
    b = breaker()
    b.record(ServerError("x"))
    b.record(ServerError("x"))
    b.record(None)
    assert b.state.failures == 0
    for _ in range(2):
        b.record(ServerError("x"))
    b.record(PermissionDenied("no"))  # an answer: the API is up
    assert b.state == BreakerState()
    for _ in range(3):
        b.record(NetworkError("down"))
    assert b.is_open and b.state.cooldown == 100 and "down" in (b.state.reason or "")
    with pytest.raises(Tripped):
        b.before_request()


def test_open_breaker_refuses_runs_until_the_cooldown_then_probes() -> None:
    now = [0.0]
    opened = BreakerState("open", 5, 0.0, 100, "500 backendError")
    with pytest.raises(BreakerOpen, match="no request until"):
        breaker(opened, now).admit_run()
    now[0] = 100.0
    b = breaker(opened, now)
    b.admit_run()
    assert b.half_open
    b.before_request()  # the probe goes
    b.record(None)
    assert b.state == BreakerState() and not b.half_open


def test_a_failed_probe_reopens_with_the_cooldown_doubled_and_capped() -> None:
    now = [1000.0]
    b = breaker(BreakerState("open", 5, 0.0, 100, "x"), now)
    b.admit_run()
    b.before_request()
    b.record(ServerError("still down"))
    assert b.is_open and b.state.cooldown == 200 and b.state.opened_at == 1000.0
    b = breaker(BreakerState("open", 5, 0.0, MAX_COOLDOWN, "x"), [MAX_COOLDOWN + 1.0])
    b.admit_run()
    b.before_request()
    b.record(ServerError("still down"))
    assert b.state.cooldown == MAX_COOLDOWN


def test_while_half_open_other_requests_wait_for_the_probe() -> None:
    import threading

    b = breaker(BreakerState("open", 5, 0.0, 100, "x"), [100.0])
    b.admit_run()
    b.before_request()
    outcome: list[str] = []

    def second() -> None:
        try:
            b.before_request()
            outcome.append("went")
        except Tripped:
            outcome.append("tripped")

    t = threading.Thread(target=second)
    t.start()
    t.join(0.2)
    assert outcome == []  # still waiting on the probe
    b.record(ServerError("down"))
    t.join(2)
    assert outcome == ["tripped"]


def test_reset_closes_it() -> None:
    b = breaker(BreakerState("open", 5, 0.0, 100, "x"), [1.0])
    b.reset()
    b.admit_run()
    assert b.state == BreakerState()


# -- no request may hang -------------------------------------------------------------------
SITE = "sc-domain:shop.example"
DAY_BODY = {"startDate": "2026-03-05", "endDate": "2026-03-05", "dimensions": ["date"]}


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[tuple[EmulatorServer, Path]]:
    """The real emulator on loopback, and a service-account key for it."""
    key = new_service_account_key()
    config = EmulatorConfig(
        sites=[SiteData(SITE, rows_per_day={"web": 50})],
        public_keys={key.client_email: key.public_pem},
    )
    with EmulatorServer(Emulator(config)) as server:
        yield server, key.write(tmp_path / "key.json", f"{server.url}/token")


def emulated(
    server: EmulatorServer, key: Path, **kwargs: Any
) -> contextlib.AbstractContextManager[GscClient]:
    settings = Settings(
        credentials=key, api_url=server.url, timeout=kwargs.pop("timeout", 1.5), max_attempts=1
    )
    return open_client(settings, load_credentials(key), **kwargs)


def test_a_drip_fed_answer_ends_at_the_timeout_not_when_it_finishes(
    emulator_url: tuple[EmulatorServer, Path],
) -> None:
    server, key = emulator_url
    with emulated(server, key) as api:
        api.list_sites()  # the token first, at full speed
        server.emulator.config.faults = Faults(drip=0.5)  # a 60-byte body takes 30 s
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"timed out after 1\.5 s"):
            api.query_page(SITE, DAY_BODY)
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.5  # timeout + 1 s at most


def test_a_request_never_outlives_the_runs_deadline(
    emulator_url: tuple[EmulatorServer, Path],
) -> None:
    server, key = emulator_url
    server.emulator.config.faults = Faults(drip=0.5)
    started = time.monotonic()
    stop = threading.Event()
    with (
        emulated(server, key, timeout=30, deadline=started + 1.0, stop=stop) as api,
        pytest.raises(ClientClosed, match="deadline"),
    ):
        assert api.stop is stop and api.timeout == 30
        api.list_sites()
    assert time.monotonic() - started < 2.0


def test_an_endless_answer_stops_at_the_size_cap(
    emulator_url: tuple[EmulatorServer, Path],
) -> None:
    server, key = emulator_url
    server.emulator.config.faults = Faults(oversize=-1)  # spaces after the JSON, for ever
    started = time.monotonic()
    with emulated(server, key, timeout=30) as api, pytest.raises(BadResponse, match="64 MB"):
        api.query_page(SITE, DAY_BODY)
    assert time.monotonic() - started < 10


class SlowHeaders(threading.Thread):
    """A server that sends its status line and headers one byte every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def run(self) -> None:
        with self.sock:
            conn, _ = self.sock.accept()
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.2)


def test_headers_sent_a_byte_at_a_time_end_at_the_timeout_too() -> None:
    slow = SlowHeaders()
    slow.start()
    started = time.monotonic()
    with (
        httpx.Client(transport=BoundedTransport()) as http,
        pytest.raises(NetworkError, match="timed out after 1 s"),
    ):
        GscClient(http, base_url=slow.url, timeout=1.0).list_sites()
    assert time.monotonic() - started < 1.6
    slow.join(5)


def test_a_stop_request_ends_a_backoff_wait_at_once(httpx_mock: HTTPXMock) -> None:
    rate_limited = google(429, "rateLimitExceeded")
    httpx_mock.add_response(
        status_code=429, headers={"Retry-After": "30"}, json=rate_limited.json()
    )
    stop = threading.Event()
    outcomes: list[BaseException | None] = []
    api = GscClient(
        httpx.Client(),
        base_url=API,
        retrying=make_retrying(ATTEMPTS),
        stop=stop,
        on_outcome=outcomes.append,
    )
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ClientClosed, match="stop"):
        api.query_page("sc-domain:a.com", {})
    assert time.monotonic() - started < 1.0  # not the 30 s Retry-After
    assert len(httpx_mock.get_requests()) == 1 and outcomes == []  # not a breaker failure


def test_the_deadline_ends_a_backoff_wait_when_it_comes(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=503, json=google(503, "backendError").json())
    started = time.monotonic()
    api = GscClient(
        httpx.Client(),
        base_url=API,
        retrying=make_retrying(ATTEMPTS, base=30, cap=30, rng=random.Random(1)),
        deadline=started + 0.5,
    )
    with pytest.raises(ClientClosed, match="deadline"):
        api.query_page("sc-domain:a.com", {})
    assert 0.45 < time.monotonic() - started < 1.0  # at the deadline, not before it


def test_a_stopped_client_sends_nothing(httpx_mock: HTTPXMock) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(ClientClosed):
        GscClient(httpx.Client(), base_url=API, stop=stop).list_sites()
    assert httpx_mock.get_requests() == []


def test_a_stop_request_ends_a_wait_for_the_rate_limit(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={})
    stop = threading.Event()
    api = GscClient(httpx.Client(), base_url=API, limiter=RateLimiter(1), stop=stop)
    api.list_sites()  # the one request of this minute
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ClientClosed):
        api.list_sites()  # would wait 60 s for the window
    assert time.monotonic() - started < 1.0


def test_an_abandoned_probe_hands_the_turn_to_the_next_request() -> None:
    b = breaker(BreakerState("open", 5, 0.0, 100, "x"), [100.0])
    b.admit_run()
    b.before_request()  # this thread's request is the probe
    went: list[str] = []
    waiter = threading.Thread(target=lambda: (b.before_request(), went.append("probe")))
    waiter.start()
    waiter.join(0.2)
    assert went == []
    b.abandoned()  # the run stopped under the probe: no outcome to wait for
    waiter.join(2)
    assert went == ["probe"] and b.half_open  # still half-open: nothing was decided


def test_a_stopped_probe_does_not_count_as_an_outcome(httpx_mock: HTTPXMock) -> None:
    b = breaker(BreakerState("open", 5, 0.0, 100, "x"), [100.0])
    b.admit_run()
    stop = threading.Event()
    stop.set()
    api = GscClient(
        httpx.Client(),
        base_url=API,
        gate=b.before_request,
        on_outcome=b.record,
        on_abandon=b.abandoned,
        stop=stop,
    )
    with pytest.raises(ClientClosed):
        api.list_sites()
    assert b.half_open and b.state.state == "open" and b.state.failures == 5
    b.before_request()  # the turn is free again
