"""The options several commands share, declared once, and how a command gains them.

CLI layer: typer lives here and in ``cli.py``.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from gscsync import logs
from gscsync.config import Settings, load_settings
from gscsync.models import SEARCH_TYPE_NAMES

log = logging.getLogger("gscsync")


@dataclass(frozen=True)
class Options:
    """The options several commands share, gathered once per invocation."""

    site: Sequence[str] | None = None
    search_type: Sequence[str] | None = None
    db: Path | None = None
    credentials: Path | None = None
    shard: str | None = None
    sharding: bool = False  # the command syncs a shard of the properties (sync, backfill)
    env_file: Path | None = None
    log_format: str | None = None
    verbose: int = 0
    quiet: bool = False

    @property
    def verbosity(self) -> int:
        return -1 if self.quiet else self.verbose

    def settings(self) -> Settings:
        """Resolve the settings; logging is set up first, so a settings error still prints."""
        early = logs.early_format(self.log_format, os.environ, self.env_file)
        logs.configure(early, self.verbosity)
        flags = {
            "sites": self.site,
            "search_types": self.search_type,
            "db": self.db,
            "credentials": self.credentials,
            "shard": self.shard,
            "log_format": self.log_format,
        }
        settings = load_settings(flags, env_file=self.env_file, sharding=self.sharding)
        logs.configure(settings.log_format, self.verbosity)
        for line in settings.warnings:  # now in the format asked for
            log.warning("%s", line)
        return settings


_TYPES = ", ".join(SEARCH_TYPE_NAMES)


@dataclass(frozen=True)
class _Shared:
    """One shared option: its type and default, flags, help, placeholder and variables."""

    kind: Any
    default: Any
    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    env: str = ""  # the environment variables behind it, shown in --help

    def annotated(self) -> tuple[Any, Any]:
        text = f"{self.help} [env: {self.env}]" if self.env else self.help
        count = self.flags[0] == "--verbose"
        option = typer.Option(
            *self.flags, metavar=self.metavar, help=text, count=count, show_default=not count
        )
        return Annotated[self.kind, option], self.default


_OPTIONS = {
    "site": _Shared(
        list[str] | None,
        None,
        ("--site", "-s"),
        "Property (repeatable): sc-domain:example.com or https://www.example.com/.",
        "SITE",
        "GSCSYNC_SITES",
    ),
    "search_type": _Shared(
        list[str] | None,
        None,
        ("--search-type", "-t"),
        f"Search type (repeatable): {_TYPES}.",
        "TYPE",
        "GSCSYNC_SEARCH_TYPES",
    ),
    "db": _Shared(Path | None, None, ("--db",), "SQLite database path.", "PATH", "GSCSYNC_DB"),
    "credentials": _Shared(
        Path | None,
        None,
        ("--credentials",),
        "Service-account key or authorized-user JSON file.",
        "PATH",
        "GSCSYNC_CREDENTIALS, else GOOGLE_APPLICATION_CREDENTIALS",
    ),
    "shard": _Shared(
        str | None,
        None,
        ("--shard",),
        "Only shard K of N of the properties (1 <= K <= N; a stable hash of each property).",
        "K/N",
        "GSCSYNC_SHARD, or GSCSYNC_SHARDS with JOB_COMPLETION_INDEX",
    ),
    "env_file": _Shared(
        Path | None,
        None,
        ("--env-file",),
        "Read settings from this .env file (default: ./.env if present); relative paths "
        "in it are relative to its directory.",
        "PATH",
    ),
    "log_format": _Shared(
        str | None,
        None,
        ("--log-format",),
        "Log lines on stderr as text or as one JSON object each.",
        "text|json",
        "GSCSYNC_LOG_FORMAT",
    ),
    "verbose": _Shared(int, 0, ("--verbose", "-v"), "More detail; -v shows tracebacks."),
    "quiet": _Shared(bool, False, ("--quiet", "-q"), "Only warnings and errors."),
}
# name -> (annotation, default): what a command's signature gains for each
_SHARED: dict[str, tuple[Any, Any]] = {name: o.annotated() for name, o in _OPTIONS.items()}
FETCHING = (
    "site",
    "search_type",
    "db",
    "credentials",
    "shard",
    "env_file",
    "log_format",
    "verbose",
    "quiet",
)
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and fetch nothing.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def with_shared_options(
    wrapper: Callable[..., Any], fn: Callable[..., Any], shared: Sequence[str]
) -> None:
    """Give ``wrapper`` the signature Typer reads: ``fn``'s own options, then ``shared``."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name in shared
        for kind, default in [_SHARED[name]]
    ]
    params = [*own, *extra]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
