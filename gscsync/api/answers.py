"""The one validating layer: every answer of the API checked against the request it
answers, and turned into typed data (or, for an error answer, the typed error) before
anything else sees it.

A ``searchAnalytics.query`` row must carry:

- ``keys``: a list of strings, exactly one per requested dimension (absent or empty when
  none was requested); a ``date`` key a real ``YYYY-MM-DD`` inside the requested range
  (for a one-day request: that very day);
- ``clicks``, ``impressions``: finite non-negative integers below 2**63 (a whole float
  such as ``3.0`` is accepted; ``NaN``, strings such as ``"12"``, booleans are not);
- ``ctr``: a finite non-negative number; ``position`` the same, or absent (Discover and
  Google News report none).

Anything else makes the whole answer an :class:`InvalidAnswer`, a
:class:`~gscsync.errors.BadResponse` (retried, then that day fails), named in one short
line that never quotes the body. Parsing runs inside the client's retried unit, so a
retry sends the request again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

import httpx

from gscsync.errors import (
    ApiError,
    ApiNotEnabled,
    BadRequest,
    BadResponse,
    DailyLimitExceeded,
    InsufficientScope,
    PermissionDenied,
    QuotaExceeded,
    QuotaProjectMissing,
    RateLimited,
    ServerError,
    Unauthorized,
)

MAX_COUNT = 2**63  # SQLite INTEGER: clicks and impressions stay below it
SCOPE_HINT = "https://www.googleapis.com/auth/webmasters.readonly"
RATE_REASONS = {"ratelimitexceeded", "userratelimitexceeded"}
MESSAGE_CHARS = 300  # of the API's error message kept in ours
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only
_SHOWN = 40  # characters of a bad value quoted in the message


class ApiRow(NamedTuple):
    """One valid row: its keys (in the requested dimensions' order) and its metrics."""

    keys: tuple[str, ...]
    clicks: int
    impressions: int
    ctr: float
    position: float | None


class InvalidAnswer(BadResponse):
    """A whole answer (HTTP 200, JSON) that breaks the contract. The API did answer: the
    circuit breaker does not count it as an outage, so bad days fail alone."""


@dataclass
class Answer:
    """One valid ``searchAnalytics.query`` answer (one page)."""

    rows: list[ApiRow] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Site:
    """A property the credentials can see."""

    url: str
    permission: str

    @property
    def has_data_access(self) -> bool:
        return self.permission != "siteUnverifiedUser"


def iso_day(value: object) -> date | None:
    """``value`` as a date if it is exactly ``YYYY-MM-DD`` and a real day, else None.
    (``date.fromisoformat`` alone also reads ``20260308`` and ``2026-W10-1``.)"""
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def first_incomplete_date(metadata: Mapping[str, Any]) -> object:
    """The freshness marker as sent, in either spelling (None when absent)."""
    value = metadata.get("first_incomplete_date")
    return value if value is not None else metadata.get("firstIncompleteDate")


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}..."


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def _bad(what: str, where: str, value: object) -> InvalidAnswer:
    return InvalidAnswer(f"searchAnalytics.query answer: {where}: {what} ({_shown(value)})")


def _count(row: Mapping[str, Any], name: str, where: str) -> int:
    value = row.get(name)
    if type(value) is int and 0 <= value < MAX_COUNT:  # the common case, fast
        return value
    if type(value) is float and math.isfinite(value) and value.is_integer():
        if 0 <= value < MAX_COUNT:
            return int(value)
    raise _bad(f"{name} is not a finite non-negative integer below 2**63", where, value)


def _number(row: Mapping[str, Any], name: str, where: str) -> float:
    value = row.get(name)
    if type(value) is float and math.isfinite(value) and value >= 0:
        return value
    if type(value) is int and 0 <= value < MAX_COUNT:
        return float(value)
    raise _bad(f"{name} is not a finite non-negative number", where, value)


def _position(row: Mapping[str, Any], where: str) -> float | None:
    """Absent for types that report none (Discover, Google News)."""
    return None if row.get("position") is None else _number(row, "position", where)


class Expected:
    """What the answer to one request may hold: its dimensions and its date range."""

    def __init__(self, request: Mapping[str, Any]) -> None:
        dims = request.get("dimensions") or []
        self.dimensions: tuple[str, ...] = tuple(str(d) for d in dims)
        self.date_at = tuple(i for i, d in enumerate(self.dimensions) if d.lower() == "date")
        self.start = iso_day(request.get("startDate"))
        self.end = iso_day(request.get("endDate"))
        self._days: dict[str, bool] = {}  # date keys already judged

    def day_ok(self, key: str) -> bool:
        """Whether ``key`` is a ``YYYY-MM-DD`` day of the requested range."""
        known = self._days.get(key)
        if known is None:
            day = iso_day(key)
            known = (
                day is not None
                and (self.start is None or day >= self.start)
                and (self.end is None or day <= self.end)
            )
            self._days[key] = known
        return known

    def describe_range(self) -> str:
        if self.start is not None and self.start == self.end:
            return f"the requested day {self.start}"
        return f"a day from {self.start or '...'} to {self.end or '...'}"


