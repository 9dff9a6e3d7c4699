"""``python -m gscsync.emulator``: run the emulator standalone and print its URL."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from gscsync.emulator import (
    DEMO_SITES,
    Emulator,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    SiteData,
    new_service_account_key,
)
from gscsync.emulator.faults import KINDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gscsync.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--site", action="append", help="property to serve (repeatable)")
    parser.add_argument(
        "--forbid",
        action="append",
        default=[],
        help="property listed as siteUnverifiedUser (403 on queries)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lag-days", type=int, default=3, help="days not final yet")
    parser.add_argument("--token-lifetime", type=int, default=3599, help="seconds")
    parser.add_argument("--rows-per-day", type=int, help="web rows per day (default 300)")
    parser.add_argument(
        "--write-key", type=Path, help="write a service-account key for this emulator to this path"
    )
    parser.add_argument(
        "--property-overlap",
        action="store_true",
        help="by property, count a search showing several pages once (as Google does)",
    )
    parser.add_argument("--latency", type=float, default=0.0)
    for name in ("429", "500", "503", "drop", "truncate"):
        parser.add_argument(
            f"--rate-{name}", type=float, default=0.0, help=f"share of queries answered with {name}"
        )
    parser.add_argument("--quota-after", type=int, help="403 quotaExceeded after N queries")
    parser.add_argument("--always-fail", action="store_true")
    parser.add_argument("--bad-rows", choices=KINDS, help="an invalid row of this kind")
    parser.add_argument("--bad-day", help="YYYY-MM-DD: only answers for this day are bad")
    parser.add_argument("--redirect", action="store_true", help="302 with a JSON body")
    parser.add_argument("--drip", type=float, help="seconds between body bytes")
    parser.add_argument("--oversize", type=int, help="pad bodies to N bytes (-1: endless)")
    parser.add_argument(
        "--echo-token-errors",
        action="store_true",
        help="token endpoint refuses, quoting the request's secrets",
    )
    args = parser.parse_args(argv)

    sites = [SiteData(url) for url in (args.site or DEMO_SITES)]
    sites += [SiteData(url, permission="siteUnverifiedUser") for url in args.forbid]
    if args.rows_per_day is not None:
        for s in sites:
            s.rows_per_day["web"] = args.rows_per_day
    faults = Faults(
        latency=args.latency,
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_503=args.rate_503,
        rate_drop=args.rate_drop,
        rate_truncate=args.rate_truncate,
        quota_after=args.quota_after,
        always_fail=args.always_fail,
        bad_rows=args.bad_rows,
        bad_day=args.bad_day,
        redirect=args.redirect,
        drip=args.drip,
        oversize=args.oversize,
        echo_token_errors=args.echo_token_errors,
    )
    config = EmulatorConfig(
        sites=sites,
        seed=args.seed,
        lag_days=args.lag_days,
        token_lifetime=args.token_lifetime,
        property_overlap=args.property_overlap,
        faults=faults,
    )
    key = new_service_account_key() if args.write_key else None
    if key is not None:
        config.public_keys[key.client_email] = key.public_pem
    server = EmulatorServer(Emulator(config), args.host, args.port)
    if key is not None and args.write_key:
        key.write(args.write_key, f"{server.url}/token")
    print(server.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
