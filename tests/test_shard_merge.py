"""Shards (``--shard K/N``, ``GSCSYNC_SHARD``, Kubernetes' ``JOB_COMPLETION_INDEX``) and
``gscsync merge``: the shards partition the properties, and their databases combine into
one, ledger-aware and rerunnable."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gscsync.config import load_settings
from gscsync.errors import ConfigError
from gscsync.merge import merge_databases
from gscsync.models import (
    AppearanceDetailRow,
    AppearanceRow,
    DayData,
    DayTask,
    DetailRow,
    HourData,
    HourRow,
    ReportDay,
    ReportRow,
    Totals,
)
from gscsync.shard import in_shard, shard_of, shard_sites
from gscsync.store import open_store
from tests.conftest import run_cli

A, B = "sc-domain:a.com", "https://www.b.example/"
D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03"

# -- shards ----------------------------------------------------------------------------------

sites = st.lists(st.text(min_size=1, max_size=40), max_size=40, unique=True)


@given(sites, st.integers(1, 12))
def test_n_shards_partition_any_site_list(listed: list[str], n: int) -> None:
    parts = [shard_sites(listed, (k, n)) for k in range(1, n + 1)]
    assert sorted(s for part in parts for s in part) == sorted(listed)  # each exactly once
    for k, part in enumerate(parts, start=1):
        assert part == [s for s in listed if in_shard(s, k, n)]  # in the given order
        assert all(shard_of(s, n) == k for s in part)


def test_a_shard_is_stable_across_processes_and_versions() -> None:
    # sha256 of the URL, never hash(): these values hold on every host, forever
    assert [shard_of(s, 4) for s in (A, B, "sc-domain:c.org")] == [4, 1, 4]
    assert shard_sites([A, B], None) == [A, B]
    with pytest.raises(ValueError):
        in_shard(A, 0, 3)
    with pytest.raises(ValueError):
        in_shard(A, 4, 3)


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        ({"shard": "2/4"}, {}, (2, 4)),
        ({"shard": " 1 / 1 "}, {}, (1, 1)),
        ({}, {"GSCSYNC_SHARD": "3/3"}, (3, 3)),
        ({"shard": "1/2"}, {"GSCSYNC_SHARD": "2/2"}, (1, 2)),  # the flag wins
        ({}, {"GSCSYNC_SHARDS": "4", "JOB_COMPLETION_INDEX": "0"}, (1, 4)),  # from 0
        ({}, {"GSCSYNC_SHARDS": "4", "JOB_COMPLETION_INDEX": "3"}, (4, 4)),
        ({}, {"GSCSYNC_SHARD": "1/5", "GSCSYNC_SHARDS": "4", "JOB_COMPLETION_INDEX": "3"}, (1, 5)),
        ({}, {"JOB_COMPLETION_INDEX": "3"}, None),  # an Indexed Job that does not shard
        ({}, {}, None),
    ],
)
def test_the_shard_from_flag_environment_or_job_index(
    flags: dict[str, Any], environ: dict[str, str], expected: tuple[int, int] | None
) -> None:
    assert load_settings(flags, environ=environ, sharding=True).shard == expected


def test_the_shard_count_may_come_from_the_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GSCSYNC_SHARDS=3\n")
    settings = load_settings(environ={"JOB_COMPLETION_INDEX": "1"}, sharding=True)
    assert settings.shard == (2, 3)
    assert settings.sources["shard"].startswith("JOB_COMPLETION_INDEX")


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"shard": "5/4"}, {}, r"^--shard='5/4': K/N needs 1 <= K <= N"),
        ({"shard": "0/4"}, {}, r"^--shard='0/4': K/N needs 1 <= K <= N"),
        ({"shard": "2"}, {}, r"^--shard='2' is not K/N; give shard K of N as K/N"),
        ({}, {"GSCSYNC_SHARD": "1/0"}, r"^GSCSYNC_SHARD='1/0': K/N needs 1 <= K <= N"),
        ({}, {"GSCSYNC_SHARD": "a/b"}, r"^GSCSYNC_SHARD='a/b' is not K/N"),
        ({}, {"GSCSYNC_SHARDS": "0", "JOB_COMPLETION_INDEX": "0"}, r"^GSCSYNC_SHARDS='0' must"),
        ({}, {"GSCSYNC_SHARDS": "x"}, r"^GSCSYNC_SHARDS='x' is not a whole number"),
        (
            {},
            {"GSCSYNC_SHARDS": "4", "JOB_COMPLETION_INDEX": "4"},
            r"^JOB_COMPLETION_INDEX='4' must be a whole number from 0 to 3",
        ),
        (
            {},
            {"GSCSYNC_SHARDS": "4", "JOB_COMPLETION_INDEX": "-1"},
            r"^JOB_COMPLETION_INDEX='-1' must be a whole number from 0 to 3",
        ),
        ({}, {"GSCSYNC_SHARDS": "4"}, r"^GSCSYNC_SHARDS='4' needs JOB_COMPLETION_INDEX \(0 to 3"),
    ],
)
def test_a_bad_shard_is_a_config_error_naming_the_variable_and_what_is_allowed(
    flags: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, environ=environ, sharding=True)


def test_without_sharding_a_missing_job_index_is_no_shard() -> None:
    """status, sites, check and merge may share the pods' GSCSYNC_SHARDS: no error there."""
    assert load_settings(environ={"GSCSYNC_SHARDS": "4"}).shard is None


