"""Credentials through google-auth, with token requests carried by httpx.

Two kinds of credentials file are read, with google-auth's own constructors: a
service-account key (``type: service_account``) and an authorized-user file (``type:
authorized_user``, a refresh token, as ``gcloud auth application-default login`` writes
it). With no file configured, gcloud's application default credentials file is used,
found where google-auth's ``default()`` looks for it.

The token endpoint is always the file's own ``token_uri``: google-auth replaces it with
Google's for authorized-user files, so we put it back. Every request carries each header
``credentials.apply()`` adds: the bearer token and, when the file names a quota project,
``x-goog-user-project``. A token endpoint that answers 5xx, 429 or a body that is not a
JSON object is an outage (a transient error the client's retry policy retries); a JSON
refusal such as ``invalid_grant`` is an ``AuthError``.
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
from google.auth import _cloud_sdk
from google.auth.credentials import Credentials, CredentialsWithQuotaProject
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gscsync.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    NetworkError,
    RateLimited,
    ServerError,
    TransientError,
)

SCOPE = "https://www.googleapis.com/auth/webmasters.readonly"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
ADC_LOGIN = (
    "gcloud auth application-default login "
    f"--scopes={SCOPE},https://www.googleapis.com/auth/cloud-platform"
)
_REQUIRED = {
    "service_account": ("client_email", "private_key", "token_uri"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}

_CANONICAL = {"authorization": "Authorization"}
# OAuth error codes that mean "try again later" (RFC 6749 5.2; google-auth retries them).
_UNAVAILABLE = {"server_error", "temporarily_unavailable", "internal_failure"}

log = logging.getLogger("gscsync")


def adc_path() -> Path:
    """gcloud's application default credentials file, where google-auth's ``default()``
    looks: ``$CLOUDSDK_CONFIG``, else ``~/.config/gcloud`` (``%APPDATA%\\gcloud`` on
    Windows). It may not exist."""
    return Path(_cloud_sdk.get_application_default_credentials_path())


def load_credentials(path: Path | None) -> Credentials:
    """Read a credentials file into google-auth credentials, or raise ConfigError.

    ``None`` (no GSCSYNC_CREDENTIALS, no GOOGLE_APPLICATION_CREDENTIALS) means gcloud's
    application default credentials file."""
    if path is None:
        path = _default_file()
    info = _read_json(path)
    kind = info.get("type")
    if kind is None and any(isinstance(info.get(k), dict) for k in ("installed", "web")):
        raise ConfigError(
            f"credentials file {path} is an OAuth client (client secret) file, not credentials; "
            f"create an authorized-user file with: {ADC_LOGIN} (add --client-id-file={path} "
            "to use this client), or use a service-account key"
        )
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
    scopes = _scopes(path, info) if kind == "authorized_user" else [SCOPE]
    _warn_if_world_readable(path)
    try:
        return _from_info(kind, info, scopes)
    except (ValueError, TypeError, KeyError, google.auth.exceptions.GoogleAuthError) as exc:
        # google-auth's message can quote the key material: never show it.
        raise ConfigError(
            f"credentials file {path}: the {kind} key cannot be loaded "
            f"({type(exc).__name__}); download the file again"
        ) from None


def _default_file() -> Path:
    path = adc_path()
    if not path.is_file():
        raise ConfigError(
            "no credentials: set GSCSYNC_CREDENTIALS or GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key or authorized-user JSON file, or create the application "
            f"default credentials file {path} with: {ADC_LOGIN}"
        )
    log.info("credentials: gcloud application default credentials %s", path)
    return path


def _scopes(path: Path, info: Mapping[str, Any]) -> list[str]:
    """The scopes an authorized-user file names (a list, or one space-separated string),
    else ours."""
    named = info.get("scopes")
    if isinstance(named, str):
        named = named.split()
    if named is None or named == []:
        return [SCOPE]
    if not isinstance(named, list) or not all(isinstance(s, str) and s for s in named):
        raise ConfigError(
            f"credentials file {path}: scopes is not a list of scope URLs; download the file again"
        )
    return named


def _from_info(kind: str, info: Mapping[str, Any], scopes: list[str]) -> Credentials:
    """google-auth's own constructors, as ``google.auth.load_credentials_from_file`` uses
    them (quota project from the file, or GOOGLE_CLOUD_QUOTA_PROJECT)."""
    creds: CredentialsWithQuotaProject
    if kind == "service_account":
        creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    else:
        user = user_credentials.Credentials.from_authorized_user_info(info, scopes=scopes)
        # from_authorized_user_info always sets Google's endpoint: the file's own wins.
        creds = user.with_token_uri(info.get("token_uri") or GOOGLE_TOKEN_URI)
    with_env: Credentials = creds.with_quota_project_from_environment()
    return with_env


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


class TokenEndpointDown(google.auth.exceptions.TransportError):
    """The token endpoint answered, but with an outage; ``error`` is what to raise."""

    error: TransientError

    @classmethod
    def of(cls, error: TransientError) -> TokenEndpointDown:
        down = cls(str(error))
        down.error = error
        return down


class HttpxRequest(google.auth.transport.Request):
    """google-auth's transport ``Request`` carried by an ``httpx.Client``.

    An answer that is an outage rather than a verdict on the credentials (5xx, 429, a JSON
    ``temporarily_unavailable``, a body that is not a JSON object) raises
    :class:`TokenEndpointDown`, before google-auth could take it for a refusal or sleep
    through retries of its own: the client's retry policy is the one that retries."""

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
        outage = _outage(response)
        if outage is not None:
            raise TokenEndpointDown.of(outage)
        return _Response(response)


def _outage(response: httpx.Response) -> TransientError | None:
    """What google-auth would retry by itself (5xx, 408, 429, a JSON ``server_error`` or
    ``temporarily_unavailable``), and any body that is not a JSON object."""
    status = response.status_code
    answered = f"token endpoint answered {status} {response.reason_phrase}".rstrip()
    if status >= 500:
        return ServerError(answered)
    if status == 429:
        return RateLimited(answered, retry_after=_retry_after(response))
    if status == 408:
        return NetworkError(answered)
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return BadResponse(f"{answered} with a body that is not a JSON object ({kind})")
    error = body.get("error")
    if status != 200 and isinstance(error, str) and error in _UNAVAILABLE:
        return ServerError(f"{answered}: {error}")
    return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


class GoogleAuth(httpx.Auth):
    """Put on each request every header google-auth's ``credentials.apply()`` adds (the
    bearer token, ``x-goog-user-project``); refresh the token when missing, expired, or
    answered by a 401."""

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
            return text[:300]
    return str(exc.args[0])[:300] if exc.args else "refused"
