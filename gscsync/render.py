"""What the CLI shows: every table, JSON document, plan text and progress display.

CLI layer only (rich lives here and in ``cli.py``); the core hands over plain data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gscsync.models import (
    Check,
    Job,
    Outcome,
    ProgressCallback,
    RunReport,
    SiteListing,
    StatusReport,
)
from gscsync.plans import BackfillPlan
from gscsync.render_status import breaker_json, pct, share_with_basis, status_table

log = logging.getLogger("gscsync")
__all__ = [
    "breaker_json",
    "pct",
    "share_with_basis",
    "status_table",
]  # the status tables, in render_status


def console() -> Console:
    """stdout; wide enough for the tables when it is not a terminal (logs, pipes)."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _table(title: str, *columns: str, right: Sequence[str] = ()) -> Table:
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    return table


# -- status ---------------------------------------------------------------------------------


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


def verdict(report: StatusReport) -> str:
    """``healthy``, or one ``unhealthy: ...`` line per problem."""
    return "\n".join(f"unhealthy: {p}" for p in report.problems) or "healthy"


# -- JSON for the other reports (their shapes are documented in the README) -------------


def run_json(outcome: Outcome) -> str:
    """``sync --json`` / ``backfill --json`` / ``demo --json``: the run's summary."""
    r = outcome.report
    return json.dumps(
        {
            "command": outcome.command,
            "status": outcome.status,
            "exit_code": outcome.exit_code,
            "summary": outcome.summary,
            "stopped": r.stopped,
            "days_ok": r.days_ok,
            "days_failed": r.days_failed,
            "rows": r.rows_written,
            "requests": r.requests,
            "sites": r.sites,
            "by_site_type": [
                {
                    "site_url": site,
                    "search_type": stype,
                    "days_ok": ok,
                    "days_failed": bad,
                    "rows": rows,
                }  # fmt: skip
                for (site, stype), (ok, bad, rows) in sorted(r.by_job.items())
            ],
            "failures": [
                {
                    "site_url": t.site_url,
                    "search_type": t.search_type,
                    "date": t.date,
                    "error": message,
                }  # fmt: skip
                for t, message in r.failures
            ],
        },
        indent=2,
    )


def error_json(command: str, exit_code: int, error: str) -> str:
    """``sync``/``backfill --json`` of a run that could not start (bad settings, the lock
    held: ``skipped``): what a script needs to branch on."""
    status = "skipped" if exit_code == 75 else "failed"
    return json.dumps(
        {"command": command, "status": status, "exit_code": exit_code, "error": error},
        indent=2,
    )


def checks_json(checks: Sequence[Check]) -> str:
    """``check --json``: one object per check (its message carries the fix)."""
    return json.dumps(
        [
            {"name": c.name, "ok": c.ok, "message": c.detail, "exit_code": c.exit_code}
            for c in checks
        ],
        indent=2,
    )


def sync_plan_json(jobs: Sequence[Job]) -> str:
    return json.dumps(
        [
            {
                "site_url": j.site_url,
                "search_type": j.search_type,
                "days": [d.isoformat() for d in j.candidates],
            }  # fmt: skip
            for j in jobs
        ],
        indent=2,
    )


def backfill_plan_json(plan: BackfillPlan) -> str:
    return json.dumps(
        {
            "start": plan.start.isoformat(),
            "end": plan.end.isoformat(),
            "force": plan.force,
            "sites": list(plan.sites),
            "search_types": list(plan.search_types),
            "qpm": plan.qpm,
            "estimates": [
                {
                    "site_url": e.site_url,
                    "search_type": e.search_type,
                    "days": e.days,
                    "requests_low": e.low,
                    "requests_high": e.high,
                    "rows_per_day": e.rows_per_day,
                }  # fmt: skip
                for e in plan.estimates
            ],
            "total": {
                "days": sum(e.days for e in plan.estimates),
                "requests_low": sum(e.low for e in plan.estimates),
                "requests_high": sum(e.high for e in plan.estimates),
                "minutes_at_qpm": round(sum(e.high for e in plan.estimates) / plan.qpm, 1),
            },
        },
        indent=2,
    )


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


