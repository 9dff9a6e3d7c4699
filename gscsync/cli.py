"""The command line: Typer options and help, one error-to-exit-code map, calls commands.

Every error leaves as one line on stderr with the exit code of its class in
:mod:`gscsync.errors`; ``-v`` adds the traceback. typer and rich live here and in
``render.py``, nowhere else.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from gscsync import __version__, commands, logs, render, runlog, signals
from gscsync.cli_options import FETCHING, AsJson, DryRun, Options, with_shared_options
from gscsync.config import Settings
from gscsync.dates import pacific_today, parse_date
from gscsync.errors import GscSyncError
from gscsync.merge import merge_databases
from gscsync.models import Outcome

log = logging.getLogger("gscsync")
# The commands a health check watches: their failures are pinged (GSCSYNC_HEALTHCHECK_URL).
MONITORED = ("sync", "backfill")
Notify = Callable[[int, str], None]
DEMO_DB = Path("gscsync-demo.db")

app = typer.Typer(
    name="gscsync",
    help="Copy Google Search Console performance data into SQLite, day by day.",
    invoke_without_command=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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
            notify: Notify | None = None
            if fn.__name__ in MONITORED and not kwargs.get("dry_run"):
                notify = functools.partial(runlog.notify_failure, os.environ, opts.env_file)
            _exit_with(lambda: fn(opts=opts, **kwargs), opts.verbosity, notify)

        with_shared_options(run, fn, shared)
        app.command(name=fn.__name__.replace("_", "-"))(run)
        return fn

    return register


def _exit_with(body: Callable[[], int], verbosity: int, notify: Notify | None = None) -> NoReturn:
    """The one map from outcome or error to exit code; never a traceback unless -v.

    ``notify`` pings the health check of an error the run did not ping itself (bad
    settings, the lock held: a run that never started)."""
    try:
        code = body()
    except GscSyncError as exc:
        line = f"gscsync: error: {logs.scrub(str(exc)) or type(exc).__name__}"
        code = _fail(line, exc, verbosity, exc.exit_code, notify)
    except typer.Exit:
        raise
    except KeyboardInterrupt as exc:  # a second Ctrl-C: the run closed itself as interrupted
        code = _fail("gscsync: interrupted", exc, 0, 130, notify)
    except Exception as exc:  # a bug: still one line, the traceback only with -v
        message = f"{type(exc).__name__}: {logs.scrub(str(exc))}; rerun with -v for details"
        code = _fail(f"gscsync: internal error: {message}", exc, verbosity, 1, notify)
    raise typer.Exit(code)


def _fail(line: str, exc: BaseException, verbosity: int, code: int, notify: Notify | None) -> int:
    logs.final_error(line, exc if verbosity > 0 else None)
    if notify is not None and not runlog.reported(exc):
        notify(code, line)
    return code


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


@command(*FETCHING, sharding=True)
def sync(
    opts: Options,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    reset_breaker: Annotated[
        bool, typer.Option("--reset-breaker", help="Close the circuit breaker, then run.")
    ] = False,
) -> int:
    """Incremental run for cron: fetch the final days not stored yet.

    Every site and search type: the trailing GSCSYNC_SYNC_DAYS window, days that failed
    before, and the days missed during an outage. With --shard K/N, only the properties of
    shard K of N (see gscsync merge). Example: gscsync sync -s sc-domain:example.com
    """
    with _json_summary(as_json and not dry_run, "sync"):
        settings = opts.settings()
        if dry_run:
            jobs = commands.plan_sync(settings)
            print(render.sync_plan_json(jobs) if as_json else render.sync_plan(jobs))
            return 0
        with signals.graceful() as stop:
            outcome = commands.run_sync(settings, stop=stop, reset_breaker=reset_breaker)
    return _ended(outcome, as_json)


@command(*FETCHING, sharding=True)
def backfill(
    opts: Options,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="DATE",
            help="First day, YYYY-MM-DD (default: the oldest the API serves).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            metavar="DATE",
            help="Last day, YYYY-MM-DD (default: today, Pacific; days the API does not "
            "report final yet are skipped).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch days already final too.")] = False,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> int:
    """Fetch a range of days, newest first; resumable, and Ctrl-C stops cleanly.

    Days already final are skipped unless --force. Example:
    gscsync backfill --start 2025-09-01 -s sc-domain:example.com
    """
    with _json_summary(as_json and not dry_run, "backfill"):
        settings = opts.settings()
        first = parse_date(start, "--start") if start else None
        last = parse_date(end, "--end") if end else None
        if dry_run:
            plan = commands.plan_backfill(settings, start=first, end=last, force=force)
            print(render.backfill_plan_json(plan) if as_json else render.backfill_plan(plan))
            return 0
        with (
            signals.graceful() as stop,
            render.progress_display(opts.verbosity if not as_json else -1) as progress,
        ):
            outcome = commands.run_backfill(
                settings, start=first, end=last, force=force, on_progress=progress, stop=stop
            )
    return _ended(outcome, as_json)


@contextmanager
def _json_summary(as_json: bool, command: str) -> Iterator[None]:
    """With --json, a run that ends in an error still prints a document: its summary, or
    (a run that could not start: bad settings 2, the lock held 75) the error."""
    try:
        yield
    except GscSyncError as exc:
        if as_json:
            if exc.outcome is not None:
                print(render.run_json(exc.outcome))
            else:
                print(render.error_json(command, exc.exit_code, str(exc)))
        raise


def _ended(outcome: Outcome, as_json: bool) -> int:
    if as_json:
        print(render.run_json(outcome))
    elif not outcome.skipped:
        log.info("%s", outcome.summary)
    return outcome.exit_code


@command("db", "env_file", quiet=True)
def status(
    opts: Options,
    as_json: AsJson = False,
    max_age: Annotated[
        float,
        typer.Option(
            "--max-age",
            metavar="HOURS",
            help="Hours after which the last sync counts as stale.",
            min=0,
        ),
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


@command("site", "credentials", "env_file", "verbose", "quiet")
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


@command("site", "search_type", "db", "credentials", "env_file", quiet=True)
def check(opts: Options, as_json: AsJson = False) -> int:
    """Smoke test for first setup and CI: settings, credentials, database, lock, each site.

    One line per check; exit 0 only when all pass (2 settings, 3 credentials or access,
    1 otherwise). Example: gscsync check
    """
    results = commands.run_checks(opts.settings, today=pacific_today())
    print(render.checks_json(results) if as_json else render.check_lines(results))
    return commands.checks_exit_code(results)


@command("verbose", "quiet")
def demo(
    opts: Options,
    db: Annotated[Path, typer.Option("--db", metavar="PATH", help="Database to write.")] = DEMO_DB,
    as_json: AsJson = False,
) -> int:
    """The whole pipeline with no Google account: a local API emulator, a real sync.

    Starts the built-in emulator on a loopback port, syncs its demo properties for every
    search type into the database, and prints the status table. Example: gscsync demo
    """
    from gscsync.demo import run_demo  # the emulator loads only for the demo

    logs.configure("text", opts.verbosity if opts.verbose else -1)
    outcome = run_demo(db)
    if as_json:
        print(render.run_json(outcome))
    elif not opts.quiet:
        print(render.demo_summary(outcome.report, db))
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


@command("log_format", "verbose", "quiet")
def merge(
    opts: Options,
    out: Annotated[Path, typer.Argument(metavar="OUT.db", hidden=True, show_default=False)],
    shards: Annotated[
        list[Path], typer.Argument(metavar="SHARD.db", hidden=True, show_default=False)
    ],
) -> int:
    """Combine the databases written by shards into one; rerun it to bring in newer days.

    OUT.db is created if absent; each SHARD.db is a database written by a shard (sync
    --shard K/N), best given by the same path each time. Per site, type and day, a final
    day wins over a fresh or failed one, and the later fetch between two final ones; the
    rows of a day come with it. Runs are kept with their origin (table merged_runs). One
    line per shard. Example: gscsync merge all.db shard-1.db shard-2.db
    """
    settings = opts.settings()  # logging, and the settings' checks as for every command
    merge_databases(
        out,
        shards,
        on_merged=lambda merged: print(merged.summary, flush=True),
        mode=settings.file_mode,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    args = list(argv) if argv is not None else sys.argv[1:]
    logs.configure_early(args, os.environ)  # a usage error is printed as --log-format says
    cli = typer.main.get_command(app)
    try:
        result: Any = cli.main(args=args, prog_name="gscsync", standalone_mode=False)
    except typer.Abort:
        logs.final_error("gscsync: interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad flag, bad value
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: gscsync {ctx.info_name} --help)" if ctx is not None and ctx.parent else ""
        line = f"gscsync: error: {exc.format_message()}{hint}"
        logs.final_error(line)
        if ctx is not None and ctx.info_name in MONITORED and "--dry-run" not in args:
            env_file = logs.argv_option(args, "--env-file")
            env_path = Path(env_file) if env_file else None
            runlog.notify_failure(os.environ, env_path, exc.exit_code, line)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
