"""Benchmark: the scenarios of issue 11 ("the benchmark shows all of it"), the sync half.

Runs the real CLI in a subprocess against the emulator over loopback, a fresh database
each run, and prints one table of medians per part, with the settings used:

1. peers:      one property, the newest N final days (30), 150 ms per Search Analytics
               call, all six search types, three sizes (90, 3,000 and 20,000 web rows a
               day); requests, wall time and whether every day is stored exactly as
               served; with the default settings and with GSCSYNC_CONCURRENCY=8
               GSCSYNC_QPM=1200;
2. backfill:   ``gscsync backfill`` over the default range (16 months) of a small
               property whose news, discover and googleNews are empty; requests per
               search type, wall time;
3. efficiency: requests x latency / concurrency / wall at concurrency 1, 4 and 8 on the
               90-row property of part 1, and on six such properties synced by one run;
4. memory:     peak RSS of days over the 50,000-row cap at concurrency 1, 4 and 8
               (10 days), and 10 against 40 days at concurrency 4.

Usage:
  python benchmarks/bench_scenarios.py                  # everything, 3 runs per case
  python benchmarks/bench_scenarios.py --quick          # smoke check: 1 run, few days
  python benchmarks/bench_scenarios.py --part 2 --runs 5
Progress goes to stderr, the tables (Markdown) to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from harness import SEARCH_TYPES, Check, Fixture, Run, child_env, keep_everything, median

import gscsync
from gscsync.api.client import DAILY_ROW_CAP
from gscsync.emulator import Faults, SiteData

LATENCY = 0.15  # seconds per Search Analytics call, parts 1 and 3
HIGH_QPM = 100_000  # a ceiling no case reaches: the rate limiter never waits
# Other search types' rows per day as a share of web's (close to the emulator's demo
# property, with news given rows so that every type has data and appearances).
SHARES = {"web": 1.0, "image": 0.2, "video": 0.05, "news": 0.1, "discover": 0.1, "googleNews": 0.05}
PEER_SIZES = (90, 3_000, 20_000)
# Part 3's many-property workload: six properties like the 90-row one, in one run.
AGENCY = tuple(f"sc-domain:agency{n}.example" for n in range(1, 7))
BACKFILL_ROWS = {"web": 90, "image": 20, "video": 5, "news": 0, "discover": 0, "googleNews": 0}

CAPPED_ROWS = 60_000  # web rows a day: over the 50,000-row cap on most days (drawn ±20%)
# What issue 11 measured before the work (wall seconds: default settings, c=8/QPM 1,200),
# and the peers it compares with; printed beside this run's numbers, not measured here.
ISSUE_BEFORE = {90: (366, 63.9, 9.9), 3_000: (366, 65.0, 12.1), 20_000: (366, 81.0, 68.7)}
PEERS = (("Singer tap (issue 11)", 12, 5.1), ("Airbyte (issue 11)", 40, 8.0))


def rows_for(web: int) -> dict[str, int]:
    return {t: max(1, round(web * SHARES[t])) for t in SEARCH_TYPES}


def site_for(web: int) -> str:
    return f"sc-domain:p{web}.example"


# -- running cases ------------------------------------------------------------------------
@dataclass
class Case:
    """One command and its settings, run ``runs`` times on fresh databases."""

    label: str
    args: Sequence[str]
    env: dict[str, str]
    verify: Callable[[Path], Check] | None = None
    runs: int | None = None  # None: --runs
    results: list[Run] = field(default_factory=list)


def measure(part: str, fx: Fixture, cases: Sequence[Case], runs: int) -> None:
    """Every case ``runs`` times, interleaved (run 1 of each case, then run 2, ...), so
    that a slow moment of the machine does not land on one case only."""
    for n in range(max(c.runs or runs for c in cases)):
        for case in cases:
            if n >= (case.runs or runs):
                continue
            r = fx.run(case.args, case.env, case.verify)
            case.results.append(r)
            exact = "" if r.check is None else f", exact {r.check.exact}/{r.check.days}"
            print(
                f"  [{part}] {case.label}, run {n + 1}/{case.runs or runs}: {r.seconds:.1f} s, "
                f"{r.calls.total} requests, {r.peak_rss_mb:.0f} MB{exact}",
                file=sys.stderr,
                flush=True,
            )


# -- formatting ---------------------------------------------------------------------------
def spread(values: Sequence[float], fmt: str, unit: str = "") -> str:
    """The median, and the range when the runs differ: ``63.9 s (63.1–64.4)``."""
    mid = format(median(values), fmt) + unit
    low, high = min(values), max(values)
    if len(values) < 2 or format(low, fmt) == format(high, fmt):
        return mid
    return f"{mid} ({format(low, fmt)}–{format(high, fmt)})"


def requests(runs: Sequence[Run]) -> str:
    """``total = Search Analytics + token/sites`` (medians; the range of the total when
    the runs differ)."""
    total = spread([r.calls.total for r in runs], ",.0f")
    sa = median(r.calls.search_analytics for r in runs)
    other = median(r.calls.token + r.calls.sites for r in runs)
    return f"{total} = {sa:,.0f} + {other:.0f}"


def exactness(runs: Sequence[Run]) -> str:
    checks = [r.check for r in runs if r.check is not None]
    if not checks:
        return "–"
    worst = min(checks, key=lambda c: (c.ok, c.exact, c.final))
    if worst.ok:
        return f"yes, {worst.days:,}/{worst.days:,} days"
    return f"NO: {worst.exact:,}/{worst.days:,} exact, {worst.final:,}/{worst.days:,} final"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A Markdown table, columns padded."""
    body = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in body) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(lines), flush=True)


