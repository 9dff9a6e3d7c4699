"""The options several commands share, declared once, and how a command gains them.

CLI layer: typer lives here and in ``cli.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from gscsync import logs
from gscsync.config import Settings, load_settings
from gscsync.models import SEARCH_TYPE_NAMES


@dataclass(frozen=True)
class Options:
    """The options several commands share, gathered once per invocation."""

    site: Sequence[str] | None = None
    search_type: Sequence[str] | None = None
    db: Path | None = None
    env_file: Path | None = None
    log_format: str | None = None
    verbose: int = 0
    quiet: bool = False

    @property
    def verbosity(self) -> int:
        return -1 if self.quiet else self.verbose

    def settings(self) -> Settings:
        """Resolve the settings; logging is set up first, so a settings error still prints."""
        early = self.log_format if self.log_format in ("text", "json") else "text"
        logs.configure(early, self.verbosity)
        flags = {
            "sites": self.site,
            "search_types": self.search_type,
            "db": self.db,
            "log_format": self.log_format,
        }
        settings = load_settings(flags, env_file=self.env_file)
        logs.configure(settings.log_format, self.verbosity)
        return settings


_TYPES = ", ".join(SEARCH_TYPE_NAMES)
# name, type, default, flags, help: the options several commands share
_SHARED: dict[str, tuple[Any, Any]] = {
    name: (Annotated[kind, typer.Option(*flags, help=text, count=name == "verbose")], default)
    for name, kind, default, flags, text in (
        ("site", list[str] | None, None, ("--site", "-s"), "Property (repeatable); GSCSYNC_SITES."),
        ("search_type", list[str] | None, None, ("--search-type", "-t"), f"Type: {_TYPES}."),
        ("db", Path | None, None, ("--db",), "SQLite database path (GSCSYNC_DB)."),
        ("env_file", Path | None, None, ("--env-file",), "Read settings from this .env file."),
        ("log_format", str | None, None, ("--log-format",), "text or json (GSCSYNC_LOG_FORMAT)."),
        ("verbose", int, 0, ("--verbose", "-v"), "More detail; -v shows tracebacks."),
        ("quiet", bool, False, ("--quiet", "-q"), "Only warnings and errors."),
    )
}
FETCHING = ("site", "search_type", "db", "env_file", "log_format", "verbose", "quiet")
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
