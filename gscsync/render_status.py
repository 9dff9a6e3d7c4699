"""The ``status`` tables: per site, its search types' days, what the final days' detail
rows hold against the totals, and the report tables' days; then the breaker and the last
runs. Fits 80 columns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from gscsync.dates import iso_utc
from gscsync.models import APPEARANCE_DETAIL, HOURLY, BreakerState, Coverage, StatusReport


def pct(value: float | None) -> str:
    """Rounded down, so 0.9996 shows as 99.9%: never a false 100%."""
    return "—" if value is None else f"{math.floor(value * 1000) / 10:.1f}%"


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
    return f"{pct(share)} {BASIS[basis]}{mixed}"


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
            pct(c.anonymized_clicks_share),
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
