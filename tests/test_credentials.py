"""Credentials as google-auth reads them: quota project, scopes, rapt token, the gcloud
application default credentials file, and token endpoint outages told from refusals."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gscsync.api.auth import SCOPE, GoogleAuth, HttpxRequest, load_credentials
from gscsync.api.client import GscClient, make_retrying
from gscsync.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    NetworkError,
    RateLimited,
    ServerError,
    TransientError,
)
from tests.conftest import run_cli, write_json
from tests.fakes import API, TOKEN_URI

SITES = f"{API}/webmasters/v3/sites"
ADC_NAME = "application_default_credentials.json"


def token(value: str) -> dict[str, object]:
    return {"access_token": value, "expires_in": 3599, "token_type": "Bearer"}


def user_info(**extra: Any) -> dict[str, Any]:
    """An authorized-user file as ``gcloud auth application-default login`` writes it."""
    return {
        "type": "authorized_user",
        "client_id": "cid",
        "client_secret": "cs",
        "refresh_token": "rt-1",
        "token_uri": TOKEN_URI,
        **extra,
    }


class Retries:
    """A client with the real retry policy (3 attempts, no sleeping) that records retries."""

    def __init__(self, path: Path | None, attempts: int = 3) -> None:
        self.seen: list[BaseException] = []
        auth = GoogleAuth(load_credentials(path), HttpxRequest(httpx.Client()))
        retrying = make_retrying(
            attempts, sleep=lambda _: None, on_retry=lambda exc, *_: self.seen.append(exc)
        )
        self.client = GscClient(httpx.Client(auth=auth), base_url=API, retrying=retrying)


@pytest.fixture
def adc_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """CLOUDSDK_CONFIG pointing at an empty gcloud config directory."""
    path = tmp_path / "gcloud"
    path.mkdir()
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(path))
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    return path


# -- the file, read by google-auth's constructors -------------------------------------------


def test_quota_project_goes_on_every_api_request_and_the_files_token_uri_is_called(
    httpx_mock: HTTPXMock, tmp_path: Path, adc_dir: Path
) -> None:
    path = write_json(tmp_path / "adc.json", user_info(quota_project_id="billing-7"))
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-u"))
    httpx_mock.add_response(url=SITES, json={}, is_reusable=True)
    client = Retries(path).client
    client.list_sites()
    client.list_sites()
    token_request, *api_requests = httpx_mock.get_requests()
    assert token_request.url == TOKEN_URI
    assert len(api_requests) == 2
    for request in api_requests:
        assert request.headers["x-goog-user-project"] == "billing-7"
        assert request.headers["Authorization"] == "Bearer tok-u"


def test_the_rapt_token_of_the_file_is_sent_with_the_refresh(
    httpx_mock: HTTPXMock, tmp_path: Path, adc_dir: Path
) -> None:
    path = write_json(tmp_path / "adc.json", user_info(rapt_token="rapt-1"))
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-u"))
    httpx_mock.add_response(url=SITES, json={})
    Retries(path).client.list_sites()
    form = parse_qs(httpx_mock.get_requests(url=TOKEN_URI)[0].content.decode())
    assert form["rapt"] == ["rapt-1"] and form["refresh_token"] == ["rt-1"]
    assert form["scope"] == [SCOPE]  # the file names no scopes: ours
    assert "x-goog-user-project" not in httpx_mock.get_requests(url=SITES)[0].headers


CLOUD = "https://www.googleapis.com/auth/cloud-platform"


@pytest.mark.parametrize("scopes", [[CLOUD, SCOPE], f"{CLOUD} {SCOPE}"])
def test_a_file_naming_scopes_refreshes_with_those_scopes(
    httpx_mock: HTTPXMock, tmp_path: Path, adc_dir: Path, scopes: object
) -> None:
    path = write_json(tmp_path / "adc.json", user_info(scopes=scopes))
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-u"))
    httpx_mock.add_response(url=SITES, json={})
    Retries(path).client.list_sites()
    form = parse_qs(httpx_mock.get_requests(url=TOKEN_URI)[0].content.decode())
    assert form["scope"] == [f"{CLOUD} {SCOPE}"]


def test_scopes_that_are_not_strings_are_a_config_error(tmp_path: Path) -> None:
    path = write_json(tmp_path / "adc.json", user_info(scopes=[1, 2]))
    with pytest.raises(ConfigError, match="scopes is not a list of scope URLs") as info:
        load_credentials(path)
    assert str(path) in str(info.value) and "rt-1" not in str(info.value)


@pytest.mark.parametrize("key", ["installed", "web"])
def test_an_oauth_client_secret_file_gets_its_own_message(tmp_path: Path, key: str) -> None:
    client = {"client_id": "1.apps.googleusercontent.com", "client_secret": "GOCSPX-hush"}
    path = write_json(tmp_path / "client_secret.json", {key: client})
    with pytest.raises(ConfigError) as info:
        load_credentials(path)
    message = str(info.value)
    assert "OAuth client" in message and str(path) in message
    assert "gcloud auth application-default login --scopes=" in message
    assert "service-account key" in message
    assert "GOCSPX-hush" not in message and "\n" not in message


# -- gcloud's application default credentials file ------------------------------------------


def test_the_adc_file_is_used_when_no_path_is_configured(
    httpx_mock: HTTPXMock, adc_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adc = write_json(adc_dir / ADC_NAME, user_info(quota_project_id="billing-7"))
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-u"))
    httpx_mock.add_response(url=SITES, json={})
    with caplog.at_level(logging.INFO, logger="gscsync"):
        Retries(None).client.list_sites()
    assert str(adc) in caplog.text
    assert httpx_mock.get_requests(url=SITES)[0].headers["x-goog-user-project"] == "billing-7"


def test_no_credentials_anywhere_names_every_way_to_give_them(adc_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_credentials(None)
    message = str(info.value)
    for needle in (
        "GSCSYNC_CREDENTIALS",
        "GOOGLE_APPLICATION_CREDENTIALS",
        str(adc_dir / ADC_NAME),
        "gcloud auth application-default login --scopes=" + SCOPE,
    ):
        assert needle in message
    assert "\n" not in message


def test_a_sync_with_only_the_adc_file_reaches_the_token_endpoint(
    httpx_mock: HTTPXMock,
    api_env: Path,
    adc_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No GSCSYNC_CREDENTIALS: the ADC file is read, and its refusal exits 3 (not 2)."""
    monkeypatch.delenv("GSCSYNC_CREDENTIALS")
    monkeypatch.setenv("GSCSYNC_SITES", "sc-domain:example.com")
    write_json(adc_dir / ADC_NAME, user_info())
    httpx_mock.add_response(
        url=TOKEN_URI, status_code=400, json={"error": "invalid_grant"}, is_reusable=True
    )
    assert run_cli("sync") == 3
    err = capsys.readouterr().err
    assert "invalid_grant" in err and "rt-1" not in err


