"""Logging to stderr as text or one JSON object per line, with secrets scrubbed."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import quote, quote_plus

# Each pattern's optional "keep" group is left in place; the rest becomes [redacted].
_SECRETS = [
    re.compile(r"(?P<keep>Bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"ya29\.[A-Za-z0-9._-]+"),
    re.compile(r"1//[A-Za-z0-9._-]{10,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(
        r"(?P<keep>(?:access_token|refresh_token|assertion|client_secret|private_key)[\s\"':=]{1,4})"
        r"(?!\[redacted\])[^\s&\"',}]+"
    ),
]


# The secrets this process holds (refresh token, client secret, access tokens): removed by
# value, in every spelling they may be echoed in, whatever shape they have.
_KNOWN: set[str] = set()
_KNOWN_LOCK = threading.Lock()
MIN_SECRET = 8  # shorter values would redact ordinary words


def register_secret(value: object) -> None:
    """Scrub ``value`` (and its URL- and JSON-escaped forms) from everything that leaves."""
    if not isinstance(value, str) or len(value) < MIN_SECRET:
        return
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    with _KNOWN_LOCK:
        _KNOWN.update(f for f in forms if len(f) >= MIN_SECRET)


def _redact(match: re.Match[str]) -> str:
    return (match.groupdict().get("keep") or "") + "[redacted]"


def scrub(text: str) -> str:
    """The one filter for every string that leaves the process (logs, the database, ping
    bodies, metrics labels, tracebacks): known secrets, and anything shaped like a token or
    a key, become ``[redacted]``."""
    with _KNOWN_LOCK:
        known = sorted(_KNOWN, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "[redacted]")
    for pattern in _SECRETS:
        text = pattern.sub(_redact, text)
    return text


class _Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, msg, plus any ``extra`` fields given."""

    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self.RESERVED:
                doc[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            doc["error"] = scrub(repr(record.exc_info[1]))
        return json.dumps(doc, default=str)


_FORMAT = ["text"]  # what configure() last set: the final error line follows it


def final_error(line: str, exc: BaseException | None = None) -> None:
    """The run's last word on stderr: one line (one JSON object under ``json``), scrubbed;
    with ``exc`` (``-v``) its traceback too, scrubbed like everything else."""
    trace = scrub("".join(traceback.format_exception(exc))) if exc is not None else None
    line = scrub(line)
    if _FORMAT[0] == "json":
        doc: dict[str, object] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "error",
            "msg": line,
        }
        if trace:
            doc["traceback"] = trace
        print(json.dumps(doc), file=sys.stderr)
        return
    print(line, file=sys.stderr)
    if trace:
        print(trace, end="", file=sys.stderr)


def configure(fmt: str = "text", verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Send the ``gscsync`` logger to stderr. verbosity: -1 quiet, 0 normal, 1+ debug."""
    _FORMAT[0] = fmt
    logger = logging.getLogger("gscsync")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_Scrub())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    level = logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    elif verbosity > 0:
        level = logging.DEBUG
    logger.setLevel(level)
    logger.propagate = False
