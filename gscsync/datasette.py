"""Datasette metadata for a gscsync database: what each table and column means, and the
canned queries analysts ask first (``gscsync datasette-metadata > metadata.json``, then
``datasette gscsync.db -m metadata.json``)."""

from __future__ import annotations

from typing import Any

METRICS = {
    "clicks": "Clicks.",
    "impressions": "Impressions.",
    "ctr": "Click-through rate as a 0-1 fraction (clicks / impressions), not a percentage.",
    "position": "Average position (1 is the top); NULL where the API gives none "
    "(Discover, Google News).",
}
KEYS = {
    "site_url": "The Search Console property: sc-domain:example.com or https://www.example.com/.",
    "search_type": "web, image, video, news, discover or googleNews.",
    "date": "The day, YYYY-MM-DD, in Pacific Time as Search Console reports it.",
}
DIMENSION = "{}; '' means the dimension is not served for this search type."

TABLES: dict[str, dict[str, Any]] = {
    "search_analytics": {
        "description": "Detail rows by query, page, country and device, aggregated by page. "
        "Anonymized queries are left out, so sums here undercount: use daily_totals for "
        "totals.",
        "columns": {
            **KEYS,
            "query": DIMENSION.format("The search query"),
            "page": DIMENSION.format("The page URL"),
            "country": DIMENSION.format("ISO 3166-1 alpha-3 country, lowercase"),
            "device": DIMENSION.format("DESKTOP, MOBILE or TABLET"),
            **METRICS,
        },
    },
    "daily_totals": {
        "description": "Exact per-day totals by property, anonymized queries included: the "
        "numbers Search Console's charts show.",
        "columns": {**KEYS, **METRICS},
    },
    "search_appearance": {
        "description": "Per-day totals by search appearance (rich results, AMP, video...).",
        "columns": {**KEYS, "appearance": "The search appearance type.", **METRICS},
    },
    "sync_days": {
        "description": "The ledger: one row per property, search type and day attempted.",
        "columns": {
            **KEYS,
            "status": "final (complete, never fetched again), fresh (still changing) or "
            "failed (retried by the next sync).",
            "rows": "Detail rows stored for the day.",
            "truncated": "1 when the API's 50,000-row daily cap still bites.",
            "fetched_at": "When the day was last fetched (UTC).",
            "attempts": "How many times the day was fetched.",
            "error": "Why the last attempt failed.",
        },
    },
    "runs": {
        "description": "The audit log of gscsync runs.",
        "columns": {
            "status": "ok, partial, failed, skipped, interrupted or running.",
            "requests": "API requests the run made.",
        },
    },
}

QUERIES: dict[str, dict[str, str]] = {
    "clicks_per_day": {
        "title": "Clicks and impressions per day (exact totals)",
        "sql": "SELECT date, SUM(clicks) AS clicks, SUM(impressions) AS impressions "
        "FROM daily_totals WHERE site_url = :site AND search_type = 'web' "
        "GROUP BY date ORDER BY date DESC",
    },
    "top_queries": {
        "title": "Top queries over the last 28 stored days",
        "sql": "SELECT query, SUM(clicks) AS clicks, SUM(impressions) AS impressions "
        "FROM search_analytics WHERE site_url = :site AND search_type = 'web' "
        "AND query != '' AND date > (SELECT date(MAX(date), '-28 days') FROM daily_totals "
        "WHERE site_url = :site) GROUP BY query ORDER BY clicks DESC LIMIT 100",
    },
    "top_pages": {
        "title": "Top pages over the last 28 stored days",
        "sql": "SELECT page, SUM(clicks) AS clicks, SUM(impressions) AS impressions "
        "FROM search_analytics WHERE site_url = :site AND search_type = 'web' "
        "AND date > (SELECT date(MAX(date), '-28 days') FROM daily_totals "
        "WHERE site_url = :site) GROUP BY page ORDER BY clicks DESC LIMIT 100",
    },
    "device_split": {
        "title": "Clicks by device per day",
        "sql": "SELECT date, device, SUM(clicks) AS clicks FROM search_analytics "
        "WHERE site_url = :site AND search_type = 'web' GROUP BY date, device "
        "ORDER BY date DESC, clicks DESC",
    },
    "coverage": {
        "title": "How complete each property and type is",
        "sql": "SELECT site_url, search_type, MIN(date) AS first_day, MAX(date) AS last_day, "
        "SUM(status = 'final') AS final_days, SUM(status = 'failed') AS failed_days, "
        "SUM(truncated) AS capped_days, SUM(rows) AS rows FROM sync_days "
        "GROUP BY site_url, search_type",
    },
}


def metadata(database: str = "gscsync") -> dict[str, Any]:
    """The metadata document for a database file named ``database``.db."""
    return {
        "title": "gscsync: Google Search Console data",
        "description": "Copied day by day by gscsync. Dates are Pacific Time; ctr is a 0-1 "
        "fraction; '' in a dimension means the search type does not serve it.",
        "databases": {
            database: {
                "tables": TABLES,
                "queries": QUERIES,
            }
        },
    }
