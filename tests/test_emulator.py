"""The emulator's behaviour, point by point, so that passing against it means something."""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from google.auth import jwt as gjwt
from google.auth.crypt import RSASigner

from gscsync.emulator import (
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    SiteData,
    new_service_account_key,
)
from gscsync.emulator.data import DAILY_ROW_CAP
from gscsync.emulator.server import ApiAnswer

SITE = "sc-domain:shop.example"
KEY = new_service_account_key("robot@p.iam.gserviceaccount.com")


def emulator(**kwargs: Any) -> Emulator:
    sites = kwargs.pop(
        "sites", [SiteData(SITE), SiteData("https://x.example/", permission="siteUnverifiedUser")]
    )
    return Emulator(
        EmulatorConfig(sites=sites, public_keys={KEY.client_email: KEY.public_pem}, **kwargs)
    )


def q(emu: Emulator, **body: Any) -> dict[str, Any]:
    final = emu.final_through().isoformat()
    body.setdefault("startDate", final)
    body.setdefault("endDate", final)
    return emu.query(SITE, body)


def bad(emu: Emulator, **body: Any) -> str:
    with pytest.raises(ApiAnswer) as info:
        q(emu, **body)
    assert info.value.status == 400
    return str(info.value.body["error"]["message"])


def assertion(
    *,
    aud: str = "https://oauth2.googleapis.com/token",
    key: Any = KEY,
    scope: str = "https://www.googleapis.com/auth/webmasters.readonly",
) -> str:
    signer = RSASigner.from_string(key.private_pem, "k")
    now = int(time.time())
    return gjwt.encode(
        signer, {"iss": key.client_email, "aud": aud, "scope": scope, "iat": now, "exp": now + 3600}
    ).decode()


# -- tokens ------------------------------------------------------------------------------
def test_jwt_grant_checks_signature_audience_and_scope() -> None:
    emu = emulator()
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    doc = emu.token({"grant_type": grant, "assertion": assertion()})
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 3599
    other = new_service_account_key("robot@p.iam.gserviceaccount.com")
    for bad_assertion in (
        assertion(key=other),
        assertion(aud="http://127.0.0.1/token"),
        assertion(scope="https://www.googleapis.com/auth/drive"),
        "x.y",
    ):
        with pytest.raises(ApiAnswer) as info:
            emu.token({"grant_type": grant, "assertion": bad_assertion})
        assert info.value.status == 400 and info.value.body["error"] == "invalid_grant"


def test_refresh_grant_checks_known_refresh_tokens() -> None:
    emu = emulator(refresh_tokens={"rt-1": "cid"})
    assert emu.token({"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "cid"})[
        "access_token"
    ]
    with pytest.raises(ApiAnswer):
        emu.token({"grant_type": "refresh_token", "refresh_token": "rt-2", "client_id": "cid"})


def test_tokens_expire_and_calls_without_one_get_googles_401() -> None:
    emu = emulator(token_lifetime=0)
    token = emu.token(
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion()}
    )["access_token"]
    for header in (f"Bearer {token}", None, "Bearer nope"):
        with pytest.raises(ApiAnswer) as info:
            emu.authorize(header)
        err = info.value.body["error"]
        assert info.value.status == 401 and err["errors"][0]["reason"] == "authError"
        assert err["status"] == "UNAUTHENTICATED"


# -- sites -------------------------------------------------------------------------------
def test_sites_list_and_forbidden_sites() -> None:
    emu = emulator()
    assert emu.list_sites() == {
        "siteEntry": [
            {"siteUrl": SITE, "permissionLevel": "siteOwner"},
            {"siteUrl": "https://x.example/", "permissionLevel": "siteUnverifiedUser"},
        ]
    }
    assert emulator(sites=[]).list_sites() == {}
    for site in ("https://x.example/", "sc-domain:unknown.example", "https://shop.example/"):
        with pytest.raises(ApiAnswer) as info:
            emu.query(site, {"startDate": "2026-01-01", "endDate": "2026-01-01"})
        assert info.value.status == 403
        assert "sufficient permission" in info.value.body["error"]["message"]


