"""The Datasette metadata names only tables and columns that exist, and its canned
queries run on a real database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gscsync.datasette import QUERIES, TABLES
from gscsync.models import (
    AppearanceRow,
    DayData,
    DayTask,
    DetailRow,
    ReportDay,
    ReportRow,
    Totals,
)
from gscsync.store import open_store
from tests.conftest import run_cli

SITE = "sc-domain:example.com"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "gsc.db"
    with open_store(path) as store:
        for n in range(3):
            store.write_day(
                DayData(
                    DayTask(SITE, "web", f"2026-03-0{n + 1}"),
                    rows=[DetailRow("shoes", "https://e.x/a", "usa", "MOBILE", 3, 9, 0.33, 2.0)],
                    appearance=[AppearanceRow("VIDEO", 1, 2, 0.5, 3.0)],
                    totals=Totals(5, 12, 0.41, 2.5),
                    reports={"by_query": ReportDay([ReportRow("shoes", 4, 10, 0.4, 2.0)])},
                )
            )
    return path


def test_metadata_names_only_tables_and_columns_that_exist(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        for table, meta in TABLES.items():
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            assert columns, f"{table} does not exist"
            assert set(meta["columns"]) <= columns, (table, set(meta["columns"]) - columns)


def test_the_canned_queries_run_and_answer(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        for name, query in QUERIES.items():
            rows = conn.execute(query["sql"], {"site": SITE}).fetchall()
            assert rows, name
    with sqlite3.connect(db) as conn:
        top = conn.execute(QUERIES["top_queries"]["sql"], {"site": SITE}).fetchall()
    assert top == [("shoes", 9, 27)]


def test_the_command_prints_the_document_for_the_database(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("datasette-metadata", "--db", str(db)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["databases"]) == {"gsc"}
    assert "ctr" in doc["databases"]["gsc"]["tables"]["search_analytics"]["columns"]


def test_the_views_answer_the_first_questions(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        daily = conn.execute("SELECT date, clicks FROM v_daily ORDER BY date").fetchall()
        queries = conn.execute("SELECT query, clicks FROM v_top_queries_28d").fetchall()
        pages = conn.execute("SELECT page, impressions FROM v_top_pages_28d").fetchall()
    assert daily == [("2026-03-01", 5), ("2026-03-02", 5), ("2026-03-03", 5)]
    assert queries == [("shoes", 9)] and pages == [("https://e.x/a", 27)]
