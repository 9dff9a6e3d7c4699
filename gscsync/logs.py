"""Logging to stderr as text or one JSON object per line, with secrets scrubbed."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

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


def _redact(match: re.Match[str]) -> str:
    return (match.groupdict().get("keep") or "") + "[redacted]"


def scrub(text: str) -> str:
    """Replace anything shaped like a token or key with ``[redacted]``."""
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


def configure(fmt: str = "text", verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Send the ``gscsync`` logger to stderr. verbosity: -1 quiet, 0 normal, 1+ debug."""
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