# -- searchAnalytics.query ---------------------------------------------------------------
def test_rows_sorted_by_clicks_and_totals_include_anonymized_queries() -> None:
    emu = emulator()
    rows = q(emu, dimensions=["query"], rowLimit=25000)["rows"]
    clicks = [r["clicks"] for r in rows]
    assert clicks == sorted(clicks, reverse=True)
    (total,) = q(emu)["rows"]
    assert "keys" not in total
    assert total["clicks"] > sum(clicks)  # anonymized queries count only in totals
    by_page = q(emu, dimensions=["page"], rowLimit=25000)["rows"]
    (page_total,) = q(emu, aggregationType="byPage")["rows"]
    assert sum(r["clicks"] for r in by_page) == page_total["clicks"] >= total["clicks"]


def test_final_hides_fresh_days_and_all_adds_them_with_the_marker() -> None:
    emu = emulator()
    start = (emu.final_through() - timedelta(days=2)).isoformat()
    end = emu.today().isoformat()
    final = q(emu, startDate=start, endDate=end, dimensions=["date"])
    assert [r["keys"][0] for r in final["rows"]][-1] == emu.final_through().isoformat()
    assert "metadata" not in final
    both = q(emu, startDate=start, endDate=end, dimensions=["date"], dataState="ALL")
    assert [r["keys"][0] for r in both["rows"]][-1] == end
    marker = (emu.final_through() + timedelta(days=1)).isoformat()
    assert both["metadata"] == {"firstIncompleteDate": marker}  # discovery's spelling
    emu.config.marker_key = "first_incomplete_date"
    assert q(emu, startDate=start, endDate=end, dimensions=["date"], dataState="all")[
        "metadata"
    ] == {"first_incomplete_date": marker}


def test_fresh_days_grow_and_turn_final_when_the_clock_moves() -> None:
    emu = emulator()
    fresh_day = (emu.final_through() + timedelta(days=1)).isoformat()
    before = q(emu, startDate=fresh_day, endDate=fresh_day, dataState="all")["rows"][0]
    assert q(emu, startDate=fresh_day, endDate=fresh_day).get("rows") is None
    emu.advance(1)
    after = q(emu, startDate=fresh_day, endDate=fresh_day)["rows"][0]
    assert after["clicks"] > before["clicks"]


def test_type_and_deprecated_search_type_and_enum_spellings() -> None:
    emu = emulator()
    a = q(emu, type="image", dimensions=["query"])
    assert a == q(emu, searchType="IMAGE", dimensions=["QUERY"])
    assert a != q(emu, dimensions=["query"])
    assert q(emu, type="GOOGLE_NEWS") == q(emu, type="googleNews")


def test_discover_and_google_news_rows_have_no_position() -> None:
    emu = emulator()
    for t in ("discover", "googleNews"):
        rows = q(emu, type=t, dimensions=["page"])["rows"]
        assert rows and all("position" not in r for r in rows)
    assert all("position" in r for r in q(emu, dimensions=["page"])["rows"])


@pytest.mark.parametrize(
    ("op", "expr", "check"),
    [
        ("equals", "usa", lambda v: v == "usa"),
        ("notEquals", "usa", lambda v: v != "usa"),
        ("contains", "US", lambda v: "us" in v),
        ("notContains", "a", lambda v: "a" not in v),
        ("includingRegex", "^(deu|fra)$", lambda v: v in ("deu", "fra")),
        ("EXCLUDING_REGEX", "a", lambda v: "a" not in v),
    ],
)
def test_filters_all_six_operators(op: str, expr: str, check: Any) -> None:
    emu = emulator()
    body = {
        "dimensions": ["country"],
        "dimensionFilterGroups": [
            {"filters": [{"dimension": "country", "operator": op, "expression": expr}]}
        ],
    }
    rows = q(emu, **body)["rows"]
    assert rows and all(check(r["keys"][0]) for r in rows)
    everything = {r["keys"][0] for r in q(emu, dimensions=["country"])["rows"]}
    assert {r["keys"][0] for r in rows} == {v for v in everything if check(v)}


