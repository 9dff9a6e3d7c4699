"""Past the row cap: a capped day refetched as disjoint slices (device, then the biggest
countries and the rest) gives back the uncapped truth where the split suffices, keeps
`truncated` where it does not, and never spends more than its request budget. The
emulator applies filters before its cap, as Google does; a small cap keeps it fast."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gscsync import fetch
from gscsync.commands import run_backfill
from gscsync.config import Settings
from gscsync.emulator import Emulator, EmulatorConfig, EmulatorServer, SiteData
from gscsync.store import open_store
from tests.e2e.harness import KEY

pytestmark = pytest.mark.e2e
SITE = "sc-domain:big.example"
CAP = 400
DIMS = ["date", "query", "page", "country", "device"]


def config(cap: int) -> EmulatorConfig:
    return EmulatorConfig(
        sites=[SiteData(SITE, rows_per_day={"web": 1_500})],
        public_keys={KEY.client_email: KEY.public_pem},
        row_cap=cap,
    )


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    monkeypatch.setattr(fetch, "DAILY_ROW_CAP", CAP)  # gscsync's idea of the cap, scaled
    with EmulatorServer(Emulator(config(CAP))) as srv:
        yield srv


def truth(day: str) -> set[tuple[Any, ...]]:
    """Every detail row of the day, as an emulator without a cap serves it."""
    emu = Emulator(config(10**9))
    body = {"startDate": day, "endDate": day, "dimensions": DIMS, "rowLimit": 25_000}
    rows = emu.query(SITE, body)["rows"]
    return {(*r["keys"][1:], r["clicks"], r["impressions"]) for r in rows}


def backfill(server: EmulatorServer, tmp_path: Path, budget: int) -> str:
    day = server.emulator.final_through()
    settings = Settings(
        credentials=KEY.write(tmp_path / "key.json", f"{server.url}/token"),
        sites=(SITE,),
        db=tmp_path / "gsc.db",
        api_url=server.url,
        qpm=100_000,
        search_types=("web",),
        split_budget=budget,
    )
    outcome = run_backfill(dataclasses.replace(settings), start=day, end=day)
    assert outcome.exit_code == 0
    return day.isoformat()


def stored(db: Path) -> tuple[set[tuple[Any, ...]], int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT query, page, country, device, clicks, impressions FROM search_analytics"
        ).fetchall()
        (truncated,) = conn.execute("SELECT truncated FROM sync_days").fetchone()
    return set(rows), truncated


def sliced(server: EmulatorServer) -> list[dict[str, Any]]:
    return [b for _, b in server.emulator.log if "dimensionFilterGroups" in b]


def test_a_capped_day_split_by_device_and_country_equals_the_uncapped_truth(
    server: EmulatorServer, tmp_path: Path
) -> None:
    day = backfill(server, tmp_path, budget=40)
    rows, truncated = stored(tmp_path / "gsc.db")
    expected = truth(day)
    assert len(expected) > 2 * CAP  # the day is over the cap several times
    assert rows == expected and truncated == 0
    assert 0 < len(sliced(server)) <= 40
    with open_store(tmp_path / "gsc.db") as store:
        (coverage,) = store.coverage()
    assert coverage.days_split == 1 and coverage.rows_recovered == len(expected) - CAP
    assert coverage.truncated == []


def test_a_budget_too_small_keeps_the_day_truncated_and_is_respected(
    server: EmulatorServer, tmp_path: Path
) -> None:
    day = backfill(server, tmp_path, budget=6)  # the device slices, nothing further
    rows, truncated = stored(tmp_path / "gsc.db")
    assert truncated == 1
    assert CAP < len(rows) < len(truth(day))  # more than any per-day fetcher, not all
    assert len(sliced(server)) <= 6


def test_without_a_budget_a_capped_day_is_stored_capped(
    server: EmulatorServer, tmp_path: Path
) -> None:
    backfill(server, tmp_path, budget=0)
    rows, truncated = stored(tmp_path / "gsc.db")
    assert len(rows) == CAP and truncated == 1 and sliced(server) == []
