"""Credentials files and token flows through google-auth over httpx; token answers that
are no token (expired on arrival, unusable fields, too big, too slow, echoing secrets)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gscsync.api.auth import EARLY_REFRESH_EVERY, GoogleAuth, HttpxRequest, load_credentials
from gscsync.api.client import GscClient, make_retrying
from gscsync.api.transport import BoundedTransport
from gscsync.emulator import new_service_account_key
from gscsync.errors import AuthError, BadResponse, ConfigError, NetworkError, ServerError
from tests.conftest import run_cli, write_json
from tests.fakes import API, TOKEN_URI, error


def token(value: str) -> dict[str, object]:
    return {"access_token": value, "expires_in": 3599, "token_type": "Bearer"}


def authed_client(path: Path) -> GscClient:
    auth = GoogleAuth(load_credentials(path), HttpxRequest(httpx.Client()))
    return GscClient(httpx.Client(auth=auth), base_url=API)


def test_service_account_posts_a_jwt_to_the_files_token_uri(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-1"))
    httpx_mock.add_response(url=f"{API}/webmasters/v3/sites", json={})
    authed_client(sa_key).list_sites()
    token_request, api_request = httpx_mock.get_requests()
    form = parse_qs(token_request.content.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert form["assertion"][0].count(".") == 2
    assert api_request.headers["Authorization"] == "Bearer tok-1"


def test_authorized_user_file_keeps_its_own_token_uri(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    path = write_json(
        tmp_path / "user.json",
        {
            "type": "authorized_user",
            "client_id": "cid",
            "client_secret": "cs",
            "refresh_token": "rt-1",
            "token_uri": TOKEN_URI,
        },
    )
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-u"))
    httpx_mock.add_response(url=f"{API}/webmasters/v3/sites", json={})
    authed_client(path).list_sites()
    form = parse_qs(httpx_mock.get_requests()[0].content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["rt-1"]


def test_a_401_refreshes_the_token_once_and_retries(httpx_mock: HTTPXMock, sa_key: Path) -> None:
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-1"))
    httpx_mock.add_response(
        url=f"{API}/webmasters/v3/sites",
        match_headers={"Authorization": "Bearer tok-1"},
        **_resp(error(401, "authError", "Request had invalid authentication")),
    )
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-2"))
    httpx_mock.add_response(
        url=f"{API}/webmasters/v3/sites",
        match_headers={"Authorization": "Bearer tok-2"},
        json={"siteEntry": [{"siteUrl": "sc-domain:a.com", "permissionLevel": "siteOwner"}]},
    )
    assert [s.url for s in authed_client(sa_key).list_sites()] == ["sc-domain:a.com"]
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == 2


def _resp(response: httpx.Response) -> dict[str, object]:
    return {"status_code": response.status_code, "json": response.json()}


def test_invalid_grant_is_an_auth_error_without_secrets(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URI,
        status_code=400,
        json={"error": "invalid_grant", "error_description": "Invalid JWT"},
    )
    with pytest.raises(AuthError, match="invalid_grant: Invalid JWT") as info:
        authed_client(sa_key).list_sites()
    assert "PRIVATE" not in str(info.value)


def test_invalid_grant_exits_3_from_the_cli(
    httpx_mock: HTTPXMock,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", "sc-domain:example.com")
    httpx_mock.add_response(
        url=TOKEN_URI, status_code=400, json={"error": "invalid_grant"}, is_reusable=True
    )
    assert run_cli("sync") == 3
    err = capsys.readouterr().err
    assert "invalid_grant" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("not json", "is not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"type": "external_account"}), "type is 'external_account'"),
        (
            json.dumps({"type": "service_account", "client_email": "a@b"}),
            "lacks private_key, token_uri",
        ),
        (
            json.dumps(
                {
                    "type": "service_account",
                    "client_email": "a@b",
                    "token_uri": "https://t",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----",
                }
            ),
            "cannot be loaded",
        ),
        (
            json.dumps({"type": "authorized_user", "client_id": "x"}),
            "lacks client_secret, refresh_token",
        ),
    ],
)
def test_bad_credentials_files_are_config_errors_naming_the_file(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "creds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=needle) as info:
        load_credentials(path)
    assert str(path) in str(info.value) and "nope" not in str(info.value)


def test_bad_credentials_exit_2_before_the_database_is_touched(
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(bad))
    monkeypatch.setenv("GSCSYNC_SITES", "sc-domain:example.com")
    assert run_cli("sync") == 2
    assert str(bad) in capsys.readouterr().err
    assert not api_env.exists()


# -- token answers that are no token: never a ValueError, never a loop, never a secret ------
SITES = f"{API}/webmasters/v3/sites"


def retried(path: Path, clock: list[float] | None = None) -> GscClient:
    now = clock or [0.0]
    auth = GoogleAuth(load_credentials(path), HttpxRequest(httpx.Client()), clock=lambda: now[0])
    retrying = make_retrying(ATTEMPTS, sleep=lambda _: None)
    return GscClient(httpx.Client(auth=auth), base_url=API, retrying=retrying)


ATTEMPTS = 3


def test_tokens_expired_on_arrival_are_refreshed_at_most_every_30_s(
    httpx_mock: HTTPXMock, sa_key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URI, json={**token("tok-0"), "expires_in": 0}, is_reusable=True
    )
    httpx_mock.add_response(url=SITES, json={}, is_reusable=True)  # the API takes them
    clock = [1000.0]
    api = retried(sa_key, clock)
    for _ in range(10):
        api.list_sites()
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == 1  # not one per request
    assert "already expired" in caplog.text
    clock[0] += EARLY_REFRESH_EVERY + 1
    api.list_sites()  # the second expired token in a row fails its try; the retry goes on
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == 2
    assert len(httpx_mock.get_requests(url=SITES)) == 11


@pytest.mark.parametrize("expires_in", [0, -3600, 60])
def test_an_endpoint_issuing_only_dead_tokens_is_an_outage_not_a_refusal(
    httpx_mock: HTTPXMock, sa_key: Path, expires_in: int
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URI, json={**token("tok-0"), "expires_in": expires_in}, is_reusable=True
    )
    httpx_mock.add_response(
        url=SITES, **_resp(error(401, "authError", "Request had invalid")), is_reusable=True
    )
    with pytest.raises(ServerError, match="keeps issuing expired tokens"):
        retried(sa_key).list_sites()
    # each try: one API request (401), one token request; plus the very first token
    assert len(httpx_mock.get_requests(url=SITES)) == ATTEMPTS
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == ATTEMPTS + 1


@pytest.mark.parametrize(
    "answer",
    [
        '{"access_token": "tok-x", "expires_in": "soon", "token_type": "Bearer"}',
        '{"access_token": "tok-x", "expires_in": "3599.5", "token_type": "Bearer"}',
        '{"access_token": "tok-x", "expires_in": NaN, "token_type": "Bearer"}',
        '{"access_token": "tok-x", "expires_in": 1e300, "token_type": "Bearer"}',
        '{"access_token": "tok-x", "expires_in": {"s": 1}, "token_type": "Bearer"}',
        '{"access_token": "tok-x", "expires_in": true, "token_type": "Bearer"}',
        '{"expires_in": 3599, "token_type": "Bearer"}',
        '{"access_token": 12345, "expires_in": 3599}',
        '{"access_token": "", "expires_in": 3599}',
        '{"access_token": "tok-x", "expires_in": 3599',
        '{"access_token": "tok-x", "expires_in": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
)
def test_a_token_answer_without_a_usable_token_is_a_bad_response_and_retried(
    httpx_mock: HTTPXMock, sa_key: Path, answer: str
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, text=answer)
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-2"))
    httpx_mock.add_response(url=SITES, json={})
    seen: list[BaseException] = []
    auth = GoogleAuth(load_credentials(sa_key), HttpxRequest(httpx.Client()))
    retrying = make_retrying(ATTEMPTS, sleep=lambda _: None, on_retry=lambda e, *_: seen.append(e))
    GscClient(httpx.Client(auth=auth), base_url=API, retrying=retrying).list_sites()
    assert [type(e) for e in seen] == [BadResponse]
    assert len(str(seen[0])) < 200 and "tok-x" not in str(seen[0])
    assert httpx_mock.get_requests(url=SITES)[0].headers["Authorization"] == "Bearer tok-2"


def test_a_token_answer_past_its_size_cap_is_a_bad_response(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, text=json.dumps(token("tok-1")) + " " * 2_000_000)
    with pytest.raises(BadResponse, match="answer larger than 1 MB"):
        GoogleAuth(load_credentials(sa_key), HttpxRequest(httpx.Client())).token()


def echo(request: httpx.Request) -> httpx.Response:
    """A token endpoint refusing with the whole request form in its description."""
    described = f"Bad request: {request.content.decode()}"
    return httpx.Response(400, json={"error": "invalid_grant", "error_description": described})


def test_a_refusal_echoing_the_assertion_never_quotes_it(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_callback(echo, url=TOKEN_URI)
    with pytest.raises(AuthError, match="invalid_grant: Bad request: assertion=") as info:
        authed_client(sa_key).list_sites()
    (sent,) = parse_qs(httpx_mock.get_requests(url=TOKEN_URI)[0].content.decode())["assertion"]
    message = str(info.value)
    assert "[redacted]" in message and sent[:16] not in message and "\n" not in message


def test_a_refusal_echoing_the_refresh_token_and_client_secret_never_quotes_them(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    secret, refresh = "GOCSPX-s3cr3t/value+with=odd&chars", "1//0refresh/token+with=odd"
    path = write_json(
        tmp_path / "user.json",
        {
            "type": "authorized_user",
            "client_id": "cid",
            "client_secret": secret,
            "refresh_token": refresh,
            "token_uri": TOKEN_URI,
        },
    )

    def echo_json_escaped(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qs(request.content.decode()))
        text = json.dumps({"error": "invalid_grant", "error_description": str(form)})
        return httpx.Response(400, text=text.replace("/", "\\/"))  # as some servers escape

    httpx_mock.add_callback(echo, url=TOKEN_URI)
    httpx_mock.add_callback(echo_json_escaped, url=TOKEN_URI)
    for _ in range(2):
        with pytest.raises(AuthError) as info:
            authed_client(path).list_sites()
        message = str(info.value)
        for value in (secret, refresh, "s3cr3t", "0refresh"):
            assert value not in message
        assert "[redacted]" in message


class DripServer(threading.Thread):
    """A token endpoint that sends its headers at once, then the body a byte per 0.3 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/token"

    def run(self) -> None:
        with self.sock:
            conn, _ = self.sock.accept()
        body = json.dumps(token("tok-slow")).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode())
            for byte in body:
                conn.sendall(bytes([byte]))
                time.sleep(0.3)


def test_a_drip_fed_token_answer_ends_at_the_timeout(tmp_path: Path) -> None:
    drip = DripServer()
    drip.start()
    key = new_service_account_key()
    path = key.write(tmp_path / "key.json", drip.url)
    started = time.monotonic()
    with httpx.Client(transport=BoundedTransport()) as http:
        auth = GoogleAuth(load_credentials(path), HttpxRequest(http, timeout=1.0))
        with pytest.raises(NetworkError, match=r"token endpoint timed out after 1 s"):
            auth.token()
    assert time.monotonic() - started < 1.6  # not the 20 s the body would take
    drip.join(5)


def test_a_token_endpoint_that_redirects_is_refused_not_followed(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URI, status_code=302, headers={"Location": "https://login.example/"}, json={}
    )
    with pytest.raises(AuthError, match=r"redirected \(HTTP 302\) to https://login.example/"):
        authed_client(sa_key).list_sites()
    assert len(httpx_mock.get_requests()) == 1
