"""Assembles and runs one proxy instance: upstream client, credentials, pipeline, listeners.

Used by ``format-proxy serve`` and by tests that run the proxy in-process.
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy import __version__
from proxy.app.embedded import EmbeddedS3, create_bucket_body
from proxy.app.logging import get_logger
from proxy.config import Config
from proxy.errors import ConfigError, CredentialsError, ProxyError, UpstreamError
from proxy.relay.credentials import ChainCredentials, CredentialSource
from proxy.relay.listener import ListenerSettings
from proxy.relay.metrics import Metrics
from proxy.relay.pipeline import Pipeline, RouteHandler
from proxy.relay.pool import PoolSettings, UpstreamPool
from proxy.relay.ratelimit import RateLimitedLog
from proxy.relay.server import DataServer, build_metrics_app
from proxy.relay.upstream import Upstream, UpstreamSettings
from proxy.s3.address import Endpoint, S3Address, build_upstream
from proxy.s3.signing import Signer

if TYPE_CHECKING:
    from proxy.datapath.routes import CompiledRoute

__all__ = ["ProxyService"]

_log = get_logger("format_proxy")
_CRED_RETRY = 5.0  # seconds between attempts to resolve credentials that were missing
# Past the grace period, what is still open gets this long to be cancelled and closed.
_FORCE_CLOSE_SECONDS = 0.25
# File descriptors kept free beyond client and upstream connections (spools, logs, the metrics
# listener).
_FD_HEADROOM = 64
# asyncio's message when accept() fails for lack of file descriptors or memory; it repeats it
# for every queued connection, thousands of times a second.
_ACCEPT_ERROR = "socket.accept() out of system resource"


@dataclass(frozen=True, slots=True)
class BoundAddresses:
    data: tuple[str, int]
    metrics: tuple[str, int]


class ProxyService:
    """One running proxy. ``start()`` binds both listeners; ``stop()`` drains and closes."""

    def __init__(
        self,
        config: Config,
        *,
        credentials: CredentialSource | None = None,
        route_handler: RouteHandler | None = None,
        routes: tuple[CompiledRoute, ...] | None = None,
    ) -> None:
        """Without a ``route_handler``, routes are served by the translating handler over
        ``routes`` (the config's routes compiled), compiled here when not given."""
        self.config = config
        self.metrics = Metrics(version=__version__, app_version=config.app_version)
        self._credentials = credentials
        if route_handler is None and config.routes:
            from proxy.app.observer import MetricsObserver
            from proxy.datapath import TranslatingHandler
            from proxy.datapath.routes import compile_routes

            # Mappings compile here, at start-up: one that does not is a ConfigError (exit 2).
            observer = MetricsObserver(
                self.metrics,
                tuple(r.name for r in config.routes if r.mode == "active"),
                shadow_routes=tuple(r.name for r in config.routes if r.mode == "shadow"),
            )
            compiled = routes if routes is not None else compile_routes(config)
            route_handler = TranslatingHandler(config, compiled, observer)
        self._route_handler = route_handler
        self._embedded: EmbeddedS3 | None = None
        self._upstream: Upstream | None = None
        self._fast_pool: UpstreamPool | None = None
        self._data_runner: web.ServerRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._listening = False
        self._retry_task: asyncio.Task[None] | None = None
        self._handler: DataServer | None = None
        self._previous_exception_handler: Any = None
        self._exception_handler_installed = False
        self._accept_log = RateLimitedLog(_log, interval=10.0)
        self.endpoint_url: str | None = None
        self.addresses: BoundAddresses | None = None

    @property
    def credentials(self) -> CredentialSource:
        assert self._credentials is not None
        return self._credentials

    def ready(self) -> tuple[bool, str]:
        if not self._listening:
            return False, "data listener not started"
        if self._credentials is None or not self._credentials.resolved:
            return False, "upstream credentials not resolved"
        handler_ready = getattr(self._route_handler, "ready", None)
        if handler_ready is not None:  # the document workers have started
            return handler_ready()  # type: ignore[no-any-return]
        return True, "ok"

    async def start(self) -> None:
        cfg = self.config
        self._install_exception_handler()
        _ensure_fd_limit(cfg.limits.max_client_connections + cfg.upstream.max_connections)
        # Metrics/health first, so liveness answers while credentials are being resolved.
        metrics_app = build_metrics_app(self.metrics, ready=self.ready)
        self._metrics_runner = web.AppRunner(metrics_app, access_log=None, handle_signals=False)
        await self._metrics_runner.setup()
        msite = web.TCPSite(
            self._metrics_runner, cfg.metrics_listen.host, cfg.metrics_listen.port, backlog=128
        )
        await msite.start()

        if cfg.upstream.is_embedded:
            self._embedded = EmbeddedS3()
            endpoint_url = await asyncio.to_thread(self._embedded.start)
            if self._credentials is None:
                self._credentials = self._embedded.credentials
        else:
            endpoint_url = cfg.upstream.resolved_endpoint()
        self.endpoint_url = endpoint_url
        if self._credentials is None:
            self._credentials = ChainCredentials(cfg.upstream.profile)
        if not await self._try_credentials():
            # Not fatal: IRSA token files and metadata endpoints can appear after the container
            # starts. /readyz stays 503 (and requests get 503) until they resolve.
            self._retry_task = asyncio.create_task(self._retry_credentials())

        endpoint = Endpoint.parse(
            endpoint_url, virtual=cfg.upstream.uses_virtual_hosting(endpoint_url)
        )
        self._upstream = Upstream(
            UpstreamSettings(
                connect_timeout=cfg.upstream.connect_timeout,
                read_timeout=cfg.upstream.read_timeout,
                max_connections=cfg.upstream.max_connections,
                ssl_verify=cfg.upstream.verify_tls,
            )
        )
        await self._upstream.start()
        if self._embedded is not None:
            await self._create_buckets(endpoint)

        start_handler = getattr(self._route_handler, "start", None)
        if start_handler is not None:  # document worker processes, in the background
            start_handler()
        pipeline = Pipeline(
            cfg,
            endpoint=endpoint,
            upstream=self._upstream,
            credentials=self._credentials,
            route_handler=self._route_handler,
        )
        if cfg.server.fast_path:
            self._fast_pool = UpstreamPool(
                PoolSettings(
                    scheme=endpoint.scheme,
                    connect_timeout=cfg.upstream.connect_timeout,
                    read_timeout=cfg.upstream.read_timeout,
                    max_connections=cfg.upstream.max_connections,
                    ssl_verify=cfg.upstream.verify_tls,
                )
            )
        handler = self._handler = DataServer(
            pipeline,
            self.metrics,
            zero_copy_min_bytes=cfg.limits.zero_copy_min_bytes,
            body_idle_timeout=cfg.server.body_idle_timeout,
            fast_pool=self._fast_pool,
        )
        listener = ListenerSettings(
            idle_timeout=cfg.server.idle_timeout,
            header_timeout=cfg.server.header_timeout,
            max_connections=cfg.limits.max_client_connections,
        )
        # stop() waits for the grace period itself; the runner's own shutdown only closes what
        # is left after it.
        self._data_runner = web.ServerRunner(
            handler.make_server(listener),
            handle_signals=False,
            shutdown_timeout=_FORCE_CLOSE_SECONDS,
        )
        await self._data_runner.setup()
        ssl_ctx = None
        if cfg.tls.enabled:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_ctx.load_cert_chain(str(cfg.tls.cert), str(cfg.tls.key))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("tls", f"cannot load certificate/key: {exc}") from None
        site = web.TCPSite(
            self._data_runner,
            cfg.listen.host,
            cfg.listen.port,
            ssl_context=ssl_ctx,
            backlog=1024,
            reuse_address=True,
        )
        await site.start()
        self._listening = True
        self.addresses = BoundAddresses(
            data=_bound(self._data_runner), metrics=_bound(self._metrics_runner)
        )

    async def _flush(self, deadline: float) -> None:
        """Wait until responses already handed to the transports have been sent: a finished
        handler can leave up to the write-buffer limit queued for a slow reader, which a
        process exit would throw away."""
        server = self._data_runner.server if self._data_runner is not None else None
        if server is None:
            return
        loop = asyncio.get_running_loop()
        while any(
            c.transport is not None and c.transport.get_write_buffer_size() > 0
            for c in server.connections
        ):
            if loop.time() >= deadline:
                _log.warning("shutdown_grace_expired", unsent_responses=True)
                return
            await asyncio.sleep(0.02)

    def _install_exception_handler(self) -> None:
        loop = asyncio.get_running_loop()
        self._previous_exception_handler = loop.get_exception_handler()
        self._exception_handler_installed = True
        loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Count accept() failures and log them at most once per interval; anything else goes
        to the handler that was there before (asyncio's default: one error line)."""
        if context.get("message") == _ACCEPT_ERROR:
            self.metrics.accept_errors.inc()
            exc = context.get("exception")
            self._accept_log.warning(
                "accept_failed",
                error=f"{type(exc).__name__}: {exc}" if exc is not None else _ACCEPT_ERROR,
                hint="out of file descriptors? lower limits.max_client_connections or raise "
                "the open-file limit",
            )
            return
        if self._previous_exception_handler is not None:
            self._previous_exception_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def _try_credentials(self) -> bool:
        assert self._credentials is not None
        try:
            await self._credentials.start()
        except CredentialsError as exc:
            _log.warning("credentials_unresolved", error=str(exc), retry_seconds=_CRED_RETRY)
            return False
        return True

    async def _retry_credentials(self) -> None:
        while True:
            await asyncio.sleep(_CRED_RETRY)
            if await self._try_credentials():
                break
        _log.info("credentials_resolved", credential_source=self.credentials.method)

    async def _create_buckets(self, endpoint: Endpoint) -> None:
        assert self._upstream is not None and self._credentials is not None
        cfg = self.config
        names = list(dict.fromkeys([*cfg.upstream.buckets, *(r.bucket for r in cfg.routes)]))
        signer = Signer(cfg.upstream.region)
        body = create_bucket_body(cfg.upstream.region)
        for name in names:
            address = S3Address(
                bucket=name,
                key=None,
                raw_key="",
                raw_query=(),
                params=frozenset(),
                values={},
                style="path",
                presigned=False,
            )
            target = build_upstream(address, endpoint)
            creds = await self._credentials.get()
            headers = signer.sign(
                "PUT",
                target,
                [("Content-Length", str(len(body)))],
                hashlib.sha256(body).hexdigest(),
                creds,
            )
            resp = await self._upstream.request("PUT", target.url, headers, body)
            text = await resp.text()
            resp.release()
            if resp.status >= 300 and "BucketAlreadyOwnedByYou" not in text:
                raise UpstreamError(f"cannot create bucket {name!r} in the embedded S3: {text}")

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period), close.

        aiohttp's own runner shutdown marks every connection closing at once, and a closing
        connection ignores further incoming bytes — an upload in flight would stall. So the
        sites are stopped first (no new connections), in-flight requests are awaited with
        responses marked ``Connection: close``, and only then is the runner cleaned up.
        """
        self._listening = False
        if self._retry_task is not None:
            self._retry_task.cancel()
            self._retry_task = None
        if self._data_runner is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.config.shutdown_grace_seconds
            for site in list(self._data_runner.sites):
                await site.stop()
            if self._handler is not None:
                await self._handler.drain(max(0.0, deadline - loop.time()))
            # Past the grace period: stop the document workers now, so requests still waiting
            # for a translation get an answer (503) instead of holding the shutdown up.
            self._close_route_handler()
            await self._flush(deadline)
            # One grace period in all: what is still running now is cancelled and its
            # connection closed (the runner waits at most _FORCE_CLOSE_SECONDS for that).
            await self._data_runner.cleanup()
            self._data_runner = None
        self._close_route_handler()
        if self._upstream is not None:
            await self._upstream.close()
            self._upstream = None
        if self._fast_pool is not None:
            self._fast_pool.close()
            self._fast_pool = None
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
        if self._exception_handler_installed:
            self._exception_handler_installed = False
            asyncio.get_running_loop().set_exception_handler(self._previous_exception_handler)

    def _close_route_handler(self) -> None:
        close_handler = getattr(self._route_handler, "close", None)
        if close_handler is not None:  # document workers, spooled multipart uploads
            close_handler()


def _ensure_fd_limit(connections: int) -> None:
    """Raise the soft open-file limit towards the hard one if the connection bounds need it;
    warn if they still do not fit (accept() would then fail before the cap refuses cleanly)."""
    needed = connections + _FD_HEADROOM
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    except (OSError, ValueError):
        return
    if soft != resource.RLIM_INFINITY and soft < needed:
        _log.warning(
            "open_file_limit_low",
            open_file_limit=soft,
            needed=needed,
            hint="lower limits.max_client_connections or raise the container's nofile limit",
        )


def _bound(runner: web.BaseRunner) -> tuple[str, int]:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return str(addr[0]), int(addr[1])
    raise ProxyError("listener has no TCP address")
