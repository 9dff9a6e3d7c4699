"""What the benchmarks share: the emulator in this process, counting every call it answers,
and the real CLI in a subprocess that reports its own peak memory.

:class:`Fixture` serves some properties on loopback; :meth:`Fixture.run` runs one gscsync
command on a fresh database and returns a :class:`Run`: wall time, peak RSS, the calls
the emulator answered (token, sites, Search Analytics, per search type) and, when asked,
whether every day is stored exactly as the emulator serves it (as tests/e2e/harness.py
checks, by digest so that large days cost no memory).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from gscsync.emulator import (
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    SiteData,
    new_service_account_key,
)
from gscsync.emulator import data as emulator_data
from gscsync.emulator import server as emulator_server
from gscsync.fetch import dimensions_for

SEARCH_TYPES = ("web", "image", "video", "news", "discover", "googleNews")
PAGE_ROWS = 25_000

# The child reports its own peak RSS (VmHWM: this address space only; ru_maxrss would
# carry the benchmark's own footprint across fork and exec), then runs the console script.
CHILD = """
import atexit, re, sys
out = sys.argv[1]
def hwm():
    kb = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)
    open(out, "w").write(kb)
atexit.register(hwm)
sys.argv = ["gscsync", *sys.argv[2:]]
from gscsync.signals import main
main()
"""

Row = tuple[str, str, str, str, float, float, float | None]


class CountingEmulator(Emulator):
    """The emulator, also counting every authorized API call: ``sites.list``,
    ``sites.get`` and ``searchAnalytics.query`` alike (the token endpoint counts itself
    in ``stats["token"]``, each query answered is in ``log``)."""

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.api_calls = 0
        self.arrivals: list[float] = []  # perf_counter of each Search Analytics query

    def query(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.arrivals.append(time.perf_counter())
        return super().query(url, body)

    def authorize(self, header: str | None) -> None:
        with self.lock:
            self.api_calls += 1
        super().authorize(header)

    def counters(self) -> tuple[int, int, int]:
        """(token requests, API calls, Search Analytics queries) so far."""
        with self.lock:
            return self.stats["token"], self.api_calls, len(self.log)

    def types_since(self, first: int) -> Counter[str]:
        """Search Analytics queries per search type from log entry ``first`` on."""
        spelled = {t.lower(): t for t in SEARCH_TYPES}
        with self.lock:
            bodies = [body for _, body in self.log[first:]]
        out: Counter[str] = Counter()
        for body in bodies:
            raw = str(body.get("type") or body.get("searchType") or "web")
            out[spelled.get(raw.replace("_", "").lower(), raw)] += 1
        return out


@dataclass(frozen=True)
class Calls:
    """The calls one run made, as the emulator counted them."""

    token: int
    sites: int  # sites.list and sites.get
    search_analytics: int
    by_type: Mapping[str, int]

    @property
    def total(self) -> int:
        return self.token + self.sites + self.search_analytics


@dataclass(frozen=True)
class Check:
    """Stored against served, one (search type, day) at a time."""

    days: int  # (type, day)s checked
    exact: int  # stored detail rows == served detail rows
    final: int  # recorded final in the ledger

    @property
    def ok(self) -> bool:
        return self.exact == self.final == self.days


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    calls: Calls
    rows: int  # detail rows stored
    truncated: int  # days flagged truncated (at the 50,000-row cap)
    check: Check | None
    started: float = 0.0  # seconds from the process start to its first Search Analytics query
    span: float = 0.0  # seconds from its first Search Analytics query to its last one's arrival


def _row(
    query: str,
    page: str,
    country: str,
    device: str,
    clicks: Any,
    impressions: Any,
    position: Any,
) -> Row:
    """A detail row normalised for comparison (numbers as floats: 3 == 3.0)."""
    return (
        query,
        page,
        country,
        device,
        float(clicks),
        float(impressions),
        None if position is None else float(position),
    )


def _digest(rows: Iterable[Row]) -> str:
    # Keys are unique within a day, so sorting never compares a position with None.
    return hashlib.sha256(repr(sorted(set(rows))).encode()).hexdigest()


class Fixture:
    """The emulator serving ``sites`` on loopback, with a service-account key for it."""

    def __init__(
        self, sites: Sequence[SiteData], faults: Faults | None = None, lag_days: int = 3
    ) -> None:
        key = new_service_account_key()
        config = EmulatorConfig(
            sites=list(sites),
            public_keys={key.client_email: key.public_pem},
            faults=faults or Faults(),
            lag_days=lag_days,
        )
        self.emulator = CountingEmulator(config)
        self.server = EmulatorServer(self.emulator)
        self._tmp = tempfile.TemporaryDirectory(prefix="gscsync-bench-")
        self.dir = Path(self._tmp.name)
        self.key = key.write(self.dir / "key.json", f"{self.server.url}/token")
        self._served: dict[tuple[str, str, str], str] = {}

    def __enter__(self) -> Fixture:
        self.server.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.stop()
        self._tmp.cleanup()

    # -- days ---------------------------------------------------------------------------
    def final_days(self, count: int) -> list[str]:
        """The ``count`` newest days the emulator serves as final, newest first."""
        newest = self.emulator.final_through()
        return [(newest - timedelta(days=n)).isoformat() for n in range(count)]

    def served_days(self) -> list[str]:
        """Every final day the emulator serves (what a default backfill covers)."""
        first, last = self.emulator.earliest(), self.emulator.final_through()
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]

    def window_for(self, final_days: int) -> int:
        """The ``GSCSYNC_SYNC_DAYS`` whose trailing window holds ``final_days`` final days."""
        today: date = self.emulator.today()
        return final_days + (today - self.emulator.final_through()).days

    # -- runs ---------------------------------------------------------------------------
    def run(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        verify: Callable[[Path], Check] | None = None,
    ) -> Run:
        """``gscsync ARGS`` on a fresh database, with ``env`` over the benchmark's own
        settings (credentials, API URL, database); it must exit 0."""
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            db = Path(tmp) / "bench.db"
            child_env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith("GSCSYNC_") and k != "GOOGLE_APPLICATION_CREDENTIALS"
            } | {
                "GSCSYNC_CREDENTIALS": str(self.key),
                "GSCSYNC_API_URL": self.server.url,
                "GSCSYNC_DB": str(db),
                **env,
            }
            hwm, err = Path(tmp) / "hwm", Path(tmp) / "stderr"
            token0, api0, sa0 = self.emulator.counters()
            seen = len(self.emulator.arrivals)
            with err.open("wb") as stderr:
                started = time.perf_counter()
                code = subprocess.call(
                    [sys.executable, "-c", CHILD, str(hwm), *args],
                    env=child_env,
                    cwd=tmp,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
                seconds = time.perf_counter() - started
            arrivals = self.emulator.arrivals[seen:]
            token1, api1, sa1 = self.emulator.counters()
            if code != 0:
                tail = err.read_text(errors="replace").strip().splitlines()[-5:]
                raise SystemExit(f"gscsync {' '.join(args)} exited {code}:\n  " + "\n  ".join(tail))
            calls = Calls(
                token=token1 - token0,
                sites=(api1 - api0) - (sa1 - sa0),
                search_analytics=sa1 - sa0,
                by_type=dict(self.emulator.types_since(sa0)),
            )
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT COUNT(*) FROM search_analytics").fetchone()[0]
                truncated = conn.execute(
                    "SELECT COUNT(*) FROM sync_days WHERE truncated"
                ).fetchone()[0]
            return Run(
                seconds=seconds,
                peak_rss_mb=int(hwm.read_text()) / 1024,
                calls=calls,
                rows=rows,
                truncated=truncated,
                check=verify(db) if verify is not None else None,
                started=arrivals[0] - started if arrivals else 0.0,
                span=arrivals[-1] - arrivals[0] if arrivals else 0.0,
            )

    # -- exactness ----------------------------------------------------------------------
    def served(self, site: str, search_type: str, day: str) -> str:
        """The digest of the detail rows the emulator serves for one final day, as the
        table stores them (paging until an empty page; remembered: the data is fixed)."""
        key = (site, search_type, day)
        if key not in self._served:
            dims = dimensions_for(search_type)
            rows: set[Row] = set()
            start = 0
            while True:
                doc = self.emulator.query(
                    site,
                    {
                        "startDate": day,
                        "endDate": day,
                        "type": search_type,
                        "dimensions": dims,
                        "dataState": "final",
                        "rowLimit": PAGE_ROWS,
                        "startRow": start,
                    },
                )
                page = doc.get("rows", [])
                if not page:
                    break
                for r in page:
                    k = dict(zip(dims, r["keys"], strict=True))
                    rows.add(
                        _row(
                            k.get("query", ""),
                            k["page"],
                            k["country"],
                            k.get("device", ""),
                            r["clicks"],
                            r["impressions"],
                            r.get("position"),
                        )
                    )
                start += len(page)
            self._served[key] = _digest(rows)
        return self._served[key]

    def verify(self, db: Path, site: str, types: Sequence[str], days: Sequence[str]) -> Check:
        """Every (type, day) of ``site``: stored detail rows equal to those served, and
        final in the ledger."""
        stored: dict[tuple[str, str], set[Row]] = defaultdict(set)
        with sqlite3.connect(db) as conn:
            for stype, day, *rest in conn.execute(
                "SELECT search_type, date, query, page, country, device, clicks, impressions, "
                "position FROM search_analytics WHERE site_url = ?",
                (site,),
            ):
                stored[(stype, day)].add(_row(*rest))
            ledger = {
                (stype, day): status
                for stype, day, status in conn.execute(
                    "SELECT search_type, date, status FROM sync_days WHERE site_url = ?", (site,)
                )
            }
        pairs = [(t, d) for t in types for d in days]
        return Check(
            days=len(pairs),
            exact=sum(_digest(stored.get(p, ())) == self.served(site, *p) for p in pairs),
            final=sum(ledger.get(p) == "final" for p in pairs),
        )

    def generate(self, site: str, search_type: str, first: str, last: str) -> None:
        """Have the emulator generate a range of days before timing anything (one
        date-grouped query; cheaper than :meth:`warm`, it computes no digest)."""
        self.emulator.query(
            site,
            {"startDate": first, "endDate": last, "dimensions": ["date"], "type": search_type},
        )

    def uncapped_rows(self, site: str, search_type: str, day: str) -> int:
        """The detail rows one day holds before the API's 50,000-row cap (the emulator's
        rows that are not anonymized: each has its own query, page, country, device)."""
        config = self.emulator.config
        count = self.emulator.sites[site].rows_per_day.get(search_type, 0)
        rows = emulator_data.base_rows(config.seed, site, search_type, day, count)
        return sum(not r.anonymized for r in rows)

    def warm(self, site: str, types: Sequence[str], days: Sequence[str]) -> None:
        """Compute what the emulator serves for these days before timing anything (it
        also warms the emulator's caches, as a first run would)."""
        for stype in types:
            for day in days:
                self.served(site, stype, day)


def keep_everything() -> None:
    """Let the emulator of this process keep every answer and every day's generated rows
    (it keeps the last 64 answers and 256 days otherwise): the emulator runs on the same
    cores as gscsync, and regenerating data it has served before would be timed as
    gscsync's. Only this process's emulator changes."""
    if not hasattr(emulator_server, "ANSWER_CACHE") or not hasattr(
        emulator_data.base_rows, "__wrapped__"
    ):
        raise SystemExit("the emulator's caches changed: run with --emulator-cache default")
    emulator_server.ANSWER_CACHE = 1 << 30
    emulator_data.base_rows = functools.lru_cache(maxsize=None)(emulator_data.base_rows.__wrapped__)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def child_env(**settings: object) -> dict[str, str]:
    """``GSCSYNC_*`` variables from keyword arguments: ``qpm=1200`` -> ``GSCSYNC_QPM``."""
    return {f"GSCSYNC_{k.upper()}": str(v) for k, v in settings.items()}
