"""Logging to stderr as text or one JSON object per line, with secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, quote_plus

FORMATS = ("text", "json")

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


def current_format() -> str:
    """``text`` or ``json``: what :func:`configure` last set."""
    return _FORMAT[0]


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


_OURS = "_gscsync_handler"  # marks the handlers configure() installs, to replace them only


def _handler(fmt: str, stream: TextIO | None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_Scrub())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    setattr(handler, _OURS, True)
    return handler


def configure(fmt: str = "text", verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Send the ``gscsync`` logger to stderr. verbosity: -1 quiet, 0 normal, 1+ debug.

    Warnings of the libraries (their loggers' warnings and errors, Python ``warnings``
    such as google-auth's ``UserWarning``) go to stderr through a handler of the same
    format on the root logger: under ``json`` every line on stderr is JSON, and every
    line is scrubbed. Other handlers on the root logger are left alone."""
    _FORMAT[0] = fmt
    logger = logging.getLogger("gscsync")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(_handler(fmt, stream))
    level = logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    elif verbosity > 0:
        level = logging.DEBUG
    logger.setLevel(level)
    logger.propagate = False
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    libraries = _handler(fmt, stream)
    libraries.setLevel(logging.WARNING)
    root.addHandler(libraries)
    logging.captureWarnings(True)  # warnings.warn(...) -> the "py.warnings" logger -> root


# -- the log format before the settings are loaded ----------------------------------------


def peek_setting(name: str, environ: Mapping[str, str], env_file: Path | None) -> str | None:
    """One setting as the error path needs it before (or without) the settings: from the
    environment, else from the ``.env`` file (``env_file``, else ``./.env``). Lenient by
    design, since the error being reported may well be that very file: a file that cannot
    be read gives None, and a file with lines python-dotenv cannot parse still gives the
    value from a line it can (taken literally)."""
    if name in environ:
        return environ[name]
    from dotenv import dotenv_values  # only on this path
    from dotenv.parser import parse_stream

    from gscsync.files import CONFIG_LIMIT, read_small_file

    path = env_file if env_file is not None else Path(".env")
    try:
        text = read_small_file(path, CONFIG_LIMIT).decode("utf-8")
    except (OSError, ValueError):  # missing, a FIFO, too big, not UTF-8
        return None
    bindings = list(parse_stream(io.StringIO(text)))
    if not any(b.error for b in bindings):
        return dotenv_values(stream=io.StringIO(text)).get(name)  # as the settings read it
    found = [b.value for b in bindings if not b.error and b.key == name]
    return found[-1] if found else None


def early_format(flag: str | None, environ: Mapping[str, str], env_file: Path | None) -> str:
    """The log format to use before the settings are loaded (a settings error is printed
    in it): ``--log-format``, else ``GSCSYNC_LOG_FORMAT`` from the environment or the
    ``.env`` file, else ``text``. A value that is not a format gives ``text`` here; the
    settings refuse it with exit 2."""
    raw = flag if flag is not None else peek_setting("GSCSYNC_LOG_FORMAT", environ, env_file)
    value = (raw or "").strip().lower()
    return value if value in FORMATS else "text"


def argv_option(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in a command line not parsed yet
    (the last one given wins, as with the parser); None when absent."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def configure_early(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Set up logging from a raw command line, before it is parsed, so that a usage error
    (a bad flag) is printed in the format the user asked for."""
    env_file = argv_option(argv, "--env-file")
    fmt = early_format(
        argv_option(argv, "--log-format"), environ, Path(env_file) if env_file else None
    )
    configure(fmt)