@pytest.mark.parametrize("command", ["sync", "backfill"])
def test_sync_and_backfill_take_shard_and_refuse_a_bad_one_with_exit_2(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(command, "--shard", "3/2", "--dry-run", "-s", A) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "gscsync: error: --shard='3/2': K/N needs 1 <= K <= N (shards count from 1), e.g. 2/4"
    ]
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    monkeypatch.setenv("GSCSYNC_SHARDS", "4")
    assert run_cli(command, "--dry-run", "-s", A) == 2
    assert "GSCSYNC_SHARDS='4' needs JOB_COMPLETION_INDEX" in capsys.readouterr().err


def test_status_is_not_refused_for_a_shard_count_without_job_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(tmp_path / "gscsync.db").close()
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    monkeypatch.setenv("GSCSYNC_SHARDS", "4")
    assert run_cli("status", "--json") == 1  # no sync yet: unhealthy, not a settings error


# -- merge: building shards ------------------------------------------------------------------


def detail(n: int, tag: str = "") -> list[DetailRow]:
    return [
        DetailRow(f"q{tag}{i}", f"https://a/{tag}{i % 3}", "usa", "MOBILE", i, 10 * i, 0.1, 2.5)
        for i in range(n)
    ]


def day_data(site: str, day: str, n: int, *, fresh: bool = False, tag: str = "") -> DayData:
    rows = detail(n, tag)
    return DayData(
        DayTask(site, "web", day, fresh=fresh),
        rows,
        [AppearanceRow(f"AMP{tag}", 1, 2, 0.5, 3.0)],
        Totals(sum(r.clicks for r in rows) + 1, 1000, 0.1, 4.0),
        reports={
            "by_query": ReportDay([ReportRow(f"q{tag}0", 1, 2, 0.5, 1.0)]),
            "by_page": ReportDay([ReportRow(f"https://a/{tag}0", 1, 2, 0.5, 1.0)]),
            "by_country": ReportDay([ReportRow("usa", 3, 4, 0.75, 1.5)]),
            "by_device": ReportDay([ReportRow("MOBILE", 3, 4, 0.75, 1.5)]),
            "search_appearance_detail": ReportDay(
                [AppearanceDetailRow("AMP", f"https://a/{tag}0", f"q{tag}0", 1, 2, 0.5, 1.0)]
            ),
        },
        page_totals=Totals(7, 70, 0.1, None),
    )


def hours(site: str, day: str, tag: str = "") -> HourData:
    hour = f"{day}T05:00:00-08:00"
    return HourData(
        site,
        "web",
        day,
        [(hour, Totals(2, 20, 0.1, 3.0))],
        [HourRow(hour, f"q{tag}", "https://a/", "usa", "MOBILE", 2, 20, 0.1, 3.0)],
        complete=True,
    )


def set_fetched_at(path: Path, when: str, **key: str) -> None:
    """Rewrite fetched_at (a write in the same second cannot be told apart otherwise)."""
    where = " AND ".join(f"{k} = ?" for k in key) or "1"
    with sqlite3.connect(path) as conn:
        for table in ("sync_days", "report_days") if "report" not in key else ("report_days",):
            conn.execute(f"UPDATE {table} SET fetched_at = ? WHERE {where}", (when, *key.values()))
    conn.close()


