"""The one request pipeline:

    request in → parse S3 address → match route → (route handler) → re-sign → upstream → out

The server hands each request here as an :class:`IncomingRequest` and gets a
:class:`ProxyResponse` back (or a :class:`~proxy.errors.ProxyError`, which the server — and only
the server — renders as an S3 XML error). Everything about the exchange that logging and metrics
need (operation, bucket, route, upstream time, byte counts) is recorded on the
:class:`Exchange` the server passes in, so this module never touches prometheus or aiohttp.web.

The seam for format translation
-----------------------------------------
Requests whose bucket/key match a configured route (longest prefix, :mod:`proxy.relay.routing`) are
given to the :class:`RouteHandler` the pipeline was built with, together with an
:class:`Upstream`-facing :class:`Forwarder`::

    class RouteHandler(Protocol):
        async def handle(self, request: S3Request, route: RouteConfig,
                         forward: Forwarder) -> ProxyResponse: ...

``request`` carries the parsed address, the S3 operation name, the client's headers and its body
(already decoded from aws-chunked, with ``read_all(max_bytes)`` for translating PUTs). The
forwarder offers:

- ``await forward.passthrough(request)`` — exactly what an unrouted request gets (streamed);
- ``await forward.send(request, method=..., address=..., headers=..., body=...)`` — one signed
  upstream request with replaced parts (a GET of the stored object, a PUT of the translated
  bytes, a HEAD); it returns an :class:`UpstreamReply` whose body can be read whole
  (``read(limit)``), streamed, or turned into a ``ProxyResponse`` with ``to_response()``.

The default handler, :class:`PassthroughHandler`, forwards unchanged. Translation plugs in by
passing another handler to :class:`Pipeline` (``ProxyService(config, route_handler=...)``;
the service builds the translating handler itself when routes are configured), which gets the
validated config (routes with compiled mappings, limits, ``app_version``) and the
:class:`~proxy.relay.metrics.Metrics` families it must count; nothing else in the pipeline changes.
Errors a handler raises from :mod:`proxy.errors` (``TranslationError``, ``EntityTooLarge``,
``InvalidRange``, ``PreconditionFailed``, ...) become S3 XML error responses in the server;
fields it puts in ``request.log_fields`` are added to the request's log line.

A handler may also say (:class:`PassingThrough`) which routed requests it would only pass
through (a route in shadow mode, a folder key), and which of their bodies it wants a copy of
(a :class:`BodyCopy`). The lean front end (:mod:`proxy.relay.fastexchange`) serves such
requests itself, as it serves unrouted ones.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp

from proxy.config import Config, RouteConfig
from proxy.errors import EntityTooLarge, ProxyError, UpstreamError
from proxy.relay.bodies import ClientStream, RequestBody, open_request_body
from proxy.relay.credentials import CredentialSource, ReadOnlyCredentials
from proxy.relay.routing import Router
from proxy.relay.upstream import DetachedBody, Upstream, detach_body
from proxy.s3.address import (
    Endpoint,
    S3Address,
    UpstreamTarget,
    build_upstream,
    check_forwardable,
    parse_copy_source,
    parse_request,
)
from proxy.s3.operations import detect_operation
from proxy.s3.signing import Signer, forwardable_request_headers, forwardable_response_headers

__all__ = [
    "BodyCopy",
    "Exchange",
    "Forwarder",
    "IncomingRequest",
    "PassingThrough",
    "PassthroughHandler",
    "Pipeline",
    "ProxyResponse",
    "RouteHandler",
    "S3Request",
    "UpstreamBody",
    "UpstreamReply",
]

_NO_BODY_STATUS = frozenset({204, 304})
_IDEMPOTENT_NO_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_IDEMPOTENT = _IDEMPOTENT_NO_BODY | {"PUT"}
#: Headers that describe the client's body; not forwarded with a replaced body.
_BODY_HEADERS = frozenset(
    {
        "content-md5",
        "content-encoding",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-decoded-content-length",
        "x-amz-trailer",
    }
)


@dataclass(slots=True)
class Exchange:
    """What the server records about one request (filled in as the pipeline learns it)."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    method: str = ""
    operation: str = "Unknown"
    bucket: str | None = None
    key: str | None = None
    route: str | None = None
    upstream_seconds: float | None = None
    upstream_request_id: str | None = None
    body: RequestBody | None = None
    #: Extra fields for this request's log line (route handlers add e.g. direction, outcome).
    log_fields: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A request as the HTTP server received it."""

    method: str
    #: Request target exactly as sent: ``/bucket/key?query`` (never decoded or normalised).
    raw_target: str
    #: Case-insensitive multi-valued headers (aiohttp's CIMultiDictProxy).
    headers: Mapping[str, str]
    body: ClientStream


@dataclass(slots=True)
class S3Request:
    """A parsed S3 request, as route handlers see it."""

    method: str
    address: S3Address
    operation: str
    headers: Mapping[str, str]
    body: RequestBody
    request_id: str
    #: Added to the request's log line (the same dict as ``Exchange.log_fields``).
    log_fields: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class ProxyResponse:
    """A response for the server to write. ``body`` is bytes or an async iterator of bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterator[bytes] | None = None
    #: Called once the body has been written (or abandoned): returns pooled connections.
    release: object | None = None  # Callable[[], None]; typed loosely to keep dataclass simple
    #: The body is a translated representation, not the stored object's bytes (a part copy
    #: must then copy what the client sees, not what the upstream holds).
    translated: bool = False


