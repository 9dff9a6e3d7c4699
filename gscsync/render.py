"""What the CLI shows: every table, JSON document, plan text and progress display.

CLI layer only (rich lives here and in ``cli.py``); the core hands over plain data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gscsync.dates import iso_utc
from gscsync.models import (
    APPEARANCE_DETAIL,
    HOURLY,
    BreakerState,
    Check,
    Coverage,
    Job,
    ProgressCallback,
    RunReport,
    SiteListing,
    StatusReport,
)
from gscsync.plans import BackfillPlan

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
    """Per site: its search types' days, then what the final days' detail rows hold
    against the totals and the report tables' days; the breaker, the last runs, then the
    verdict. Fits 80 columns: the site heads its group instead of filling a column."""
    out.print("[bold]gscsync status[/bold]")
    by_site: dict[str, list[Coverage]] = {}
    for c in report.coverage:
        by_site.setdefault(c.site_url, []).append(c)
    mixed = False
    for site, rows in by_site.items():
        out.print(f"\n[bold]{site}[/bold]", highlight=False)
        _days_table(rows, out)
        mixed |= _shares_table(rows, out)
        _reports_table(rows, out)
    if by_site:
        _notes(out, mixed)
    b = breaker_json(report.breaker)
    line = f"circuit breaker: {b['state']}"
    if b["state"] == "open":
        line = f"[red]{line}[/red] until {b['retry_after']}: {b['reason']}"
    elif b["consecutive_failures"]:
        line += f" ({b['consecutive_failures']} consecutive failed request(s))"
    out.print(line)
    if report.runs:
        numbers = ("ok", "failed", "rows", "requests")
        runs = _compact("last runs", "id", "command", "started (UTC)", "status", *numbers)
        for r in report.runs:
            runs.add_row(
                str(r.id),
                r.command,
                r.started_at[:19].replace("T", " "),
                r.status,
                str(r.days_ok),
                str(r.days_failed),
                f"{r.rows_written:,}",
                str(r.requests),
            )
            if r.error:
                runs.add_row("", f"[dim]{r.error[:68]}[/dim]")
        out.print(runs)


def _compact(title: str | None, *columns: str) -> Table:
    """A table without borders between cells; numbers right-aligned."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in columns:
        table.add_column(name, justify="right" if name in NUMBERS else "left", no_wrap=True)
    return table


NUMBERS = {"days", "gaps", "fresh", "failed", "rows", "ok", "requests", "id", "capped"}
NUMBERS |= {"split", "recov.", "anon.", "clicks seen", "impr. seen"}
NUMBERS |= {"query", "page", "country", "device", "appearance", "hourly"}  # report days


def _days_table(coverage: Sequence[Coverage], out: Console) -> None:
    table = _compact(
        None, "type", "first final", "newest final", "days", "gaps", "fresh", "failed", "rows"
    )
    for c in coverage:
        table.add_row(
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


BASIS = {"by_page": "page", "by_property": "prop.", "mixed": "page"}


def share_with_basis(share: float | None, basis: str | None, days_by_page: int, days: int) -> str:
    """``98.1% page``, ``98.1% prop.``, or ``98.1% page 4/7`` when 4 of the 7 days with
    totals have by-page totals (the others: by-property)."""
    if share is None or basis is None:
        return "—"
    mixed = f" {days_by_page}/{days}" if basis == "mixed" else ""
    return f"{_pct(share)} {BASIS[basis]}{mixed}"


def _shares_table(coverage: Sequence[Coverage], out: Console) -> bool:
    """What the final days' detail rows hold against the like-for-like totals, the row cap,
    and the clicks of anonymized queries; True when a share mixes bases."""
    numbers = ("clicks seen", "impr. seen", "capped", "split", "recov.", "anon.")
    table = _compact(None, "type", *numbers)
    mixed = False
    for c in coverage:
        mixed |= "mixed" in (c.clicks_share_basis, c.impressions_share_basis)
        table.add_row(
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
    return mixed


def _notes(out: Console, mixed: bool) -> None:
    notes = [
        "seen: the final days' detail rows (by page) over the by-page totals (page), or",
        "  the by-property ones where those are unknown (prop.)",
        "capped: days that reached the row cap; split: of them, still capped after",
        "  splitting; recov.: rows the slices gave beyond the cap",
        "anon.: share of clicks in queries Google never names (totals minus by_query)",
    ]
    if mixed:
        notes.insert(2, "page 4/7: by-page totals on 4 of 7 days, by-property on the rest")
    for note in notes:
        out.print(f"[dim]{note}[/dim]", highlight=False)


REPORT_COLUMNS = {
    "by_query": "query",
    "by_page": "page",
    "by_country": "country",
    "by_device": "device",
    APPEARANCE_DETAIL: "appearance",
}


def _reports_table(coverage: Sequence[Coverage], out: Console) -> None:
    """Days final per report table (the hourly tables under ``hourly``); shown once any is."""
    if not any(any(c.report_days_final.values()) for c in coverage):
        return
    names = (*REPORT_COLUMNS.values(), HOURLY)
    table = _compact("report tables: days final", "type", *names)
    for c in coverage:
        days = [c.report_days_final.get(name, 0) for name in (*REPORT_COLUMNS, HOURLY)]
        table.add_row(c.search_type, *map(str, days))
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
