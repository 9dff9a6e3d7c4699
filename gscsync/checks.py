"""``gscsync check``: is this setup able to sync? Each check says what is wrong and the fix.

The checks run in SPEC order: settings, credentials (a token is obtained), database (opens
and migrates), lock (can be taken), and every configured site answers a minimal query.
The exit code is that of the first failing check: 2 settings, 3 credentials or access,
1 anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from gscsync.app import api_client, ensure_token
from gscsync.client import GscClient
from gscsync.config import Settings
from gscsync.db import open_db
from gscsync.errors import ApiError, ConfigError, GscSyncError, PermissionDenied
from gscsync.lock import hold_lock
from gscsync.sync import resolve_sites


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    exit_code: int = 0  # what a failure of this check exits with


def exit_code(checks: list[Check]) -> int:
    """0 when every check passed, else the code of the first failure."""
    return next((c.exit_code for c in checks if not c.ok), 0)


def run_checks(load: Callable[[], Settings], *, today: date) -> list[Check]:
    """Every check that can run, in SPEC order; nothing is checked past bad settings."""
    try:
        settings = load()
    except ConfigError as exc:
        return [Check("settings", False, str(exc), 2)]
    sites = ", ".join(settings.sites) or "every property the credentials can read"
    configured = Check("settings", True, f"sites: {sites}; database: {settings.db}")
    credentials, *site_checks = _api(settings, today)
    return [configured, credentials, _database(settings), _lock(settings), *site_checks]


def _database(settings: Settings) -> Check:
    try:
        open_db(settings.db).close()
    except ConfigError as exc:
        return Check("database", False, str(exc), 1)
    return Check("database", True, f"{settings.db} opens and is migrated")


def _lock(settings: Settings) -> Check:
    try:
        with hold_lock(settings.lock_path):
            pass
    except GscSyncError as exc:
        return Check("lock", False, str(exc), 1)
    return Check("lock", True, f"{settings.lock_path} can be taken")


def _api(settings: Settings, today: date) -> list[Check]:
    """The credentials check, then one check per site (none when credentials fail)."""
    try:
        with api_client(settings) as client:
            identity = ensure_token(client)
            checks = [Check("credentials", True, f"a token was obtained for {identity}")]
            try:
                sites = resolve_sites(settings, client)
            except GscSyncError as exc:
                return [*checks, Check("sites", False, str(exc), exc.exit_code)]
            day = (today - timedelta(days=3)).isoformat()
            return [*checks, *(_site(client, site, day, identity) for site in sites)]
    except GscSyncError as exc:
        fix = ""
        if isinstance(exc, ConfigError):
            fix = "; fix: point GSCSYNC_CREDENTIALS at the key file downloaded from Google"
        return [Check("credentials", False, f"{exc}{fix}", 3)]


def _site(client: GscClient, site: str, day: str, identity: str) -> Check:
    try:
        client.query_page(site, {"startDate": day, "endDate": day, "rowLimit": 1})
    except PermissionDenied as exc:
        return Check(
            f"site {site}",
            False,
            f"{exc.message}; fix: add {identity} as a user of {site} in Search Console "
            "(Settings > Users and permissions), or spell the property as `gscsync sites` "
            "lists it",
            3,
        )
    except ApiError as exc:
        return Check(f"site {site}", False, str(exc), 1)
    return Check(f"site {site}", True, "answers a query")
