"""How fresh and complete is the data? Read-only queries over the ledger and the tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from gscsync.breaker import BreakerState
from gscsync.db import load_breaker


@dataclass
class Coverage:
    """One site × search type."""

    site_url: str
    search_type: str
    first_final: str | None
    newest_final: str | None
    days_final: int
    days_fresh: int
    gaps: list[str]  # days between first and newest final that are not final
    failed: list[dict[str, str]]  # [{"date", "error"}]
    truncated: list[str]
    rows: int
    clicks_detail: int
    clicks_total: int
    impressions_detail: int
    impressions_total: int

    @property
    def clicks_share(self) -> float | None:
        """Share of total clicks the detail rows account for (anonymization, the cap)."""
        return self.clicks_detail / self.clicks_total if self.clicks_total else None

    @property
    def impressions_share(self) -> float | None:
        return self.impressions_detail / self.impressions_total if self.impressions_total else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["clicks_share"] = self.clicks_share
        doc["impressions_share"] = self.impressions_share
        return doc


@dataclass
class StatusReport:
    """Everything ``gscsync status`` reports."""

    coverage: list[Coverage] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    breaker: dict[str, Any] = field(default_factory=dict)


def coverage(db: Database) -> list[Coverage]:
    """Coverage of every site × search type in the ledger."""
    pairs = db.execute(
        "SELECT DISTINCT site_url, search_type FROM sync_days ORDER BY site_url, search_type"
    ).fetchall()
    return [_one(db, site, stype) for site, stype in pairs]


def _one(db: Database, site: str, stype: str) -> Coverage:
    key = [site, stype]
    ledger = db.execute(
        "SELECT date, status, rows, truncated, error FROM sync_days "
        "WHERE site_url = ? AND search_type = ? ORDER BY date",
        key,
    ).fetchall()
    finals = [r[0] for r in ledger if r[1] == "final"]
    final_set = set(finals)
    gaps: list[str] = []
    if finals:
        day, last = date.fromisoformat(finals[0]), date.fromisoformat(finals[-1])
        while day <= last:
            if day.isoformat() not in final_set:
                gaps.append(day.isoformat())
            day += timedelta(days=1)
    detail = _final_sums(db, "search_analytics", key)
    totals = _final_sums(db, "daily_totals", key)
    return Coverage(
        site_url=site,
        search_type=stype,
        first_final=finals[0] if finals else None,
        newest_final=finals[-1] if finals else None,
        days_final=len(finals),
        days_fresh=sum(1 for r in ledger if r[1] == "fresh"),
        gaps=gaps,
        failed=[{"date": r[0], "error": r[4] or ""} for r in ledger if r[1] == "failed"],
        truncated=[r[0] for r in ledger if r[3]],
        rows=sum(r[2] or 0 for r in ledger if r[1] in ("final", "fresh")),
        clicks_detail=detail[0],
        clicks_total=totals[0],
        impressions_detail=detail[1],
        impressions_total=totals[1],
    )


def newest_final_days(db: Database) -> dict[tuple[str, str], str]:
    """The newest final day per (site, search type): one pass over the ledger."""
    cursor = db.execute(
        "SELECT site_url, search_type, MAX(date) FROM sync_days WHERE status = 'final' "
        "GROUP BY site_url, search_type"
    )
    return {(site, stype): day for site, stype, day in cursor.fetchall()}


def _final_sums(db: Database, table: str, key: list[str]) -> tuple[int, int]:
    """Clicks and impressions of ``table`` over the final days of one site and type."""
    row = db.execute(
        "SELECT COALESCE(SUM(x.clicks), 0), COALESCE(SUM(x.impressions), 0) "
        f"FROM {table} x JOIN sync_days d USING (site_url, search_type, date) "
        "WHERE x.site_url = ? AND x.search_type = ? AND d.status = 'final'",
        key,
    ).fetchone()
    return int(row[0]), int(row[1])


def recent_runs(db: Database, limit: int = 5, command: str | None = None) -> list[dict[str, Any]]:
    """The newest runs (of ``command`` only, if given), newest first."""
    where = "WHERE command = ?" if command else ""
    cursor = db.execute(
        "SELECT id, command, started_at, finished_at, status, days_ok, days_failed, "
        f"rows_written, requests, error, pid, version FROM runs {where} ORDER BY id DESC LIMIT ?",
        [command, limit] if command else [limit],
    )
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def status_report(db: Database, runs: int = 5) -> StatusReport:
    """Coverage and the last ``runs`` runs, plus the last sync however far back it is."""
    recent = recent_runs(db, runs)
    if not any(r["command"] == "sync" for r in recent):
        recent += recent_runs(db, 1, command="sync")
    return StatusReport(coverage(db), recent, breaker_json(load_breaker(db)))


def breaker_json(state: BreakerState) -> dict[str, Any]:
    """The breaker as ``status`` shows it (times in UTC ISO-8601)."""
    opened = state.opened_at
    reopens = opened + state.cooldown if opened is not None and state.cooldown else None

    def iso(epoch: float | None) -> str | None:
        return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None

    return {
        "state": state.state,
        "consecutive_failures": state.failures,
        "opened_at": iso(opened),
        "retry_after": iso(reopens),
        "reason": state.reason,
    }


def health(report: StatusReport, *, max_age_hours: float, now: datetime | None = None) -> list[str]:
    """Why the data is unhealthy (an empty list means healthy)."""
    now = now or datetime.now(UTC)
    problems = []
    runs = [r for r in report.runs if r["command"] == "sync" and r["status"] != "running"]
    if not runs:
        problems.append("no sync has finished yet")
    else:
        last = runs[0]
        finished = datetime.fromisoformat(last["finished_at"] or last["started_at"])
        age = (now - finished).total_seconds() / 3600
        if age > max_age_hours:
            problems.append(f"the last sync finished {age:.1f} h ago (over {max_age_hours:g} h)")
        if last["status"] == "failed":
            problems.append(f"the last sync failed: {last['error'] or 'see the runs table'}")
    if report.breaker.get("state") == "open":
        problems.append(
            f"the circuit breaker is open until {report.breaker['retry_after']}: "
            f"{report.breaker['reason']}"
        )
    failed = sum(len(c.failed) for c in report.coverage)
    if failed:
        problems.append(f"{failed} day(s) failed and wait for the next sync")
    return problems
