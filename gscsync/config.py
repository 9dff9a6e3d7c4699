"""Settings: one typed, frozen object resolved from flags, environment, ``.env``, defaults.

Precedence, per setting: a command-line flag wins over the environment, which wins over
the ``.env`` file (working directory, or ``--env-file``), which wins over the default.
Every invalid value raises ``ConfigError`` naming the variable or flag it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from gscsync.errors import ConfigError
from gscsync.models import SEARCH_TYPE_NAMES, DataState

DEFAULT_API_URL = "https://searchconsole.googleapis.com"
T = TypeVar("T")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


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
    # Where each value came from ("GSCSYNC_DB", "--db", "default"): for error messages.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def lock_path(self) -> Path:
        """The lock file: ``GSCSYNC_LOCK_FILE`` or ``<db>.lock``."""
        return self.lock_file or Path(f"{self.db}.lock")


# -- parsers: each takes the raw value and the name it came from -------------------------


def _int(lo: int, hi: int | None = None) -> Callable[[Any, str], int]:
    def parse(raw: Any, name: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            upper = f" and {hi}" if hi is not None else ""
            word = "between" if hi is not None else "at least"
            raise ConfigError(f"{name}={raw!r} must be {word} {lo}{upper}")
        return value

    return parse


def _positive_float(raw: Any, name: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _seconds_or_zero(raw: Any, name: str) -> float:
    if str(raw).strip() in ("0", "0.0"):
        return 0.0
    return _positive_float(raw, name)


def _optional(parse: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    """``parse``, with an unset or empty value meaning None."""

    def parse_optional(raw: Any, name: str) -> T | None:
        if raw is None or str(raw).strip() == "":
            return None
        return parse(raw, name)

    return parse_optional


def _bool(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true/false, 1/0, yes/no or on/off")


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def parse(raw: Any, name: str) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ConfigError(f"{name}={raw!r} is not one of: {', '.join(choices)}")
        return value

    return parse


def _path(raw: Any, name: str) -> Path:
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"{name} is empty; give a file path")
    return Path(text).expanduser()


def _url(raw: Any, name: str) -> str:
    text = str(raw).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL")
    return text


def _split(raw: Any) -> list[str]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _search_types(raw: Any, name: str) -> tuple[str, ...]:
    known = {t.lower(): t for t in SEARCH_TYPE_NAMES}
    out: list[str] = []
    for item in _split(raw):
        canonical = known.get(item.lower().replace("_", ""))
        if canonical is None:
            raise ConfigError(
                f"{name}: unknown search type {item!r}; use any of {', '.join(SEARCH_TYPE_NAMES)}"
            )
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise ConfigError(f"{name} is empty; use any of {', '.join(SEARCH_TYPE_NAMES)}")
    return tuple(out)


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*$", re.I)


def validate_site(site: str, name: str = "site") -> str:
    """Return ``site`` if it is a well-formed Search Console property, else ConfigError."""
    site = site.strip()
    if site.startswith("sc-domain:"):
        domain = site[len("sc-domain:") :]
        if not _DOMAIN.match(domain):
            raise ConfigError(
                f"{name}: {site!r} is not a domain property; write it as sc-domain:example.com "
                "(no scheme, no path)"
            )
        return site
    parts = urlsplit(site)
    if parts.scheme in ("http", "https") and parts.netloc:
        if not site.endswith("/"):
            raise ConfigError(
                f"{name}: URL-prefix property {site!r} must end with '/'; "
                f"Search Console spells it {site}/"
            )
        return site
    if _DOMAIN.match(site):
        raise ConfigError(
            f"{name}: {site!r} is neither a domain nor a URL-prefix property; write "
            f"sc-domain:{site} or https://{site}/ exactly as Search Console lists it "
            "(`gscsync sites` shows them)"
        )
    raise ConfigError(
        f"{name}: {site!r} is not a Search Console property; use sc-domain:example.com "
        "or https://www.example.com/"
    )


def _sites(raw: Any, name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(validate_site(s, name) for s in _split(raw)))


@dataclass(frozen=True)
class _Spec:
    attr: str
    env: tuple[str, ...]
    flag: str | None
    parse: Callable[[Any, str], Any]


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "credentials",
        ("GSCSYNC_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
        None,
        _optional(_path),
    ),
    _Spec("sites", ("GSCSYNC_SITES",), "--site", _sites),
    _Spec("db", ("GSCSYNC_DB",), "--db", _path),
    _Spec("search_types", ("GSCSYNC_SEARCH_TYPES",), "--search-type", _search_types),
    _Spec("data_state", ("GSCSYNC_DATA_STATE",), None, _choice("final", "all")),
    _Spec("sync_days", ("GSCSYNC_SYNC_DAYS",), None, _int(1, 540)),
    _Spec("enabled", ("GSCSYNC_ENABLED",), None, _bool),
    _Spec("api_url", ("GSCSYNC_API_URL",), None, _url),
    _Spec("concurrency", ("GSCSYNC_CONCURRENCY",), None, _int(1, 64)),
    _Spec("qpm", ("GSCSYNC_QPM",), None, _int(1, 100_000)),
    _Spec("timeout", ("GSCSYNC_TIMEOUT",), None, _positive_float),
    _Spec("max_attempts", ("GSCSYNC_MAX_ATTEMPTS",), None, _int(1, 50)),
    _Spec("max_runtime", ("GSCSYNC_MAX_RUNTIME",), None, _optional(_positive_float)),
    _Spec("lock_file", ("GSCSYNC_LOCK_FILE",), None, _optional(_path)),
    _Spec("log_format", ("GSCSYNC_LOG_FORMAT",), "--log-format", _choice("text", "json")),
    _Spec("healthcheck_url", ("GSCSYNC_HEALTHCHECK_URL",), None, _optional(_url)),
    _Spec("metrics_file", ("GSCSYNC_METRICS_FILE",), None, _optional(_path)),
    _Spec("breaker_threshold", ("GSCSYNC_BREAKER_THRESHOLD",), None, _int(1, 10_000)),
    _Spec("breaker_cooldown", ("GSCSYNC_BREAKER_COOLDOWN",), None, _int(1, 7 * 86400)),
    _Spec("retention_days", ("GSCSYNC_RETENTION_DAYS",), None, _int(1, 36500)),
    _Spec("quota_cooloff", ("GSCSYNC_QUOTA_COOLOFF",), None, _positive_float),
    _Spec("quota_patience", ("GSCSYNC_QUOTA_PATIENCE",), None, _seconds_or_zero),
)

ENV_VARS: tuple[str, ...] = tuple(name for spec in _SPECS for name in spec.env)


def read_env_file(env_file: Path | None) -> dict[str, str]:
    """The ``.env`` values: ``env_file`` (must exist) or ``./.env`` (optional)."""
    path = env_file if env_file is not None else Path(".env")
    if not path.exists():
        if env_file is not None:
            raise ConfigError(f"--env-file {env_file}: no such file")
        return {}
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"env file {path}: cannot read it ({exc})") from None
    return {k: v for k, v in values.items() if v is not None}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
) -> Settings:
    """Resolve every setting. ``flags`` maps field name to a value, None meaning "not given"."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    dotenv = read_env_file(env_file)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in _SPECS:
        raw, source = _pick(spec, flags, environ, dotenv)
        if source == "default":
            continue
        values[spec.attr] = spec.parse(raw, source)
        sources[spec.attr] = source
    return Settings(**values, sources=sources)


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
