"""Credentials files and token flows through google-auth over httpx."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gscsync.api.auth import GoogleAuth, HttpxRequest, load_credentials
from gscsync.api.client import GscClient
from gscsync.errors import AuthError, ConfigError
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