# -- the token endpoint: an outage is transient, a refusal is an AuthError ------------------


def test_token_endpoint_5xx_is_retried_by_the_clients_policy(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, status_code=500, text="oops")
    httpx_mock.add_response(url=TOKEN_URI, status_code=503, json={"error": "backend"})
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-3"))
    httpx_mock.add_response(url=SITES, json={})
    retries = Retries(sa_key)
    assert retries.client.list_sites() == []
    assert [type(e) for e in retries.seen] == [ServerError, ServerError]
    assert "token endpoint answered 500" in str(retries.seen[0])
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == 3
    assert httpx_mock.get_requests(url=SITES)[0].headers["Authorization"] == "Bearer tok-3"


def test_a_token_endpoint_that_stays_down_is_a_server_error(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, status_code=500, text="down", is_reusable=True)
    retries = Retries(sa_key)
    with pytest.raises(ServerError, match="token endpoint answered 500"):
        retries.client.list_sites()
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == 3  # one per attempt, no more
    assert not httpx_mock.get_requests(url=SITES)


HTML = "<html><body>Service temporarily unavailable</body></html>"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"status_code": 200, "html": HTML}, BadResponse),
        ({"status_code": 400, "html": HTML}, BadResponse),
        ({"status_code": 401, "text": ""}, BadResponse),
        ({"status_code": 200, "json": ["not", "an", "object"]}, BadResponse),
        ({"status_code": 502, "html": HTML}, ServerError),
        (
            {"status_code": 429, "json": {"error": "rate"}, "headers": {"Retry-After": "0"}},
            RateLimited,
        ),
        ({"status_code": 408, "json": {"error": "timeout"}}, NetworkError),
        ({"status_code": 400, "json": {"error": "temporarily_unavailable"}}, ServerError),
    ],
)
def test_unusable_token_answers_are_transient_and_retried(
    httpx_mock: HTTPXMock,
    tmp_path: Path,
    adc_dir: Path,
    answer: dict[str, Any],
    kind: type[TransientError],
) -> None:
    path = write_json(tmp_path / "adc.json", user_info())
    httpx_mock.add_response(url=TOKEN_URI, **answer)
    httpx_mock.add_response(url=TOKEN_URI, json=token("tok-2"))
    httpx_mock.add_response(url=SITES, json={})
    retries = Retries(path)
    retries.client.list_sites()
    assert [type(e) for e in retries.seen] == [kind]
    assert "token endpoint answered" in str(retries.seen[0])


