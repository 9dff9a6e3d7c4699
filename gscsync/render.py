"""What the CLI shows: every table, JSON document, plan text and progress display.

CLI layer only (rich lives here and in ``cli.py``); the core hands over plain data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gscsync.commands import BackfillPlan
from gscsync.dates import iso_utc
from gscsync.models import (
    APPEARANCE_DETAIL,
    HOURLY,
    REPORTS,
    BreakerState,
    Check,
    Coverage,
    Job,
    ProgressCallback,
    RunReport,
    SiteListing,
    StatusReport,
)

log = logging.getLogger("gscsync")


def console() -> Console:
    """stdout; wide enough for the tables when it is not a terminal (logs, pipes)."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _table(title: str, *columns: str, right: Sequence[str] = ()) -> Table:
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    return table


def _pct(value: float | None) -> str:
    """Rounded down, so 0.9996 shows as 99.9%: never a false 100%."""
    return "—" if value is None else f"{math.floor(value * 1000) / 10:.1f}%"


# -- status ---------------------------------------------------------------------------------


def breaker_json(state: BreakerState) -> dict[str, Any]:
    """The breaker as ``status`` shows it (times in UTC ISO-8601)."""
    opened = state.opened_at
    reopens = opened + state.cooldown if opened is not None and state.cooldown else None
    return {
        "state": state.state,
        "consecutive_failures": state.failures,
        "opened_at": iso_utc(opened) if opened is not None else None,
        "retry_after": iso_utc(reopens) if reopens is not None else None,
        "reason": state.reason,
    }


def status_json(report: StatusReport, *, database: Path, max_age: float) -> str:
    """``status --json``: one document (its shape is documented in the README)."""
    return json.dumps(
        {
            "healthy": report.healthy,
            "problems": report.problems,
            "database": str(database),
            "max_age_hours": max_age,
            "coverage": [c.to_json() for c in report.coverage],
            "runs": [dataclasses.asdict(r) for r in report.runs],
            "breaker": breaker_json(report.breaker),
        },
        indent=2,
    )


def status_table(report: StatusReport, out: Console) -> None:
    """Coverage per site × search type (the days; the detail rows against the totals; the
    report tables), the breaker, the last runs, then the verdict."""
    columns = ("site", "type", "first final", "newest final")
    numbers = ("days", "gaps", "fresh", "failed", "rows")
    table = _table("gscsync status", *columns, *numbers, right=numbers)
    for c in report.coverage:
        table.add_row(
            c.site_url,
            c.search_type,
            c.first_final or "—",
            c.newest_final or "—",
            str(c.days_final),
            str(len(c.gaps)),
            str(c.days_fresh),
            f"[red]{len(c.failed)}[/red]" if c.failed else "0",
            f"{c.rows:,}",
        )
    out.print(table)
    _shares_table(report.coverage, out)
    _reports_table(report.coverage, out)
    b = breaker_json(report.breaker)
    line = f"circuit breaker: {b['state']}"
    if b["state"] == "open":
        line = f"[red]{line}[/red] until {b['retry_after']}: {b['reason']}"
    elif b["consecutive_failures"]:
        line += f" ({b['consecutive_failures']} consecutive failed request(s))"
    out.print(line)
    if report.runs:
        runs = _table(
            "last runs", "id", "command", "started (UTC)", "status", "days ok", "failed", "rows",
            "requests", "error",
        )  # fmt: skip
        for r in report.runs:
            runs.add_row(
                str(r.id),
                r.command,
                r.started_at,
                r.status,
                str(r.days_ok),
                str(r.days_failed),
                f"{r.rows_written:,}",
                str(r.requests),
                (r.error or "")[:60],
            )
        out.print(runs)


BASIS = {"by_page": "by-page", "by_property": "by-property", "mixed": "by-page"}


def share_with_basis(share: float | None, basis: str | None, days_by_page: int, days: int) -> str:
    """``98.1% of by-page``, ``98.1% of by-property``, or ``98.1% of by-page 4/7`` when
    4 of the 7 days with totals have by-page totals (the others: by-property)."""
    if share is None or basis is None:
        return "—"
    mixed = f" {days_by_page}/{days}" if basis == "mixed" else ""
    return f"{_pct(share)} of {BASIS[basis]}{mixed}"


