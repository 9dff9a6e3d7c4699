"""``gscsync demo``: the real sync path against the built-in emulator, no Google account.

The only module of the product that imports the emulator, so a cron run never loads it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from gscsync.commands import run_sync
from gscsync.config import Settings
from gscsync.emulator import (
    DEMO_SITES,
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    SiteData,
    new_service_account_key,
)
from gscsync.models import SEARCH_TYPE_NAMES, Outcome, ProgressCallback


def run_demo(db_path: Path, *, on_progress: ProgressCallback | None = None) -> Outcome:
    """Start the emulator on a free loopback port, write a throwaway service-account key
    whose ``token_uri`` points at it, and sync the demo properties for every search type."""
    key = new_service_account_key()
    config = EmulatorConfig(
        sites=[SiteData(url) for url in DEMO_SITES],
        public_keys={key.client_email: key.public_pem},
    )
    with EmulatorServer(Emulator(config)) as server, tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(
            Settings(),
            credentials=key.write(Path(tmp) / "demo-key.json", f"{server.url}/token"),
            sites=DEMO_SITES,
            search_types=SEARCH_TYPE_NAMES,
            db=db_path,
            api_url=server.url,
            timeout=10.0,
            qpm=10_000,  # a local emulator has no per-minute quota to respect
        )
        return run_sync(settings, on_progress=on_progress)
