"""A local HTTP server speaking the Search Console API contract (GSC-API.md).

Routes, on any host: ``POST /token`` (JWT-bearer and refresh-token grants),
``GET /webmasters/v3/sites``, ``GET /webmasters/v3/sites/{site}``,
``POST /webmasters/v3/sites/{site}/searchAnalytics/query``; and for tests
``GET /_emulator/stats``, ``POST /_emulator/clock`` (``{"advance_days": n}``),
``POST /_emulator/faults`` (any field of :class:`Faults`), ``POST /_emulator/expire_tokens``.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import google.auth.exceptions
from google.auth import jwt

from gscsync.emulator import faults as hostile
from gscsync.emulator.data import (
    PACIFIC,
    QueryError,
    SiteData,
    answer,
    day_hours,
    hour_key,
    parse_query,
    resolve_aggregation,
)

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
SCOPES = {
    "https://www.googleapis.com/auth/webmasters.readonly",
    "https://www.googleapis.com/auth/webmasters",
}
ANSWER_CACHE = 64  # full query answers kept (oldest dropped first)
PERMISSION_HELP = "See also: https://support.google.com/webmasters/answer/2451999."


@dataclass
class Faults:
    """Failure injection, decided per Search Analytics request from a seeded draw."""

    # seconds every Search Analytics answer takes, computing it included (an answer goes out
    # no sooner; the emulator's own work does not add to it, as Google's is inside its own)
    latency: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0  # connection closed with no answer
    rate_truncate: float = 0.0  # answer cut off half way
    quota_after: int | None = None  # 403 quotaExceeded once this many queries were served
    quota_for: float | None = None  # ... for this many seconds, then served again (a burst)
    always_fail: bool = False  # every query answers 500
    # every call answers this 403: accessNotConfigured, insufficientPermissions,
    # quotaProject (user credentials without a quota project) or dailyLimitExceeded
    forbid: str | None = None
    # hostile answers (gscsync.emulator.faults): an invalid row of this kind in the
    # answers for bad_day (all answers when None), 302s, slow, huge or endless bodies,
    # token refusals quoting the request's secrets
    bad_rows: str | None = None
    bad_day: str | None = None  # YYYY-MM-DD
    redirect: bool = False
    drip: float | None = None  # seconds between body bytes
    oversize: int | None = None  # body padded to this many bytes; -1: endless
    echo_token_errors: bool = False

    def __post_init__(self) -> None:
        if self.bad_rows is not None and self.bad_rows not in hostile.KINDS:
            raise ValueError(f"bad_rows: {self.bad_rows!r} is not one of {hostile.KINDS}")


@dataclass
class EmulatorConfig:
    """What the emulator serves."""

    sites: list[SiteData] = field(default_factory=list)
    seed: int = 1
    lag_days: int = 3  # days before today still incomplete: final through today - lag
    token_lifetime: int = 3599
    marker_key: str = "firstIncompleteDate"  # as discovery spells it; or "first_incomplete_date"
    #   (the hourly marker is spelled to match: firstIncompleteHour, first_incomplete_hour)
    # True: by property, a search showing several of the property's pages counts once
    # (its topmost page), so totals by property fall below those by page, as Google's do.
    # Off by default: tests/test_emulator.py's totals test (and a CLI reading totals by
    # property as the sum of its page rows) expects both to sum every row
    property_overlap: bool = True
    # Google's irregular ways, each off by default:
    omit_marker: bool = False  # no freshness marker at all (its absence proves nothing)
    short_pages: int | None = None  # pages of at most this many rows, short mid-stream
    shuffle_ties: bool = False  # equal-click rows in a new order on every request, and
    #   each page after the first repeats the last row of the one before
    edge_lag_days: int = 0  # serve this many days less history than 16 months
    row_cap: int = 50_000  # detail rows served per day and type, after the filters
    public_keys: dict[str, str] = field(default_factory=dict)  # client_email -> PEM
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> client_id
    faults: Faults = field(default_factory=Faults)


class ApiAnswer(Exception):
    """An HTTP answer to send (used for errors)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _domain(reason: str) -> str:
    usage = {"quotaExceeded", "rateLimitExceeded", "dailyLimitExceeded", "accessNotConfigured"}
    return "usageLimits" if reason in usage else "global"


