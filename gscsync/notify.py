"""Telling the outside world: healthchecks.io-style pings and a Prometheus textfile."""

from __future__ import annotations

import calendar
import logging
import time
from datetime import date
from pathlib import Path

import httpx

from gscsync.files import write_atomic

log = logging.getLogger("gscsync")
PING_TIMEOUT = 10.0
METRICS_MODE = 0o640  # node_exporter's group may read it; nobody else


def ping(url: str | None, kind: str, body: str = "") -> None:
    """``<url>/start``, ``<url>`` (success) or ``<url>/fail``; a failed ping only warns."""
    if not url:
        return
    target = url if kind == "success" else f"{url}/{kind}"
    try:
        httpx.post(target, content=body.encode(), timeout=PING_TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning("healthcheck ping %s failed: %s", kind, type(exc).__name__)


def write_metrics(
    path: Path,
    *,
    command: str,
    status: str,
    exit_code: int,
    duration: float,
    counts: dict[str, int],
    breaker_open: bool,
    newest_final: dict[tuple[str, str], str],
) -> None:
    """Rewrite the node_exporter textfile atomically."""
    labels = f'command="{command}"'
    lines = [
        "# HELP gscsync_last_run_timestamp_seconds When the last run finished.",
        "# TYPE gscsync_last_run_timestamp_seconds gauge",
        f"gscsync_last_run_timestamp_seconds{{{labels}}} {time.time():.0f}",
        "# HELP gscsync_last_run_exit_code Exit code of the last run.",
        "# TYPE gscsync_last_run_exit_code gauge",
        f'gscsync_last_run_exit_code{{{labels},status="{status}"}} {exit_code}',
        "# HELP gscsync_last_run_duration_seconds Wall time of the last run.",
        "# TYPE gscsync_last_run_duration_seconds gauge",
        f"gscsync_last_run_duration_seconds{{{labels}}} {duration:.3f}",
    ]
    for name, value in sorted(counts.items()):
        lines += [
            f"# TYPE gscsync_last_run_{name} gauge",
            f"gscsync_last_run_{name}{{{labels}}} {value}",
        ]
    lines += [
        "# HELP gscsync_breaker_open 1 while the circuit breaker is open.",
        "# TYPE gscsync_breaker_open gauge",
        f"gscsync_breaker_open {int(breaker_open)}",
        "# HELP gscsync_newest_final_day_timestamp_seconds Newest final day stored (UTC midnight).",
        "# TYPE gscsync_newest_final_day_timestamp_seconds gauge",
    ]
    for (site, search_type), day in sorted(newest_final.items()):
        epoch = calendar.timegm(date.fromisoformat(day).timetuple())
        site_label = site.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(
            f'gscsync_newest_final_day_timestamp_seconds{{site="{site_label}",'
            f'search_type="{search_type}"}} {epoch:.0f}'
        )
    write_atomic(path, "\n".join(lines) + "\n", mode=METRICS_MODE)