def test_page_and_query_equals_is_case_sensitive_contains_is_not() -> None:
    emu = emulator()
    page = q(emu, dimensions=["page"])["rows"][0]["keys"][0]
    flt = lambda op, e: [{"filters": [{"dimension": "page", "operator": op, "expression": e}]}]  # noqa: E731
    assert q(emu, dimensions=["page"], dimensionFilterGroups=flt("equals", page))["rows"]
    assert "rows" not in q(
        emu, dimensions=["page"], dimensionFilterGroups=flt("equals", page.upper())
    )
    assert q(emu, dimensions=["page"], dimensionFilterGroups=flt("contains", page.upper()))["rows"]


def test_paging_row_limit_start_row_and_empty_rows_omitted() -> None:
    emu = emulator()
    everything = q(emu, dimensions=["query"], rowLimit=25000)["rows"]
    page = q(emu, dimensions=["query"], rowLimit=10, startRow=5)["rows"]
    assert page == everything[5:15]
    assert len(q(emu, dimensions=["query"])["rows"]) == min(1000, len(everything))
    assert "rows" not in q(emu, dimensions=["query"], startRow=len(everything))
    assert bad(emu, rowLimit=0) and bad(emu, rowLimit=25001) and bad(emu, startRow=-1)


def test_the_per_day_row_cap() -> None:
    big = SiteData(SITE, rows_per_day={"web": 70_000})
    emu = emulator(sites=[big])
    first = q(
        emu,
        dimensions=["date", "query", "page", "country", "device"],
        rowLimit=25000,
        startRow=25000,
    )
    rest = q(
        emu,
        dimensions=["date", "query", "page", "country", "device"],
        rowLimit=25000,
        startRow=50000,
    )
    assert len(first["rows"]) == 25000 and "rows" not in rest
    assert DAILY_ROW_CAP == 50_000


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"dimensions": ["searchAppearance", "page"]}, "search appearance"),
        ({"type": "discover", "dimensions": ["query"]}, "Discover"),
        ({"type": "discover", "dimensions": ["device"]}, "grouped by device"),
        ({"type": "googleNews", "dimensions": ["query"]}, "Google News"),
        ({"aggregationType": "byProperty", "dimensions": ["page"]}, "property"),
        (
            {
                "aggregationType": "BY_PROPERTY",
                "dimensionFilterGroups": [{"filters": [{"dimension": "page", "expression": "x"}]}],
            },
            "property",
        ),
        ({"aggregationType": "byProperty", "type": "discover"}, "property"),
        ({"dimensions": ["query", "query"]}, "more than once"),
        ({"startDate": "2026-02-02", "endDate": "2026-02-01"}, "startDate"),
        ({"dimensions": ["hour"]}, "HOURLY_ALL"),
        ({"dimensions": ["colour"]}, "dimensions"),
        ({"type": "shopping"}, "type"),
    ],
)
def test_refused_combinations_are_400s(body: dict[str, Any], needle: str) -> None:
    assert needle in bad(emulator(), **body)


def test_search_appearance_alone() -> None:
    rows = q(emulator(), dimensions=["searchAppearance"])["rows"]
    assert rows and all(r["keys"][0].isupper() for r in rows)


# -- over HTTP: routing, faults ----------------------------------------------------------
@pytest.fixture
def served() -> Any:
    with EmulatorServer(emulator()) as server:
        token = httpx.post(
            f"{server.url}/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion(),
            },
        ).json()["access_token"]
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        yield server, client
        client.close()


def query_url(site: str = SITE) -> str:
    return f"/webmasters/v3/sites/{quote(site, safe='')}/searchAnalytics/query?alt=json"


