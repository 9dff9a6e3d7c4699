from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpx import HTTPXMock

from gscsync.config import ENV_VARS
from gscsync.dates import pacific_today
from tests.fakes import API, TOKEN_URI, FakeGsc


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No GSCSYNC_* from the developer's shell, and a fresh working directory."""
    for name in (*ENV_VARS, "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    gcloud = tmp_path / "gcloud-config"  # never the developer's own gcloud credentials
    gcloud.mkdir()
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


@pytest.fixture
def sa_key(tmp_path: Path, private_key_pem: str) -> Path:
    return write_json(
        tmp_path / "sa.json",
        {
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "k1",
            "private_key": private_key_pem,
            "client_email": "sync@p.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": TOKEN_URI,
        },
    )


@pytest.fixture
def today() -> date:
    return pacific_today()


@pytest.fixture
def fake(today: date) -> FakeGsc:
    """Two sites; final through today-3 (so today-2..today are fresh)."""
    return FakeGsc(final_through=(today - timedelta(days=3)).isoformat())


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, sa_key: Path, tmp_path: Path) -> Path:
    """Settings pointing at the fake API; returns the database path."""
    db = tmp_path / "gsc.db"
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(sa_key))
    monkeypatch.setenv("GSCSYNC_API_URL", API)
    monkeypatch.setenv("GSCSYNC_DB", str(db))
    # the fake answers the detail's requests; the report tables are tested on the emulator
    monkeypatch.setenv("GSCSYNC_TABLES", "none")
    return db


@pytest.fixture
def monitored(
    httpx_mock: HTTPXMock,
    fake: FakeGsc,
    api_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> FakeGsc:
    """The fake API serving sc-domain:example.com (web), with a health check and metrics."""
    httpx_mock.add_callback(fake, is_reusable=True)
    monkeypatch.setenv("GSCSYNC_SITES", "sc-domain:example.com")
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web")
    monkeypatch.setenv("GSCSYNC_HEALTHCHECK_URL", "https://hc.test/check-1")
    monkeypatch.setenv("GSCSYNC_METRICS_FILE", str(tmp_path / "gscsync.prom"))
    return fake


def run_cli(*args: str) -> int:
    """Run the CLI in-process; returns its exit code."""
    from gscsync.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    code = info.value.code
    return int(code) if isinstance(code, int) else 1


HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from gscsync.lock import hold_lock\n"
    "with hold_lock(Path(sys.argv[1])):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


@contextmanager
def lock_held_elsewhere(lock: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``lock`` (as a running gscsync would) until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.communicate()
