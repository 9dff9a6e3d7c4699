"""The end-to-end harness: the emulator in this process, the real CLI in a subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from gscsync.config import Settings
from gscsync.emulator import (
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    SiteData,
    new_service_account_key,
)
from gscsync.fetch import dimensions_for

GOOD = ("sc-domain:shop.example", "https://blog.example/")
TYPES = ("web", "discover", "googleNews", "news")
KEY = new_service_account_key()
SHOP = "sc-domain:shop.example"  # the one property of the in-process runs


def shop_server(rows_per_day: dict[str, int] | None = None, **config: Any) -> EmulatorServer:
    """The emulator serving SHOP (the emulator's own rows unless given), its key trusted."""
    site = SiteData(SHOP) if rows_per_day is None else SiteData(SHOP, rows_per_day=rows_per_day)
    keys = {KEY.client_email: KEY.public_pem}
    return EmulatorServer(Emulator(EmulatorConfig(sites=[site], public_keys=keys, **config)))


def run_settings(server: EmulatorServer, tmp_path: Path, **settings: Any) -> Settings:
    """Settings for an in-process run against ``server``: SHOP, a key file and a database
    in ``tmp_path``, no rate limit worth the name; ``settings`` over those."""
    key = KEY.write(tmp_path / "key.json", f"{server.url}/token")
    base: dict[str, Any] = {
        "credentials": key,
        "sites": (SHOP,),
        "db": tmp_path / "gsc.db",
        "api_url": server.url,
        "qpm": 100_000,
    }
    return Settings(**(base | settings))


class Env:
    def __init__(self, server: EmulatorServer, tmp: Path) -> None:
        self.server = server
        self.emu = server.emulator
        self.db = tmp / "gsc.db"
        self.key = KEY.write(tmp / "key.json", f"{server.url}/token")
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GSCSYNC_") and k != "GOOGLE_APPLICATION_CREDENTIALS"
        } | {
            "GSCSYNC_CREDENTIALS": str(self.key),
            "GSCSYNC_API_URL": server.url,
            "GSCSYNC_DB": str(self.db),
            "GSCSYNC_SITES": ",".join(GOOD),
            "GSCSYNC_SEARCH_TYPES": ",".join(TYPES),
            "GSCSYNC_SYNC_DAYS": "6",
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gscsync", *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.db.parent,
        )

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "gscsync", *args],
            env=self.env | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.db.parent,
        )

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(query, params).fetchall()

    def served_rows(self, site: str, stype: str, day: str, state: str = "final") -> set[tuple]:
        """What the emulator serves for one day, as our table stores it."""
        dims = dimensions_for(stype)
        out: set[tuple] = set()
        start = 0
        while True:
            doc = self.emu.query(
                site,
                {
                    "startDate": day,
                    "endDate": day,
                    "type": stype,
                    "dimensions": dims,
                    "dataState": state,
                    "rowLimit": 25000,
                    "startRow": start,
                },
            )
            rows = doc.get("rows", [])
            if not rows:  # page until an empty page, as Google documents
                return out
            for r in rows:
                k = dict(zip(dims, r["keys"], strict=True))
                out.add(
                    (
                        k.get("query", ""),
                        k["page"],
                        k["country"],
                        k.get("device", ""),
                        r["clicks"],
                        r["impressions"],
                        r.get("position"),
                    )
                )
            start += len(rows)

    def stored_rows(self, site: str, stype: str, day: str) -> set[tuple]:
        return set(
            self.sql(
                "SELECT query, page, country, device, clicks, impressions, position "
                "FROM search_analytics WHERE site_url = ? AND search_type = ? AND date = ?",
                site,
                stype,
                day,
            )
        )


def final_days(e: Env, window: int = 6) -> list[str]:
    """The days of the trailing window that the emulator serves as final."""
    today = e.emu.today()
    return [
        (today - timedelta(days=n)).isoformat()
        for n in range(window)
        if today - timedelta(days=n) <= e.emu.final_through()
    ]


def assert_complete(e: Env, days: list[str], types: tuple[str, ...]) -> None:
    """Every site x type x day stored exactly as served, and final in the ledger (only)."""
    for site in GOOD:
        for stype in types:
            for day in days:
                assert e.stored_rows(site, stype, day) == e.served_rows(site, stype, day), (
                    site,
                    stype,
                    day,
                )
            ledger = e.sql(
                "SELECT date, status FROM sync_days WHERE site_url = ? AND search_type = ?",
                site,
                stype,
            )
            assert sorted(ledger) == sorted((d, "final") for d in days), (site, stype)
    assert e.sql("SELECT COUNT(*) FROM sync_days") == [(len(GOOD) * len(types) * len(days),)]
