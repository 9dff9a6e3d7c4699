"""Parsers for setting values: each takes the raw value and the name it came from, and
returns the typed value or raises ``ConfigError`` naming that variable or flag."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gscsync.errors import ConfigError
from gscsync.models import SEARCH_TYPE_NAMES, TABLES, report_allowed

T = TypeVar("T")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
HOUR, DAY = 3600, 86400


def whole(lo: int, hi: int | None = None) -> Callable[[Any, str], int]:
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


def seconds(most: int, *, zero: bool = False) -> Callable[[Any, str], float]:
    """Seconds: finite, positive (or 0 when ``zero``), at most ``most``."""
    count, unit = (most // DAY, "day") if most % DAY == 0 else (most // HOUR, "hour")
    span = f"{count} {unit}" + ("s" if count > 1 else "")

    def parse(raw: Any, name: str) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise ConfigError(f"{name}={raw!r} is not a number of seconds")
        if zero and value == 0:
            return 0.0
        if not value > 0:
            word = "0 or a positive" if zero else "a positive"
            raise ConfigError(f"{name}={raw!r} must be {word} number of seconds")
        if value > most:
            raise ConfigError(f"{name}={raw!r} is too long: at most {most} seconds ({span})")
        return value

    return parse


def optional(parse: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    """``parse``, with an unset or empty value meaning None."""

    def parse_optional(raw: Any, name: str) -> T | None:
        if raw is None or str(raw).strip() == "":
            return None
        return parse(raw, name)

    return parse_optional


def boolean(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true/false, 1/0, yes/no or on/off")


_SHARD = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")


def shard(raw: Any, name: str) -> tuple[int, int]:
    """``K/N``: this is shard K of N (1 <= K <= N), as ``--shard`` and ``GSCSYNC_SHARD``."""
    if isinstance(raw, tuple):
        return raw
    match = _SHARD.fullmatch(str(raw))
    if match is None:
        raise ConfigError(f"{name}={raw!r} is not K/N; give shard K of N as K/N, e.g. 2/4")
    k, n = int(match.group(1)), int(match.group(2))
    if not 1 <= k <= n:
        raise ConfigError(f"{name}={raw!r}: K/N needs 1 <= K <= N (shards count from 1), e.g. 2/4")
    return k, n


def file_mode(raw: Any, name: str) -> int:
    """``GSCSYNC_FILE_MODE``: ``0600`` (the owner only) or ``0640`` (the owner's group may
    read: a dashboard or Datasette running as another user of that group)."""
    value = str(raw).strip().lstrip("0") or "0"
    if value not in ("600", "640"):
        raise ConfigError(
            f"{name}={raw!r} is not a file mode gscsync uses; use 0600 (the owner only) or "
            "0640 (the owner's group may read too)"
        )
    return int(value, 8)


def choice(*choices: str) -> Callable[[Any, str], str]:
    def parse(raw: Any, name: str) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ConfigError(f"{name}={raw!r} is not one of: {', '.join(choices)}")
        return value

    return parse


def path(raw: Any, name: str) -> Path:
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"{name} is empty; give a file path")
    return Path(text).expanduser()


def control_char(text: str) -> str | None:
    """The first control or invisible format character in ``text`` (newline, tab, NUL,
    zero-width space...), which urlsplit would silently drop or keep."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return ch
    return None


def url(raw: Any, name: str) -> str:
    text = str(raw).strip().rstrip("/")
    if (ch := control_char(text)) is not None:
        raise ConfigError(f"{name}={raw!r} contains the control character {ch!r}")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL")
    return text


def split(raw: Any) -> list[str]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def search_types(raw: Any, name: str) -> tuple[str, ...]:
    known = {t.lower(): t for t in SEARCH_TYPE_NAMES}
    out: list[str] = []
    for item in split(raw):
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


def tables(raw: Any, name: str) -> tuple[tuple[str, str], ...]:
    """``GSCSYNC_TABLES``: report tables as ``TABLE`` (every search type the API answers it
    for) or ``TYPE:TABLE``; ``none`` for none. (type, table) pairs, in a stable order."""
    known_types = {t.lower(): t for t in SEARCH_TYPE_NAMES}
    items = split(raw)
    if [i.lower() for i in items] == ["none"]:
        return ()
    out: set[tuple[str, str]] = set()
    for item in items:
        stype, _, table = item.rpartition(":")
        table = table.strip().lower()
        if table not in TABLES:
            raise ConfigError(
                f"{name}: unknown table {table!r}; use any of {', '.join(TABLES)} (optionally "
                "as TYPE:TABLE, e.g. image:by_query), or none"
            )
        if stype:
            canonical = known_types.get(stype.strip().lower().replace("_", ""))
            if canonical is None:
                raise ConfigError(
                    f"{name}: unknown search type {stype!r} in {item!r}; use any of "
                    f"{', '.join(SEARCH_TYPE_NAMES)}"
                )
            if not report_allowed(canonical, table):
                raise ConfigError(
                    f"{name}: the API cannot answer {table} for {canonical} (it has no "
                    f"{table.removeprefix('by_')} dimension); remove {item!r}"
                )
            out.add((canonical, table))
        else:
            out.update((t, table) for t in SEARCH_TYPE_NAMES if report_allowed(t, table))
    if not out:
        raise ConfigError(f"{name} is empty; name tables ({', '.join(TABLES)}) or none")
    order = {t: n for n, t in enumerate((*SEARCH_TYPE_NAMES, *TABLES))}
    return tuple(sorted(out, key=lambda p: (order[p[0]], order[p[1]])))


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*$", re.I)


def validate_site(site: str, name: str = "site") -> str:
    """Return ``site`` if it is a well-formed Search Console property, else ConfigError."""
    site = site.strip()
    if (ch := control_char(site)) is not None:
        raise ConfigError(
            f"{name}: {site!r} contains the control character {ch!r}; write the property "
            "on one line, exactly as Search Console lists it"
        )
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


def sites(raw: Any, name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(validate_site(s, name) for s in split(raw)))


def scheme_hint(site_url: str) -> str:
    """http:// and https:// are different properties to Search Console."""
    for a, b in (("http://", "https://"), ("https://", "http://")):
        if site_url.startswith(a):
            return (
                f" (Search Console treats {a} and {b} as different properties: is it {b}"
                f"{site_url[len(a) :]}?)"
            )
    return ""