def google_error(status: int, reason: str, message: str, grpc: str) -> ApiAnswer:
    """Google's classic JSON error envelope."""
    return ApiAnswer(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": _domain(reason), "reason": reason}],
                "status": grpc,
            }
        },
    )


class Emulator:
    """The state and logic; :class:`EmulatorServer` puts it on a socket."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.sites = {s.url: s for s in config.sites}
        self.clock_offset = timedelta()
        self.tokens: dict[str, float] = {}  # access token -> expiry (time.time)
        self.lock = threading.Lock()
        self.stats: dict[str, int] = {
            "token": 0,
            "sites": 0,
            "query": 0,
            "detail": 0,
            "unauthorized": 0,
            "faults": 0,
        }
        self.queries_served = 0
        self.log: list[tuple[str, dict[str, Any]]] = []  # (site, body) of each query answered
        self.quota_since: float | None = None
        self.rng = random.Random(config.seed)
        self._answers: dict[tuple[Any, ...], tuple[list[dict[str, Any]], bool]] = {}

    # -- clock ---------------------------------------------------------------------------
    def now(self) -> datetime:
        """The emulator's time, in America/Los_Angeles."""
        return (datetime.now(UTC) + self.clock_offset).astimezone(PACIFIC)

    def today(self) -> date:
        return self.now().date()

    def earliest(self) -> date:
        """The oldest day served: 16 months back (day clamped), less ``edge_lag_days``."""
        t = self.today()
        year, month = (t.year - 1, t.month - 4) if t.month > 4 else (t.year - 2, t.month + 8)
        day = t.day
        while True:
            try:
                edge = date(year, month, day)
                break
            except ValueError:
                day -= 1
        return edge + timedelta(days=self.config.edge_lag_days)

    def final_through(self) -> date:
        return self.today() - timedelta(days=self.config.lag_days)

    def advance(self, days: int) -> None:
        """Move the clock: fresh days turn final."""
        with self.lock:
            self.clock_offset += timedelta(days=days)

    # -- tokens --------------------------------------------------------------------------
    def token(self, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if self.config.faults.echo_token_errors:
            raise ApiAnswer(400, hostile.echo_form(form))
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self._check_assertion(form.get("assertion", ""))
        elif grant == "refresh_token":
            known = self.config.refresh_tokens
            if known and known.get(form.get("refresh_token", "")) != form.get("client_id"):
                raise ApiAnswer(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                )
        else:
            raise ApiAnswer(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": f"Invalid grant_type: {grant}",
                },
            )
        access = "ya29.emu-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[access] = time.time() + self.config.token_lifetime
            self.stats["token"] += 1
        return {
            "access_token": access,
            "expires_in": self.config.token_lifetime,
            "token_type": "Bearer",
        }

    def _check_assertion(self, assertion: str) -> None:
        def refuse(why: str) -> ApiAnswer:
            return ApiAnswer(400, {"error": "invalid_grant", "error_description": why})

        try:
            claims = jwt.decode(assertion, verify=False)
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            raise refuse("Invalid JWT: malformed assertion.") from None
        issuer = str(claims.get("iss", ""))
        key = self.config.public_keys.get(issuer)
        if self.config.public_keys and key is None:
            raise refuse("Invalid JWT Signature.")
        if key is not None:
            try:  # checks the RS256 signature against the key registered for the issuer
                jwt.decode(assertion, certs=key, audience=GOOGLE_TOKEN_AUDIENCE)
            except (ValueError, google.auth.exceptions.GoogleAuthError):
                raise refuse("Invalid JWT Signature.") from None
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            raise refuse("Invalid JWT: audience is not the Google token endpoint.")
        if not SCOPES & set(str(claims.get("scope", "")).split()):
            raise refuse("Invalid JWT: no Search Console scope requested.")

    def expire_tokens(self) -> None:
        """Invalidate every access token issued so far (a token expiring mid-run)."""
        with self.lock:
            self.tokens.clear()

    def authorize(self, header: str | None) -> None:
        token = (header or "").removeprefix("Bearer ").strip()
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is None or expiry <= time.time():
                self.stats["unauthorized"] += 1
                raise google_error(
                    401,
                    "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    "UNAUTHENTICATED",
                )

    # -- API ----------------------------------------------------------------------------
    def list_sites(self) -> dict[str, Any]:
        with self.lock:
            self.stats["sites"] += 1
        entries = [{"siteUrl": s.url, "permissionLevel": s.permission} for s in self.sites.values()]
        return {"siteEntry": entries} if entries else {}

    def site(self, url: str) -> SiteData:
        site = self.sites.get(url)
        if site is None or site.permission == "siteUnverifiedUser":
            raise google_error(
                403,
                "forbidden",
                f"User does not have sufficient permission for site '{url}'. {PERMISSION_HELP}",
                "PERMISSION_DENIED",
            )
        return site

    def query(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.log.append((url, body))
        site = self.site(url)
        try:
            q = parse_query(body)
        except QueryError as exc:
            raise google_error(400, "badRequest", str(exc), "INVALID_ARGUMENT") from None
        now = self.now()
        today = now.date()
        final_through = today - timedelta(days=self.config.lag_days)
        hourly = q.state == "hourlyall"
        # One full answer per query, paging aside: the pages of one query are cheap. An
        # hourly answer grows with every hour of today.
        key = (
            url,
            replace(q, start_row=0, row_limit=1),
            today,
            final_through,
            self.earliest(),
            now.replace(minute=0, second=0, microsecond=0) if hourly else None,
            self.config.property_overlap,  # switches a test may flip between queries
            self.config.row_cap,
        )
        with self.lock:
            cached = self._answers.get(key)
        if cached is None:
            cached = answer(
                q,
                self.config.seed,
                site,
                today=today,
                final_through=final_through,
                earliest=self.earliest(),
                cap=self.config.row_cap,
                property_overlap=self.config.property_overlap,
                now=now,
            )
            with self.lock:
                if len(self._answers) >= ANSWER_CACHE:
                    self._answers.pop(next(iter(self._answers)))
                self._answers[key] = cached
        rows, has_fresh = cached
        with self.lock:
            self.stats["detail" if len(q.dimensions) > 1 else "query"] += 1
        page = self._page(rows, q.start_row, q.row_limit)
        doc: dict[str, Any] = {"responseAggregationType": resolve_aggregation(q)}
        if page:
            doc["rows"] = page
        if has_fresh and not self.config.omit_marker:
            first_incomplete = final_through + timedelta(days=1)
            if q.state == "all" and "date" in q.dimensions:
                doc["metadata"] = {self.config.marker_key: first_incomplete.isoformat()}
            elif hourly and "hour" in q.dimensions:
                doc["metadata"] = {self.hour_marker_key(): hour_key(day_hours(first_incomplete)[0])}
        return doc

    def hour_marker_key(self) -> str:
        """The hourly freshness marker's name, spelled as ``marker_key`` spells the daily
        one: ``firstIncompleteHour`` or ``first_incomplete_hour``."""
        return self.config.marker_key.replace("Date", "Hour").replace("date", "hour")

    def _page(self, rows: list[dict[str, Any]], start: int, limit: int) -> list[dict[str, Any]]:
        c = self.config
        if c.short_pages:
            limit = min(limit, c.short_pages)
        if not c.shuffle_ties:
            return rows[start : start + limit]
        page = [dict(r) for r in rows[max(0, start - 1) : start + limit]][: limit + (start > 0)]
        with self.lock:
            keys = [(-r["clicks"], self.rng.random()) for r in page]
        order = sorted(range(len(page)), key=keys.__getitem__)
        return [page[i] for i in order]

    def fault(self) -> str | None:
        """The fault to inject into this Search Analytics request, if any."""
        f = self.config.faults
        with self.lock:
            self.queries_served += 1
            if f.forbid:
                self.stats["faults"] += 1
                return f.forbid
            if f.quota_after is not None and self.queries_served > f.quota_after:
                if self.quota_since is None:
                    self.quota_since = time.monotonic()
                if f.quota_for is None or time.monotonic() - self.quota_since < f.quota_for:
                    self.stats["faults"] += 1
                    return "quota"
            if f.always_fail:
                self.stats["faults"] += 1
                return "500"
            draw = self.rng.random()
        for name, rate in (
            ("429", f.rate_429),
            ("500", f.rate_500),
            ("503", f.rate_503),
            ("drop", f.rate_drop),
            ("truncate", f.rate_truncate),
        ):
            if draw < rate:
                with self.lock:
                    self.stats["faults"] += 1
                return name
            draw -= rate
        return None


FAULT_ERRORS = {
    "429": (429, "rateLimitExceeded", "Rate Limit Exceeded", "RESOURCE_EXHAUSTED"),
    "500": (500, "backendError", "Backend Error", "INTERNAL"),
    "503": (503, "backendError", "The service is currently unavailable.", "UNAVAILABLE"),
    "quota": (403, "quotaExceeded", "Search Analytics load quota exceeded.", "RESOURCE_EXHAUSTED"),
    "dailyLimitExceeded": (
        403,
        "dailyLimitExceeded",
        "Daily Limit Exceeded.",
        "RESOURCE_EXHAUSTED",
    ),
    "accessNotConfigured": (
        403,
        "accessNotConfigured",
        "Google Search Console API has not been used in project 123456789012 before or it is "
        "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
        "searchconsole.googleapis.com/overview?project=123456789012 then retry.",
        "PERMISSION_DENIED",
    ),
    "insufficientPermissions": (
        403,
        "insufficientPermissions",
        "Request had insufficient authentication scopes.",
        "PERMISSION_DENIED",
    ),
    "quotaProject": (
        403,
        "forbidden",
        "Your application is authenticating by using local Application Default Credentials. "
        "The searchconsole.googleapis.com API requires a quota project, which is not set by "
        "default.",
        "PERMISSION_DENIED",
    ),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK of the headers (40 ms on Linux loopback), a delay Google's
    # servers do not have and that made every request look 40 ms slower than it is.
    disable_nagle_algorithm = True
    server: EmulatorServer
    _due: float | None = None  # when the Search Analytics answer being made may go out

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        parts = path.split("/")
        try:
            if method == "POST" and path == "/token":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                return self._send(200, emu.token(form))
            if path.startswith("/_emulator/"):
                return self._send(200, self._admin(method, path, raw))
            if parts[1:4] != ["webmasters", "v3", "sites"]:
                raise google_error(404, "notFound", f"No such method: {path}", "NOT_FOUND")
            emu.authorize(self.headers.get("Authorization"))
            forbid = emu.config.faults.forbid
            if method == "GET" and forbid and forbid != "dailyLimitExceeded":
                raise google_error(*FAULT_ERRORS[forbid])  # the whole API refuses
            if method == "GET" and len(parts) == 4:
                if emu.config.faults.redirect and emu.config.faults.bad_day is None:
                    return self._redirect()
                return self._send(200, emu.list_sites(), api=True)
            site = unquote(parts[4])
            if method == "GET" and len(parts) == 5:
                s = emu.site(site)
                return self._send(200, {"siteUrl": s.url, "permissionLevel": s.permission})
            if method == "POST" and parts[5:] == ["searchAnalytics", "query"]:
                return self._query(site, raw)
            raise google_error(404, "notFound", f"No such method: {path}", "NOT_FOUND")
        except ApiAnswer as exc:
            self._send(exc.status, exc.body)

    def _query(self, site: str, raw: bytes) -> None:
        emu = self.server.emulator
        if emu.config.faults.latency:
            self._due = time.monotonic() + emu.config.faults.latency
        fault = emu.fault()
        if fault in FAULT_ERRORS:
            raise google_error(*FAULT_ERRORS[fault])
        if fault == "drop":
            self._hold()
            self.close_connection = True
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise google_error(
                400, "parseError", "Invalid JSON payload received.", "INVALID_ARGUMENT"
            ) from None
        doc = emu.query(site, body)
        f = emu.config.faults
        if f.redirect and (f.bad_day is None or hostile.targeted("nan", body, f.bad_day)):
            return self._redirect()
        if f.bad_rows and hostile.targeted(f.bad_rows, body, f.bad_day):
            doc = hostile.corrupt(
                doc, body, f.bad_rows, marker_key=emu.config.marker_key, today=emu.today()
            )
            with emu.lock:
                emu.stats["faults"] += 1
        self._send(200, doc, truncate=fault == "truncate", api=True)

    def _redirect(self) -> None:
        """302 with a JSON body, as a login page or a misconfigured proxy might send."""
        with self.server.emulator.lock:
            self.server.emulator.stats["faults"] += 1
        self._send(302, {"responseAggregationType": "byProperty"}, location=hostile.REDIRECT_TO)

    def _admin(self, method: str, path: str, raw: bytes) -> dict[str, Any]:
        emu = self.server.emulator
        body = json.loads(raw or b"{}") if method == "POST" else {}
        if path == "/_emulator/clock" and method == "POST":
            emu.advance(int(body.get("advance_days", 0)))
        elif path == "/_emulator/faults" and method == "POST":
            names = {f.name for f in fields(Faults)}
            try:
                emu.config.faults = Faults(
                    **{**asdict(emu.config.faults), **{k: v for k, v in body.items() if k in names}}
                )
            except ValueError as exc:
                raise google_error(400, "badRequest", str(exc), "INVALID_ARGUMENT") from None
        elif path == "/_emulator/expire_tokens" and method == "POST":
            emu.expire_tokens()
        elif path == "/_emulator/stats" and method == "GET":
            pass
        else:
            raise google_error(404, "notFound", f"No such method: {path}", "NOT_FOUND")
        with emu.lock:
            return {
                "stats": dict(emu.stats),
                "today": emu.today().isoformat(),
                "final_through": emu.final_through().isoformat(),
            }

    def _send(
        self,
        status: int,
        doc: dict[str, Any],
        *,
        truncate: bool = False,
        api: bool = False,
        location: str | None = None,
    ) -> None:
        """Answer ``doc`` as JSON; ``api`` answers (not the token endpoint's, not the test
        hooks') get the body faults: drip, oversize."""
        payload = json.dumps(doc).encode()
        self._hold()
        f = self.server.emulator.config.faults
        size = f.oversize if api and f.oversize is not None else len(payload)
        drip = f.drip if api else None
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            if location is not None:
                self.send_header("Location", location)
            if size >= 0:
                self.send_header("Content-Length", str(max(size, len(payload))))
            else:  # endless: the body ends when the connection does
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if truncate:
                self.wfile.write(payload[: len(payload) // 2])
                self.close_connection = True
            elif drip:
                for i in range(len(payload)):
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                self.wfile.write(payload)
                self._pad(size - len(payload) if size >= 0 else None)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: fine
            self.close_connection = True

    def _hold(self) -> None:
        """Wait until the answer is due (``Faults.latency`` after the query came)."""
        if self._due is not None:
            time.sleep(max(0.0, self._due - time.monotonic()))
            self._due = None

    def _pad(self, count: int | None) -> None:
        """``count`` bytes of whitespace (None: until the client hangs up)."""
        block = b" " * 65536
        while count is None or count > 0:
            chunk = block if count is None else block[: min(count, len(block))]
            self.wfile.write(chunk)
            if count is not None:
                count -= len(chunk)


class EmulatorServer(ThreadingHTTPServer):
    """The emulator on 127.0.0.1; ``port=0`` picks a free port."""

    daemon_threads = True

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.emulator = emulator
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EmulatorServer:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.02},  # each shutdown waits up to one poll
            name="gscsync-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
