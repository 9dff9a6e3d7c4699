"""Rich rendering for the CLI: tables on stdout, nothing else. CLI layer only."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from gscsync.status import StatusReport


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def status_table(report: StatusReport, console: Console) -> None:
    """Coverage per site × search type, then the last runs."""
    table = Table(title="gscsync status", title_justify="left")
    for name, justify in (
        ("site", "left"),
        ("type", "left"),
        ("first final", "left"),
        ("newest final", "left"),
        ("days", "right"),
        ("gaps", "right"),
        ("fresh", "right"),
        ("failed", "right"),
        ("capped", "right"),
        ("rows", "right"),
        ("clicks seen", "right"),
        ("impr. seen", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
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
            str(len(c.truncated)),
            f"{c.rows:,}",
            _pct(c.clicks_share),
            _pct(c.impressions_share),
        )
    console.print(table)
    b = report.breaker
    if b:
        line = f"circuit breaker: {b['state']}"
        if b["state"] == "open":
            line = f"[red]{line}[/red] until {b['retry_after']}: {b['reason']}"
        elif b["consecutive_failures"]:
            line += f" ({b['consecutive_failures']} consecutive failed request(s))"
        console.print(line)
    if report.runs:
        runs = Table(title="last runs", title_justify="left")
        for name in (
            "id",
            "command",
            "started (UTC)",
            "status",
            "days ok",
            "failed",
            "rows",
            "requests",
            "error",
        ):
            runs.add_column(name)
        for r in report.runs:
            runs.add_row(
                str(r["id"]),
                r["command"],
                r["started_at"],
                r["status"],
                str(r["days_ok"]),
                str(r["days_failed"]),
                f"{r['rows_written']:,}",
                str(r["requests"]),
                (r["error"] or "")[:60],
            )
        console.print(runs)
