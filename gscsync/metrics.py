"""The Prometheus textfile (node_exporter's textfile collector) that a run leaves behind.

One file holds the last run of every command: a run rewrites its own command's series and
writes the other commands' series back as it read them from the file, so a ``backfill``
does not make the ``sync`` series vanish. The current state (the circuit breaker, the
newest final day of each site and type) has no ``command`` label and is always this run's
view. Every family is a gauge with HELP and TYPE; the labels are bounded: ``command``
(``sync``, ``backfill``), ``status`` (ok, partial, failed, interrupted, skipped), and
``site``/``search_type`` (the configured properties).

The file is written with ``prometheus_client``'s ``write_to_textfile`` (a temporary file
and a rename) inside a private staging directory, then given mode 0640 and renamed into
place with ``GSCSYNC_FILE_MODE`` (0600, or 0640 for node_exporter's group):
``write_to_textfile`` creates its file with the default mode (0644 under the usual umask),
readable by every local user.
"""

from __future__ import annotations

import calendar
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gscsync.files import CONFIG_LIMIT, read_small_file
from gscsync.logs import scrub

log = logging.getLogger("gscsync")
METRICS_MODE = 0o600  # the default (GSCSYNC_FILE_MODE): 0640 lets node_exporter's group read

# name: (help, labels) of the families each command keeps for its last run
PER_COMMAND: dict[str, tuple[str, tuple[str, ...]]] = {
    "gscsync_last_run_timestamp_seconds": (
        "When the command's last run finished (Unix time).",
        ("command",),
    ),
    "gscsync_last_success_timestamp_seconds": (
        "When the command's last run that exited 0 finished (Unix time).",
        ("command",),
    ),
    "gscsync_last_run_exit_code": (
        "Exit code of the command's last run; status says how it ended "
        "(ok, partial, failed, interrupted, skipped).",
        ("command", "status"),
    ),
    "gscsync_last_run_duration_seconds": (
        "Wall time of the command's last run, in seconds.",
        ("command",),
    ),
    "gscsync_last_run_days_ok": ("Days the command's last run stored final.", ("command",)),
    "gscsync_last_run_days_failed": ("Days that failed in the command's last run.", ("command",)),
    "gscsync_last_run_rows_written": ("Rows the command's last run wrote.", ("command",)),
    "gscsync_last_run_requests": ("API requests the command's last run made.", ("command",)),
}
BREAKER_OPEN = "gscsync_breaker_open"
NEWEST_FINAL = "gscsync_newest_final_day_timestamp_seconds"
ENABLED = "gscsync_enabled"
CURRENT: dict[str, tuple[str, tuple[str, ...]]] = {
    ENABLED: ("0 while GSCSYNC_ENABLED is off: runs do nothing (a planned pause).", ()),
    BREAKER_OPEN: ("1 while the circuit breaker is open: runs exit 4 without a request.", ()),
    NEWEST_FINAL: (
        "Newest final day stored for a site and search type (its UTC midnight, Unix time).",
        ("site", "search_type"),
    ),
}

Labels = tuple[tuple[str, str], ...]  # (name, value) pairs in the family's label order


@dataclass
class Snapshot:
    """The samples to write, by family, each family's labels in its declared order."""

    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def set(self, name: str, value: float, **labels: str) -> None:
        names = {**PER_COMMAND, **CURRENT}[name][1]
        key = tuple((label, labels[label]) for label in names)
        self.samples.setdefault(name, {})[key] = value


class _Families(Collector):
    """A registry's only collector: the snapshot as gauge families, HELP and TYPE each."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        for name, (text, labels) in {**PER_COMMAND, **CURRENT}.items():
            family = GaugeMetricFamily(name, text, labels=list(labels))
            for key, value in sorted(self.snapshot.samples.get(name, {}).items()):
                family.add_metric([v for _, v in key], value)
            yield family


def write_metrics(
    path: Path,
    *,
    command: str,
    status: str,
    exit_code: int,
    duration: float,
    counts: Mapping[str, int],
    breaker_open: bool,
    newest_final: Mapping[tuple[str, str], str] | None,
    now: float | None = None,
    mode: int = METRICS_MODE,
) -> None:
    """Rewrite the textfile with this run of ``command`` and the other commands' last runs
    as the file held them. Called under the run's lock, so no other run writes meanwhile.
    A disabled run (``status`` skipped, ``newest_final`` None: it read no database) keeps
    the current state as the file held it, says ``gscsync_enabled 0``, and is no success."""
    now = round(time.time() if now is None else now)  # whole seconds, as cron is
    disabled = newest_final is None
    succeeded = exit_code == 0 and not disabled
    snap = Snapshot()
    for name, labels, value in _previous(path):
        if disabled and name in (BREAKER_OPEN, NEWEST_FINAL):
            snap.set(name, value, **labels)  # the state as the last real run left it
        if name not in PER_COMMAND or "command" not in labels:
            continue
        keep_own_success = name == "gscsync_last_success_timestamp_seconds" and not succeeded
        if labels["command"] != command or keep_own_success:
            if set(labels) == set(PER_COMMAND[name][1]):
                snap.set(name, value, **labels)
    snap.set("gscsync_last_run_timestamp_seconds", now, command=command)
    snap.set(ENABLED, 0 if disabled else 1)
    if succeeded:
        snap.set("gscsync_last_success_timestamp_seconds", now, command=command)
    snap.set("gscsync_last_run_exit_code", exit_code, command=command, status=status)
    snap.set("gscsync_last_run_duration_seconds", round(duration, 3), command=command)
    for name, value in counts.items():
        family = f"gscsync_last_run_{name}"
        if family in PER_COMMAND:
            snap.set(family, value, command=command)
    if newest_final is None:  # disabled
        _write(path, snap, mode)
        return
    snap.set(BREAKER_OPEN, int(breaker_open))
    for (site, search_type), day in newest_final.items():
        epoch = calendar.timegm(date.fromisoformat(day).timetuple())
        snap.set(NEWEST_FINAL, epoch, site=scrub(site), search_type=search_type)
    _write(path, snap, mode)


def _previous(path: Path) -> Iterator[tuple[str, dict[str, str], float]]:
    """The samples of the file as it is: none when it is missing; none, with a warning,
    when it cannot be read or parsed (the other commands' series then return with their
    next runs)."""
    try:
        text = read_small_file(path, CONFIG_LIMIT).decode("utf-8")
        samples = [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not the text format
        log.warning(
            "metrics file %s could not be read back (%s): only this run's series are written",
            path,
            exc,
        )
        return
    yield from samples


def _write(path: Path, snapshot: Snapshot, mode: int) -> None:
    """``write_to_textfile`` in a private (0700) staging directory beside ``path``,
    ``mode``, then one rename into place: a reader sees the old file or the new one, and no
    moment where the file is readable by everyone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(snapshot))
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = staging / path.name
        write_to_textfile(str(staged), registry)
        os.chmod(staged, mode)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
