"""A typed client for the two Search Console endpoints gscsync needs.

One ``httpx.Client`` carries every request (authentication is its ``httpx.Auth``).
Answers are turned into plain data or into the typed errors of ``gscsync.errors``;
transient errors are retried by one tenacity policy built in :func:`make_retrying`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from gscsync.api.ratelimit import RateLimiter
from gscsync.errors import (
    ApiError,
    ApiNotEnabled,
    BadRequest,
    BadResponse,
    DailyLimitExceeded,
    InsufficientScope,
    NetworkError,
    PermissionDenied,
    QuotaExceeded,
    QuotaProjectMissing,
    RateLimited,
    ServerError,
    TransientError,
    Unauthorized,
)

ROW_LIMIT = 25_000
MAX_PAGES = 400  # 10 million rows: far past the API's cap, a guard against a looping server
SCOPE_HINT = "https://www.googleapis.com/auth/webmasters.readonly"
RATE_REASONS = {"ratelimitexceeded", "userratelimitexceeded"}
MAX_BACKOFF = 64.0

log = logging.getLogger("gscsync")

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Site:
    """A property the credentials can see."""

    url: str
    permission: str

    @property
    def has_data_access(self) -> bool:
        return self.permission != "siteUnverifiedUser"


@dataclass
class QueryResult:
    """All pages of one Search Analytics query."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: int = 0


def encode_site(site_url: str) -> str:
    """The property as one fully percent-encoded path segment."""
    return quote(site_url, safe="")


def first_incomplete_date(metadata: dict[str, Any]) -> str | None:
    """Read the freshness marker in either spelling."""
    value = metadata.get("first_incomplete_date") or metadata.get("firstIncompleteDate")
    return str(value)[:10] if value else None


def error_from_response(response: httpx.Response) -> ApiError:
    """Turn an error answer into the matching typed error."""
    status = response.status_code
    message, reason, info = _parse_error_body(response)
    key = reason.lower()
    if status == 403 and (key == "accessnotconfigured" or info == "SERVICE_DISABLED"):
        if "quota project" in message.lower():
            return QuotaProjectMissing(_quota_project_help(message), status=status, reason=reason)
        return ApiNotEnabled(_not_enabled_help(message), status=status, reason=reason)
    if status == 403 and "quota project" in message.lower():
        return QuotaProjectMissing(_quota_project_help(message), status=status, reason=reason)
    if status == 403 and (
        key == "insufficientpermissions" or info == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    ):
        return InsufficientScope(
            f"{message} The credentials lack the Search Console scope ({SCOPE_HINT}); "
            "create them again with that scope",
            status=status,
            reason=reason,
        )
    if key == "dailylimitexceeded":
        return DailyLimitExceeded(message, status=status, reason=reason)
    if status in (403, 429) and "quota" in key and key not in RATE_REASONS:
        return QuotaExceeded(
            message, status=status, reason=reason, retry_after=_retry_after(response)
        )
    if status == 429 or key in RATE_REASONS:
        return RateLimited(
            message, status=status, reason=reason, retry_after=_retry_after(response)
        )
    if status >= 500:
        return ServerError(message, status=status, reason=reason)
    if status == 400:
        return BadRequest(message, status=status, reason=reason)
    if status == 401:
        return Unauthorized(message, status=status, reason=reason)
    if status == 403:
        return PermissionDenied(message, status=status, reason=reason)
    return ApiError(message, status=status, reason=reason)


def _not_enabled_help(message: str) -> str:
    project = re.search(r"project[s/ ]+(\d+)", message)
    where = f"in project {project.group(1)}" if project else "in the credentials' project"
    return (
        f"the Google Search Console API is not enabled {where}: enable it in the Google Cloud "
        "console (APIs & Services > Library > Google Search Console API), wait a few "
        "minutes, and run again"
    )


def _quota_project_help(message: str) -> str:
    return (
        "these user credentials have no quota project, which the Search Console API "
        "requires: run `gcloud auth application-default set-quota-project PROJECT_ID` "
        "(a project with the API enabled), or use a service-account key"
    )