def row_hook() -> Callable[[dict[str, Any]], Any]:
    """An object hook for ``json.loads`` of one query answer: a row of the usual shape
    becomes an ApiRow the moment it is decoded, its key strings shared with the rows
    before it. A 25,000-row page then never exists as 25,000 dicts holding their own copy
    of every page URL and query (most of a big day's memory). Anything else stays a dict,
    for ``parse_query`` to check and name what is wrong."""
    shared: dict[str, str] = {}
    share = shared.setdefault

    def hook(obj: dict[str, Any]) -> Any:
        keys, clicks, impressions = obj.get("keys"), obj.get("clicks"), obj.get("impressions")
        ctr, position = obj.get("ctr"), obj.get("position")
        if (
            type(keys) is list
            and type(clicks) is int
            and 0 <= clicks < MAX_COUNT
            and type(impressions) is int
            and 0 <= impressions < MAX_COUNT
            and type(ctr) is float
            and 0.0 <= ctr < math.inf
            and (position is None or (type(position) is float and 0.0 <= position < math.inf))
            and all([type(k) is str for k in keys])
        ):
            return ApiRow(tuple([share(k, k) for k in keys]), clicks, impressions, ctr, position)
        return obj

    return hook


def parse_query(doc: Mapping[str, Any], request: Mapping[str, Any]) -> Answer:
    """A ``searchAnalytics.query`` answer checked against ``request``; BadResponse if any
    row breaks the contract."""
    raw = doc.get("rows")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _bad("rows is not a list", "rows", type(raw).__name__)
    metadata = doc.get("metadata")
    expected = Expected(request)
    width, date_at, day_ok = len(expected.dimensions), expected.date_at, expected.day_ok
    rows: list[ApiRow] = []
    append = rows.append
    for n, row in enumerate(raw):
        if type(row) is ApiRow:  # shaped by row_hook while decoding: the request's rules
            if len(row.keys) == width and width and all([day_ok(row.keys[at]) for at in date_at]):
                append(row)
                continue
            row = row._asdict() | {"keys": list(row.keys)}  # checked again, to name the fault
        # Rows Google sends arrive typed by row_hook; any other row goes through
        # _checked_row, which accepts it or says what is wrong.
        append(_checked_row(row, f"row {n}", expected))
    return Answer(rows, metadata if isinstance(metadata, dict) else {})


def _checked_row(row: object, where: str, expected: Expected) -> ApiRow:
    """One row, every rule checked in turn: the first broken one is the error."""
    if type(row) is not dict:
        raise _bad("not an object", where, type(row).__name__)
    keys = row.get("keys")
    width = len(expected.dimensions)
    found: tuple[str, ...] = ()
    if width:
        if type(keys) is not list:
            raise _bad(f"keys is not a list of {width} strings", where, keys)
        if len(keys) != width:
            raise _bad(f"{len(keys)} keys for {width} dimensions", where, keys)
        for key in keys:
            if type(key) is not str:
                raise _bad("a key is not a string", where, key)
        for at in expected.date_at:
            if not expected.day_ok(keys[at]):
                raise _bad(f"date key is not {expected.describe_range()}", where, keys[at])
        found = tuple(keys)
    elif keys is not None and keys != []:
        raise _bad("keys in an answer to a request without dimensions", where, keys)
    return ApiRow(
        found,
        _count(row, "clicks", where),
        _count(row, "impressions", where),
        _number(row, "ctr", where),
        _position(row, where),
    )


def query_parser(request: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Answer]:
    """The validator of the answer to ``request`` (run by the client on every try)."""
    frozen = dict(request)
    return lambda doc: parse_query(doc, frozen)


def parse_sites(doc: Mapping[str, Any]) -> list[Site]:
    """A ``sites.list`` answer: entries without a string ``siteUrl`` are skipped."""
    entries = doc.get("siteEntry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidAnswer("sites.list answer: siteEntry is not a list")
    sites = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidAnswer("sites.list answer: an entry is not an object")
        url, level = entry.get("siteUrl"), entry.get("permissionLevel")
        if isinstance(url, str) and url:
            sites.append(Site(url, level if isinstance(level, str) else ""))
    return sites


def token_problem(doc: Mapping[str, Any]) -> str | None:
    """What makes a 200 token answer unusable (None when usable): google-auth would take a
    missing token for a refusal and raise ValueError on a non-numeric ``expires_in``."""
    token = doc.get("access_token")
    if not isinstance(token, str) or not token:
        return "no access_token"
    expires = doc.get("expires_in")
    if expires is None:
        return None
    if isinstance(expires, str) and re.fullmatch(r"-?\d{1,10}", expires):
        return None  # google-auth reads a numeric string
    if type(expires) in (int, float) and math.isfinite(expires) and abs(expires) < 10**10:
        return None
    return f"expires_in is not a number of seconds ({_shown(expires)})"


# -- error answers ---------------------------------------------------------------------


def error_from_response(response: httpx.Response) -> ApiError:
    """Turn an error answer into the matching typed error."""
    return error_from_answer(
        response.status_code, response.reason_phrase, response.headers, response.content
    )


def error_from_answer(
    status: int, phrase: str, headers: Mapping[str, str], content: bytes
) -> ApiError:
    """The typed error for an answer with this status, headers and (possibly cut) body."""
    message, reason, info = _parse_error_body(status, phrase, content)
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
            message, status=status, reason=reason, retry_after=_retry_after(headers)
        )
    if status == 429 or key in RATE_REASONS:
        return RateLimited(message, status=status, reason=reason, retry_after=_retry_after(headers))
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


def _parse_error_body(status: int, phrase: str, content: bytes) -> tuple[str, str, str]:
    """(message, reason, ErrorInfo reason) of Google's error envelope, any subset of it."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return phrase or f"HTTP {status}", "", ""
    message = one_line(str(error.get("message") or phrase or "error"))
    errors = error.get("errors")
    reason = ""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = one_line(str(errors[0].get("reason") or ""), 60)
    info = ""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            info = str(detail.get("reason") or "")
            metadata = detail.get("metadata")
            if isinstance(metadata, dict) and metadata.get("consumer"):
                message += f" (consumer {one_line(str(metadata['consumer']), 80)})"
    return message, reason or one_line(str(error.get("status") or ""), 60), info


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