def heading(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def settings(*lines: str) -> None:
    print("\n" + "\n".join(f"- {line}" for line in lines), flush=True)


# -- the parts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    runs: int
    days: int  # final days, parts 1 and 3
    backfill_days: int | None  # None: the default range (16 months)
    capped_rows: int
    capped_days: int
    capped_long_days: int
    long_runs: int


def peers_fixture() -> Fixture:
    return Fixture(
        [SiteData(site_for(n), rows_per_day=rows_for(n)) for n in PEER_SIZES]
        + [SiteData(site, rows_per_day=rows_for(PEER_SIZES[0])) for site in AGENCY],
        Faults(latency=LATENCY),
    )


def peers_env(fx: Fixture, web: int, days: int, **extra: object) -> dict[str, str]:
    """The peers' data: detail, totals and appearances (GSCSYNC_TABLES=none: no report
    table; one case of part 1 measures what the default report tables add)."""
    return child_env(
        sites=site_for(web),
        search_types=",".join(SEARCH_TYPES),
        sync_days=fx.window_for(days),
        **({"tables": "none"} | extra),
    )


def sites_verifier(fx: Fixture, sites: Sequence[str], days: int) -> Callable[[Path], Check]:
    def verify(db: Path) -> Check:
        checks = [fx.verify(db, site, SEARCH_TYPES, fx.final_days(days)) for site in sites]
        return Check(*(sum(getattr(c, f) for c in checks) for f in ("days", "exact", "final")))

    return verify


def verifier(fx: Fixture, site: str, days: int) -> Callable[[Path], Check]:
    def verify(db: Path) -> Check:
        return fx.verify(db, site, SEARCH_TYPES, fx.final_days(days))

    return verify


def part_peers(fx: Fixture, opt: Options) -> None:
    heading(f"1. Peers: one property, {opt.days} final days, {LATENCY * 1000:.0f} ms a call")
    cases: list[tuple[int, str, Case]] = []
    for web in PEER_SIZES:
        site = site_for(web)
        fx.warm(site, SEARCH_TYPES, fx.final_days(opt.days))
        variants: list[tuple[str, dict[str, object]]] = [
            ("default", {}),
            ("c=8, QPM 1,200", {"concurrency": 8, "qpm": 1200}),
        ]
        if web == PEER_SIZES[0]:  # what the report tables kept by default for web add
            variants.append(
                (
                    "default + web report tables",
                    {"tables": "web:by_query,web:by_page,web:by_country,web:by_device"},
                )
            )
        for name, extra in variants:
            case = Case(
                f"{web:,} rows/day, {name}",
                ["sync", "-q"],
                peers_env(fx, web, opt.days, **extra),
                verifier(fx, site, opt.days),
            )
            cases.append((web, name, case))
    measure("1", fx, [c for _, _, c in cases], opt.runs)
    rows = []
    for web, name, case in cases:
        before = ISSUE_BEFORE[web]
        rows.append(
            [
                f"{web:,}",
                name,
                requests(case.results),
                spread([r.seconds for r in case.results], ".1f", " s"),
                exactness(case.results),
                spread([r.rows for r in case.results], ",.0f"),
                f"{before[0]} req, {before[1 if name.startswith('default') else 2]} s",
            ]
        )
    for peer, reqs, secs in PEERS:
        rows.append(["90", peer, str(reqs), f"{secs} s", "", "", "(not measured here)"])
    table(
        [
            "web rows/day",
            "settings",
            "requests",
            "wall",
            "every day exact",
            "rows stored",
            "issue 11, before",
        ],
        rows,
    )
    shares = ", ".join(f"{t} {s:g}" for t, s in SHARES.items())
    settings(
        f"median of {opt.runs} run(s) (range in brackets); a fresh database each run",
        f"search types: all six; rows per day of the other types as a share of web: {shares} "
        "(the emulator draws each day's count within ±20% and hides ~8% as anonymized queries)",
        f"GSCSYNC_SYNC_DAYS={fx.window_for(opt.days)} (the newest {opt.days} final days; "
        f"the emulator's lag is {fx.emulator.config.lag_days} days)",
        f"latency: Faults(latency={LATENCY}) on every Search Analytics call (the token and "
        "sites calls answer at once)",
        "default: GSCSYNC_CONCURRENCY and GSCSYNC_QPM unset (the product's defaults); "
        "GSCSYNC_TABLES=none (the peers' data) except in the row that says otherwise "
        "(the product's default keeps the four report tables for web)",
        "requests: every call the emulator answered, total = Search Analytics + token and "
        "sites.list/get",
        "exact: per search type and day, the stored detail rows equal what the emulator "
        "serves (tests/e2e/harness.py's served_rows/stored_rows) and the day is final",
    )


def part_backfill(opt: Options) -> None:
    site = "sc-domain:small.example"
    with Fixture([SiteData(site, rows_per_day=dict(BACKFILL_ROWS))]) as fx:
        days = fx.served_days()
        args = ["backfill", "-q"]
        if opt.backfill_days is not None:
            days = days[-opt.backfill_days :]
            args += ["--start", days[0]]
        span = f"{days[0]} to {days[-1]}, {len(days)} days"
        what = "the default range" if opt.backfill_days is None else "the newest days only"
        heading(f"2. Backfill: {what} ({span}), three search types empty")

        def verify(db: Path) -> Check:
            return fx.verify(db, site, SEARCH_TYPES, days)

        fx.warm(site, SEARCH_TYPES, days)
        case = Case(
            "backfill",
            args,
            child_env(sites=site, search_types=",".join(SEARCH_TYPES), qpm=HIGH_QPM, tables="none"),
            verify,
        )
        measure("2", fx, [case], opt.runs)
    runs = case.results
    rows = [
        [t, str(BACKFILL_ROWS[t]), spread([r.calls.by_type.get(t, 0) for r in runs], ",.0f")]
        for t in SEARCH_TYPES
    ]
    rows.append(["token + sites", "", spread([r.calls.token + r.calls.sites for r in runs], ".0f")])
    rows.append(["total", "", spread([r.calls.total for r in runs], ",.0f")])
    table(["search type", "rows/day", "requests"], rows)
    print(
        f"\nwall {spread([r.seconds for r in runs], '.1f', ' s')}; "
        f"rows stored {spread([r.rows for r in runs], ',.0f')}; "
        f"every day exact: {exactness(runs)}; "
        f"peak RSS {spread([r.peak_rss_mb for r in runs], '.0f', ' MB')}",
        flush=True,
    )
    settings(
        f"median of {opt.runs} run(s); a fresh database each run",
        f"`gscsync {' '.join(args)}`: "
        + (
            "the default range"
            if opt.backfill_days is None
            else f"the newest {opt.backfill_days} days only"
        ),
        f"GSCSYNC_QPM={HIGH_QPM}, latency 0, GSCSYNC_CONCURRENCY unset (the default)",
        "exact: per search type and day, stored detail rows equal to those served, and the day "
        "final in the ledger (empty types included)",
    )


def part_efficiency(fx: Fixture, opt: Options) -> None:
    web = PEER_SIZES[0]
    heading(
        f"3. Parallel efficiency: {web} rows/day, {opt.days} final days, "
        f"{LATENCY * 1000:.0f} ms a call"
    )
    workloads = [("one property", [site_for(web)]), (f"{len(AGENCY)} properties", AGENCY)]
    cases: list[tuple[str, int, Case]] = []
    for name, sites in workloads:
        for site in sites:
            fx.warm(site, SEARCH_TYPES, fx.final_days(opt.days))
        for c in (1, 4, 8):
            env = child_env(
                sites=",".join(sites),
                search_types=",".join(SEARCH_TYPES),
                sync_days=fx.window_for(opt.days),
                tables="none",
                concurrency=c,
                qpm=HIGH_QPM,
            )
            check = sites_verifier(fx, sites, opt.days)
            cases.append((name, c, Case(f"{name}, c={c}", ["sync", "-q"], env, check)))
    measure("3", fx, [case for _, _, case in cases], opt.runs)
    rows = []
    for name, c, case in cases:
        sa = median(r.calls.search_analytics for r in case.results)
        wall = median(r.seconds for r in case.results)
        start = median(r.started for r in case.results)
        span = median(r.span for r in case.results) + LATENCY  # the last one answered too
        ideal = sa * LATENCY / c
        rows.append(
            [
                name,
                str(c),
                f"{sa:,.0f}",
                spread([r.seconds for r in case.results], ".1f", " s"),
                f"{ideal:.1f} s",
                f"{ideal / wall:.0%}",
                f"{start:.2f} s",
                f"{span:.2f} s",
                f"{ideal / span:.0%}",
                exactness(case.results),
            ]
        )
    table(
        [
            "workload",
            "concurrency",
            "Search Analytics requests",
            "wall",
            "requests × latency / concurrency",
            "efficiency",
            "start-up",
            "requests span",
            "efficiency of the span",
            "every day exact",
        ],
        rows,
    )
    settings(
        f"median of {opt.runs} run(s); efficiency = requests × {LATENCY} s / concurrency / "
        "median wall (1.0: every worker always waiting on a call)",
        "start-up: process start to the first Search Analytics call (interpreter, imports, "
        "settings, database, token); requests span: first call to the last one answered; "
        "efficiency of the span: the same ratio over that span, what the scheduling achieves",
        f"one property: the 90-row property of part 1; {len(AGENCY)} properties: six like it "
        "synced by one run (about the requests issue 11 measured its 0.70 on); all six "
        f"types, GSCSYNC_SYNC_DAYS={fx.window_for(opt.days)}, "
        f"GSCSYNC_QPM={HIGH_QPM} (the rate limiter never waits), GSCSYNC_TABLES=none",
        "requests: Search Analytics only (each answers in exactly the latency, the "
        "emulator's own work inside it; token and sites answer at once)",
    )


def part_memory(opt: Options) -> None:
    site = "sc-domain:big.example"
    long = opt.capped_long_days
    heading(f"4. Peak memory: days over the 50,000-row cap ({opt.capped_days} and {long} days)")
    with Fixture([SiteData(site, rows_per_day={"web": opt.capped_rows})]) as fx:
        every = fx.final_days(max(opt.capped_days, long))
        fx.generate(site, "web", every[-1], every[0])
        over = [fx.uncapped_rows(site, "web", d) > DAILY_ROW_CAP for d in every]

        def case(c: int, days: int, runs: int | None = None) -> tuple[int, int, Case]:
            env = child_env(
                sites=site,
                search_types="web",
                sync_days=fx.window_for(days),
                concurrency=c,
                qpm=HIGH_QPM,
            )
            return c, days, Case(f"c={c}, {days} days", ["sync", "-q"], env, runs=runs)

        cases = [
            case(1, opt.capped_days),
            case(4, opt.capped_days),
            case(8, opt.capped_days),
            case(4, long, min(opt.long_runs, opt.runs)),
        ]
        measure("4", fx, [c for _, _, c in cases], opt.runs)
        lag = fx.emulator.config.lag_days
    table(
        [
            "concurrency",
            "final days",
            "of them over the cap",
            "runs",
            "rows stored",
            "days stored truncated",
            "requests",
            "wall",
            "peak RSS",
        ],
        [
            [
                str(c),
                str(days),
                str(sum(over[:days])),
                str(len(x.results)),
                spread([r.rows for r in x.results], ",.0f"),
                spread([r.truncated for r in x.results], ".0f"),
                spread([r.calls.total for r in x.results], ",.0f"),
                spread([r.seconds for r in x.results], ".1f", " s"),
                spread([r.peak_rss_mb for r in x.results], ".0f", " MB"),
            ]
            for c, days, x in cases
        ],
    )
    settings(
        f"median of the runs shown; search type web only, {opt.capped_rows:,} rows a day drawn "
        "±20%, less ~8% anonymized: 'over the cap' counts the days holding more than "
        f"{DAILY_ROW_CAP:,} detail rows (--capped-rows 70000 puts every day over it)",
        f"GSCSYNC_SYNC_DAYS = final days + {lag}, GSCSYNC_QPM={HIGH_QPM}, latency 0, "
        "GSCSYNC_SPLIT_BUDGET unset (the default)",
        "peak RSS: the CLI process's own VmHWM; wall: the emulator builds each answer the "
        "first time it is asked (its data is generated before timing), so the first run of "
        "a case that asks new days is slower (the single long run is such a run)",
    )


# -- main ---------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent


def timed(part: Callable[..., None], *args: object) -> None:
    started = time.perf_counter()
    part(*args)
    print(f"- this part took {timedelta(seconds=round(time.perf_counter() - started))}")


def source_fingerprint() -> str:
    """A digest of gscsync/'s source: other people edit the product while benchmarks run."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "gscsync").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def describe(opt: Options, emulator_cache: str) -> None:
    repo = REPO
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "gscsync"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit = head + (" + uncommitted changes in gscsync/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    print(
        f"# gscsync {gscsync.__version__} ({commit}; source {source_fingerprint()}): "
        "sync benchmarks of issue 11\n"
    )
    print(
        f"- Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()}; "
        "the emulator runs in this process, gscsync in a subprocess, over loopback"
    )
    print(
        "- the emulator keeps "
        + (
            "every answer and every day's data it computes, and generates the data before "
            "timing (--emulator-cache all)"
            if emulator_cache == "all"
            else "its default caches (--emulator-cache default)"
        )
    )
    print(f"- runs per case: {opt.runs}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, help="runs per case (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke check: 1 run, few days")
    parser.add_argument(
        "--part",
        type=int,
        action="append",
        choices=(1, 2, 3, 4),
        help="run only this part (repeatable; default: all)",
    )
    parser.add_argument("--days", type=int, help="final days, parts 1 and 3 (default 30)")
    parser.add_argument(
        "--backfill-days",
        type=int,
        help="part 2: only the newest N days (default: the whole 16 months; --quick: 30)",
    )
    parser.add_argument(
        "--capped-rows", type=int, default=CAPPED_ROWS, help="part 4: web rows a day (60,000)"
    )
    parser.add_argument("--capped-days", type=int, help="part 4 (default 10)")
    parser.add_argument("--capped-long-days", type=int, help="part 4 (default 40)")
    parser.add_argument(
        "--long-runs",
        type=int,
        default=1,
        help="part 4: runs of the long case (default 1, at most --runs)",
    )
    parser.add_argument(
        "--emulator-cache",
        choices=("all", "default"),
        default="all",
        help="'all' (default): the emulator keeps every answer, so that what is timed is "
        "gscsync rather than the emulator's data generation on the same cores",
    )
    a = parser.parse_args()
    quick = a.quick
    opt = Options(
        runs=a.runs or (1 if quick else 3),
        days=a.days or (3 if quick else 30),
        backfill_days=a.backfill_days or (30 if quick else None),
        capped_rows=a.capped_rows,
        capped_days=a.capped_days or (2 if quick else 10),
        capped_long_days=a.capped_long_days or (4 if quick else 40),
        long_runs=a.long_runs,
    )
    if a.emulator_cache == "all":
        keep_everything()
    parts = sorted(set(a.part or (1, 2, 3, 4)))
    describe(opt, a.emulator_cache)
    source = source_fingerprint()
    started = time.perf_counter()
    if 1 in parts or 3 in parts:  # one emulator for both: the 90-row data made once
        with peers_fixture() as fx:
            if 1 in parts:
                timed(part_peers, fx, opt)
            if 2 in parts:
                timed(part_backfill, opt)
            if 3 in parts:
                timed(part_efficiency, fx, opt)
    elif 2 in parts:
        timed(part_backfill, opt)
    if 4 in parts:
        timed(part_memory, opt)
    print(f"\n(benchmark took {timedelta(seconds=round(time.perf_counter() - started))})")
    if source_fingerprint() != source:
        print(
            f"WARNING: gscsync/ changed while the benchmark ran (source {source} -> "
            f"{source_fingerprint()}): runs may mix versions; run it again"
        )


if __name__ == "__main__":
    main()
