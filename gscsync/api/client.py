"""A typed client for the two Search Console endpoints gscsync needs.

One ``httpx.Client`` carries every request (authentication is its ``httpx.Auth``).
Answers are checked and typed by :mod:`gscsync.api.answers` inside each try, or turned
into the typed errors of ``gscsync.errors``; transient errors are retried by one tenacity
policy built in :func:`make_retrying`. Each request ends within ``timeout`` seconds (its
whole exchange, see :mod:`gscsync.api.transport`) and reads at most ``max_body`` bytes;
any status outside 200-299 is an error (a redirect is never followed). With a ``stop``
event or a ``deadline``, no try starts after either, and backoff waits end at once on a
stop request.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import tenacity

from gscsync.api.answers import (
    Answer,
    ApiRow,
    InvalidAnswer,
    Site,
    error_from_answer,
    error_from_response,
    one_line,
    parse_sites,
    query_parser,
    row_hook,
)
from gscsync.api.ratelimit import RateLimiter
from gscsync.api.slots import Slots
from gscsync.api.transport import MB, read_body, within
from gscsync.errors import (
    ApiError,
    BadResponse,
    NetworkError,
    QuotaExceeded,
    RateLimited,
    TransientError,
)

ROW_LIMIT = 25_000
DAILY_ROW_CAP = 50_000  # rows a day the API serves for one grouped request, at most
MAX_PAGES = 400  # 10 million rows: far past the API's cap, a guard against a looping server
MAX_BACKOFF = 64.0
TIMEOUT = 60.0  # seconds for a whole request (GSCSYNC_TIMEOUT)
MAX_BODY = 64 * MB  # decoded; the largest legal page (25,000 rows) is a few MB
ERROR_BODY = MB // 4  # read of an error answer, for its message

log = logging.getLogger("gscsync")

Sleep = Callable[[float], None]
T = TypeVar("T")

__all__ = [
    "Answer",
    "ApiRow",
    "ClientClosed",
    "GscClient",
    "QueryResult",
    "Site",
    "error_from_response",
]


@dataclass
class QueryResult:
    """All pages of one Search Analytics query."""

    rows: list[ApiRow] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: int = 0


def encode_site(site_url: str) -> str:
    """The property as one fully percent-encoded path segment."""
    return quote(site_url, safe="")


class _Wait(tenacity.wait.wait_base):
    """Full-jitter exponential backoff; a server's Retry-After wins when it gives one."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap * 5)
        ceiling = min(self.cap, self.base * 2 ** (retry_state.attempt_number - 1))
        return self.rng.uniform(0, ceiling)


