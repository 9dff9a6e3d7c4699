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
HOUR = (
    "The hour's start, ISO-8601 with its Pacific offset (2026-03-01T09:00:00-08:00; -07:00 "
    "in daylight saving time); its date part is the Pacific day."
)

BY_PROPERTY = (
    "Per-day rows by {}, aggregated by property, as Search Console's {} table shows them: "
    "they add up to daily_totals except for the rows past the API's cap{}."
)
REPORT_TABLES: dict[str, dict[str, Any]] = {
    "by_query": {
        "description": BY_PROPERTY.format(
            "query", "Queries", " and anonymized queries, which are left out"
        ),
        "columns": {**KEYS, "query": "The search query.", **METRICS},
    },
    "by_page": {
        "description": "Per-day rows by page, aggregated by page, as Search Console's Pages "
        "table shows them: they add up to daily_totals.page_clicks and page_impressions "
        "(impressions above the by-property ones: a result shown with several pages counts "
        "once per page).",
        "columns": {**KEYS, "page": "The page URL.", **METRICS},
    },
    "by_country": {
        "description": BY_PROPERTY.format("country", "Countries", ""),
        "columns": {
            **KEYS,
            "country": "ISO 3166-1 alpha-3 country, lowercase ('zzz': unknown).",
            **METRICS,
        },
    },
    "by_device": {
        "description": BY_PROPERTY.format("device", "Devices", ""),
        "columns": {**KEYS, "device": "DESKTOP, MOBILE or TABLET.", **METRICS},
    },
    "search_appearance_detail": {
        "description": "Per-day rows by search appearance, page and query.",
        "columns": {
            **KEYS,
            "appearance": "The search appearance type.",
            "page": DIMENSION.format("The page URL"),
            "query": DIMENSION.format("The search query"),
            **METRICS,
        },
    },
    "search_analytics_hourly": {
        "description": "Hourly rows by query, page, country and device, aggregated by page "
        "(the API keeps the last days only).",
        "columns": {
            "site_url": KEYS["site_url"],
            "search_type": KEYS["search_type"],
            "hour": HOUR,
            "query": DIMENSION.format("The search query"),
            "page": DIMENSION.format("The page URL"),
            "country": DIMENSION.format("ISO 3166-1 alpha-3 country, lowercase"),
            "device": DIMENSION.format("DESKTOP, MOBILE or TABLET"),
            **METRICS,
        },
    },
    "hourly_totals": {
        "description": "Hourly totals by property, anonymized queries included.",
        "columns": {
            "site_url": KEYS["site_url"],
            "search_type": KEYS["search_type"],
            "hour": HOUR,
            **METRICS,
        },
    },
    "report_days": {
        "description": "The ledger of the report tables: one row per property, search type, "
        "report and day attempted, as sync_days is for search_analytics.",
        "columns": {
            **KEYS,
            "report": "by_query, by_page, by_country, by_device, search_appearance_detail, or "
            "hourly (search_analytics_hourly and hourly_totals; date: the Pacific day of the "
            "hours).",
            "status": "final (complete, never fetched again), fresh (still changing) or "
            "failed (retried by the next sync).",
            "rows": "Rows stored for the report and day.",
            "truncated": "1 when the API's row cap was reached: rows past it are missing.",
            "fetched_at": "When the report's day was last fetched (UTC).",
            "attempts": "How many times it was fetched or failed.",
            "error": "Why the last attempt failed.",
        },
    },
}

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
        "columns": {
            **KEYS,
            **METRICS,
            "page_clicks": "The day's clicks by page (what search_analytics and by_page add "
            "up to when complete); NULL when not known.",
            "page_impressions": "The day's impressions by page: at least the by-property "
            "impressions, as a result shown with several pages counts once per page; NULL "
            "when not known.",
        },
    },
    "detail_sums": {
        "description": "What each stored day's search_analytics rows add up to, written with "
        "the day (status reads these, not the rows).",
        "columns": {
            **KEYS,
            "clicks": "Clicks of the day's detail rows.",
            "impressions": "Impressions of the day's detail rows.",
            "split_requests": "Extra requests spent refetching a capped day as slices.",
            "recovered": "Rows the slices gave beyond the capped answer.",
        },
    },
    **REPORT_TABLES,
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
        "title": "Top queries over the last 28 stored days, from the detail rows (by page: "
        "impressions overcount; anonymized queries left out)",
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
    "top_queries_as_search_console": {
        "title": "Top queries over the last 28 days as Search Console shows them (by_query, "
        "by property, up to the newest final day)",
        "sql": "WITH last AS (SELECT MAX(date) AS day FROM report_days WHERE site_url = :site "
        "AND search_type = 'web' AND report = 'by_query' AND status = 'final') "
        "SELECT query, SUM(clicks) AS clicks, SUM(impressions) AS impressions, "
        "ROUND(1.0 * SUM(clicks) / SUM(impressions), 4) AS ctr, "
        "ROUND(SUM(position * impressions) / SUM(impressions), 1) AS position "
        "FROM by_query, last WHERE site_url = :site AND search_type = 'web' "
        "AND date > date(last.day, '-28 days') AND date <= last.day "
        "GROUP BY query ORDER BY clicks DESC, impressions DESC LIMIT 100",
    },
    "anonymized_share": {
        "title": "Clicks of anonymized queries per day: daily_totals minus by_query (days "
        "by_query is final and not capped)",
        "sql": "WITH days AS MATERIALIZED (SELECT t.date, t.clicks, "
        "(SELECT COALESCE(SUM(b.clicks), 0) FROM by_query b WHERE b.site_url = t.site_url "
        "AND b.search_type = t.search_type AND b.date = t.date) AS query_clicks "
        "FROM daily_totals t JOIN report_days d ON d.site_url = t.site_url "
        "AND d.search_type = t.search_type AND d.date = t.date AND d.report = 'by_query' "
        "AND d.status = 'final' AND d.truncated = 0 "
        "WHERE t.site_url = :site AND t.search_type = 'web') "
        "SELECT date, clicks, query_clicks, clicks - query_clicks AS anonymized_clicks, "
        "ROUND(1.0 * (clicks - query_clicks) / clicks, 4) AS anonymized_share FROM days "
        "ORDER BY date DESC",
    },
    "coverage": {
        "title": "How complete each property and type is",
        "sql": "SELECT site_url, search_type, MIN(date) AS first_day, MAX(date) AS last_day, "
        "SUM(status = 'final') AS final_days, SUM(status = 'failed') AS failed_days, "
        "SUM(truncated) AS capped_days, SUM(rows) AS rows FROM sync_days "
        "GROUP BY site_url, search_type",
    },
    "report_coverage": {
        "title": "How complete each report table is: days final, fresh, failed and capped",
        "sql": "SELECT site_url, search_type, report, MIN(date) AS first_day, "
        "MAX(date) AS last_day, SUM(status = 'final') AS final_days, "
        "SUM(status = 'fresh') AS fresh_days, SUM(status = 'failed') AS failed_days, "
        "SUM(truncated) AS capped_days, SUM(rows) AS rows FROM report_days "
        "GROUP BY site_url, search_type, report ORDER BY site_url, search_type, report",
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
