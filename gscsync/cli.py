"""The command line: parse flags, build Settings, call the core, render, map errors to exits.

Every error leaves as one line on stderr and the exit code of SPEC.md; ``-v`` adds the
traceback. typer and rich live here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gscsync import __version__, logs
from gscsync import app as core
from gscsync.checks import exit_code as check_exit_code
from gscsync.checks import run_checks
from gscsync.config import Settings, load_settings
from gscsync.dates import pacific_today, parse_date
from gscsync.db import open_db_readonly
from gscsync.errors import GscSyncError
from gscsync.render import status_table
from gscsync.status import health, status_report
from gscsync.sync import Job, ProgressCallback, RunReport

log = logging.getLogger("gscsync")

app = typer.Typer(
    name="gscsync",
    help="Copy Google Search Console performance data into SQLite, day by day.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SiteOpt = Annotated[
    list[str] | None,
    typer.Option("--site", "-s", help="Property to sync (repeatable); replaces GSCSYNC_SITES."),
]
TypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--search-type",
        "-t",
        help="Search type (repeatable): web, image, video, news, discover, googleNews.",
    ),
]
DbOpt = Annotated[Path | None, typer.Option("--db", help="SQLite database path (GSCSYNC_DB).")]
EnvFileOpt = Annotated[
    Path | None, typer.Option("--env-file", help="Read settings from this .env file.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan (site, type, days) and fetch nothing.")
]
LogFormatOpt = Annotated[
    str | None, typer.Option("--log-format", help="text or json (GSCSYNC_LOG_FORMAT).")
]
VerboseOpt = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="More detail; -v shows tracebacks.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]


class _State:
    verbosity = 0


def _console() -> Console:
    """stdout; wide enough for the tables when it is not a terminal (logs, pipes)."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _version(value: bool) -> None:
    if value:
        print(f"gscsync {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Copy Google Search Console performance data into SQLite, day by day."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


def _settings(
    *,
    site: Sequence[str] | None,
    search_type: Sequence[str] | None,
    db: Path | None,
    env_file: Path | None,
    log_format: str | None,
    verbose: int,
    quiet: bool,
) -> Settings:
    _State.verbosity = -1 if quiet else verbose
    # Log in text until the settings say otherwise, so a settings error still prints.
    logs.configure(log_format if log_format in ("text", "json") else "text", _State.verbosity)
    settings = load_settings(
        {"sites": site, "search_types": search_type, "db": db, "log_format": log_format},
        env_file=env_file,
    )
    logs.configure(settings.log_format, _State.verbosity)
    return settings


def _fail(exc: BaseException, code: int) -> NoReturn:
    message = logs.scrub(str(exc)) or type(exc).__name__
    print(f"gscsync: error: {message}", file=sys.stderr)
    if _State.verbosity > 0:
        traceback.print_exception(exc, file=sys.stderr)
    raise typer.Exit(code)


def _guard(body: Callable[[], int]) -> NoReturn:
    """Run a command body; map its outcome or error to the exit code."""
    try:
        code = body()
    except GscSyncError as exc:
        _fail(exc, exc.exit_code)
    raise typer.Exit(code)


def _ranges(days: Sequence[date]) -> str:
    """2026-01-01..2026-01-03, 2026-01-07 — consecutive days folded."""
    out: list[str] = []
    start = prev = None
    for day in sorted(days):
        if prev is not None and day == prev + timedelta(days=1):
            prev = day
            continue
        if start is not None and prev is not None:
            out.append(start.isoformat() if start == prev else f"{start}..{prev}")
        start = prev = day
    if start is not None and prev is not None:
        out.append(start.isoformat() if start == prev else f"{start}..{prev}")
    return ", ".join(out) or "nothing"


def _print_plan(jobs: Sequence[Job]) -> None:
    for job in jobs:
        print(
            f"{job.site_url}\t{job.search_type}\t{len(job.candidates)} day(s)\t"
            f"{_ranges(job.candidates)}"
        )
    print("(days the API does not yet report final are skipped at run time)")


@app.command()
def sync(
    site: SiteOpt = None,
    search_type: TypeOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
    log_format: LogFormatOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
    reset_breaker: Annotated[
        bool, typer.Option("--reset-breaker", help="Close the circuit breaker, then run.")
    ] = False,
) -> None:
    """Incremental run for cron: fetch the final days not stored yet.

    Every site and search type: the trailing GSCSYNC_SYNC_DAYS window, days that failed
    before, and the days missed during an outage. Example: gscsync sync -s sc-domain:example.com
    """

    def body() -> int:
        settings = _settings(
            site=site,
            search_type=search_type,
            db=db,
            env_file=env_file,
            log_format=log_format,
            verbose=verbose,
            quiet=quiet,
        )
        if dry_run:
            _print_plan(core.plan_sync(settings))
            return 0
        with _stop_on_signals() as stop:
            outcome = core.run_sync(settings, stop=stop, reset_breaker=reset_breaker)
        if not outcome.skipped:
            r = outcome.report
            log.info(
                "sync %s: %d day(s) written, %d failed, %d rows, %d requests, %d site(s)",
                r.status,
                r.days_ok,
                r.days_failed,
                r.rows_written,
                r.requests,
                len(r.sites),
            )
        return outcome.exit_code

    _guard(body)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set an event: the core starts no more work and stops cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        log.warning(
            "%s received: stopping after the requests in flight", signal.Signals(signum).name
        )
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _progress_display() -> Iterator[ProgressCallback]:
    """A progress bar on a terminal; a plain line per 10% otherwise."""
    if sys.stderr.isatty() and _State.verbosity >= 0:
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
    shown = {"step": -1}

    def plain(r: RunReport) -> None:
        if r.days_planned:
            step = r.days_done * 10 // r.days_planned
            if step > shown["step"]:
                shown["step"] = step
                log.info(
                    "progress: %d/%d days, %d rows, %d requests",
                    r.days_done,
                    r.days_planned,
                    r.rows_written,
                    r.requests,
                )

    yield plain


@app.command()
def backfill(
    start: Annotated[
        str | None,
        typer.Option("--start", help="First day, YYYY-MM-DD (default: the oldest the API serves)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last day, YYYY-MM-DD (default: the newest final day)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch days already final too.")] = False,
    site: SiteOpt = None,
    search_type: TypeOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
    log_format: LogFormatOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Fetch a range of days, newest first; resumable, and Ctrl-C stops cleanly.

    Days already final are skipped unless --force. Example:
    gscsync backfill --start 2025-09-01 -s sc-domain:example.com
    """

    def body() -> int:
        settings = _settings(
            site=site,
            search_type=search_type,
            db=db,
            env_file=env_file,
            log_format=log_format,
            verbose=verbose,
            quiet=quiet,
        )
        first = parse_date(start, "--start") if start else None
        last = parse_date(end, "--end") if end else None
        if dry_run:
            day_range = core.backfill_range(pacific_today(), first, last)
            print(
                f"backfill {day_range[0]}..{day_range[1]}, newest first, "
                f"{'every day' if force else 'days not final yet'}, for "
                f"{', '.join(settings.sites) or 'every site the credentials can read'} × "
                f"{', '.join(settings.search_types)}"
            )
            return 0
        with _stop_on_signals() as stop, _progress_display() as progress:
            outcome = core.run_backfill(
                settings, start=first, end=last, force=force, on_progress=progress, stop=stop
            )
        r = outcome.report
        if not outcome.skipped:
            log.info(
                "backfill %s: %d day(s) written, %d failed, %d rows, %d requests",
                r.status,
                r.days_ok,
                r.days_failed,
                r.rows_written,
                r.requests,
            )
        return outcome.exit_code

    _guard(body)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    max_age: Annotated[
        float,
        typer.Option("--max-age", help="Hours after which the last sync counts as stale.", min=0),
    ] = 36.0,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
) -> None:
    """How fresh and complete is the data? No lock, no API call.

    Exit 0 when healthy; 1 when the last sync is older than --max-age, failed, or days
    failed. Example: gscsync status --json --max-age 30
    """

    def body() -> int:
        settings = _settings(
            site=None,
            search_type=None,
            db=db,
            env_file=env_file,
            log_format=None,
            verbose=0,
            quiet=True,
        )
        database = open_db_readonly(settings.db)
        try:
            report = status_report(database)
        finally:
            database.close()
        problems = health(report, max_age_hours=max_age)
        if as_json:
            print(
                json.dumps(
                    {
                        "healthy": not problems,
                        "problems": problems,
                        "database": str(settings.db),
                        "max_age_hours": max_age,
                        "coverage": [c.to_json() for c in report.coverage],
                        "runs": report.runs,
                        "breaker": report.breaker,
                    },
                    indent=2,
                )
            )
        else:
            status_table(report, _console())
            for problem in problems:
                print(f"unhealthy: {problem}")
            if not problems:
                print("healthy")
        return 1 if problems else 0

    _guard(body)


@app.command()
def sites(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    site: SiteOpt = None,
    env_file: EnvFileOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """List the properties the credentials can see, their permission, and which sync takes.

    A property configured in GSCSYNC_SITES that the credentials cannot see is listed with
    no permission. Example: gscsync sites --json
    """

    def body() -> int:
        settings = _settings(
            site=site,
            search_type=None,
            db=None,
            env_file=env_file,
            log_format=None,
            verbose=verbose,
            quiet=quiet,
        )
        listing = core.list_sites(settings)
        if as_json:
            print(json.dumps([dataclasses.asdict(s) for s in listing], indent=2))
        else:
            table = Table(title="Search Console properties", title_justify="left")
            for name in ("site", "permission", "synced"):
                table.add_column(name)
            for s in listing:
                table.add_row(
                    s.site_url,
                    s.permission_level or "[red]not visible[/red]",
                    "yes" if s.synced else "no",
                )
            _console().print(table)
        return 0

    _guard(body)


@app.command()
def check(
    site: SiteOpt = None,
    search_type: TypeOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
) -> None:
    """Smoke test for first setup and CI: settings, credentials, database, lock, each site.

    One line per check; exit 0 only when all pass (2 settings, 3 credentials or access,
    1 otherwise). Example: gscsync check
    """

    def load() -> Settings:
        return _settings(
            site=site,
            search_type=search_type,
            db=db,
            env_file=env_file,
            log_format=None,
            verbose=0,
            quiet=True,
        )

    def body() -> int:
        results = run_checks(load, today=pacific_today())
        for c in results:
            mark = "✓" if c.ok else "✗"
            print(f"{mark} {c.name}: {c.detail}")
        return check_exit_code(results)

    _guard(body)


@app.command()
def demo(
    db: Annotated[Path, typer.Option("--db", help="Database to write.")] = Path("gscsync-demo.db"),
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """The whole pipeline with no Google account: a local API emulator, a real sync.

    Starts the built-in emulator on a loopback port, syncs its demo properties for every
    search type into the database, and prints the status table. Example: gscsync demo
    """

    def body() -> int:
        _State.verbosity = -1 if quiet else verbose
        logs.configure("text", _State.verbosity if verbose else -1)
        outcome, settings = core.run_demo(db)
        r = outcome.report
        if not quiet:
            print(
                f"demo: {r.days_ok} day(s), {r.rows_written:,} rows, {r.requests} requests "
                f"into {settings.db}"
            )
            database = open_db_readonly(settings.db)
            try:
                status_table(status_report(database), _console())
            finally:
                database.close()
        return outcome.exit_code

    _guard(body)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    command = typer.main.get_command(app)
    try:
        result: Any = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="gscsync",
            standalone_mode=False,
        )
    except typer.Abort:
        print("gscsync: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad flag, bad value
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: gscsync {ctx.info_name} --help)" if ctx is not None and ctx.parent else ""
        print(f"gscsync: error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: still one line, the traceback only with -v
        print(
            f"gscsync: internal error: {type(exc).__name__}: {logs.scrub(str(exc))}; "
            "rerun with -v for details",
            file=sys.stderr,
        )
        if _State.verbosity > 0:
            traceback.print_exception(exc, file=sys.stderr)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
