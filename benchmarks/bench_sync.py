"""Benchmark: gscsync sync against the local emulator over loopback.

Runs the real CLI in a subprocess (so its peak memory is its own) several times on a
fresh database and prints medians. Two workloads:

- capped: one property whose days hold more than the API's 50,000-row cap (two pages
  of 25,000 per day), the throughput and memory case;
- many:   the demo's 3 properties x 6 search types, small days, the per-request overhead.

Usage: python benchmarks/bench_sync.py [--runs 3] [--days 7]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gscsync.emulator import (
    DEMO_SITES,
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    SiteData,
    new_service_account_key,
)

# The child reports its own peak RSS (VmHWM: this address space only; ru_maxrss would
# carry the benchmark's own footprint across fork and exec).
CHILD = """
import atexit, re, sys
def hwm():
    kb = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)
    open(sys.argv[1], "w").write(kb)
atexit.register(hwm)
from gscsync.cli import main
main(["sync", "-q"])
"""


def run_once(
    server: EmulatorServer,
    key_path: Path,
    sites: list[str],
    types: str,
    days: int,
    concurrency: int,
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GSCSYNC_")} | {
            "GSCSYNC_CREDENTIALS": str(key_path),
            "GSCSYNC_API_URL": server.url,
            "GSCSYNC_DB": str(db),
            "GSCSYNC_SITES": ",".join(sites),
            "GSCSYNC_SEARCH_TYPES": types,
            "GSCSYNC_SYNC_DAYS": str(days),
            "GSCSYNC_QPM": "100000",
            "GSCSYNC_CONCURRENCY": str(concurrency),
        }
        hwm = Path(tmp) / "hwm"
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", CHILD, str(hwm)], env=env, cwd=tmp)
        elapsed = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"sync failed with exit {code}")
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM search_analytics").fetchone()[0]
            requests = conn.execute("SELECT requests FROM runs").fetchone()[0]
        return {
            "seconds": elapsed,
            "rows": rows,
            "requests": requests,
            "rows_per_s": rows / elapsed,
            "peak_rss_mb": int(hwm.read_text()) / 1024,
        }


def bench(
    name: str, sites: list[SiteData], types: str, runs: int, days: int, concurrency: int
) -> None:
    key = new_service_account_key()
    config = EmulatorConfig(sites=sites, public_keys={key.client_email: key.public_pem})
    with EmulatorServer(Emulator(config)) as server, tempfile.TemporaryDirectory() as tmp:
        key_path = key.write(Path(tmp) / "key.json", f"{server.url}/token")
        urls = [s.url for s in sites]
        run_once(server, key_path, urls, types, days, concurrency)  # warm the emulator
        results = [run_once(server, key_path, urls, types, days, concurrency) for _ in range(runs)]
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"{name:8} concurrency={concurrency} runs={runs} rows={med['rows']:.0f} "
        f"requests={med['requests']:.0f} "
        f"median {med['seconds']:.2f}s  {med['rows_per_s']:,.0f} rows/s  "
        f"peak RSS {med['peak_rss_mb']:.0f} MB  "
        f"(min {min(r['seconds'] for r in results):.2f}s, "
        f"max {max(r['seconds'] for r in results):.2f}s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=7, help="GSCSYNC_SYNC_DAYS")
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        help="GSCSYNC_CONCURRENCY values to compare (default: 1 and 4)",
    )
    args = parser.parse_args()
    capped = [SiteData("sc-domain:big.example", rows_per_day={"web": 60_000})]
    many = [SiteData(u) for u in DEMO_SITES]
    types = "web,image,video,news,discover,googleNews"
    for concurrency in args.concurrency or [1, 4]:
        bench("capped", capped, "web", args.runs, args.days, concurrency)
        bench("many", many, types, args.runs, args.days, concurrency)


if __name__ == "__main__":
    main()