def demo_summary(r: RunReport, db: Path) -> str:
    """What ``gscsync demo`` did; a second run on the same database has nothing new."""
    if not r.days_ok and not r.days_failed:
        return f"demo: {db} is already up to date ({r.requests} requests to find out)"
    return f"demo: {r.days_ok} day(s), {r.rows_written:,} rows, {r.requests} requests into {db}"


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
    head = (
        f"backfill {plan.start}..{plan.end}, newest first, "
        f"{'every day' if plan.force else 'days not final yet'}, for "
        f"{', '.join(plan.sites) or 'every site the credentials can read'} × "
        f"{', '.join(plan.search_types)}"
    )
    lines = [head]
    low = high = days = 0
    for e in plan.estimates:
        days, low, high = days + e.days, low + e.low, high + e.high
        basis = (
            f"~{e.rows_per_day:,.0f} rows a day stored"
            if e.rows_per_day is not None
            else "no history: at most"
        )
        lines.append(
            f"{e.site_url}\t{e.search_type}\t{e.days} day(s)\t{e.low}-{e.high} requests "
            f"({basis})\t{_minutes(e.high, plan.qpm)}"
        )
    if plan.estimates:
        lines.append(
            f"total: {days} day(s), {low}-{high} requests, {_minutes(high, plan.qpm)} at "
            f"GSCSYNC_QPM={plan.qpm} (1 request for a type with no data at all; Google's "
            "load quota may add cool-off time)"
        )
    return "\n".join(lines)


def _minutes(requests: int, qpm: int) -> str:
    minutes = requests / qpm
    return f"about {minutes:.0f} min" if minutes >= 1 else "under a minute"


# -- progress -------------------------------------------------------------------------------


PLAIN_EVERY = 60.0  # seconds: off a terminal, a progress line at least this often


@contextmanager
def progress_display(
    verbosity: int, clock: Callable[[], float] = time.monotonic
) -> Iterator[ProgressCallback]:
    """A progress bar on a terminal, log lines drawn above it; off a terminal a plain log
    line per 10% or per minute, whichever comes first."""
    if sys.stderr.isatty() and verbosity >= 0:
        bar = Progress(
            TextColumn("[bold]backfill"),
            BarColumn(),
            TextColumn("{task.fields[days]}"),
            TextColumn("{task.fields[rows]:,} rows, {task.fields[requests]} requests"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        task = bar.add_task("backfill", total=None, days="planning…", rows=0, requests=0)

        def update(r: RunReport) -> None:
            bar.update(
                task,
                total=r.days_planned or None,
                completed=r.days_done,
                days=f"{r.days_done}/{r.days_planned} days" if r.days_planned else "planning…",
                rows=r.rows_written,
                requests=r.requests,
            )

        with bar, _logs_to(sys.stderr):  # the bar's stderr: lines go above the bar
            yield update
        return
    shown, at = [-1], [clock()]

    def plain(r: RunReport) -> None:
        if not r.days_planned:
            return
        step = r.days_done * 10 // r.days_planned
        if step > shown[0] or clock() - at[0] >= PLAIN_EVERY:
            shown[0], at[0] = step, clock()
            log.info(
                "progress: %d/%d days, %d rows, %d requests",
                r.days_done,
                r.days_planned,
                r.rows_written,
                r.requests,
            )

    yield plain


@contextmanager
def _logs_to(stream: TextIO) -> Iterator[None]:
    """gscsync's log handlers write to ``stream`` meanwhile (rich's live display swaps
    ``sys.stderr`` for a proxy that prints above the bar; a handler keeps the stream it
    was made with)."""
    handlers = [
        h
        for h in logging.getLogger("gscsync").handlers + logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.__stderr__
    ]
    before = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, old in zip(handlers, before, strict=True):
            handler.setStream(old)