def test_http_routes(served: Any) -> None:
    server, client = served
    assert client.get("/webmasters/v3/sites").json()["siteEntry"][0]["siteUrl"] == SITE
    assert client.get(f"/webmasters/v3/sites/{quote(SITE, safe='')}").json() == {
        "siteUrl": SITE,
        "permissionLevel": "siteOwner",
    }
    day = server.emulator.final_through().isoformat()
    r = client.post(query_url(), json={"startDate": day, "endDate": day})
    assert r.status_code == 200 and r.json()["responseAggregationType"] == "byProperty"
    assert client.post(query_url("https://x.example/"), json={}).status_code == 403
    assert httpx.get(f"{server.url}/webmasters/v3/sites").status_code == 401


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ("rate_429", 429, "rateLimitExceeded"),
        ("rate_500", 500, "backendError"),
        ("rate_503", 503, "backendError"),
    ],
)
def test_fault_rates_answer_googles_errors(
    served: Any, fault: str, status: int, reason: str
) -> None:
    server, client = served
    server.emulator.config.faults = Faults(**{fault: 1.0})
    r = client.post(query_url(), json={"startDate": "2026-01-01", "endDate": "2026-01-01"})
    assert r.status_code == status and r.json()["error"]["errors"][0]["reason"] == reason


def test_dropped_connections_and_truncated_bodies(served: Any) -> None:
    server, client = served
    server.emulator.config.faults = Faults(rate_drop=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(query_url(), json={"startDate": "2026-01-01", "endDate": "2026-01-01"})
    server.emulator.config.faults = Faults(rate_truncate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(query_url(), json={"startDate": "2026-01-01", "endDate": "2026-01-01"})


def test_load_quota_after_n_queries_and_admin_endpoints(served: Any) -> None:
    server, client = served
    r = client.post("/_emulator/faults", json={"quota_after": 2})
    assert r.status_code == 200
    answers = [
        client.post(query_url(), json={"startDate": "2026-01-01", "endDate": "2026-01-01"})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 403, 403]
    assert answers[2].json()["error"]["errors"][0]["reason"] == "quotaExceeded"
    before = client.get("/_emulator/stats").json()
    after = client.post("/_emulator/clock", json={"advance_days": 2}).json()
    assert after["final_through"] > before["final_through"]
    assert before["stats"]["query"] == 2


def test_latency(served: Any) -> None:
    server, client = served
    server.emulator.config.faults = Faults(latency=0.3)
    started = time.monotonic()
    client.post(query_url(), json={"startDate": "2026-01-01", "endDate": "2026-01-01"})
    assert time.monotonic() - started >= 0.3


def test_latency_holds_the_time_making_the_answer_took(served: Any) -> None:
    # Faults.latency is how long an answer takes, as Google's include their own work: the
    # emulator's time making it (0.4 s here) is inside the 0.6 s, not added to it.
    server, client = served
    server.emulator.config.faults = Faults(latency=0.6)
    real = server.emulator.query

    def slow(site: str, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.4)
        return real(site, body)

    server.emulator.query = slow
    started = time.monotonic()
    r = client.post(query_url(), json={"startDate": "2026-01-01", "endDate": "2026-01-01"})
    took = time.monotonic() - started
    assert r.status_code == 200 and 0.6 <= took < 0.95  # not 1.0: latency plus making


def test_unparseable_request_body_is_a_400(served: Any) -> None:
    _, client = served
    r = client.post(query_url(), content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and json.loads(r.content)["error"]["code"] == 400


# -- hostile answers (gscsync.emulator.faults) --------------------------------------------
DIMS = ["date", "query", "page", "country", "device"]


def detail(server: Any, day: str | None = None) -> dict[str, Any]:
    day = day or server.emulator.final_through().isoformat()
    return {"startDate": day, "endDate": day, "dimensions": DIMS}


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("nan", lambda r, ok: math.isnan(r[0]["clicks"])),
        ("infinity", lambda r, ok: r[0]["impressions"] == math.inf),
        ("string_number", lambda r, ok: r[0]["clicks"] == "12abc"),
        ("huge", lambda r, ok: r[0]["impressions"] == 2**63),
        ("keys_not_list", lambda r, ok: r[0]["keys"] == ",".join(ok[0]["keys"])),
        ("short_keys", lambda r, ok: r[0]["keys"] == ok[0]["keys"][:-1]),
        ("no_keys", lambda r, ok: "keys" not in r[0] and "keys" in r[1]),
        (
            "wrong_date",
            lambda r, ok: (
                len(r) == len(ok) + 1
                and r[-1]["keys"][1:] == ok[0]["keys"][1:]
                and r[-1]["keys"][0] < ok[0]["keys"][0]
            ),
        ),
    ],
)
def test_bad_rows_break_the_first_row_of_the_answers_for_the_bad_day(
    served: Any, kind: str, check: Any
) -> None:
    server, client = served
    bad = server.emulator.final_through()
    good_day = (bad - timedelta(days=1)).isoformat()
    clean = client.post(query_url(), json=detail(server)).json()["rows"]
    server.emulator.config.faults = Faults(bad_rows=kind, bad_day=bad.isoformat())
    rows = json.loads(client.post(query_url(), json=detail(server)).content)["rows"]
    assert check(rows, clean) and rows[1 : len(clean)] == clean[1:]
    # other days, and the probe over a range holding the bad day, are left alone
    assert (
        client.post(query_url(), json=detail(server, good_day)).json()["rows"][0]
        == (server.emulator.query(SITE, detail(server, good_day))["rows"][0])
    )
    week = {"startDate": good_day, "endDate": bad.isoformat(), "dimensions": ["date"]}
    assert json.loads(client.post(query_url(), json=week).content)["rows"][1]["clicks"] >= 0
    server.emulator.config.faults = Faults()  # and the answer cache was not poisoned
    assert client.post(query_url(), json=detail(server)).json()["rows"] == clean


def test_probe_faults_break_the_date_grouped_answers(served: Any) -> None:
    server, client = served
    emu = server.emulator
    start = (emu.today() - timedelta(days=6)).isoformat()
    probe = {"startDate": start, "endDate": emu.today().isoformat(), "dimensions": ["date"]}
    emu.config.faults = Faults(bad_rows="probe_bad_date")
    rows = client.post(query_url(), json={**probe, "dataState": "all"}).json()["rows"]
    assert rows[0]["keys"][0].endswith("-02-30")
    emu.config.faults = Faults(bad_rows="bad_marker")
    doc = client.post(query_url(), json={**probe, "dataState": "all"}).json()
    tomorrow = emu.today() + timedelta(days=1)
    assert doc["metadata"] == {"firstIncompleteDate": tomorrow.strftime("%Y%m%d")}
    assert client.post(query_url(), json=detail(server)).json()["rows"][0]["clicks"] >= 0


def test_redirects_drips_and_oversized_bodies(served: Any) -> None:
    server, client = served
    server.emulator.config.faults = Faults(redirect=True)
    r = client.post(query_url(), json=detail(server))
    assert r.status_code == 302 and r.headers["Location"].startswith("https://accounts.")
    assert r.json() == {"responseAggregationType": "byProperty"}  # JSON, but no answer
    assert client.get("/webmasters/v3/sites").status_code == 302
    server.emulator.config.faults = Faults(oversize=3_000_000)
    r = client.post(query_url(), json=detail(server))
    assert len(r.content) == 3_000_000 and r.json()["rows"]
    server.emulator.config.faults = Faults(drip=0.02)
    started = time.monotonic()
    size = len(client.get("/webmasters/v3/sites").content)
    assert time.monotonic() - started >= 0.02 * (size - 1)


def test_the_token_endpoint_can_echo_the_whole_form(served: Any) -> None:
    server, _ = served
    server.emulator.config.faults = Faults(echo_token_errors=True)
    form = {"grant_type": "refresh_token", "client_secret": "GOCSPX-x", "refresh_token": "1//r"}
    r = httpx.post(f"{server.url}/token", data=form)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "client_secret=GOCSPX-x" in r.json()["error_description"]


def test_an_unknown_bad_rows_kind_is_refused(served: Any) -> None:
    _, client = served
    with pytest.raises(ValueError, match="bad_rows"):
        Faults(bad_rows="gibberish")
    assert client.post("/_emulator/faults", json={"bad_rows": "gibberish"}).status_code == 400
