"""What the ``scan`` and ``migrate`` commands share: route, client, signals, summary line."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from proxy.app.commands._routes import find_route, load_for_offline_use
from proxy.config import Config, RouteConfig
from proxy.transition.client import make_client


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="YAML config file (env FORMAT_PROXY_CONFIG)")
    p.add_argument("--route", required=True, metavar="NAME", help="the route to work on")
    p.add_argument(
        "--upstream",
        metavar="URL",
        help="S3 endpoint (default: the config's upstream); credentials: the AWS chain",
    )
    p.add_argument(
        "--manifest",
        metavar="FILE",
        help="read the keys from an S3 Inventory manifest.json (path or s3://...) "
        "instead of listing the bucket",
    )
    p.add_argument("--shard", metavar="I/N", help="only keys with sha256(key) mod N == I")
    p.add_argument(
        "--concurrency", type=_positive, default=8, metavar="N", help="objects at once (8)"
    )
    p.add_argument(
        "--app-version", metavar="V", default=None, help="declared version, if the config needs one"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def setup(
    args: argparse.Namespace, *, max_rps: float = 0.0
) -> tuple[Config, RouteConfig, Any, Any]:
    """Config, route, its compiled mapping, and an S3 client sized to the concurrency."""
    config, routes = load_for_offline_use(args.config, args.app_version)
    route = find_route(routes, args.route)
    client = make_client(config, upstream=args.upstream, pool=args.concurrency, max_rps=max_rps)
    return config, route.config, route.mapping, client


def stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT: stop taking new objects, let those in flight finish; a second one kills."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
