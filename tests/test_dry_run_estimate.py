"""``backfill --dry-run`` says how big the work is before any request: days, requests
and time at the configured rate, per site and type and in total."""

from __future__ import annotations

from pathlib import Path

import pytest

from gscsync.models import DayData, DayTask, DetailRow, Totals
from gscsync.planner import APPEARANCES, estimate
from gscsync.store import open_store
from tests.conftest import run_cli
from tests.e2e.harness import KEY

SITE = "sc-domain:a.com"


def test_without_history_the_estimate_is_the_most_it_can_cost() -> None:
    e = estimate(SITE, "web", 30, None, reports=4)
    assert (e.days, e.low) == (30, 1)
    assert e.high == 1 + 1 + APPEARANCES + 30 * (2 + 6)  # every day its own chunk


def test_small_days_are_estimated_packed_and_big_ones_alone() -> None:
    small = estimate(SITE, "web", 100, (90.0, 1_000.0), reports=0)
    assert small.high == 1 + 1 + APPEARANCES + 4 * 2  # 25 days a chunk
    big = estimate(SITE, "web", 10, (60_000.0, 900_000.0), reports=0)
    assert big.high == 1 + 1 + APPEARANCES + 10 * (2 + 2)  # alone, two more pages each
    assert estimate(SITE, "web", 0, None, reports=4).high == 0


def test_dry_run_prints_days_requests_and_time_per_site_type_and_in_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.db"
    with open_store(db) as store:  # ten stored days of history for web
        for n in range(1, 11):
            day = f"2026-01-{n:02d}"
            rows = [DetailRow(f"q{i}", "https://a.com/", "usa", "MOBILE", 1, 10, 0.1, 2.0)
                    for i in range(90)]  # fmt: skip
            store.write_day(
                DayData(DayTask(SITE, "web", day), rows, totals=Totals(90, 900, 0.1, 2))
            )
    KEY.write(tmp_path / "key.json", "http://127.0.0.1:9/token")  # read, never used
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(tmp_path / "key.json"))
    monkeypatch.setenv("GSCSYNC_SITES", SITE)
    monkeypatch.setenv("GSCSYNC_SEARCH_TYPES", "web,image")
    monkeypatch.setenv("GSCSYNC_QPM", "60")
    monkeypatch.setenv("GSCSYNC_TABLES", "none")
    code = run_cli("backfill", "--dry-run", "--db", str(db), "--start", "2026-01-01",
                   "--end", "2026-03-01")  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    web = next(line for line in out if "\tweb\t" in line)
    image = next(line for line in out if "\timage\t" in line)
    assert "50 day(s)" in web and "~90 rows a day stored" in web  # 60 days less 10 stored
    assert "60 day(s)" in image and "no history" in image
    total = out[-1]
    assert total.startswith("total: 110 day(s), 2-") and "GSCSYNC_QPM=60" in total


@pytest.mark.parametrize("command", ["sync", "backfill"])
def test_dry_run_refuses_what_a_real_run_would(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", SITE)
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(tmp_path / "missing.json"))
    assert run_cli(command, "--dry-run", "--db", str(tmp_path / "g.db")) == 2
    assert "missing.json" in capsys.readouterr().err
    monkeypatch.delenv("GSCSYNC_CREDENTIALS")
    monkeypatch.setenv("GSCSYNC_LOCK_FILE", str(tmp_path / "no" / "such" / "dir" / "x.lock"))
    key = tmp_path / "key.json"
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", str(key))
    KEY.write(key, "http://127.0.0.1:9/token")
    assert run_cli(command, "--dry-run", "--db", str(tmp_path / "g.db")) == 2
    assert "lock file directory" in capsys.readouterr().err
    assert run_cli(command, "--dry-run", "--db", str(tmp_path / "nodir" / "g.db")) == 2


def test_a_bad_credentials_flag_is_named_as_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSCSYNC_SITES", SITE)
    missing = str(tmp_path / "nope.json")
    assert (
        run_cli("sync", "--dry-run", "--credentials", missing, "--db", str(tmp_path / "g.db")) == 2
    )
    assert "check --credentials" in capsys.readouterr().err
    monkeypatch.setenv("GSCSYNC_CREDENTIALS", missing)
    assert run_cli("sync", "--dry-run", "--db", str(tmp_path / "g.db")) == 2
    assert "check GSCSYNC_CREDENTIALS" in capsys.readouterr().err