def _parse_error_body(response: httpx.Response) -> tuple[str, str, str]:
    """(message, reason, ErrorInfo reason) of Google's error envelope, any subset of it."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response.reason_phrase or f"HTTP {response.status_code}", "", ""
    message = str(error.get("message") or response.reason_phrase or "error")
    errors = error.get("errors")
    reason = ""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = str(errors[0].get("reason") or "")
    info = ""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            info = str(detail.get("reason") or "")
            metadata = detail.get("metadata")
            if isinstance(metadata, dict) and metadata.get("consumer"):
                message += f" (consumer {metadata['consumer']})"
    return message, reason or str(error.get("status") or ""), info


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
    """A request of an abandoned worker after the run ended: not retried, not logged."""


class GscClient:
    """Search Console API over one ``httpx.Client``.

    :param http: the client; its ``auth`` attaches the access token.
    :param base_url: API root, e.g. ``https://searchconsole.googleapis.com``.
    :param retrying: the retry policy (see :func:`make_retrying`); None means one try.
    :param limiter: the rate ceiling, taken before every attempt; slowed by each 429.
    :param gate: called once before each request and its retries (the circuit breaker).
    :param on_outcome: told each request's final outcome: None, or the error it ended with.
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
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.retrying = retrying or make_retrying(1)
        self.limiter = limiter
        self.gate = gate
        self.on_outcome = on_outcome
        self._count_lock = threading.Lock()
        self.requests = 0
        self.closed = False  # set when the run is over: abandoned workers end quietly

    def close(self) -> None:
        """The run is over: requests still in flight end without retry or log line."""
        self.closed = True

    def list_sites(self) -> list[Site]:
        """``sites.list``: every property the credentials can see."""
        body = self._call("GET", f"{self.base_url}/webmasters/v3/sites")
        entries = body.get("siteEntry") or []
        if not isinstance(entries, list):
            raise BadResponse("sites.list: siteEntry is not a list")
        return [
            Site(str(e.get("siteUrl", "")), str(e.get("permissionLevel", "")))
            for e in entries
            if isinstance(e, dict) and e.get("siteUrl")
        ]

    def query_page(self, site_url: str, body: dict[str, Any]) -> dict[str, Any]:
        """One ``searchAnalytics.query`` request."""
        url = f"{self.base_url}/webmasters/v3/sites/{encode_site(site_url)}/searchAnalytics/query"
        result = self._call("POST", url, json=body)
        rows = result.get("rows", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BadResponse("searchAnalytics.query: rows is not a list of objects")
        return result

    def pages(
        self,
        site_url: str,
        body: dict[str, Any],
        *,
        cap: int | None = None,
        complete: Callable[[int], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page of a query: ``rowLimit`` 25000, ``startRow`` on until an empty page.

        Google's guide pages until a response with 0 rows; a short page can come in the
        middle of the results, so it does not end the query. Paging also stops once
        ``cap`` rows were served (the API serves no more) or ``complete(rows so far)``
        says every row is in (a date-grouped answer with a row for each day of its range).
        A generator, so a caller can reduce each page before the next is fetched.
        """
        start = 0
        for _ in range(MAX_PAGES):
            page = self.query_page(site_url, {**body, "rowLimit": ROW_LIMIT, "startRow": start})
            rows = page.get("rows", [])
            if not rows and start:
                return
            yield page
            start += len(rows)
            if not rows or (cap is not None and start >= cap) or (complete and complete(start)):
                return

    def query(
        self, site_url: str, body: dict[str, Any], complete: Callable[[int], bool] | None = None
    ) -> QueryResult:
        """Every page of a query, gathered (for small answers such as the date probe)."""
        result = QueryResult()
        for page in self.pages(site_url, body, complete=complete):
            result.pages += 1
            if result.pages == 1:
                metadata = page.get("metadata")
                result.metadata = metadata if isinstance(metadata, dict) else {}
            result.rows.extend(page.get("rows", []))
        return result

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        if self.gate is not None:
            self.gate()
        try:
            # Retrying keeps per-call state on itself: each call (and thread) gets a copy.
            for attempt in self.retrying.copy():
                with attempt:
                    result = self._send(method, url, **kwargs)
        except ApiError as exc:
            if self.on_outcome is not None:
                self.on_outcome(exc)
            raise
        if self.on_outcome is not None:
            self.on_outcome(None)
        return result

    def _send(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        if self.closed:
            raise ClientClosed("the run is over")
        if self.limiter is not None:
            self.limiter.acquire()
        with self._count_lock:
            self.requests += 1
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"timed out ({type(exc).__name__})") from None
        except httpx.DecodingError as exc:
            raise BadResponse(f"undecodable body ({exc})") from None
        except httpx.TransportError as exc:
            if self.closed:
                raise ClientClosed("the run is over") from None
            raise NetworkError(f"connection failed ({type(exc).__name__}: {exc})") from None
        if response.status_code >= 400:
            error = error_from_response(response)
            if isinstance(error, RateLimited) and self.limiter is not None:
                self.limiter.slow_down()
            raise error
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadResponse(f"HTTP {response.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise BadResponse(f"HTTP {response.status_code} with a body that is not an object")
        return body
