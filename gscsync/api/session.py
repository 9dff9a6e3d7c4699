"""A ready API client: credentials, one httpx.Client for the API and one for tokens,
the request-rate ceiling, the retry policy and (when given) the circuit breaker, the
run's stop event and deadline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from google.auth.credentials import Credentials

from gscsync import __version__
from gscsync.api.auth import GoogleAuth, HttpxRequest
from gscsync.api.breaker import Breaker
from gscsync.api.client import GscClient, make_retrying
from gscsync.api.ratelimit import RateLimiter
from gscsync.api.transport import BoundedTransport
from gscsync.config import Settings

USER_AGENT = f"gscsync/{__version__}"


@contextmanager
def open_client(
    settings: Settings,
    credentials: Credentials,
    breaker: Breaker | None = None,
    *,
    stop: threading.Event | None = None,
    deadline: float | None = None,
) -> Iterator[GscClient]:
    """The client every command uses; closed (with its connections) on exit.

    Every request, the token request included, ends within ``GSCSYNC_TIMEOUT`` seconds
    (connect and whole body); none starts once ``stop`` is set or ``deadline`` (on
    ``time.monotonic``) has passed, and none runs past the deadline."""
    timeout = httpx.Timeout(settings.timeout)
    headers = {"User-Agent": USER_AGENT}
    with httpx.Client(
        timeout=timeout, headers=headers, transport=BoundedTransport(), follow_redirects=False
    ) as token_http:
        auth = GoogleAuth(credentials, HttpxRequest(token_http, timeout=settings.timeout))
        limits = httpx.Limits(max_connections=settings.concurrency + 2)
        with httpx.Client(
            auth=auth,
            timeout=timeout,
            headers=headers,
            transport=BoundedTransport(limits),
            follow_redirects=False,
        ) as http:
            client = GscClient(
                http,
                base_url=settings.api_url,
                retrying=make_retrying(settings.max_attempts),
                limiter=RateLimiter(settings.qpm),
                gate=breaker.before_request if breaker else None,
                on_outcome=breaker.record if breaker else None,
                on_abandon=breaker.abandoned if breaker else None,
                timeout=settings.timeout,
                stop=stop,
                deadline=deadline,
            )
            try:
                yield client
            finally:
                client.close()  # before the connections close under the workers


def identity(client: GscClient) -> str:
    """Obtain an access token now (raises AuthError/NetworkError); returns who we are."""
    auth = client.http.auth
    if not isinstance(auth, GoogleAuth):
        return "these credentials"
    auth.token()
    creds = auth.credentials
    email = getattr(creds, "service_account_email", None)
    if isinstance(email, str):
        return email
    oauth = f"OAuth client {getattr(creds, 'client_id', '?')}"
    quota = getattr(creds, "quota_project_id", None)
    billed = f", quota project {quota}" if isinstance(quota, str) and quota else ""
    return f"the authorized user ({oauth}{billed})"
