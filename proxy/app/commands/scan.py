"""``format-proxy scan --config CFG --route NAME [--validate] [--manifest FILE] ...``.

Counts a route's stored objects and bytes per stored format (HEAD, plus a ranged GET of the
first KiB when the headers do not tell); with ``--validate`` downloads and translates each one.
stdout: one JSON line per undetectable or untranslatable object, then one summary line.
Exit 0 if every object was detected (and translated); 1 otherwise; 2 configuration or usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from proxy.app.commands._transition import add_common, setup, stop_on_signals
from proxy.transition.progress import Progress
from proxy.transition.scan import push_report, run_scan
from proxy.transition.shard import parse_shard

EXIT_PROBLEMS = 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "scan",
        help="count a route's stored objects per format (and validate them)",
        description="Count a route's objects and bytes per stored format. One JSON line per "
        "undetectable (or, with --validate, untranslatable) object, then a summary line. "
        "Exit 1 if there is any.",
    )
    add_common(p)
    p.add_argument(
        "--validate",
        action="store_true",
        help="download every object and translate it with the route's mapping",
    )
    p.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push format_proxy_stored_objects/bytes{route,format} to this Pushgateway",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, route, translator, client = setup(args)
    shard = parse_shard(args.shard)
    stop = stop_on_signals()
    with Progress(f"scan {route.name}") as progress:
        report = run_scan(
            client,
            route,
            translator,
            validate=args.validate,
            manifest=args.manifest,
            shard=shard,
            concurrency=args.concurrency,
            out=sys.stdout,
            progress=progress,
            stop=stop,
        )
    print(json.dumps({"summary": report.as_dict()}), flush=True)
    if args.pushgateway:
        push_report(report, args.pushgateway)
    return 0 if report.ok else EXIT_PROBLEMS
