"""Settings: one typed, frozen object resolved from flags, environment, ``.env``, defaults.

Precedence, per setting: a command-line flag wins over the environment, which wins over
the ``.env`` file (working directory, or ``--env-file``), which wins over the default. A
relative path in the ``.env`` file is relative to that file's directory; one from a flag or
the environment, to the working directory. An unknown ``GSCSYNC_*`` name is never an
error: ``Settings.warnings`` has a line for it naming the closest known one, which the CLI
logs once logging is set up in the format asked for.
Every invalid value raises ``ConfigError`` naming the variable or flag it came from, and so
does a file setting that would make gscsync write a file it does not own (the database or
its ``-wal``/``-shm``/``-journal``, the ``.env`` file, the credentials).
"""

from __future__ import annotations

import difflib
import io
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from gscsync import parse
from gscsync.errors import ConfigError
from gscsync.files import (
    CONFIG_LIMIT,
    NotSmallRegularFile,
    read_small_file,
    same_file,
    sqlite_files,
)
from gscsync.models import REPORTS, SEARCH_TYPE_NAMES, DataState

DEFAULT_API_URL = "https://searchconsole.googleapis.com"
T = TypeVar("T")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
ENV_FILE_MAX_BYTES = CONFIG_LIMIT


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, validated. Build it with :func:`load_settings`."""

    credentials: Path | None = None
    sites: tuple[str, ...] = ()
    db: Path = Path("gscsync.db")
    search_types: tuple[str, ...] = SEARCH_TYPE_NAMES
    data_state: DataState = "final"
    sync_days: int = 10
    enabled: bool = True
    api_url: str = DEFAULT_API_URL
    concurrency: int = 4
    qpm: int = 300
    timeout: float = 60.0
    max_attempts: int = 6
    max_runtime: float | None = None
    lock_file: Path | None = None
    log_format: str = "text"
    healthcheck_url: str | None = None
    metrics_file: Path | None = None
    breaker_threshold: int = 5
    breaker_cooldown: int = 1800
    retention_days: int = 90
    quota_cooloff: float = 60.0
    quota_patience: float = 900.0
    split_budget: int = 40
    tables: tuple[tuple[str, str], ...] = tuple(("web", t) for t in REPORTS)
    hourly: bool = False
    file_mode: int = 0o600  # the database, its WAL/SHM and the metrics file
    shard: tuple[int, int] | None = None  # (k, n): sync only shard k of n of the properties
    # Where each value came from ("GSCSYNC_DB", "--db", "default"): for error messages.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # What the caller should warn about once logging is set up: unknown GSCSYNC_* names.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def reports_for(self, search_type: str) -> tuple[str, ...]:
        """The report tables to keep for ``search_type``."""
        return tuple(table for stype, table in self.tables if stype == search_type)

    @property
    def lock_path(self) -> Path:
        """The lock file: ``GSCSYNC_LOCK_FILE`` or ``<db>.lock``."""
        return self.lock_file or Path(f"{self.db}.lock")


@dataclass(frozen=True)
class _Spec:
    attr: str
    env: tuple[str, ...]
    flag: str | None
    parse: Callable[[Any, str], Any]
    path: bool = False  # a file path: relative in the .env file means relative to its directory


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "credentials",
        ("GSCSYNC_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
        "--credentials",
        parse.optional(parse.path),
        path=True,
    ),
    _Spec("sites", ("GSCSYNC_SITES",), "--site", parse.sites),
    _Spec("db", ("GSCSYNC_DB",), "--db", parse.path, path=True),
    _Spec("search_types", ("GSCSYNC_SEARCH_TYPES",), "--search-type", parse.search_types),
    _Spec("data_state", ("GSCSYNC_DATA_STATE",), None, parse.choice("final", "all")),
    _Spec("sync_days", ("GSCSYNC_SYNC_DAYS",), None, parse.whole(1, 540)),
    _Spec("enabled", ("GSCSYNC_ENABLED",), None, parse.boolean),
    _Spec("api_url", ("GSCSYNC_API_URL",), None, parse.url),
    _Spec("concurrency", ("GSCSYNC_CONCURRENCY",), None, parse.whole(1, 64)),
    _Spec("qpm", ("GSCSYNC_QPM",), None, parse.whole(1, 100_000)),
    _Spec("timeout", ("GSCSYNC_TIMEOUT",), None, parse.seconds(parse.HOUR)),
    _Spec("max_attempts", ("GSCSYNC_MAX_ATTEMPTS",), None, parse.whole(1, 50)),
    _Spec(
        "max_runtime", ("GSCSYNC_MAX_RUNTIME",), None, parse.optional(parse.seconds(7 * parse.DAY))
    ),
    _Spec("lock_file", ("GSCSYNC_LOCK_FILE",), None, parse.optional(parse.path), path=True),
    _Spec("log_format", ("GSCSYNC_LOG_FORMAT",), "--log-format", parse.choice("text", "json")),
    _Spec("healthcheck_url", ("GSCSYNC_HEALTHCHECK_URL",), None, parse.optional(parse.url)),
    _Spec("metrics_file", ("GSCSYNC_METRICS_FILE",), None, parse.optional(parse.path), path=True),
    _Spec("breaker_threshold", ("GSCSYNC_BREAKER_THRESHOLD",), None, parse.whole(1, 10_000)),
    _Spec("breaker_cooldown", ("GSCSYNC_BREAKER_COOLDOWN",), None, parse.whole(1, 7 * 86400)),
    _Spec("retention_days", ("GSCSYNC_RETENTION_DAYS",), None, parse.whole(1, 36500)),
    _Spec("quota_cooloff", ("GSCSYNC_QUOTA_COOLOFF",), None, parse.seconds(parse.HOUR)),
    _Spec("split_budget", ("GSCSYNC_SPLIT_BUDGET",), None, parse.whole(0, 1000)),
    _Spec("tables", ("GSCSYNC_TABLES",), None, parse.tables),
    _Spec("hourly", ("GSCSYNC_HOURLY",), None, parse.boolean),
    _Spec("file_mode", ("GSCSYNC_FILE_MODE",), None, parse.file_mode),
    _Spec("quota_patience", ("GSCSYNC_QUOTA_PATIENCE",), None, parse.seconds(parse.DAY, zero=True)),
    _Spec("shard", ("GSCSYNC_SHARD",), "--shard", parse.optional(parse.shard)),
)
# Kubernetes: with GSCSYNC_SHARDS=N (and no GSCSYNC_SHARD), an Indexed Job's pod is shard
# JOB_COMPLETION_INDEX + 1 of N (the index counts from 0).
SHARDS_VAR, INDEX_VAR = "GSCSYNC_SHARDS", "JOB_COMPLETION_INDEX"
PREFIX = "GSCSYNC_"
IN_ENV_FILE = " (in .env)"

# Every variable gscsync reads: the settings' names, and GSCSYNC_SHARDS.
ENV_VARS: tuple[str, ...] = (*(name for spec in _SPECS for name in spec.env), SHARDS_VAR)


def env_file_in_use(env_file: Path | None) -> Path | None:
    """The ``.env`` file settings come from: ``env_file``, else ``./.env`` if it exists."""
    return env_file if env_file is not None or not Path(".env").exists() else Path(".env")


def read_env_file(env_file: Path | None) -> dict[str, str]:
    """The ``.env`` values: ``env_file`` (must exist) or ``./.env`` (optional).

    Only a regular file of at most 1 MB is read (a directory, FIFO or device is refused
    before it is opened, so never waited on), and a line python-dotenv cannot parse is an
    error naming its line, not a warning."""
    path = env_file_in_use(env_file)
    if path is None:
        return {}
    label = f"--env-file {path}" if env_file is not None else f"env file {path}"
    try:
        text = read_small_file(path, ENV_FILE_MAX_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None
    except NotSmallRegularFile as exc:
        raise ConfigError(f"{label} is {exc}; give the path of a .env file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{label}: cannot read it ({reason})") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            key = re.match(r"\s*(?:export\s+)?([A-Za-z_][\w.]*)\s*=", binding.original.string)
            what = f" ({key.group(1)})" if key else ""
            raise ConfigError(
                f"{label} line {line}{what} cannot be parsed (an unterminated quote?); "
                "fix that line"
            )
    values = dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if v is not None}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    sharding: bool = False,
) -> Settings:
    """Resolve every setting. ``flags`` maps field name to a value, None meaning "not given".

    ``sharding``: the command syncs a shard (``sync``, ``backfill``), so ``GSCSYNC_SHARDS``
    without ``JOB_COMPLETION_INDEX`` is an error rather than no shard."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    env_path = env_file_in_use(env_file)
    try:
        dotenv = read_env_file(env_file)
    except ConfigError:
        if env_path is not None:  # unreadable as a .env file: is it the database?
            _refuse_env_file_is_db(env_path, env_file, _db_without_dotenv(flags, environ))
        raise
    warnings = tuple(unknown_names(environ, dotenv, env_path))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in _SPECS:
        raw, source = _pick(spec, flags, environ, dotenv)
        if source == "default":
            continue
        value = spec.parse(raw, source)
        if spec.path and env_path is not None and source.endswith(IN_ENV_FILE):
            value = _beside(env_path, value)
        values[spec.attr] = value
        sources[spec.attr] = source
    if values.get("shard") is None:
        indexed = _shard_from_index(environ, dotenv, sharding)
        if indexed is not None:
            values["shard"], sources["shard"] = indexed
    settings = Settings(**values, sources=sources, warnings=warnings)
    if env_path is not None:
        _refuse_env_file_is_db(env_path, env_file, settings.db)
    _refuse_foreign_writes(settings, env_path)
    return settings