def test_html_from_the_token_endpoint_until_the_end_is_a_bad_response(
    httpx_mock: HTTPXMock, sa_key: Path
) -> None:
    httpx_mock.add_response(url=TOKEN_URI, html=HTML, is_reusable=True)
    with pytest.raises(BadResponse, match="not a JSON object \\(text/html\\)") as info:
        Retries(sa_key).client.list_sites()
    assert "<html>" not in str(info.value)
    assert len(httpx_mock.get_requests(url=TOKEN_URI)) == 3


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, "invalid_grant"), (401, "invalid_client"), (400, "unauthorized_client")],
)
def test_a_json_refusal_of_the_adc_file_is_an_auth_error_and_not_retried(
    httpx_mock: HTTPXMock, adc_dir: Path, status: int, error: str
) -> None:
    write_json(adc_dir / ADC_NAME, user_info(quota_project_id="billing-7"))
    httpx_mock.add_response(
        url=TOKEN_URI, status_code=status, json={"error": error, "error_description": "no"}
    )
    retries = Retries(None)
    with pytest.raises(AuthError, match=f"{error}: no") as info:
        retries.client.list_sites()
    assert "rt-1" not in str(info.value) and "cs" not in str(info.value).split()
    assert retries.seen == []


def test_a_token_endpoint_outage_exits_1_not_3(
    httpx_mock: HTTPXMock,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", "sc-domain:example.com")
    monkeypatch.setenv("GSCSYNC_MAX_ATTEMPTS", "1")
    httpx_mock.add_response(url=TOKEN_URI, status_code=503, html=HTML, is_reusable=True)
    assert run_cli("sync") == 1
    assert "token endpoint answered 503" in capsys.readouterr().err


def test_the_adc_file_content_never_reaches_an_error(tmp_path: Path, adc_dir: Path) -> None:
    (adc_dir / ADC_NAME).write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    with pytest.raises(ConfigError, match="lacks client_secret, refresh_token") as info:
        load_credentials(None)
    assert str(adc_dir / ADC_NAME) in str(info.value)


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "huge"])
def test_a_credentials_path_that_is_not_a_small_regular_file_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    import os
    import threading

    path = tmp_path / "creds.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.write_bytes(b" " * (2 << 20))
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_credentials(path)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "blocked or read without end"
    assert isinstance(outcome[0], ConfigError) and str(path) in str(outcome[0])