def make_retrying(
    max_attempts: int,
    *,
    sleep: Sleep = time.sleep,
    base: float = 1.0,
    cap: float = MAX_BACKOFF,
    rng: random.Random | None = None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> tenacity.Retrying:
    """The one retry policy: transient errors only, ``max_attempts`` tries in all."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        if exc is not None:
            log.warning(
                "retrying after %s (attempt %d of %d, waiting %.1fs)",
                exc,
                state.attempt_number,
                max_attempts,
                delay,
            )
            if on_retry is not None:
                on_retry(exc, state.attempt_number, delay)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=_Wait(base, cap, rng or random.Random()),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


class ClientClosed(ApiError):
    """The run is over (closed, stopped, or past its deadline): the request ends without
    retry, without a log line, and without counting for the circuit breaker."""


class GscClient:
    """Search Console API over one ``httpx.Client``.

    :param http: the client; its ``auth`` attaches the access token.
    :param base_url: API root, e.g. ``https://searchconsole.googleapis.com``.
    :param retrying: the retry policy (see :func:`make_retrying`); None means one try.
    :param limiter: the rate ceiling, taken before every attempt; slowed by each 429.
    :param gate: called once before each request and its retries (the circuit breaker).
    :param on_outcome: told each request's final outcome: None, or the error it ended with.
    :param on_abandon: told instead when a request ends without outcome (ClientClosed).
    :param timeout: seconds for one try, the whole exchange (GSCSYNC_TIMEOUT).
    :param stop: set on a stop request: no new try, backoff and rate waits end at once.
    :param deadline: on ``time.monotonic``: no try starts after it, none runs past it.
    :param max_body: bytes of a decoded answer read at most (else BadResponse).
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        retrying: tenacity.Retrying | None = None,
        limiter: RateLimiter | None = None,
        gate: Callable[[], None] | None = None,
        on_outcome: Callable[[BaseException | None], None] | None = None,
        on_abandon: Callable[[], None] | None = None,
        timeout: float = TIMEOUT,
        stop: threading.Event | None = None,
        deadline: float | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.retrying = retrying or make_retrying(1)
        self.limiter = limiter
        self.gate = gate
        self.on_outcome = on_outcome
        self.on_abandon = on_abandon
        self.timeout = timeout
        self.stop = stop
        self.deadline = deadline
        self.max_body = max_body
        self._count_lock = threading.Lock()
        self.requests = 0
        # requests in flight at once, when set (the run's concurrency): work that fans out
        # into parallel requests stays within it
        self.slots: Slots | None = None
        self.hold: Callable[[], None] | None = None  # waits out the run's quota pause
        self.on_quota: Callable[[QuotaExceeded], object] | None = None  # starts it
        self.closed = False  # set when the run is over: abandoned workers end quietly

    def close(self) -> None:
        """The run is over: requests still in flight end without retry or log line."""
        self.closed = True

    def list_sites(self) -> list[Site]:
        """``sites.list``: every property the credentials can see. It answers while Search
        Analytics fails, so for the circuit breaker only its failures count: its success
        neither closes the breaker nor resets the count, nor is it the half-open probe."""
        url = f"{self.base_url}/webmasters/v3/sites"
        return self._call("GET", url, parse_sites, data_endpoint=False)

    def query_page(self, site_url: str, body: dict[str, Any], follows: int = 0) -> Answer:
        """One ``searchAnalytics.query`` request; its answer checked against ``body``.
        ``follows``: how many requests wait on it in a row (see Slots)."""
        url = f"{self.base_url}/webmasters/v3/sites/{encode_site(site_url)}/searchAnalytics/query"
        parse = query_parser(body)
        return self._call("POST", url, parse, json=body, object_hook=row_hook(), follows=follows)

    def pages(
        self,
        site_url: str,
        body: dict[str, Any],
        *,
        cap: int | None = None,
        complete: Callable[[int], bool] | None = None,
        follows: int = 0,
    ) -> Iterator[Answer]:
        """Each page of a query: ``rowLimit`` 25000, ``startRow`` on until an empty page.

        Google's guide pages until a response with 0 rows; a short page can come in the
        middle of the results, so it does not end the query. Paging also stops once
        ``cap`` rows were served (the API serves no more) or ``complete(rows so far)``
        says every row is in (a date-grouped answer with a row for each day of its range).
        A generator, so a caller can reduce each page before the next is fetched.
        ``follows``: the requests waiting in a row on the first page, its own next page
        included (one fewer for each page after it).
        """
        start = 0
        for n in range(MAX_PAGES):
            paged = {**body, "rowLimit": ROW_LIMIT, "startRow": start}
            page = self.query_page(site_url, paged, max(follows - n, 0))
            if not page.rows and start:
                return
            yield page
            start += len(page.rows)
            if not page.rows or (cap is not None and start >= cap):
                return
            if complete and complete(start):
                return

    def query(
        self,
        site_url: str,
        body: dict[str, Any],
        complete: Callable[[int], bool] | None = None,
        follows: int = 0,
    ) -> QueryResult:
        """Every page of a query, gathered (for small answers such as the date probe)."""
        result = QueryResult()
        for page in self.pages(site_url, body, complete=complete, follows=follows):
            result.pages += 1
            if result.pages == 1:
                result.metadata = page.metadata
            result.rows.extend(page.rows)
        return result

    # -- one request and its retries -------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        data_endpoint: bool = True,
        **kwargs: Any,
    ) -> T:
        """Send, read and ``parse`` (which raises BadResponse) as one retried unit."""
        if self.gate is not None and data_endpoint:
            self.gate()
        # Retrying keeps per-call state on itself: each call (and thread) gets a copy.
        retrying = self.retrying.copy()
        if self.stop is not None or self.deadline is not None:
            sleep = retrying.sleep
            retrying = retrying.copy(sleep=lambda delay: self._wait(delay, sleep))
        try:
            for attempt in retrying:
                with attempt:
                    result = parse(self._send(method, url, **kwargs))
        except ClientClosed:
            if self.on_abandon is not None and data_endpoint:
                self.on_abandon()
            raise
        except ApiError as exc:
            if self.on_outcome is not None:  # an invalid answer is still an answer: API up
                if data_endpoint:
                    self.on_outcome(None if isinstance(exc, InvalidAnswer) else exc)
                elif isinstance(exc, TransientError):  # an outage: it counts as one
                    self.on_outcome(exc)
            raise
        if self.on_outcome is not None and data_endpoint:
            self.on_outcome(None)
        return result

    def _check_live(self) -> None:
        if self.closed:
            raise ClientClosed("the run is over")
        if self.stop is not None and self.stop.is_set():
            raise ClientClosed("stop requested")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ClientClosed("the run's deadline passed")

    def _wait(self, delay: float, sleep: Sleep) -> None:
        """Wait ``delay`` s (a backoff, the rate limit) unless the run ends first: a stop
        request ends the wait at once, the deadline at the deadline (ClientClosed)."""
        cut = self.deadline is not None and time.monotonic() + delay >= self.deadline
        if self.deadline is not None and cut:
            delay = max(0.0, self.deadline - time.monotonic())
        if self.stop is not None:
            self.stop.wait(delay)
        else:
            sleep(delay)
        self._check_live()
        if cut:
            raise ClientClosed("the run's deadline comes before the next try")

    def _send(
        self,
        method: str,
        url: str,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
        follows: int = 0,
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._check_live()
        if self.limiter is not None:
            if self.stop is None and self.deadline is None:
                self.limiter.acquire()
            else:
                limiter_sleep = self.limiter.sleep
                self.limiter.acquire(sleep=lambda delay: self._wait(delay, limiter_sleep))
        slots = self.slots
        if slots is not None:  # a slot first: a request given up while waiting is not sent
            slots.acquire(follows, self._check_live)
        todo = [slots.release] if slots is not None else []

        def release() -> None:  # once the answer is in: decoding it needs no slot
            while todo:
                todo.pop()()

        try:
            if self.hold is not None:  # the run's quota pause: even a request given a slot
                self.hold()  # during it waits it out
                self._check_live()
            with self._count_lock:
                self.requests += 1
            return self._exchange(method, url, object_hook, release, **kwargs)
        except QuotaExceeded as exc:
            if self.on_quota is not None:  # paused before the slot is free for another
                self.on_quota(exc)
            raise
        finally:
            release()

    def _exchange(
        self,
        method: str,
        url: str,
        object_hook: Callable[[dict[str, Any]], Any] | None,
        received: Callable[[], None],
        **kwargs: Any,
    ) -> dict[str, Any]:
        budget, by_run = self.timeout, False
        if self.deadline is not None and self.deadline - time.monotonic() < budget:
            budget, by_run = max(0.001, self.deadline - time.monotonic()), True
        try:
            with (
                within(budget) as until,
                self.http.stream(method, url, timeout=budget, **kwargs) as response,
            ):
                return self._read(response, until, object_hook, received)
        except httpx.TimeoutException:
            if by_run or self.closed:
                raise ClientClosed("the run's deadline passed during a request") from None
            raise NetworkError(f"timed out after {budget:g} s") from None
        except httpx.DecodingError as exc:
            raise BadResponse(f"undecodable body ({one_line(str(exc), 120)})") from None
        except httpx.TransportError as exc:
            if self.closed or (self.stop is not None and self.stop.is_set()):
                # the run is stopping (a signal closed the connections): no retry, no
                # "retrying after connection failed" warning
                raise ClientClosed("the run is over") from None
            raise NetworkError(
                f"connection failed ({type(exc).__name__}: {one_line(str(exc), 120)})"
            ) from None

    def _read(
        self,
        response: httpx.Response,
        until: float,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
        received: Callable[[], None] = lambda: None,
    ) -> dict[str, Any]:
        """The JSON object of a 2xx answer, read by ``until``; any other status an error.
        ``object_hook`` sees each object as it is decoded (rows become compact at once);
        ``received()`` runs once the body is in, before decoding it."""
        status = response.status_code
        if 300 <= status < 400:
            where = one_line(response.headers.get("Location") or "nowhere", 200)
            raise ApiError(f"unexpected redirect (HTTP {status}) to {where}")
        if not 200 <= status < 300:
            content = read_body(response, until, ERROR_BODY, cut=True)
            error = error_from_answer(status, response.reason_phrase, response.headers, content)
            if isinstance(error, RateLimited) and self.limiter is not None:
                self.limiter.slow_down()
            raise error
        content = read_body(response, until, self.max_body)
        received()
        try:
            body = json.loads(content, object_hook=object_hook)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
            raise BadResponse(f"HTTP {status} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise BadResponse(f"HTTP {status} with a body that is not an object")
        return body
