"""Credentials files read into google-auth credentials, with google-auth's own constructors.

Two kinds are read: a service-account key (``type: service_account``) and an
authorized-user file (``type: authorized_user``, a refresh token, as ``gcloud auth
application-default login`` writes it). With no file configured, gcloud's application
default credentials file is used, found where google-auth's ``default()`` looks for it.
The token endpoint is always the file's own ``token_uri``: google-auth replaces it with
Google's for authorized-user files, so we put it back.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import google.auth.exceptions
from google.auth import _cloud_sdk
from google.auth.credentials import Credentials, CredentialsWithQuotaProject
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gscsync.errors import ConfigError
from gscsync.files import CONFIG_LIMIT, NotSmallRegularFile, read_small_file
from gscsync.logs import register_secret

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

log = logging.getLogger("gscsync")


def adc_path() -> Path:
    """gcloud's application default credentials file, where google-auth's ``default()``
    looks: ``$CLOUDSDK_CONFIG``, else ``~/.config/gcloud`` (``%APPDATA%\\gcloud`` on
    Windows). It may not exist."""
    return Path(_cloud_sdk.get_application_default_credentials_path())


def load_credentials(path: Path | None, source: str = "GSCSYNC_CREDENTIALS") -> Credentials:
    """Read a credentials file into google-auth credentials, or raise ConfigError.

    ``None`` (no GSCSYNC_CREDENTIALS, no GOOGLE_APPLICATION_CREDENTIALS) means gcloud's
    application default credentials file."""
    if path is None:
        path = _default_file()
    info = _read_json(path, source)
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
    for secret in ("refresh_token", "client_secret", "private_key", "rapt_token"):
        register_secret(info.get(secret))  # scrubbed by value wherever it may be echoed
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


def _read_json(path: Path, source: str = "GSCSYNC_CREDENTIALS") -> dict[str, Any]:
    try:
        text = read_small_file(path, CONFIG_LIMIT).decode("utf-8")
    except NotSmallRegularFile as exc:
        raise ConfigError(
            f"credentials file {path} cannot be read ({exc}); give the JSON key file itself"
        ) from None
    except FileNotFoundError:
        raise ConfigError(f"credentials file {path} does not exist; check {source}") from None
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