def _beside(env_path: Path, value: Path | None) -> Path | None:
    """A path read from the env file: a relative one is relative to the file's directory."""
    if value is None or value.is_absolute():
        return value
    return env_path.parent / value


def _shard_from_index(
    environ: Mapping[str, str], dotenv: Mapping[str, str], sharding: bool
) -> tuple[tuple[int, int], str] | None:
    """The shard of a Kubernetes Indexed Job's pod: ``GSCSYNC_SHARDS=N`` (environment or
    env file) and ``JOB_COMPLETION_INDEX`` (environment; counts from 0) give shard
    index+1 of N."""
    if SHARDS_VAR in environ:
        raw, source = environ[SHARDS_VAR], SHARDS_VAR
    elif SHARDS_VAR in dotenv:
        raw, source = dotenv[SHARDS_VAR], f"{SHARDS_VAR}{IN_ENV_FILE}"
    else:
        return None
    if not raw.strip():
        return None
    n = parse.whole(1)(raw, source)
    index = environ.get(INDEX_VAR, "").strip()
    if not index:
        if not sharding:
            return None
        raise ConfigError(
            f"{source}={raw!r} needs {INDEX_VAR} (0 to {n - 1}: Kubernetes sets it in each pod "
            f"of an Indexed Job); elsewhere give the shard as GSCSYNC_SHARD=K/N or --shard K/N"
        )
    if not (index.isascii() and index.isdigit()) or not int(index) < n:
        raise ConfigError(
            f"{INDEX_VAR}={index!r} must be a whole number from 0 to {n - 1} "
            f"({source}={raw.strip()} shards, counted from 0)"
        )
    return (int(index) + 1, n), f"{INDEX_VAR} (with {source}={raw.strip()})"


