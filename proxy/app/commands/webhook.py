"""``format-proxy webhook``: the mutating admission webhook that injects the sidecar.

Serves AdmissionReview v1 on ``POST /mutate`` over TLS with the same patch logic as
``format-proxy inject``; ``/healthz`` and ``/readyz`` for probes. See docs/kubernetes.md.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from proxy.app.commands.inject import add_injector_options, options_from
from proxy.config import HostPort
from proxy.errors import InjectionError

DEFAULT_LISTEN = "0.0.0.0:8443"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "webhook",
        help="serve the sidecar-injecting admission webhook (AdmissionReview v1 over TLS)",
        # the module docstring without its reST literal markup
        description=__doc__.split("\n\n", 1)[1].replace("``", "") if __doc__ else None,
    )
    parser.add_argument(
        "--tls-cert",
        required=True,
        type=Path,
        metavar="FILE",
        help="serving certificate chain (PEM); re-read when the file changes",
    )
    parser.add_argument(
        "--tls-key", required=True, type=Path, metavar="FILE", help="its private key (PEM)"
    )
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default {DEFAULT_LISTEN}"
    )
    parser.add_argument(
        "--failure-policy",
        choices=("ignore", "fail"),
        default="ignore",
        help="how to answer a review the webhook cannot patch: 'ignore' admits the pod without "
        "the sidecar (with a warning), 'fail' denies it; keep it equal to the "
        "MutatingWebhookConfiguration's failurePolicy (default: ignore)",
    )
    parser.add_argument(
        "--cert-reload-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="how often to look for a rotated certificate (default: 30)",
    )
    add_injector_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from proxy.inject import server  # aiohttp.web only for this command

    options = options_from(args)
    try:
        listen = HostPort.parse(args.listen)
    except ValueError as exc:
        raise InjectionError(f"--listen: {exc}") from None
    if args.cert_reload_seconds <= 0:
        raise InjectionError("--cert-reload-seconds must be positive")
    asyncio.run(
        server.run(
            host=listen.host,
            port=listen.port,
            cert=args.tls_cert,
            key=args.tls_key,
            options=options,
            policy=args.failure_policy,
            reload_seconds=args.cert_reload_seconds,
        )
    )
    return 0
