"""Token requests carried by httpx, and the ``httpx.Auth`` that puts the token on each
request. (Credentials files are read by :mod:`gscsync.api.credentials`.)

Every request carries each header ``credentials.apply()`` adds: the bearer token and,
when the file names a quota project, ``x-goog-user-project``. A token endpoint that
answers 5xx, 429, a body that is not a JSON object, or a 200 without a usable token (no
``access_token``, a non-numeric ``expires_in``) is an outage (a transient error the
client's retry policy retries); a JSON refusal such as ``invalid_grant`` is an
``AuthError``, its text stripped of the secrets the request carried. A token request
ends within the timeout (connect and whole body) and reads at most ``TOKEN_MAX_BODY``.

A token already expired when it arrives (google-auth counts one expiring within minutes
as expired) is used rather than refreshed before every request: at most one refresh per
``EARLY_REFRESH_EVERY`` seconds, unless the API refuses it. A second such token in a row
means the endpoint is broken: a ``ServerError``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import google.auth.exceptions
import google.auth.transport
import httpx
from google.auth.credentials import Credentials

from gscsync.api.answers import one_line, token_problem
from gscsync.api.credentials import SCOPE, adc_path, load_credentials
from gscsync.api.transport import MB, read_body, within
from gscsync.errors import (
    AuthError,
    BadResponse,
    GscSyncError,
    NetworkError,
    RateLimited,
    ServerError,
)

__all__ = ["SCOPE", "GoogleAuth", "HttpxRequest", "adc_path", "load_credentials"]

TOKEN_TIMEOUT = 60.0  # seconds for a whole token request, unless told otherwise
TOKEN_MAX_BODY = MB  # a token answer is a few hundred bytes
EARLY_REFRESH_EVERY = 30.0  # seconds between refreshes while tokens arrive expired
_SECRET_FIELDS = ("assertion", "client_secret", "refresh_token")

_CANONICAL = {"authorization": "Authorization"}
# OAuth error codes that mean "try again later" (RFC 6749 5.2; google-auth retries them).
_UNAVAILABLE = {"server_error", "temporarily_unavailable", "internal_failure"}

log = logging.getLogger("gscsync")


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class TokenEndpointDown(google.auth.exceptions.TransportError):
    """The token endpoint answered, but not with a token or a refusal: an outage (a
    TransientError) or a redirect; ``error`` is what to raise."""

    error: GscSyncError

    @classmethod
    def of(cls, error: GscSyncError) -> TokenEndpointDown:
        down = cls(str(error))
        down.error = error
        return down


class HttpxRequest(google.auth.transport.Request):
    """google-auth's transport ``Request`` carried by an ``httpx.Client``.

    An answer that is an outage rather than a verdict on the credentials (5xx, 429, a JSON
    ``temporarily_unavailable``, a body that is not a JSON object, a 200 without a usable
    token) raises :class:`TokenEndpointDown`, before google-auth could take it for a
    refusal, sleep through retries of its own, or fail on it with a ValueError: the
    client's retry policy is the one that retries. The whole request ends within
    ``timeout`` seconds (within the API request's own deadline when made for one)."""

    def __init__(
        self, client: httpx.Client, timeout: float | None = None, max_body: int = TOKEN_MAX_BODY
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.max_body = max_body

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        budget = self.timeout or timeout or TOKEN_TIMEOUT
        try:
            with (
                within(budget) as until,
                self.client.stream(
                    method, url, content=body, headers=headers, timeout=budget
                ) as response,
            ):
                data = read_body(response, until, self.max_body)
        except BadResponse as exc:
            raise TokenEndpointDown.of(BadResponse(f"token endpoint: {exc}")) from None
        except httpx.TimeoutException:
            raise TokenEndpointDown.of(
                NetworkError(f"token endpoint timed out after {budget:g} s")
            ) from None
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(
                f"{type(exc).__name__} talking to the token endpoint"
            ) from exc
        status, phrase = response.status_code, response.reason_phrase
        problem = _outage(status, phrase, response.headers, data)
        if problem is not None:
            raise TokenEndpointDown.of(problem)
        if status != 200:  # a refusal: google-auth quotes it, so no secret may be in it
            data = _without(_secrets_sent(body), data)
        return _Response(status, response.headers, data)


def _secrets_sent(body: bytes | None) -> list[str]:
    """The secret values of a token request's form, in each spelling an echo may use."""
    try:
        form = parse_qsl((body or b"").decode(), keep_blank_values=False)
    except (UnicodeDecodeError, ValueError):
        return []
    values = [v for k, v in form if k in _SECRET_FIELDS and len(v) >= 4]
    forms = {
        f
        for v in values
        for f in (v, quote(v, safe=""), quote_plus(v), json.dumps(v)[1:-1], v.replace("/", "\\/"))
    }
    return sorted(forms, key=len, reverse=True)


def _without(secrets: list[str], data: bytes) -> bytes:
    if not secrets:
        return data
    text = data.decode("utf-8", "replace")
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text.encode()


def _outage(
    status: int, phrase: str, headers: Mapping[str, str], data: bytes
) -> GscSyncError | None:
    """What google-auth would retry by itself (5xx, 408, 429, a JSON ``server_error`` or
    ``temporarily_unavailable``), any body that is not a JSON object, a 200 without a
    usable token, and a redirect (never followed)."""
    answered = f"token endpoint answered {status} {phrase}".rstrip()
    if status >= 500:
        return ServerError(answered)
    if status == 429:
        return RateLimited(answered, retry_after=_retry_after(headers))
    if status == 408:
        return NetworkError(answered)
    if 300 <= status < 400:
        where = one_line(headers.get("Location") or "nowhere", 200)
        return AuthError(
            f"the token endpoint redirected (HTTP {status}) to {where}: check token_uri "
            "in the credentials file"
        )
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        kind = headers.get("content-type", "no content type").split(";")[0]
        return BadResponse(f"{answered} with a body that is not a JSON object ({kind})")
    error = body.get("error")
    if status != 200 and isinstance(error, str) and error in _UNAVAILABLE:
        return ServerError(f"{answered}: {error}")
    problem = token_problem(body) if status == 200 else None
    if problem is not None:
        return BadResponse(f"{answered} with {problem}")
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


class GoogleAuth(httpx.Auth):
    """Put on each request every header google-auth's ``credentials.apply()`` adds (the
    bearer token, ``x-goog-user-project``); refresh the token when missing, expired, or
    answered by a 401."""

    def __init__(
        self,
        credentials: Credentials,
        request: google.auth.transport.Request,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.request = request
        self.clock = clock
        self._lock = threading.Lock()
        self._expired_in_a_row = 0  # tokens that arrived already expired, consecutively
        self._refreshed_at = 0.0

    def token(self, *, stale: str | None = None) -> str:
        """A valid access token; ``stale`` names one the server refused, forcing a refresh."""
        with self._lock:
            current = self.credentials.token
            if current is None or current == stale or not self._usable():
                self._refresh()
            token = self.credentials.token
            if not isinstance(token, str):  # pragma: no cover - google-auth guarantees it
                raise AuthError("the token endpoint returned no access token")
            return token

    def _usable(self) -> bool:
        """Valid, or expired on arrival but refreshed less than EARLY_REFRESH_EVERY ago."""
        if self.credentials.valid:
            return True
        recent = self.clock() - self._refreshed_at < EARLY_REFRESH_EVERY
        return self._expired_in_a_row > 0 and recent

    def headers(self, token: str) -> dict[str, str]:
        """The headers ``credentials.apply()`` adds for ``token`` (``Authorization`` spelled
        as usual; google-auth writes it in lower case)."""
        applied: dict[str, str] = {}
        self.credentials.apply(applied, token=token)
        return {_CANONICAL.get(name.lower(), name): value for name, value in applied.items()}

    def _refresh(self) -> None:
        try:
            self.credentials.refresh(self.request)
        except TokenEndpointDown as exc:
            raise exc.error from None
        except google.auth.exceptions.TransportError as exc:
            raise NetworkError(f"token endpoint unreachable: {exc}") from None
        except google.auth.exceptions.RefreshError as exc:
            reason = _refresh_reason(exc)
            if getattr(exc, "retryable", False) is True:
                # HttpxRequest already raises what google-auth 2.63 retries: a fallback.
                raise ServerError(f"token endpoint unavailable: {reason}") from None
            raise AuthError(f"the token endpoint refused the credentials: {reason}") from None
        self._refreshed_at = self.clock()
        if self.credentials.valid:
            self._expired_in_a_row = 0
            return
        self._expired_in_a_row += 1
        if self._expired_in_a_row > 1:
            raise ServerError("token endpoint keeps issuing expired tokens")
        log.warning(
            "the token endpoint issued a token that is already expired (or about to be); "
            "using it, and refreshing it at most every %.0f s",
            EARLY_REFRESH_EVERY,
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers.update(self.headers(token))
        response = yield request
        if response.status_code == 401:
            request.headers.update(self.headers(self.token(stale=token)))
            yield request


def _refresh_reason(exc: google.auth.exceptions.RefreshError) -> str:
    # RefreshError args are (message, response_data); keep only error/description.
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, dict):
        error = str(data.get("error", "")).strip()
        desc = str(data.get("error_description", "")).strip()
        text = ": ".join(p for p in (error, desc) if p)
        if text:
            return one_line(text)
    return one_line(str(exc.args[0])) if exc.args else "refused"