def unknown_names(
    environ: Mapping[str, str], dotenv: Mapping[str, str], env_path: Path | None
) -> list[str]:
    """One warning line per ``GSCSYNC_*`` name gscsync does not read (a typo, such as the
    singular of ``GSCSYNC_SITES``), naming where it is set and the closest known name."""
    warned: dict[str, str] = {}
    for where, names in (("the environment", environ), (f"the env file {env_path}", dotenv)):
        for name in sorted(names):
            if name.upper().startswith(PREFIX) and name not in ENV_VARS and name not in warned:
                close = closest_name(name)
                hint = f"did you mean {close}?" if close else "no known setting is like it"
                warned[name] = (
                    f"{name} (in {where}) is not a gscsync setting and is ignored; {hint}"
                )
    return list(warned.values())


def closest_name(name: str) -> str | None:
    """The known ``GSCSYNC_*`` name closest to ``name`` (difflib), if any is close."""
    known = {known[len(PREFIX) :]: known for known in ENV_VARS if known.startswith(PREFIX)}
    match = difflib.get_close_matches(name.upper()[len(PREFIX) :], known, n=1, cutoff=0.5)
    return known[match[0]] if match else None


# -- gscsync writes only files it owns -----------------------------------------------------


def _db_without_dotenv(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Path:
    raw, source = _pick(next(s for s in _SPECS if s.attr == "db"), flags, environ, {})
    return Settings.db if source == "default" else parse.path(raw, source)


def _refuse_env_file_is_db(env_path: Path, env_file: Path | None, db: Path) -> None:
    label = "--env-file" if env_file is not None else "the env file"
    for what, path in sqlite_files(db):
        if same_file(env_path, path):
            raise ConfigError(f"{label} {env_path} is {what}; give the path of a .env file")


def _refuse_foreign_writes(settings: Settings, env_path: Path | None) -> None:
    """The lock and metrics files may be none of the files gscsync reads, nor each other."""
    theirs = sqlite_files(settings.db)
    if env_path is not None:
        theirs.append((f"the env file {env_path}", env_path))
    if settings.credentials is not None:
        theirs.append((f"the credentials file {settings.credentials}", settings.credentials))
    writes = [("GSCSYNC_LOCK_FILE", "lock_file", settings.lock_path, theirs)]
    if settings.metrics_file is not None:
        lock = (f"the lock file {settings.lock_path}", settings.lock_path)
        metrics = settings.metrics_file
        writes.append(("GSCSYNC_METRICS_FILE", "metrics_file", metrics, [*theirs, lock]))
    for var, attr, target, others in writes:
        source = settings.sources.get(attr)  # "GSCSYNC_LOCK_FILE (in .env)": name=value (in .env)
        label = source.replace(var, f"{var}={target}") if source else f"the lock file {target}"
        for what, path in others:
            if same_file(target, path):
                raise ConfigError(
                    f"{label} is {what}; gscsync writes only files it owns: "
                    f"set {var} to a path of its own"
                )


def _pick(
    spec: _Spec, flags: Mapping[str, Any], environ: Mapping[str, str], dotenv: Mapping[str, str]
) -> tuple[Any, str]:
    flag_value = flags.get(spec.attr)
    if flag_value is not None and not (isinstance(flag_value, Sequence) and not flag_value):
        return flag_value, spec.flag or spec.attr
    for name in spec.env:
        if name in environ:
            return environ[name], name
    for name in spec.env:
        if name in dotenv:
            return dotenv[name], f"{name} (in .env)"
    return None, "default"
