"""The route handler that makes every object on a route look the way this pod's version
expects (:class:`proxy.relay.pipeline.RouteHandler`).

Which S3 operations it takes over on a route:

- GetObject, HeadObject → :mod:`proxy.datapath.reads`;
- PutObject, CopyObject → :mod:`proxy.datapath.writes`;
- the multipart operations → :mod:`proxy.datapath.uploads`, and ``UploadPartCopy`` into any
  upload when its *source* is on a route (the part is what this pod sees of the source);
- everything else (DeleteObject, tagging, ACLs, GetObjectAttributes, ...) and any key ending
  in ``/`` (a "folder" marker, never a document) passes through unchanged.

A route in ``mode: shadow`` passes every request through unchanged and checks GET and PUT
bodies in the background (:mod:`proxy.datapath.shadow`).
"""

from __future__ import annotations

from proxy.config import Config, RouteConfig
from proxy.datapath.budget import ByteBudget
from proxy.datapath.cache import FailureMemo, RepresentationCache
from proxy.datapath.common import Context
from proxy.datapath.documents import Representation
from proxy.datapath.engine import DocumentWorker
from proxy.datapath.observe import NullObserver, TranslationObserver
from proxy.datapath.reads import ReadPath
from proxy.datapath.routes import CompiledRoute, RouteTable
from proxy.datapath.shadow import ShadowPath
from proxy.datapath.shadowqueue import ShadowChecker
from proxy.datapath.spool import UploadStore
from proxy.datapath.uploads import UploadPath
from proxy.datapath.writes import WritePath
from proxy.relay.pipeline import BodyCopy, Forwarder, ProxyResponse, S3Request
from proxy.s3.address import S3Address

__all__ = ["TranslatingHandler"]


def _folder(address: S3Address) -> bool:
    """No key, or a folder key: every route passes these through unchanged."""
    return address.key is None or address.key.endswith("/")


_MULTIPART = frozenset(
    {
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "ListParts",
        "AbortMultipartUpload",
        "CompleteMultipartUpload",
    }
)


class TranslatingHandler:
    """Translates objects on routes by the pod's declared version."""

    def __init__(
        self,
        config: Config,
        routes: tuple[CompiledRoute, ...],
        observer: TranslationObserver | None = None,
        *,
        isolate: bool = True,
        workers: int | None = None,
    ) -> None:
        if config.app_version is None:  # load_config refuses routes without one
            raise ValueError("a translating handler needs config.app_version")
        self._routes = RouteTable(routes)
        if self._routes.names() != tuple(r.name for r in config.routes):
            raise ValueError("the compiled routes must be the config's routes, in order")
        self.observer: TranslationObserver = observer or NullObserver()
        self.cache = RepresentationCache[Representation](config.limits.cache_max_bytes)
        self.worker = DocumentWorker(self.observer, config, isolate=isolate, workers=workers)
        self.ctx = Context(
            app_version=config.app_version,
            limits=config.limits,
            cache=self.cache,
            failures=FailureMemo(config.limits.remembered_failures),
            worker=self.worker,
            observer=self.observer,
            inflight=ByteBudget(
                config.limits.max_inflight_translate_bytes,
                setting="limits.max_inflight_translate_bytes",
                on_refuse=lambda: self.observer.refused("translate_budget"),
            ),
        )
        self.uploads = UploadStore(
            config.spool_dir,
            config.limits.max_translate_bytes,
            max_spool_bytes=config.limits.max_spool_bytes,
            on_refuse=lambda: self.observer.refused("spool_budget"),
        )
        self._reads = ReadPath(self.ctx)
        self._writes = WritePath(self.ctx, self._reads)
        self.shadow = ShadowChecker(
            config.shadow,
            self.worker,
            self.observer,
            max_translate_bytes=config.limits.max_translate_bytes,
        )
        self._shadow = ShadowPath(self.ctx, self.shadow)
        scheme = "https" if config.tls.enabled else "http"
        self._multipart = UploadPath(
            self.ctx, self.uploads, self._reads, self._writes, self._routes, scheme
        )

    async def handle(
        self, request: S3Request, route: RouteConfig, forward: Forwarder
    ) -> ProxyResponse:
        op, a = request.operation, request.address
        if _folder(a):
            return await forward.passthrough(request)
        compiled = self._routes.of(route)
        if route.mode == "shadow":
            return await self._shadow.handle(request, compiled, forward)
        if op in ("GetObject", "HeadObject"):
            return await self._reads.serve(request, compiled, forward)
        if op == "PutObject":
            return await self._writes.put(request, compiled, forward)
        if op == "CopyObject":
            return await self._writes.copy(request, compiled, forward)
        if op == "UploadPartCopy" and self._routes.match(a.bucket, a.key) is None:
            # The pipeline sends a part copy here when only its source is on a route.
            return await self._multipart.copy_part(request, forward, onto_route=False)
        if op in _MULTIPART:
            return await self._multipart.handle(request, compiled, forward)
        return await forward.passthrough(request)

    def passes_through(self, route: RouteConfig, operation: str, address: S3Address) -> bool:
        """What :meth:`handle` only passes through: folder keys, and every request on a route
        in shadow mode (with the copies below)."""
        return _folder(address) or route.mode == "shadow"

    def request_copy(
        self, route: RouteConfig, operation: str, address: S3Address, length: int | None
    ) -> BodyCopy | None:
        if not self._shadow_copies(route, address):
            return None
        return self._shadow.request_copy(
            self._routes.of(route), operation, address.key or "", length
        )

    def response_copy(
        self,
        route: RouteConfig,
        operation: str,
        address: S3Address,
        status: int,
        headers: list[tuple[str, str]],
    ) -> BodyCopy | None:
        if not self._shadow_copies(route, address):
            return None
        return self._shadow.response_copy(
            self._routes.of(route), operation, address.key or "", status, headers
        )

    @staticmethod
    def _shadow_copies(route: RouteConfig, address: S3Address) -> bool:
        return route.mode == "shadow" and not _folder(address)

    def start(self) -> None:
        """Start the document worker processes (in the background)."""
        self.worker.start()

    def ready(self) -> tuple[bool, str]:
        if not self.worker.ready:
            return False, "document workers starting"
        return True, "ok"

    def close(self) -> None:
        """Stop the translation pool and delete spooled uploads (at shutdown)."""
        self.shadow.close()
        self.worker.close()
        self.uploads.close()
