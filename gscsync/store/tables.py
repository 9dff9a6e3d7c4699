"""The SPEC tables' columns, in one place: the migrations create them from these (m001 as
rowid tables, m003 rebuilds them ``WITHOUT ROWID`` with the very same columns).

Applied migrations never change, so neither do these: a new column comes with a new
migration that adds it."""

from __future__ import annotations

from typing import Any

KEY = ("site_url", "search_type", "date")
METRICS: dict[str, Any] = {"clicks": int, "impressions": int, "ctr": float, "position": float}

DETAIL_COLUMNS: dict[str, Any] = {
    "site_url": str,
    "search_type": str,
    "date": str,
    "query": str,
    "page": str,
    "country": str,
    "device": str,
    **METRICS,
}
DETAIL_PK = (*KEY, "query", "page", "country", "device")

# table -> (columns, primary key); every primary-key column is NOT NULL
LEDGER_TABLES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "daily_totals": ({"site_url": str, "search_type": str, "date": str, **METRICS}, KEY),
    "search_appearance": (
        {"site_url": str, "search_type": str, "date": str, "appearance": str, **METRICS},
        (*KEY, "appearance"),
    ),
    "sync_days": (
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
        KEY,
    ),
}
NOT_NULL_EXTRA = {"sync_days": ("status",)}  # beyond the primary key
