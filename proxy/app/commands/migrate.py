"""``format-proxy migrate --config CFG --route NAME --to json|xml [--dry-run] [--state FILE] ...``.

Rewrites every object of the route not stored in the target format, with the route's mapping,
conditionally (If-Match on the ETag read), keeping metadata, headers and tags; resumable from
``--state``; ``--shard I/N`` for parallel pods. stdout: one JSON line per failed object (left
untouched), then a summary line. Exit 0 if nothing failed; 1 otherwise; 2 configuration/usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from proxy.app.commands._transition import add_common, setup, stop_on_signals
from proxy.config import _parse_size
from proxy.errors import ConfigError
from proxy.transition.migrate import MigrateJob, run_migrate
from proxy.transition.progress import Progress
from proxy.transition.rewrite import Plan
from proxy.transition.shard import parse_shard

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "migrate",
        help="rewrite a route's objects in one stored format, safely and resumably",
        description="Rewrite every object of a route that is not stored in --to, with the "
        "route's mapping. A concurrent write is never overwritten (If-Match). One JSON line per "
        "failed object, then a summary line. Exit 1 if any object failed.",
    )
    add_common(p)
    p.add_argument("--to", required=True, choices=("json", "xml"), help="the target format")
    p.add_argument("--dry-run", action="store_true", help="read and translate, write nothing")
    p.add_argument(
        "--max-rps", type=float, default=0.0, metavar="R", help="S3 requests per second (no cap)"
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        type=Path,
        help="append-only progress file; a rerun with it skips the keys it records as done",
    )
    p.add_argument(
        "--multipart-threshold",
        default="8MiB",
        metavar="SIZE",
        help="results larger than this go up as multipart uploads of this part size (8MiB)",
    )
    p.add_argument(
        "--max-conflicts",
        type=int,
        default=5,
        metavar="N",
        help="fresh reads after concurrent writes before an object is given up (5)",
    )
    p.set_defaults(func=run)


def _size(text: str) -> int:
    try:
        value = _parse_size(text)
    except ValueError as exc:
        raise ConfigError("--multipart-threshold", str(exc)) from None
    assert isinstance(value, int)
    return value


def run(args: argparse.Namespace) -> int:
    config, route, translator, client = setup(args, max_rps=args.max_rps)
    plan = Plan(
        bucket=route.bucket,
        target=args.to,
        translator=translator,
        max_bytes=config.limits.max_translate_bytes,
        multipart_threshold=_size(args.multipart_threshold),
        max_conflicts=args.max_conflicts,
        dry_run=args.dry_run,
    )
    job = MigrateJob(
        route=route,
        plan=plan,
        shard=parse_shard(args.shard),
        concurrency=args.concurrency,
        state_path=args.state,
        manifest=args.manifest,
    )
    stop = stop_on_signals()
    with Progress(f"migrate {route.name} to {args.to}") as progress:
        summary = run_migrate(client, job, out=sys.stdout, progress=progress, stop=stop)
    print(json.dumps({"summary": summary.as_dict()}), flush=True)
    return EXIT_FAILED if summary.failed or summary.interrupted else 0