class UpstreamReply:
    """An upstream response, not yet read."""

    def __init__(self, response: aiohttp.ClientResponse, method: str) -> None:
        self._resp = response
        self._method = method
        self.status = response.status
        # raw_headers: names exactly as the upstream spelled them (aiohttp's parsed view
        # re-cases well-known names, e.g. ETag -> Etag).
        self.headers: list[tuple[str, str]] = forwardable_response_headers(
            (_text(k), _text(v)) for k, v in response.raw_headers
        )

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    @property
    def has_body(self) -> bool:
        return self._method != "HEAD" and self.status not in _NO_BODY_STATUS

    async def read(self, limit: int) -> bytes:
        """The whole body (at most ``limit`` bytes, else EntityTooLarge); releases the reply."""
        try:
            length = self._resp.content_length
            if length is not None and length > limit:
                raise EntityTooLarge(f"upstream object is {length} bytes, above {limit}")
            parts: list[bytes] = []
            total = 0
            async for chunk in self._resp.content.iter_any():
                total += len(chunk)
                if total > limit:
                    raise EntityTooLarge(f"upstream object is larger than {limit} bytes")
                parts.append(chunk)
            return b"".join(parts)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"reading the upstream response failed: {exc}") from None
        finally:
            self._resp.release()

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body in pieces as they arrive (bounded by aiohttp's read buffer). ``readchunk``
        hands over the received buffers without joining (copying) them."""
        content = self._resp.content
        while True:
            chunk, end_of_http_chunk = await content.readchunk()
            if chunk:
                yield chunk
            # (b"", False) is EOF, (b"", True) a chunk boundary — except that aiohttp's shared
            # empty-payload reader answers (b"", True) forever after its first call.
            elif not end_of_http_chunk or content.at_eof():
                break

    def release(self) -> None:
        self._resp.release()

    def to_response(self) -> ProxyResponse:
        """Pass this reply to the client as is (streamed, or relayed kernel-side: see
        :class:`UpstreamBody`)."""
        return ProxyResponse(
            status=self.status,
            headers=self.headers,
            body=UpstreamBody(self) if self.has_body else None,
            release=self._resp.release,
        )


class UpstreamBody:
    """An upstream reply's body, unmodified: an async iterator of the pieces as they arrive.

    For a GET, the server may instead :meth:`detach` it before iterating, and move the rest of
    the body from the upstream socket to the client's without reading it (zero-copy relay).
    Whoever replaces a response's body drops this capability with it.
    """

    __slots__ = ("_it", "_reply")

    def __init__(self, reply: UpstreamReply) -> None:
        self._reply = reply
        self._it: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> UpstreamBody:
        return self

    async def __anext__(self) -> bytes:
        if self._it is None:
            self._it = self._reply.stream()
        return await self._it.__anext__()

    def detach(self, length: int, *, tls: bool = False) -> DetachedBody | None:
        """The untouched rest of the body, if the upstream declared exactly ``length`` bytes
        and its socket is plain (or, with ``tls``, asyncio's TLS); None otherwise, and then
        the body is still intact for iteration."""
        if self._it is not None or self._reply._method != "GET":
            return None
        return detach_body(self._reply._resp, length, tls=tls)


_UNCHANGED: object = object()


class Forwarder(Protocol):
    async def passthrough(self, request: S3Request) -> ProxyResponse: ...

    async def send(
        self,
        request: S3Request,
        *,
        method: str | None = None,
        address: S3Address | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: object = _UNCHANGED,
        payload_hash: str | None = None,
    ) -> UpstreamReply: ...


class BodyCopy(Protocol):
    """A copy of a body passed through unchanged, made as it passes (shadow mode)."""

    @property
    def copying(self) -> bool:
        """False when no bytes are wanted (the copy was given up before it started)."""

    def add(self, piece: bytes) -> None: ...

    def end(self) -> None:
        """The whole body passed: a response's reached the client, a request's the upstream."""

    def finish(self) -> None:
        """The request is over and succeeded (a response written or abandoned, a request
        body accepted by the upstream). Never raises."""

    def discard(self) -> None:
        """The request failed: the copy is dropped without an outcome."""


class RouteHandler(Protocol):
    async def handle(
        self, request: S3Request, route: RouteConfig, forward: Forwarder
    ) -> ProxyResponse: ...


@runtime_checkable
class PassingThrough(Protocol):
    """What a route handler may also tell (optional): which routed requests it only passes
    through, and which of their bodies it copies. The lean front end serves those itself; a
    handler without these methods gets every routed request."""

    def passes_through(self, route: RouteConfig, operation: str, address: S3Address) -> bool:
        """True if :meth:`handle` would answer this request with ``forward.passthrough``
        alone, copying at most the bodies :meth:`request_copy`/:meth:`response_copy` ask for."""

    def request_copy(
        self, route: RouteConfig, operation: str, address: S3Address, length: int | None
    ) -> BodyCopy | None:
        """For a request that passes through: a copy of its body to make, or None."""

    def response_copy(
        self,
        route: RouteConfig,
        operation: str,
        address: S3Address,
        status: int,
        headers: list[tuple[str, str]],
    ) -> BodyCopy | None:
        """For a request that passes through: a copy of its response body to make, or None."""


class PassthroughHandler:
    """The route handler before translation exists: routes pass through unchanged."""

    async def handle(
        self, request: S3Request, route: RouteConfig, forward: Forwarder
    ) -> ProxyResponse:
        return await forward.passthrough(request)


class Pipeline:
    """Turns incoming requests into upstream requests and responses."""

    def __init__(
        self,
        config: Config,
        *,
        endpoint: Endpoint,
        upstream: Upstream,
        credentials: CredentialSource,
        route_handler: RouteHandler | None = None,
    ) -> None:
        self._config = config
        self._endpoint = endpoint
        self._upstream = upstream
        self._credentials = credentials
        self._signer = Signer(config.upstream.region)
        self._router = Router(config.routes)
        self._handler: RouteHandler = route_handler or PassthroughHandler()
        self._suffixes = config.virtual_host_suffixes
        self._small = 64 * 1024
        self._spool = config.limits.spool_memory_bytes
        self._spool_dir = str(config.spool_dir) if config.spool_dir is not None else None
        self._max_line = config.limits.max_chunk_header_bytes

    def resolve(
        self, method: str, raw_target: str, headers: Mapping[str, str], ex: Exchange
    ) -> tuple[S3Address, RouteConfig | None]:
        """The request's address, parsed once, and the route covering it (None: unrouted);
        records operation, bucket and key on ``ex``. Raises what cannot be forwarded."""
        # Parsed once: the router decides on, and the upstream receives, this one address.
        address = parse_request(raw_target, headers.get("Host", ""), self._suffixes)
        ex.bucket = address.bucket
        ex.key = address.key
        ex.operation = detect_operation(method, address, headers)
        check_forwardable(address)
        route = self._router.route(address) if self._router else None
        if route is None and ex.operation == "UploadPartCopy" and self._router:
            # The client sized the part's range on what it sees of the source: a source on a
            # route may look different from its stored bytes, so the route handler copies it.
            source = parse_copy_source(headers.get("x-amz-copy-source"))
            route = self._router.route(source) if source else None
        return address, route

    @property
    def passing_through(self) -> PassingThrough | None:
        """The route handler, if it tells which routed requests it only passes through."""
        handler = self._handler
        return handler if isinstance(handler, PassingThrough) else None

    def target(self, address: S3Address) -> UpstreamTarget:
        """Where ``address`` is sent upstream (the URL signed and sent)."""
        return build_upstream(address, self._endpoint)

    async def sign(
        self,
        method: str,
        target: UpstreamTarget,
        headers: list[tuple[str, str]],
        data: object,
        payload_hash: str,
    ) -> list[tuple[str, str]]:
        """The headers to send upstream, signed with the current credentials."""
        creds = await self._credentials.get()
        return self._signed(method, target, headers, data, payload_hash, creds)

    def sign_now(
        self,
        method: str,
        target: UpstreamTarget,
        headers: list[tuple[str, str]],
        data: object,
        payload_hash: str,
    ) -> list[tuple[str, str]] | None:
        """As :meth:`sign`, when the credentials are at hand without a wait (else None)."""
        creds = self._credentials.now()
        if creds is None:
            return None
        return self._signed(method, target, headers, data, payload_hash, creds)

    def _signed(
        self,
        method: str,
        target: UpstreamTarget,
        headers: list[tuple[str, str]],
        data: object,
        payload_hash: str,
        creds: ReadOnlyCredentials,
    ) -> list[tuple[str, str]]:
        if (
            isinstance(data, bytes)
            and (data or method not in _IDEMPOTENT_NO_BODY)
            and not any(k.lower() == "content-length" for k, _ in headers)
        ):
            headers = [*headers, ("Content-Length", str(len(data)))]
        return self._signer.sign(method, target, headers, payload_hash, creds)

    def open_body(self, headers: Mapping[str, str], stream: ClientStream) -> RequestBody:
        """The request body as the upstream should see it (framing decided once)."""
        return open_request_body(
            headers,
            stream,
            small_body_bytes=self._small,
            spool_memory_bytes=self._spool,
            spool_dir=self._spool_dir,
            max_line_bytes=self._max_line,
        )

    async def handle(self, incoming: IncomingRequest, ex: Exchange) -> ProxyResponse:
        headers = incoming.headers
        address, route = self.resolve(incoming.method, incoming.raw_target, headers, ex)
        body = ex.body = self.open_body(headers, incoming.body)
        request = S3Request(
            method=incoming.method,
            address=address,
            operation=ex.operation,
            headers=headers,
            body=body,
            request_id=ex.request_id,
            log_fields=ex.log_fields,
        )
        forwarder = _PipelineForwarder(self, ex)
        if route is None:
            return await forwarder.passthrough(request)
        ex.route = route.name
        return await self._handler.handle(request, route, forwarder)

    async def _send(
        self,
        ex: Exchange,
        request: S3Request,
        *,
        method: str,
        address: S3Address,
        headers: list[tuple[str, str]],
        data: bytes | AsyncIterator[bytes] | None,
        payload_hash: str,
        body: RequestBody | None,
    ) -> aiohttp.ClientResponse:
        target = self.target(address)
        signed = await self.sign(method, target, headers, data, payload_hash)
        started = time.perf_counter()
        try:
            resp = await self._upstream.request(
                method,
                target.url,
                signed,
                data,
                body_error=(lambda: body.error) if body is not None else (lambda: None),
                # Replayable body and an idempotent S3 method (not POST: a repeated
                # CompleteMultipartUpload or DeleteObjects could answer differently).
                retry_safe=not isinstance(data, AsyncIterator) and method in _IDEMPOTENT,
            )
        finally:
            ex.upstream_seconds = time.perf_counter() - started
        ex.upstream_request_id = resp.headers.get("x-amz-request-id")
        return resp


class _PipelineForwarder:
    def __init__(self, pipeline: Pipeline, ex: Exchange) -> None:
        self._p = pipeline
        self._ex = ex

    async def passthrough(self, request: S3Request) -> ProxyResponse:
        reply = await self._forward_client_body(request)
        return reply.to_response()

    async def _forward_client_body(self, request: S3Request) -> UpstreamReply:
        body = request.body
        try:
            await body.prepare()
            headers = forwardable_request_headers(request.headers.items(), drop=body.drop_headers)
            headers.extend(body.extra_headers)
            if body.length is not None and body.present:
                headers.append(("Content-Length", str(body.length)))
            payload_hash = body.payload_hash(request.headers.get("x-amz-content-sha256"))
            resp = await self._p._send(
                self._ex,
                request,
                method=request.method,
                address=request.address,
                headers=headers,
                data=body.upstream_data(),
                payload_hash=payload_hash,
                body=body,
            )
        except BaseException:
            body.close()
            raise
        reply = UpstreamReply(resp, request.method)
        body.close()
        if body.error is not None:  # upstream answered, but the body turned out bad
            reply.release()
            raise body.error
        return reply

    async def send(
        self,
        request: S3Request,
        *,
        method: str | None = None,
        address: S3Address | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: object = _UNCHANGED,
        payload_hash: str | None = None,
    ) -> UpstreamReply:
        """One signed upstream request; any part not given is the client's own."""
        if body is _UNCHANGED and headers is None and method is None and address is None:
            return await self._forward_client_body(request)
        m = method or request.method
        if body is _UNCHANGED:
            raise ProxyError("send(): a replaced request needs an explicit body (bytes or None)")
        if headers is None:
            # The client's headers minus everything that describes the client's own body.
            headers = forwardable_request_headers(
                request.headers.items(),
                drop=_BODY_HEADERS
                | {
                    k.lower()
                    for k, _ in request.headers.items()
                    if k.lower().startswith("x-amz-checksum-")
                },
            )
        else:
            headers = forwardable_request_headers(headers)
        data = body
        if payload_hash is None:
            payload_hash = _sha256_hex(data) if isinstance(data, bytes) else "UNSIGNED-PAYLOAD"
        resp = await self._p._send(
            self._ex,
            request,
            method=m,
            address=address or request.address,
            headers=headers,
            data=data,  # type: ignore[arg-type]
            payload_hash=payload_hash,
            body=None,
        )
        return UpstreamReply(resp, m)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
