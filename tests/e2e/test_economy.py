"""Request economy, counted in the emulator's log: empty days cost nothing, small days are
packed under the row bound, search appearance goes the two-step way, and packing changes
no stored value. In process (the emulator over loopback, the real engine and client)."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from gscsync import engine
from gscsync.api.client import GscClient
from gscsync.commands import run_backfill, run_sync
from gscsync.config import Settings
from gscsync.emulator import EmulatorServer, Faults
from gscsync.models import SEARCH_TYPE_NAMES
from gscsync.planner import pack
from tests.e2e.harness import SHOP, run_settings, shop_server

pytestmark = pytest.mark.e2e
SITE = SHOP


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with shop_server() as srv:
        yield srv


def settings(server: EmulatorServer, tmp_path: Path, **kw: Any) -> Settings:
    return run_settings(
        server, tmp_path, **({"search_types": SEARCH_TYPE_NAMES, "tables": ()} | kw)
    )


def log_of(server: EmulatorServer, stype: str | None = None) -> list[dict[str, Any]]:
    return [b for _, b in server.emulator.log if stype is None or b.get("type") == stype]


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {
            "search_analytics": conn.execute(
                "SELECT * FROM search_analytics ORDER BY 1,2,3,4,5,6,7"
            ).fetchall(),
            "daily_totals": conn.execute("SELECT * FROM daily_totals ORDER BY 1,2,3").fetchall(),
            "search_appearance": conn.execute(
                "SELECT * FROM search_appearance ORDER BY 1,2,3,4"
            ).fetchall(),
            "sync_days": conn.execute(
                "SELECT site_url, search_type, date, status, rows, truncated FROM sync_days "
                "ORDER BY 1,2,3"
            ).fetchall(),
        }


def test_30_days_of_a_small_property_all_types_exact_in_at_most_90_requests(
    server: EmulatorServer, tmp_path: Path
) -> None:
    site = server.emulator.sites[SITE]
    site.rows_per_day.update(web=90, image=30, video=10, news=5, discover=20, googleNews=8)
    start = server.emulator.final_through() - timedelta(days=29)
    outcome = run_backfill(
        settings(server, tmp_path), start=start, end=server.emulator.final_through()
    )
    assert outcome.exit_code == 0 and outcome.report.days_ok == 30 * 6
    searches = len(log_of(server))
    assert searches + server.emulator.stats["token"] <= 90, searches
    # every day exact: the same as fetching each day alone (compared below in its own test)
    assert dump(tmp_path / "gsc.db")["sync_days"][0][3] == "final"


def test_an_empty_search_type_costs_at_most_two_requests_for_16_months(
    server: EmulatorServer, tmp_path: Path
) -> None:
    server.emulator.sites[SITE].rows_per_day.update(news=0, web=20)
    outcome = run_backfill(settings(server, tmp_path, search_types=("news",)))
    assert outcome.exit_code == 0 and outcome.report.days_ok > 480  # every day final, empty
    assert len(log_of(server, "news")) <= 2


def test_small_days_are_packed_under_the_row_bound_and_big_days_go_alone(
    server: EmulatorServer, tmp_path: Path
) -> None:
    emu = server.emulator
    emu.sites[SITE].rows_per_day.update(web=500)  # ~10,000 impressions a day: 2 a chunk
    end = emu.final_through()
    start = end - timedelta(days=9)
    outcome = run_backfill(settings(server, tmp_path, search_types=("web",)), start=start, end=end)
    assert outcome.exit_code == 0
    sizing = [b for b in log_of(server) if b.get("aggregationType") == "byPage"]
    assert len(sizing) == 1
    detail = [b for b in log_of(server) if len(b.get("dimensions", [])) > 2]
    firsts = [b for b in detail if b.get("startRow") == 0]
    spans = [
        (date.fromisoformat(b["endDate"]) - date.fromisoformat(b["startDate"])).days + 1
        for b in firsts
    ]
    assert sum(spans) == 10 and max(spans) > 1 and len(firsts) < 10  # packed, every day once
    bounds = {
        r["keys"][0]: r["impressions"]
        for r in emu.query(SITE, {**sizing[0], "startRow": 0, "rowLimit": 25000})["rows"]
    }
    for b in firsts:
        days = [
            (date.fromisoformat(b["startDate"]) + timedelta(days=n)).isoformat()
            for n in range(spans[firsts.index(b)])
        ]
        assert len(days) == 1 or sum(bounds[d] for d in days) <= 25_000


def test_search_appearance_goes_the_two_step_way_over_a_range(
    server: EmulatorServer, tmp_path: Path
) -> None:
    emu = server.emulator
    end = emu.final_through()
    run_backfill(
        settings(server, tmp_path, search_types=("web",)), start=end - timedelta(days=19), end=end
    )
    appearance = [
        b
        for b in log_of(server)
        if b.get("dimensions") == ["searchAppearance"] or "dimensionFilterGroups" in b
    ]
    filtered = [b for b in appearance if "dimensionFilterGroups" in b]
    assert filtered and all(b["dimensions"] == ["date"] for b in filtered)
    assert len(appearance) < 20  # day by day would cost 2 a day (each to its empty page)
    names = {f["expression"] for b in appearance for g in b.get("dimensionFilterGroups", [])
             for f in g["filters"]}  # fmt: skip
    with sqlite3.connect(tmp_path / "gsc.db") as conn:
        stored = {r[0] for r in conn.execute("SELECT DISTINCT appearance FROM search_appearance")}
    assert names == stored and len(names) >= 2


def test_packed_and_day_by_day_fetching_store_the_same_database(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = server.emulator
    end = emu.final_through()
    start = end - timedelta(days=12)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run_backfill(settings(server, tmp_path / "a"), start=start, end=end)
    packed = len(log_of(server))
    emu.log.clear()
    monkeypatch.setattr(engine, "pack", functools.partial(pack, limit=0))  # every day alone
    run_backfill(settings(server, tmp_path / "b"), start=start, end=end)
    assert len(log_of(server)) > 2 * packed
    assert dump(tmp_path / "a" / "gsc.db") == dump(tmp_path / "b" / "gsc.db")


def test_big_days_in_flight_stay_within_the_memory_budget(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.emulator.sites[SITE].rows_per_day.update(web=20_000)  # days alone, and big
    real = engine.fetch_chunk
    lock, now, peak, threads = threading.Lock(), [0], [0], set()

    def fetch_chunk(client: Any, chunk: Any, *args: Any) -> Any:
        with lock:
            now[0] += chunk.big
            peak[0] = max(peak[0], now[0])
            if chunk.big:
                threads.add(threading.current_thread().name)
        try:
            return real(client, chunk, *args)
        finally:
            with lock:
                now[0] -= chunk.big

    monkeypatch.setattr(engine, "fetch_chunk", fetch_chunk)
    end = server.emulator.final_through()
    outcome = run_backfill(
        settings(server, tmp_path, search_types=("web",), concurrency=4),
        start=end - timedelta(days=3),
        end=end,
    )
    assert outcome.exit_code == 0 and outcome.report.days_ok == 4
    assert peak[0] == engine.BIG_INFLIGHT == 1  # four big days, four workers, one at a time
    # on the big-day thread alone: no fetch thread's allocator grows to a big day's size
    assert threads == {"gscsync-big-0"}


def test_a_daily_sync_of_one_new_day_pays_no_sizing_request(
    server: EmulatorServer, tmp_path: Path
) -> None:
    s = settings(server, tmp_path, search_types=("web",), sync_days=5)
    assert run_sync(s).exit_code == 0
    server.emulator.log.clear()
    server.emulator.advance(1)
    assert run_sync(s).exit_code == 0
    assert [b for b in log_of(server) if b.get("aggregationType") == "byPage"] == []
    # the probe, the day's detail query to its empty page, its appearance list likewise
    assert len(log_of(server)) <= 5


def test_lone_days_shown_small_by_their_job_leave_the_big_day_thread(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3,000 rows a day show more page impressions than the packing limit, so each day is
    # fetched alone and marked as possibly big; once one is in, its rows per impression
    # show the others cannot reach the cap: they run on the fetch threads, side by side.
    server.emulator.sites[SITE].rows_per_day.update(web=3_000)
    real = engine.fetch_chunk
    threads: list[str] = []

    def fetch_chunk(client: Any, chunk: Any, *args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(client, chunk, *args)

    monkeypatch.setattr(engine, "fetch_chunk", fetch_chunk)
    end = server.emulator.final_through()
    outcome = run_backfill(
        settings(server, tmp_path, search_types=("web",), concurrency=4),
        start=end - timedelta(days=5),
        end=end,
    )
    assert outcome.exit_code == 0 and outcome.report.days_ok == 6
    assert len(threads) == 6  # one chunk a day: none could be packed
    assert threads[0] == "gscsync-big-0"  # the first, before anything is known
    assert sum(name.startswith("gscsync-fetch") for name in threads) >= 4


def test_requests_fanned_out_stay_within_the_concurrency(
    server: EmulatorServer, tmp_path: Path
) -> None:
    # a job's sizing, appearance listing and per-appearance requests go side by side, but
    # never more requests in flight than GSCSYNC_CONCURRENCY
    emu = server.emulator
    real, lock, now, peak = emu.query, threading.Lock(), [0], [0]

    def query(url: str, body: dict[str, Any]) -> dict[str, Any]:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.01)
            return real(url, body)
        finally:
            with lock:
                now[0] -= 1

    emu.query = query  # type: ignore[method-assign]
    outcome = run_sync(settings(server, tmp_path, concurrency=2, sync_days=12))
    assert outcome.exit_code == 0 and outcome.report.days_failed == 0
    assert peak[0] == 2


def test_a_jobs_detail_requests_do_not_wait_for_its_search_appearance(
    server: EmulatorServer, tmp_path: Path
) -> None:
    # The job's appearance requests are held until its first detail request comes: had the
    # detail waited for them, it would never come (each hold gives up after 5 s).
    emu = server.emulator
    real, detail_came, held = emu.query, threading.Event(), []

    def query(url: str, body: dict[str, Any]) -> dict[str, Any]:
        if len(body.get("dimensions", [])) > 2:
            detail_came.set()
        elif body.get("dimensions") == ["searchAppearance"] or "dimensionFilterGroups" in body:
            held.append(detail_came.wait(5))
        return real(url, body)

    emu.query = query  # type: ignore[method-assign]
    outcome = run_sync(settings(server, tmp_path, search_types=("web",), sync_days=12))
    assert outcome.exit_code == 0 and outcome.report.days_failed == 0
    assert held and all(held)
    with sqlite3.connect(tmp_path / "gsc.db") as conn:  # and the appearance is stored
        assert conn.execute("SELECT COUNT(*) FROM search_appearance").fetchone()[0] > 0


def test_the_next_request_is_out_while_the_writer_writes(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Concurrency 1: while the writer writes a finished chunk's days, more chunks are
    # already admitted and a request goes out on the freed slot (work to spare). Each
    # write waits a moment for a detail request to come; without work to spare, none can.
    emu = server.emulator
    emu.sites[SITE].rows_per_day.update(web=500)  # two days a chunk: five chunks
    emu.config.faults = Faults(latency=0.05)  # a chunk's two requests outlast a write's start
    real_write, overlapped = engine.Engine._write, []

    def detail_requests() -> int:
        return sum(len(b.get("dimensions", [])) > 2 for _, b in list(emu.log))

    def write(self: engine.Engine, data: Any) -> None:
        if data.rows and True not in overlapped:
            before, deadline = detail_requests(), time.monotonic() + 0.5
            while detail_requests() == before and time.monotonic() < deadline:
                time.sleep(0.005)
            overlapped.append(detail_requests() > before)
        real_write(self, data)

    monkeypatch.setattr(engine.Engine, "_write", write)
    end = emu.final_through()
    outcome = run_backfill(
        settings(server, tmp_path, search_types=("web",), concurrency=1),
        start=end - timedelta(days=9),
        end=end,
    )
    assert outcome.exit_code == 0 and outcome.report.days_ok == 10
    assert True in overlapped, overlapped


def test_requests_others_wait_on_ask_for_a_slot_ahead(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each request tells the slots how many wait on it in a row (api/slots.py serves the
    # most first): the probes 3, a sizing and an appearance listing 2, a detail page 1.
    asked: list[tuple[int, str]] = []
    real = GscClient.query_page

    def query_page(self: GscClient, site: str, body: dict[str, Any], follows: int = 0) -> Any:
        dims = body.get("dimensions", [])
        kind = (
            "sizing"
            if body.get("aggregationType") == "byPage"
            else "listing"
            if dims == ["searchAppearance"]
            else "detail"
            if len(dims) > 2
            else "probe"
            if "dimensionFilterGroups" not in body
            else "appearance"
        )
        asked.append((follows, kind if body["startRow"] == 0 else f"{kind} next page"))
        return real(self, site, body, follows)

    monkeypatch.setattr(GscClient, "query_page", query_page)
    outcome = run_sync(settings(server, tmp_path, search_types=("web",), sync_days=12))
    assert outcome.exit_code == 0
    follows = {kind: f for f, kind in asked}
    assert follows == {
        "probe": 3,
        "sizing": 2,
        "listing": 2,
        "listing next page": 1,
        "detail": 1,
        "detail next page": 0,
        "appearance": 0,
    }


def quota_error() -> Exception:
    from gscsync.emulator.server import google_error

    return google_error(
        403, "quotaExceeded", "Search Analytics load quota exceeded.", "RESOURCE_EXHAUSTED"
    )


def test_a_quota_answer_to_the_jobs_appearance_costs_one_request_not_one_per_chunk(
    server: EmulatorServer, tmp_path: Path
) -> None:
    # The job's appearance listing is refused once: the run pauses, and the first chunk to
    # want the appearance asks again for the whole job while the others wait for it (each
    # asking for its own days cost 90 more requests on 90 days, and no pause).
    emu = server.emulator
    end = emu.final_through()
    start = end - timedelta(days=89)
    (tmp_path / "a").mkdir()
    s = settings(server, tmp_path / "a", search_types=("web",))
    assert run_backfill(s, start=start, end=end).exit_code == 0
    clean = len(log_of(server))
    emu.log.clear()
    real, refused = emu.query, []

    def query(url: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("dimensions") == ["searchAppearance"] and not refused:
            refused.append(body)
            raise quota_error()
        return real(url, body)

    emu.query = query  # type: ignore[method-assign]
    (tmp_path / "b").mkdir()
    s = settings(server, tmp_path / "b", search_types=("web",), quota_cooloff=0.2)
    outcome = run_backfill(s, start=start, end=end)  # the run pauses 0.2 s, then goes on
    assert outcome.exit_code == 0 and outcome.report.days_ok == 90 and refused
    assert len(log_of(server)) == clean  # the refused one is not logged: one more asked
    assert dump(tmp_path / "a" / "gsc.db") == dump(tmp_path / "b" / "gsc.db")


def test_no_request_goes_out_during_a_quota_pause(server: EmulatorServer, tmp_path: Path) -> None:
    # Every detail request is refused: the first refusal pauses the run, and no request
    # starts during a pause, not even one for work admitted before it began and waiting
    # for a request slot (the pause starts before the refused request's slot is free).
    from gscsync import budget

    emu = server.emulator
    emu.sites[SITE].rows_per_day.update(web=700)  # about a day a chunk
    real, sent, windows = emu.query, [], []
    real_on_quota = budget.Cooloff.on_quota

    def on_quota(self: budget.Cooloff, exc: Any) -> str:
        decided = real_on_quota(self, exc)
        if decided == "pause":
            windows.append((time.monotonic(), self._resume_at))
        return decided

    def query(url: str, body: dict[str, Any]) -> dict[str, Any]:
        if len(body.get("dimensions", [])) > 2:
            sent.append(time.monotonic())
            time.sleep(0.05)  # refused after every request in flight has come
            raise quota_error()
        return real(url, body)

    emu.query = query  # type: ignore[method-assign]
    s = settings(
        server,
        tmp_path,
        search_types=("web",),
        concurrency=4,
        quota_cooloff=0.3,
        quota_patience=2.0,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(budget.Cooloff, "on_quota", on_quota)
        end = emu.final_through()
        outcome = run_backfill(s, start=end - timedelta(days=19), end=end)
    assert outcome.report.stopped == "quota" and len(windows) >= 2
    during = [t for t in sent if any(a < t < b for a, b in windows)]
    assert during == []


def test_appearance_threads_stay_within_the_concurrency(
    server: EmulatorServer, tmp_path: Path
) -> None:
    # Each job's appearance goes on a thread of its own beside the sizing, but no more
    # such threads at once than GSCSYNC_CONCURRENCY: the others are fetched by a chunk.
    emu = server.emulator
    real, peak = emu.query, [0]

    def query(url: str, body: dict[str, Any]) -> dict[str, Any]:
        side = sum(t.name.startswith("gscsync-side") for t in threading.enumerate())
        peak[0] = max(peak[0], side)
        time.sleep(0.01)  # the appearance threads overlap
        return real(url, body)

    emu.query = query  # type: ignore[method-assign]
    outcome = run_sync(settings(server, tmp_path, concurrency=2, sync_days=12))
    assert outcome.exit_code == 0 and outcome.report.days_failed == 0
    assert 1 <= peak[0] <= 2
