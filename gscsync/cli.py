"""The command line: Typer options and help, one error-to-exit-code map, calls commands.

Every error leaves as one line on stderr with the exit code of its class in
:mod:`gscsync.errors`; ``-v`` adds the traceback. typer and rich live here and in
``render.py``, nowhere else.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from gscsync import __version__, commands, logs, render, signals
from gscsync.cli_options import FETCHING, AsJson, DryRun, Options, with_shared_options
from gscsync.config import Settings
from gscsync.dates import pacific_today, parse_date
from gscsync.errors import GscSyncError

log = logging.getLogger("gscsync")

app = typer.Typer(
    name="gscsync",
    help="Copy Google Search Console performance data into SQLite, day by day.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def command(*shared: str, **fixed: Any) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register ``fn`` as a command taking its own options plus the ``shared`` ones.

    The shared options reach ``fn`` as one :class:`Options` (``opts``); ``fixed`` sets
    Options fields a command does not expose as flags. ``fn`` returns the exit code.
    """

    def register(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def run(**kwargs: Any) -> None:
            opts = Options(**fixed, **{name: kwargs.pop(name) for name in shared})
            _exit_with(lambda: fn(opts=opts, **kwargs), opts.verbosity)

        with_shared_options(run, fn, shared)
        app.command(name=fn.__name__.replace("_", "-"))(run)
        return fn

    return register


def _exit_with(body: Callable[[], int], verbosity: int) -> NoReturn:
    """The one map from outcome or error to exit code; never a traceback unless -v."""
    try:
        code = body()
    except GscSyncError as exc:
        _fail(f"gscsync: error: {logs.scrub(str(exc)) or type(exc).__name__}", exc, verbosity)
        code = exc.exit_code
    except typer.Exit:
        raise
    except Exception as exc:  # a bug: still one line, the traceback only with -v
        message = f"{type(exc).__name__}: {logs.scrub(str(exc))}; rerun with -v for details"
        _fail(f"gscsync: internal error: {message}", exc, verbosity)
        code = 1
    raise typer.Exit(code)


def _fail(line: str, exc: BaseException, verbosity: int) -> None:
    logs.final_error(line, exc if verbosity > 0 else None)


def _version(value: bool) -> None:
    if value:
        print(f"gscsync {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Copy Google Search Console performance data into SQLite, day by day."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


@command(*FETCHING)
def sync(
    opts: Options,
    dry_run: DryRun = False,
    reset_breaker: Annotated[
        bool, typer.Option("--reset-breaker", help="Close the circuit breaker, then run.")
    ] = False,
) -> int:
    """Incremental run for cron: fetch the final days not stored yet.

    Every site and search type: the trailing GSCSYNC_SYNC_DAYS window, days that failed
    before, and the days missed during an outage. Example: gscsync sync -s sc-domain:example.com
    """
    settings = opts.settings()
    if dry_run:
        print(render.sync_plan(commands.plan_sync(settings)))
        return 0
    with signals.graceful() as stop:
        outcome = commands.run_sync(settings, stop=stop, reset_breaker=reset_breaker)
    if not outcome.skipped:
        log.info("%s", outcome.summary)
    return outcome.exit_code


@command(*FETCHING)
def backfill(
    opts: Options,
    start: Annotated[
        str | None,
        typer.Option("--start", help="First day, YYYY-MM-DD (default: the oldest the API serves)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last day, YYYY-MM-DD (default: the newest final day)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch days already final too.")] = False,
    dry_run: DryRun = False,
) -> int:
    """Fetch a range of days, newest first; resumable, and Ctrl-C stops cleanly.

    Days already final are skipped unless --force. Example:
    gscsync backfill --start 2025-09-01 -s sc-domain:example.com
    """
    settings = opts.settings()
    first = parse_date(start, "--start") if start else None
    last = parse_date(end, "--end") if end else None
    if dry_run:
        plan = commands.plan_backfill(settings, start=first, end=last, force=force)
        print(render.backfill_plan(plan))
        return 0
    with signals.graceful() as stop, render.progress_display(opts.verbosity) as progress:
        outcome = commands.run_backfill(
            settings, start=first, end=last, force=force, on_progress=progress, stop=stop
        )
    if not outcome.skipped:
        log.info("%s", outcome.summary)
    return outcome.exit_code


@command("db", "env_file", quiet=True)
def status(
    opts: Options,
    as_json: AsJson = False,
    max_age: Annotated[
        float,
        typer.Option("--max-age", help="Hours after which the last sync counts as stale.", min=0),
    ] = 36.0,
) -> int:
    """How fresh and complete is the data? No lock, no API call.

    Exit 0 when healthy; 1 when the last sync is older than --max-age, failed, or days
    failed. Example: gscsync status --json --max-age 30
    """
    settings = opts.settings()
    report = commands.status(settings, max_age_hours=max_age)
    if as_json:
        print(render.status_json(report, database=settings.db, max_age=max_age))
    else:
        render.status_table(report, render.console())
        print(render.verdict(report))
    return 0 if report.healthy else 1


@command("site", "env_file", "verbose", "quiet")
def sites(opts: Options, as_json: AsJson = False) -> int:
    """List the properties the credentials can see, their permission, and which sync takes.

    A property configured in GSCSYNC_SITES that the credentials cannot see is listed with
    no permission. Example: gscsync sites --json
    """
    listing = commands.list_sites(opts.settings())
    if as_json:
        print(render.sites_json(listing))
    else:
        render.sites_table(listing, render.console())
    return 0


@command("site", "search_type", "db", "env_file", quiet=True)
def check(opts: Options) -> int:
    """Smoke test for first setup and CI: settings, credentials, database, lock, each site.

    One line per check; exit 0 only when all pass (2 settings, 3 credentials or access,
    1 otherwise). Example: gscsync check
    """
    results = commands.run_checks(opts.settings, today=pacific_today())
    print(render.check_lines(results))
    return commands.checks_exit_code(results)


@command("verbose", "quiet")
def demo(
    opts: Options,
    db: Annotated[Path, typer.Option("--db", help="Database to write.")] = Path("gscsync-demo.db"),
) -> int:
    """The whole pipeline with no Google account: a local API emulator, a real sync.

    Starts the built-in emulator on a loopback port, syncs its demo properties for every
    search type into the database, and prints the status table. Example: gscsync demo
    """
    from gscsync.demo import run_demo  # the emulator loads only for the demo

    logs.configure("text", opts.verbosity if opts.verbose else -1)
    outcome = run_demo(db)
    r = outcome.report
    if not opts.quiet:
        print(f"demo: {r.days_ok} day(s), {r.rows_written:,} rows, {r.requests} requests into {db}")
        report = commands.status(Settings(db=db), max_age_hours=36.0)
        render.status_table(report, render.console())
    return outcome.exit_code


@command("db", "env_file", quiet=True)
def datasette_metadata(opts: Options) -> int:
    """Print Datasette metadata for the database: tables, columns, canned queries.

    Save it and open the database with it. Example: gscsync datasette-metadata > metadata.json
    (then: datasette gscsync.db -m metadata.json)
    """
    from gscsync.datasette import metadata

    print(json.dumps(metadata(opts.settings().db.stem), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    cli = typer.main.get_command(app)
    try:
        result: Any = cli.main(
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
    sys.exit(result if isinstance(result, int) else 0)