def shard_db(path: Path, *days: DayData, hourly: tuple[HourData, ...] = ()) -> Path:
    with open_store(path) as store:
        for data in days:
            store.write_day(data)
        for hour in hourly:
            store.write_hours(hour)
        store.finish_run(store.start_run("sync"), "ok", (len(days), 0, 0, 1), None)
    return path


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


SPEC_TABLES = (
    "search_analytics",
    "daily_totals",
    "search_appearance",
    "detail_sums",
    "by_query",
    "by_page",
    "by_country",
    "by_device",
    "search_appearance_detail",
    "hourly_totals",
    "search_analytics_hourly",
)


def day_rows(path: Path, site: str, day: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything stored for one web day of ``site``, table by table, ledgers included."""
    out = {}
    for table in SPEC_TABLES:
        when = "substr(hour, 1, 10)" if "hourly" in table else "date"
        out[table] = sorted(
            query(
                path,
                f"SELECT * FROM {table} WHERE site_url = ? AND search_type = 'web' AND {when} = ?",
                site,
                day,
            )
        )
    for ledger in ("sync_days", "report_days"):
        out[ledger] = sorted(
            query(path, f"SELECT * FROM {ledger} WHERE site_url = ? AND date = ?", site, day)
        )
    return out


def dump(path: Path) -> dict[str, list[str]]:
    """Every table of the database, its rows in a stable order."""
    names = query(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return {t: sorted(map(repr, query(path, f"SELECT * FROM {t}"))) for (t,) in names}


# -- merge ------------------------------------------------------------------------------------


def test_merge_combines_shards_with_the_rows_of_every_day(tmp_path: Path) -> None:
    one = shard_db(
        tmp_path / "shard-1.db",
        day_data(A, D1, 5, tag="a"),
        day_data(A, D2, 3, fresh=True, tag="a2"),
        hourly=(hours(A, D2, "a"),),
    )
    two = shard_db(tmp_path / "shard-2.db", day_data(B, D1, 4, tag="b"))
    out = tmp_path / "all.db"
    merged = merge_databases(out, [one, two])
    assert [(m.counts.days, m.counts.days_seen) for m in merged] == [(2, 2), (1, 1)]
    for site, day, shard in ((A, D1, one), (A, D2, one), (B, D1, two)):
        theirs = day_rows(shard, site, day)
        assert theirs["search_analytics"] and theirs["by_query"]
        assert day_rows(out, site, day) == theirs  # rows, totals, sums, ledgers: as written
    assert day_rows(out, A, D2)["search_analytics_hourly"]


def test_a_final_day_wins_over_fresh_and_failed_ones_whatever_the_order(tmp_path: Path) -> None:
    final = shard_db(tmp_path / "final.db", day_data(A, D1, 5, tag="final"))
    set_fetched_at(final, "2026-01-05T04:00:00+00:00")
    later = shard_db(
        tmp_path / "later.db",
        day_data(A, D1, 2, fresh=True, tag="fresh"),
        day_data(A, D2, 2, tag="ok"),
    )
    with open_store(later) as store:  # D2 failed later: its rows stay as they were
        store.mark_failed(DayTask(A, "web", D2), "500 backend error")
    set_fetched_at(later, "2026-01-09T04:00:00+00:00")  # fetched after the final one
    d2_before = day_rows(later, A, D2)
    assert d2_before["sync_days"][0][3] == "failed"

    fresh_first = tmp_path / "fresh-first.db"
    merge_databases(fresh_first, [later, final])
    final_first = tmp_path / "final-first.db"
    merge_databases(final_first, [final, later])
    for out in (fresh_first, final_first):
        assert day_rows(out, A, D1) == day_rows(final, A, D1)
        assert day_rows(out, A, D2) == d2_before  # a failed day with nothing better: taken


def test_between_two_final_days_the_later_fetch_wins(tmp_path: Path) -> None:
    old = shard_db(tmp_path / "old.db", day_data(A, D1, 5, tag="old"))
    new = shard_db(tmp_path / "new.db", day_data(A, D1, 2, tag="new"))
    set_fetched_at(old, "2026-01-05T04:00:00+00:00")
    set_fetched_at(new, "2026-01-06T04:00:00+00:00")
    for order in ([old, new], [new, old]):
        out = tmp_path / f"out-{order[0].stem}.db"
        merge_databases(out, order)
        assert day_rows(out, A, D1) == day_rows(new, A, D1)
        assert {r[3] for r in query(out, "SELECT * FROM search_analytics")} == {
            f"qnew{i}" for i in range(2)
        }


def test_merging_again_changes_nothing_and_a_shard_updated_later_brings_its_new_days(
    tmp_path: Path,
) -> None:
    shard = shard_db(
        tmp_path / "shard-1.db",
        day_data(A, D1, 5),
        day_data(A, D2, 3, fresh=True),
        hourly=(hours(A, D2),),
    )
    set_fetched_at(shard, "2026-01-05T04:00:00+00:00")
    out = tmp_path / "all.db"
    merge_databases(out, [shard])
    before = dump(out)
    again = merge_databases(out, [shard])
    assert dump(out) == before
    c = again[0].counts
    assert (c.days, c.report_days, c.rows, c.runs_added, c.runs_updated) == (0, 0, 0, 0, 0)
    assert (c.days_seen, c.report_days_seen) == (2, 11)

    with open_store(shard) as store:  # the next day's sync: D2 is final now, D3 is new
        store.write_day(day_data(A, D2, 4, tag="final"))
        store.write_day(day_data(A, D3, 1))
    set_fetched_at(shard, "2026-01-06T04:00:00+00:00", date=D2)
    set_fetched_at(shard, "2026-01-06T04:00:00+00:00", date=D3)
    c = merge_databases(out, [shard])[0].counts
    assert (c.days, c.report_days) == (2, 11)  # D2 with its hours, which set_fetched_at moved
    for day in (D1, D2, D3):
        assert day_rows(out, A, day) == day_rows(shard, A, day)


def test_runs_are_kept_with_their_origin_and_updated_once_finished(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = shard_db(tmp_path / "one" / "gscsync.db", day_data(A, D1, 1))
    two = shard_db(tmp_path / "two" / "gscsync.db", day_data(B, D1, 1))  # the same file name
    with open_store(two) as store:
        running = store.start_run("backfill")
    out = tmp_path / "all.db"
    merge_databases(out, [one, two])
    origin = query(
        out,
        "SELECT m.source, m.source_id, r.command, r.status FROM merged_runs m "
        "JOIN runs r ON r.id = m.run_id ORDER BY m.source, m.source_id",
    )
    assert origin == [
        (str(one), 1, "sync", "ok"),
        (str(two), 1, "sync", "ok"),
        (str(two), running, "backfill", "running"),
    ]
    with open_store(two) as store:
        store.finish_run(running, "partial", (1, 1, 5, 3), "1 day failed")
    c = merge_databases(out, [one, two])[1].counts
    assert (c.runs_added, c.runs_updated) == (0, 1)
    assert query(out, "SELECT COUNT(*) FROM runs") == [(3,)]
    assert query(
        out,
        "SELECT r.status, r.days_ok, r.days_failed, r.error FROM runs r JOIN merged_runs m "
        "ON m.run_id = r.id WHERE m.source = ? AND m.source_id = ?",
        str(two),
        running,
    ) == [("partial", 1, 1, "1 day failed")]


def test_a_report_taken_later_brings_the_page_totals_it_set(tmp_path: Path) -> None:
    shard = shard_db(tmp_path / "shard.db", day_data(A, D1, 2))
    with sqlite3.connect(shard) as conn:  # as a day stored before by-page totals were known
        conn.execute("UPDATE daily_totals SET page_clicks = NULL, page_impressions = NULL")
    conn.close()
    out = tmp_path / "all.db"
    merge_databases(out, [shard])
    with open_store(shard) as store:  # a later sync fetches one report and the totals
        data = day_data(A, D1, 0)
        data.detail, data.reports = False, {"by_page": data.reports["by_page"]}
        store.write_day(data)
    set_fetched_at(shard, "2099-01-01T00:00:00+00:00", report="by_page")
    c = merge_databases(out, [shard])[0].counts
    assert (c.days, c.report_days) == (0, 1)
    assert day_rows(out, A, D1) == day_rows(shard, A, D1)
    assert query(out, "SELECT page_clicks, page_impressions FROM daily_totals") == [(7, 70)]


def test_the_merged_database_answers_status(tmp_path: Path) -> None:
    one = shard_db(tmp_path / "shard-1.db", day_data(A, D1, 5))
    two = shard_db(tmp_path / "shard-2.db", day_data(B, D1, 4))
    out = tmp_path / "all.db"
    assert run_cli("merge", str(out), str(one), str(two)) == 0
    assert run_cli("status", "--db", str(out), "--json", "--max-age", "1000") == 0


def test_merge_prints_one_line_per_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = shard_db(tmp_path / "shard-1.db", day_data(A, D1, 5), day_data(A, D2, 1))
    two = shard_db(tmp_path / "shard-2.db", day_data(B, D1, 4))
    out = tmp_path / "all.db"
    assert run_cli("merge", str(out), str(one), str(two)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{one}: took 2 of 2 day(s) and 10 of 10 report day(s), 16 rows; runs: 1 added, 0 updated",
        f"{two}: took 1 of 1 day(s) and 5 of 5 report day(s), 9 rows; runs: 1 added, 0 updated",
    ]


def _not_sqlite(path: Path) -> Path:
    path.write_text("GSCSYNC_DB=x.db\n")
    return path


def _foreign(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.close()
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_sqlite, "is not a SQLite database"),
        (_foreign, "belongs to another application"),
        (_directory, "is not a file"),
        (lambda p: p, "no such file"),
    ],
)
@pytest.mark.parametrize("out_exists", [True, False])
def test_a_bad_shard_is_refused_with_exit_2_and_the_output_untouched(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Any,
    message: str,
    out_exists: bool,
) -> None:
    good = shard_db(tmp_path / "good.db", day_data(A, D1, 3))
    bad = make(tmp_path / "bad.db")
    out = tmp_path / "all.db"
    if out_exists:
        merge_databases(out, [good])
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.glob("all.db*"))
    bad_before = bad.read_bytes() if bad.is_file() else None
    assert run_cli("merge", str(out), str(good), str(bad)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gscsync: error: shard {bad}") and message in err[0]
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.glob("all.db*")) == before
    assert (bad.read_bytes() if bad.is_file() else None) == bad_before  # never written


def test_the_output_may_not_be_a_shard_nor_a_shard_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = shard_db(tmp_path / "shard-1.db", day_data(A, D1, 1))
    assert run_cli("merge", str(one), str(one)) == 2
    assert "is the output database" in capsys.readouterr().err
    assert run_cli("merge", str(tmp_path / "all.db"), str(one), str(tmp_path / "shard-1.db")) == 2
    assert "is given twice" in capsys.readouterr().err
    assert not (tmp_path / "all.db").exists()
    assert run_cli("merge", str(tmp_path / "all.db")) == 2  # no shard: a usage error


def test_a_shard_that_fails_midway_leaves_the_output_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = shard_db(tmp_path / "shard-1.db", day_data(A, D1, 3))
    two = shard_db(tmp_path / "shard-2.db", day_data(B, D1, 3), day_data(B, D2, 3))
    out = tmp_path / "all.db"
    merge_databases(out, [one])
    before = dump(out)
    from gscsync.store import merge as store_merge

    calls = 0
    real = store_merge._Merge._take_report_day

    def failing(self: Any, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # after the detail of both days and two reports
            raise sqlite3.OperationalError("disk I/O error")
        real(self, *args)

    monkeypatch.setattr(store_merge._Merge, "_take_report_day", failing)
    assert run_cli("merge", str(out), str(two)) == 1  # a storage error
    assert dump(out) == before


def test_shards_that_are_no_gscsync_database_get_advice_for_merge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from tests.conftest import run_cli

    empty = tmp_path / "empty.db"
    empty.touch()
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    for shard, needle in ((empty, "is an empty file"), (foreign, "written by `gscsync sync")):
        assert run_cli("merge", str(tmp_path / "all.db"), str(shard)) == 2
        err = capsys.readouterr().err
        assert needle in err and "GSCSYNC_DB" not in err
        assert not (tmp_path / "all.db").exists()
