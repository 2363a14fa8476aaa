"""``format-proxy serve``: run the sidecar until SIGTERM/SIGINT.

Every flag has an environment variable ``FORMAT_PROXY_<NAME>`` (``--metrics-listen`` →
``FORMAT_PROXY_METRICS_LISTEN``); flag beats env beats config file beats default.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys

from proxy.config import load_config
from proxy.errors import ProxyError

_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--listen", "HOST:PORT", "S3 data listener (default 127.0.0.1:15480, loopback only)"),
    ("--metrics-listen", "HOST:PORT", "/metrics /healthz /readyz listener (default 0.0.0.0:15490)"),
    ("--upstream", "URL", "upstream S3 endpoint URL, or 'embedded' (default: AWS S3 in --region)"),
    ("--region", "R", "upstream region used for signing (default us-east-1)"),
    ("--app-version", "V", "the pod's declared application version (routes need it)"),
    ("--tls-cert", "FILE", "serve the data listener over TLS with this certificate (PEM)"),
    ("--tls-key", "FILE", "private key for --tls-cert (PEM)"),
    ("--log-level", "LEVEL", "debug | info | warning | error (default info)"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the S3 sidecar",
        description="Run the S3 sidecar. Each flag can also be set as FORMAT_PROXY_<NAME>.",
    )
    p.add_argument("--config", metavar="PATH", help="YAML config file (env FORMAT_PROXY_CONFIG)")
    for flag, metavar, text in _FLAGS:
        p.add_argument(flag, metavar=metavar, help=text, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {
        "listen": args.listen,
        "metrics_listen": args.metrics_listen,
        "upstream": args.upstream,
        "region": args.region,
        "app_version": args.app_version,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "log_level": args.log_level,
    }
    config = load_config(args.config, overrides=overrides)
    from proxy.app.logging import configure_logging

    configure_logging(config.log_level)
    status = asyncio.run(_serve(config))
    # The process ends now: spare it the collector's pass over every live object at interpreter
    # exit (half a second and more, out of the shutdown grace period's budget).
    gc.freeze()
    gc.disable()
    return status


def _banner(service: object) -> str:
    from proxy.app.service import ProxyService

    assert isinstance(service, ProxyService) and service.addresses is not None
    host, port = service.addresses.data
    scheme = "https" if service.config.tls.enabled else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}"
    mhost, mport = service.addresses.metrics
    lines = [
        f"format-proxy listening on {url} -> upstream {service.endpoint_url}",
        f"  metrics: http://{mhost}:{mport}/metrics  health: /healthz  readiness: /readyz",
    ]
    if service.config.upstream.is_embedded:
        cfg = service.config
        aws = f"AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws --endpoint-url {url}"
        lines += [
            "  embedded in-memory S3 (moto): data is lost on exit; clients may use any "
            "credentials (the proxy re-signs).",
            "  try it:",
            f"    {aws} s3 ls",
        ]
        if cfg.routes and cfg.app_version is not None:
            # exercise the route: a document in the format this version writes and reads
            route = cfg.routes[0]
            fmt = route.formats[cfg.app_version]
            where = f"s3://{route.bucket}/{route.prefix}DOC.{fmt}"
            lines += [
                f"    {aws} s3 cp DOC.{fmt} {where}   # DOC.{fmt}: a {fmt} document for "
                f"route {route.name} ({cfg.app_version} writes and reads {fmt})",
                f"    {aws} s3 cp {where} -",
            ]
        else:
            first = cfg.upstream.buckets[0] if cfg.upstream.buckets else "demo"
            lines.append(f"    {aws} s3 cp README.md s3://{first}/")
        lines += [
            "    python -c \"import boto3; s3 = boto3.client('s3', endpoint_url="
            f"'{url}', aws_access_key_id='x', aws_secret_access_key='x', "
            "region_name='us-east-1'); print(s3.list_buckets()['Buckets'])\"",
        ]
    return "\n".join(lines)


async def _serve(config: object) -> int:
    from proxy.app.logging import get_logger
    from proxy.app.service import ProxyService
    from proxy.config import Config

    assert isinstance(config, Config)
    log = get_logger("format_proxy")
    service = ProxyService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except OSError as exc:
        await service.stop()
        raise ProxyError(f"cannot start: {exc.strerror or exc}") from None
    except BaseException:
        await service.stop()
        raise
    if config.upstream.is_embedded:
        # The local try-it mode: tell a human what to do. Sidecars log JSON only.
        print(_banner(service), file=sys.stderr, flush=True)
    log.info(
        "started",
        listen=str(config.listen),
        metrics_listen=str(config.metrics_listen),
        upstream=service.endpoint_url,
        routes=len(config.routes),
        app_version=config.app_version,
        credential_source=service.credentials.method,
    )
    await stop.wait()
    log.info("stopping", grace_seconds=config.shutdown_grace_seconds)
    await service.stop()
    log.info("stopped")
    return 0
