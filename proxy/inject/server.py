"""The admission webhook server: a small aiohttp app over TLS around :mod:`admission`.

Routes: ``POST /mutate`` (AdmissionReview v1), ``GET /healthz``, ``GET /readyz``. The serving
certificate is re-read when its files change (cert-manager rotates the Secret behind the
mounted volume), so rotation needs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from proxy.errors import InjectionError
from proxy.inject.admission import FailurePolicy, review_response
from proxy.inject.options import InjectOptions

#: Pods can be large (the API server's own request limit is 3 MiB per object).
MAX_REVIEW_BYTES = 8 * 1024 * 1024


def log(event: str, **fields: Any) -> None:
    """One JSON line on stderr per event."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {"timestamp": now, "level": fields.pop("level", "info"), "event": event, **fields}
    sys.stderr.write(json.dumps(record, default=str) + "\n")
    sys.stderr.flush()


def build_app(options: InjectOptions, policy: FailurePolicy) -> web.Application:
    async def mutate(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            outcome = review_response(body, options, policy=policy)
        except InjectionError as exc:
            log("admission_rejected", level="warning", status=400, error=str(exc))
            return web.json_response({"error": str(exc)}, status=400)
        log(
            "admission",
            uid=outcome.uid,
            namespace=outcome.namespace,
            pod=outcome.name,
            injected=outcome.injected,
            warnings=list(outcome.warnings),
            error=outcome.error,
            **outcome.detail,
        )
        return web.json_response(outcome.review)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)  # ready = listening with a loaded certificate
    return app


class CertificateReloader:
    """Re-load the serving certificate into the live SSL context when its files change."""

    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self._stamp = self._current()

    def _current(self) -> tuple[float, float, int, int]:
        c, k = self.cert.stat(), self.key.stat()
        return (c.st_mtime, k.st_mtime, c.st_ino, k.st_ino)

    def check(self) -> bool:
        """Reload if the files changed; True when a new certificate is in use."""
        try:
            stamp = self._current()
            if stamp == self._stamp:
                return False
            # New handshakes use the new chain; a half-written pair fails here and is retried.
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            log("certificate_reload_failed", level="warning", error=str(exc))
            return False
        self._stamp = stamp
        log("certificate_reloaded", cert=str(self.cert))
        return True


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InjectionError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return context


async def run(
    *,
    host: str,
    port: int,
    cert: Path,
    key: Path,
    options: InjectOptions,
    policy: FailurePolicy,
    reload_seconds: float,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight reviews and return."""
    context = server_context(cert, key)
    reloader = CertificateReloader(context, cert, key)
    runner = web.AppRunner(build_app(options, policy), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, shutdown_timeout=10)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    log("listening", address=f"https://{host}:{bound}", image=options.image, mode=options.mode)
    if on_ready is not None:
        on_ready(bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def reload_loop() -> None:
        while True:
            await asyncio.sleep(reload_seconds)
            reloader.check()

    reloading = asyncio.create_task(reload_loop())
    try:
        await stop.wait()
    finally:
        reloading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloading
        log("stopping")
        await runner.cleanup()