def _shares_table(coverage: Sequence[Coverage], out: Console) -> None:
    """What the final days' detail rows hold against the like-for-like totals, the row cap,
    and the clicks of anonymized queries."""
    numbers = ("clicks seen", "impr. seen", "capped", "after split", "recovered", "anon. clicks")
    title = "final days: detail rows against the totals"
    table = _table(title, "site", "type", *numbers, right=numbers)
    mixed = False
    for c in coverage:
        mixed |= "mixed" in (c.clicks_share_basis, c.impressions_share_basis)
        table.add_row(
            c.site_url,
            c.search_type,
            share_with_basis(
                c.clicks_share,
                c.clicks_share_basis,
                c.clicks_share_days_by_page,
                c.days_with_totals,
            ),
            share_with_basis(
                c.impressions_share,
                c.impressions_share_basis,
                c.impressions_share_days_by_page,
                c.days_with_totals,
            ),
            str(c.days_capped_before_split),
            f"[red]{c.days_capped_after_split}[/red]" if c.days_capped_after_split else "0",
            f"{c.rows_recovered:,}",
            _pct(c.anonymized_clicks_share),
        )
    out.print(table)
    notes = [
        "seen: detail rows (by page) over by-page totals, by-property ones where unknown",
        "capped: days that reached the row cap; after split: days still capped",
        "anon. clicks: clicks no by_query row shows, on its final uncapped days",
    ]
    if mixed:
        notes.insert(1, "by-page 4/7: by-page totals on 4 of 7 days, by-property on the rest")
    for note in notes:
        out.print(f"[dim]{note}[/dim]", highlight=False)


REPORT_COLUMNS = {**{name: name for name in REPORTS}, APPEARANCE_DETAIL: "appearance"}


def _reports_table(coverage: Sequence[Coverage], out: Console) -> None:
    """Days final per report table (the hourly tables under ``hourly``); shown once any is."""
    if not any(any(c.report_days_final.values()) for c in coverage):
        return
    names = (*REPORT_COLUMNS.values(), HOURLY)
    table = _table("report tables: days final", "site", "type", *names, right=names)
    for c in coverage:
        days = [c.report_days_final.get(name, 0) for name in (*REPORT_COLUMNS, HOURLY)]
        table.add_row(c.site_url, c.search_type, *map(str, days))
    out.print(table)


def verdict(report: StatusReport) -> str:
    """``healthy``, or one ``unhealthy: ...`` line per problem."""
    return "\n".join(f"unhealthy: {p}" for p in report.problems) or "healthy"


# -- sites, check, plans ----------------------------------------------------------------------


def sites_json(listing: Sequence[SiteListing]) -> str:
    return json.dumps([dataclasses.asdict(s) for s in listing], indent=2)


def sites_table(listing: Sequence[SiteListing], out: Console) -> None:
    table = _table("Search Console properties", "site", "permission", "synced")
    for s in listing:
        table.add_row(
            s.site_url,
            s.permission_level or "[red]not visible[/red]",
            "yes" if s.synced else "no",
        )
    out.print(table)


def check_lines(checks: Sequence[Check]) -> str:
    return "\n".join(f"{'✓' if c.ok else '✗'} {c.name}: {c.detail}" for c in checks)


def day_ranges(days: Sequence[date]) -> str:
    """2026-01-01..2026-01-03, 2026-01-07 — consecutive days folded."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(r[0].isoformat() if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs) or (
        "nothing"
    )


def sync_plan(jobs: Sequence[Job]) -> str:
    lines = [
        f"{j.site_url}\t{j.search_type}\t{len(j.candidates)} day(s)\t{day_ranges(j.candidates)}"
        for j in jobs
    ]
    return "\n".join([*lines, "(days the API does not yet report final are skipped at run time)"])


def backfill_plan(plan: BackfillPlan) -> str:
    return (
        f"backfill {plan.start}..{plan.end}, newest first, "
        f"{'every day' if plan.force else 'days not final yet'}, for "
        f"{', '.join(plan.sites) or 'every site the credentials can read'} × "
        f"{', '.join(plan.search_types)}"
    )


# -- progress -------------------------------------------------------------------------------


@contextmanager
def progress_display(verbosity: int) -> Iterator[ProgressCallback]:
    """A progress bar on a terminal; a plain log line per 10% otherwise."""
    if sys.stderr.isatty() and verbosity >= 0:
        bar = Progress(
            TextColumn("[bold]backfill"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} days"),
            TextColumn("{task.fields[rows]:,} rows, {task.fields[requests]} requests"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        task = bar.add_task("backfill", total=None, rows=0, requests=0)

        def update(r: RunReport) -> None:
            bar.update(
                task,
                total=r.days_planned or None,
                completed=r.days_done,
                rows=r.rows_written,
                requests=r.requests,
            )

        with bar:
            yield update
        return
    shown = [-1]

    def plain(r: RunReport) -> None:
        if r.days_planned and (step := r.days_done * 10 // r.days_planned) > shown[0]:
            shown[0] = step
            log.info(
                "progress: %d/%d days, %d rows, %d requests",
                r.days_done,
                r.days_planned,
                r.rows_written,
                r.requests,
            )

    yield plain
