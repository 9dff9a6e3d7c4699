"""Credentials through google-auth, with token requests carried by httpx.

Two kinds of credentials file are read: a service-account key (``type:
service_account``) and an authorized-user file (``type: authorized_user``, a refresh
token). The token endpoint is always the file's own ``token_uri``: google-auth replaces
it with Google's for authorized-user files, so we construct those credentials ourselves.
"""

from __future__ import annotations

import json
import logging
import stat
import threading
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx
from google.auth.credentials import Credentials
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gscsync.errors import AuthError, ConfigError, NetworkError

SCOPE = "https://www.googleapis.com/auth/webmasters.readonly"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_REQUIRED = {
    "service_account": ("client_email", "private_key", "token_uri"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}

log = logging.getLogger("gscsync")


def load_credentials(path: Path | None) -> Credentials:
    """Read a credentials file into google-auth credentials, or raise ConfigError."""
    if path is None:
        raise ConfigError(
            "no credentials: set GSCSYNC_CREDENTIALS (or GOOGLE_APPLICATION_CREDENTIALS) "
            "to a service-account key or authorized-user JSON file"
        )
    info = _read_json(path)
    kind = info.get("type")
    if kind not in _REQUIRED:
        raise ConfigError(
            f"credentials file {path}: type is {kind!r}; expected 'service_account' "
            "(a key created in Google Cloud IAM) or 'authorized_user'"
        )
    missing = [k for k in _REQUIRED[kind] if not isinstance(info.get(k), str) or not info[k]]
    if missing:
        raise ConfigError(
            f"credentials file {path}: {kind} file lacks {', '.join(missing)}; "
            "download the file again"
        )
    _warn_if_world_readable(path)
    try:
        if kind == "service_account":
            sa: Credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[SCOPE]
            )
            return sa
        return user_credentials.Credentials(
            token=None,
            refresh_token=info["refresh_token"],
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI,
            scopes=[SCOPE],
        )
    except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as exc:
        # google-auth's message can quote the key material: never show it.
        raise ConfigError(
            f"credentials file {path}: the {kind} key cannot be loaded "
            f"({type(exc).__name__}); download the file again"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"credentials file {path} does not exist; check GSCSYNC_CREDENTIALS"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ConfigError(f"credentials file {path} cannot be read ({reason})") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(
            f"credentials file {path} is not JSON; give the key file downloaded from Google"
        ) from None
    if not isinstance(info, dict):
        raise ConfigError(f"credentials file {path} is not a JSON object")
    return info


def _warn_if_world_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        log.warning(
            "credentials file %s is readable by every user on this machine; run: chmod 600 %s",
            path,
            path,
        )


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google.auth.transport.Request):
    """google-auth's transport ``Request`` carried by an ``httpx.Client``."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            response = self.client.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=timeout if timeout is not None else self.client.timeout,
            )
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(
                f"{type(exc).__name__} talking to the token endpoint"
            ) from exc
        return _Response(response)


class GoogleAuth(httpx.Auth):
    """Attach a bearer token; refresh it when missing, expired, or answered by a 401."""

    def __init__(self, credentials: Credentials, request: google.auth.transport.Request) -> None:
        self.credentials = credentials
        self.request = request
        self._lock = threading.Lock()

    def token(self, *, stale: str | None = None) -> str:
        """A valid access token; ``stale`` names one the server refused, forcing a refresh."""
        with self._lock:
            current = self.credentials.token
            if current is None or not self.credentials.valid or current == stale:
                self._refresh()
            token = self.credentials.token
            if not isinstance(token, str):  # pragma: no cover - google-auth guarantees it
                raise AuthError("the token endpoint returned no access token")
            return token

    def _refresh(self) -> None:
        try:
            self.credentials.refresh(self.request)
        except google.auth.exceptions.TransportError as exc:
            raise NetworkError(f"token endpoint unreachable: {exc}") from None
        except google.auth.exceptions.RefreshError as exc:
            reason = _refresh_reason(exc)
            raise AuthError(f"the token endpoint refused the credentials: {reason}") from None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(stale=token)}"
            yield request


def _refresh_reason(exc: google.auth.exceptions.RefreshError) -> str:
    # RefreshError args are (message, response_data); keep only error/description.
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, dict):
        error = str(data.get("error", "")).strip()
        desc = str(data.get("error_description", "")).strip()
        text = ": ".join(p for p in (error, desc) if p)
        if text:
            return text[:300]
    return str(exc.args[0])[:300] if exc.args else "refused"
