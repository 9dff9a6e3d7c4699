"""A small in-process fake of the Search Console API for pytest-httpx unit tests.

The end-to-end tests use the real emulator over loopback; this fake answers inside the
test process so that each unit test states exactly the rows and errors it serves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

API = "https://gsc.test"
TOKEN_URI = "https://oauth2.test/token"


@dataclass
class FakeGsc:
    """Rows by (site, type, date); everything up to ``final_through`` is final."""

    final_through: str
    rows: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)  # site -> permissionLevel
    forbidden: set[str] = field(default_factory=set)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # served first, in order
    tokens_issued: int = 0
    requests: list[httpx.Request] = field(default_factory=list)
    marker_key: str = "first_incomplete_date"
    pings: list[str] = field(default_factory=list)  # healthcheck URLs pinged

    def add_day(self, site: str, stype: str, day: str, n: int, *, fresh: bool = False) -> None:
        out = []
        for i in range(n):
            row = {
                "keys": [day, f"q{i}", f"https://ex.test/p{i % 7}", "usa", "MOBILE"],
                "clicks": n - i,
                "impressions": 10 * (n - i),
                "ctr": 0.1,
                "position": 1.0 + i,
            }
            out.append(row)
        self.rows[(site, stype, day)] = out

    # -- routing ------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) == TOKEN_URI:
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"tok-{self.tokens_issued}",
                    "expires_in": 3599,
                    "token_type": "Bearer",
                },
            )
        if request.url.host == "hc-down.test":
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.host == "hc.test":
            self.pings.append(request.url.path)
            return httpx.Response(200, text="OK")
        if self.errors:
            status, reason, message = self.errors.pop(0)
            return error(status, reason, message)
        path = request.url.raw_path.decode().split("?")[0]
        parts = path.split("/")
        if path == "/webmasters/v3/sites":
            return httpx.Response(
                200,
                json={
                    "siteEntry": [
                        {"siteUrl": s, "permissionLevel": p} for s, p in self.sites.items()
                    ]
                },
            )
        site = unquote(parts[4])
        if site in self.forbidden:
            return error(
                403,
                "forbidden",
                f"User does not have sufficient permission for site '{site}'.",
            )
        return self.query(site, json.loads(request.content))

    def query(self, site: str, body: dict[str, Any]) -> httpx.Response:
        stype = body.get("type", "web")
        start, end = body["startDate"], body["endDate"]
        dims = body.get("dimensions", [])
        state = body.get("dataState", "final")
        days = sorted(
            d
            for (s, t, d) in self.rows
            if s == site
            and t == stype
            and start <= d <= end
            and (state == "all" or d <= self.final_through)
        )
        out: list[dict[str, Any]] = []
        if dims == ["date"]:
            for d in days:
                rows = self.rows[(site, stype, d)]
                clicks = sum(r["clicks"] for r in rows) + 3  # anonymized queries
                impressions = sum(r["impressions"] for r in rows) + 30
                out.append(
                    {
                        "keys": [d],
                        "clicks": clicks,
                        "impressions": impressions,
                        "ctr": clicks / impressions,
                        "position": 4.5,
                    }
                )
        elif dims == ["searchAppearance"]:
            if days:
                out.append(
                    {"keys": ["VIDEO"], "clicks": 1, "impressions": 2, "ctr": 0.5, "position": 3.0}
                )
        else:
            for d in days:
                for r in self.rows[(site, stype, d)]:
                    keys = dict(
                        zip(["date", "query", "page", "country", "device"], r["keys"], strict=True)
                    )
                    row = {**r, "keys": [keys[k] for k in dims]}
                    if stype in ("discover", "googleNews"):
                        row.pop("position")
                    out.append(row)
        start_row, limit = body.get("startRow", 0), body.get("rowLimit", 1000)
        page = out[start_row : start_row + limit]
        doc: dict[str, Any] = {"responseAggregationType": "byProperty"}
        if page:
            doc["rows"] = page
        if state == "all" and dims and dims[0] == "date" and end > self.final_through:
            nxt = _next_day(self.final_through)
            doc["metadata"] = {self.marker_key: nxt}
        return httpx.Response(200, json=doc)

    def bodies(self, *, detail: bool | None = None) -> list[dict[str, Any]]:
        """JSON bodies of the searchAnalytics requests (detail=True: per-day detail only)."""
        out = []
        for r in self.requests:
            if r.method != "POST" or str(r.url) == TOKEN_URI:
                continue
            body = json.loads(r.content)
            is_detail = body.get("dimensions", [None])[0] == "date" and len(body["dimensions"]) > 1
            if detail is None or detail == is_detail:
                out.append(body)
        return out


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def error(status: int, reason: str, message: str) -> httpx.Response:
    """Google's JSON error envelope."""
    return httpx.Response(
        status,
        json={
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        },
    )
