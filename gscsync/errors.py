"""The one exception tree of gscsync.

Every error the core raises is a ``GscSyncError``; the CLI maps it to an exit code in
one place (``exit_code`` on the class) and prints its message as one line.

    GscSyncError                      exit 1
    ├── ConfigError                   exit 2  bad flag, setting, date, credentials file
    ├── AuthError                     exit 3  token endpoint refused the credentials
    ├── NoAccessibleSite              exit 3  every configured site refused access
    ├── BreakerOpen                   exit 4  circuit breaker open, run skipped
    ├── LockHeld                      exit 75 another run holds the lock
    ├── Interrupted                   exit 130 SIGINT/SIGTERM, stopped cleanly
    ├── StorageError                  exit 1  the database refused a write (locked, disk full)
    └── ApiError                      exit 1  an answer from the Search Console API
        ├── TransientError                    retried with backoff
        │   ├── RateLimited                   429 / rateLimitExceeded
        │   ├── ServerError                   5xx
        │   ├── NetworkError                  timeout, dropped connection
        │   └── BadResponse                   truncated or non-JSON body
        ├── QuotaExceeded                     quota: cool off, then go on (bounded)
        │   └── DailyLimitExceeded            daily limit: stop requesting this run
        ├── AccessRefused             exit 3  the credentials may not use the API at all
        │   ├── ApiNotEnabled                 accessNotConfigured / SERVICE_DISABLED
        │   ├── QuotaProjectMissing           user credentials without a quota project
        │   └── InsufficientScope             insufficientPermissions / token scopes
        ├── Tripped                           the circuit breaker opened during this run
        ├── PermissionDenied                  403 forbidden: that site fails
        ├── BadRequest                        400: that day fails, not retried
        ├── WorkerError                       a bug met while fetching: that day fails
        └── Unauthorized                      401 after a token refresh
"""

from __future__ import annotations

from typing import Any, ClassVar


class GscSyncError(Exception):
    """Base of every gscsync error."""

    exit_code: ClassVar[int] = 1
    outcome: Any = None  # the finished run's Outcome, when a run ended with this error


class ConfigError(GscSyncError):
    """A usage or configuration error: bad flag, setting, date or credentials file."""

    exit_code = 2


class AuthError(GscSyncError):
    """The token endpoint refused the credentials (``invalid_grant`` and friends)."""

    exit_code = 3


class NoAccessibleSite(GscSyncError):
    """No configured site answered with data access."""

    exit_code = 3


class BreakerOpen(GscSyncError):
    """The circuit breaker is open: the run is skipped without calling the API."""

    exit_code = 4


class LockHeld(GscSyncError):
    """Another gscsync run holds the lock file."""

    exit_code = 75

    def __init__(self, path: str, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        see = f"ps -o pid,lstart,args -p {pid}" if pid else f"fuser -v {path}"
        super().__init__(
            f"another gscsync run ({holder}) holds the lock {path}; wait for it to finish, "
            f"then run again (`{see}` shows it; the lock file holds its pid and start time). "
            "Another GSCSYNC_LOCK_FILE is no way around it: two runs would write one database"
        )
        self.path = path
        self.pid = pid


class Interrupted(GscSyncError):
    """Stopped by SIGINT/SIGTERM after committing what was complete."""

    exit_code = 130


class StorageError(GscSyncError):
    """The database refused a write (another writer kept it locked, the disk is full):
    the run ends cleanly; days committed before stay."""


class ApiError(GscSyncError):
    """An error answer (or no usable answer) from the Search Console API."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.retry_after = retry_after  # seconds, when the server said (Retry-After)

    def __str__(self) -> str:
        parts = [str(self.status)] if self.status else []
        if self.reason:
            parts.append(self.reason)
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class TransientError(ApiError):
    """Worth retrying: the same request may well succeed later."""


class RateLimited(TransientError):
    """429 or a 403 whose reason is a rate limit."""


class ServerError(TransientError):
    """A 5xx answer."""


class NetworkError(TransientError):
    """Timeout, refused or dropped connection."""


class BadResponse(TransientError):
    """A 2xx answer whose body is truncated or not the JSON expected."""


class QuotaExceeded(ApiError):
    """A quota answer (Google sends the same one for every quota event): cool off."""


class DailyLimitExceeded(QuotaExceeded):
    """``dailyLimitExceeded``: nothing more should be requested in this run."""


class AccessRefused(ApiError):
    """The credentials may not use the API at all (not one site): the run ends, exit 3."""

    exit_code = 3


class ApiNotEnabled(AccessRefused):
    """``accessNotConfigured`` / ``SERVICE_DISABLED``: the API is off in the project."""


class QuotaProjectMissing(AccessRefused):
    """User credentials without a quota project, which this API requires."""


class InsufficientScope(AccessRefused):
    """``insufficientPermissions``: the token lacks the Search Console scope."""


class Tripped(ApiError):
    """The circuit breaker opened during this run: no more requests."""


class PermissionDenied(ApiError):
    """403 forbidden: the credentials cannot read this property."""


class WorkerError(ApiError):
    """An unexpected exception while fetching one day or job: that work fails, not the run."""


class BadRequest(ApiError):
    """400: the API refused the request itself; retrying will not help."""


class Unauthorized(ApiError):
    """401 even after a token refresh."""

    exit_code = 3
