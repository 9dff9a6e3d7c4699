"""The schema, as versioned migrations (sqlite-utils ``Migrations``)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

DIMENSION_PK = ("site_url", "search_type", "date")

migrations = Migrations("gscsync")


@migrations()
def m001_initial(db: Database) -> None:
    """The tables of SPEC.md: detail rows, totals, appearances, ledger, runs."""
    metrics: dict[str, Any] = {"clicks": int, "impressions": int, "ctr": float, "position": float}
    db.table("search_analytics").create(
        {
            "site_url": str,
            "search_type": str,
            "date": str,
            "query": str,
            "page": str,
            "country": str,
            "device": str,
            **metrics,
        },
        pk=("site_url", "search_type", "date", "query", "page", "country", "device"),
        not_null={"site_url", "search_type", "date", "query", "page", "country", "device"},
    )
    db.table("daily_totals").create(
        {"site_url": str, "search_type": str, "date": str, **metrics},
        pk=DIMENSION_PK,
        not_null=set(DIMENSION_PK),
    )
    db.table("search_appearance").create(
        {"site_url": str, "search_type": str, "date": str, "appearance": str, **metrics},
        pk=("site_url", "search_type", "date", "appearance"),
        not_null={"site_url", "search_type", "date", "appearance"},
    )
    db.table("sync_days").create(
        {
            "site_url": str,
            "search_type": str,
            "date": str,
            "status": str,
            "rows": int,
            "truncated": int,
            "fetched_at": str,
            "attempts": int,
            "error": str,
        },
        pk=DIMENSION_PK,
        not_null={"site_url", "search_type", "date", "status"},
    )
    db.table("runs").create(
        {
            "id": int,
            "command": str,
            "started_at": str,
            "finished_at": str,
            "status": str,
            "days_ok": int,
            "days_failed": int,
            "rows_written": int,
            "requests": int,
            "error": str,
            "pid": int,
            "version": str,
        },
        pk="id",
    )
    db.table("sync_days").create_index(["status"])


@migrations()
def m002_breaker(db: Database) -> None:
    """The circuit breaker's state: one row, so it outlives each cron process."""
    db.table("breaker").create(
        {
            "id": int,
            "state": str,
            "failures": int,
            "opened_at": float,
            "cooldown": int,
            "reason": str,
        },
        pk="id",
    )


# The names this gscsync knows: a database recording any other was written by a newer one.
KNOWN_MIGRATIONS = frozenset(f.__name__ for f in (m001_initial, m002_breaker))
