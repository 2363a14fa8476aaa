"""The HTTP side: the S3 data listener and the metrics/health listener.

This is the one place where :class:`~proxy.errors.ProxyError`\\ s become HTTP responses: S3-style
XML error documents (``Code``, ``Message``, ``Resource``, ``RequestId``, rendered by
:mod:`proxy.relay.errorpages`) with an ``x-amz-request-id`` header; the lean path
(:mod:`proxy.relay.fastpath`) answers through the same functions. Upstream error responses are
not errors here: they stream back unchanged like any other response.

The data listener is aiohttp's low-level server (no router, no middleware chain): every request
is S3, and the raw request target is handed to the pipeline untouched. ``Expect: 100-continue``
is answered by the proxy itself when the body is first read (never forwarded).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError

from proxy.errors import (
    ClientError,
    MalformedBody,
    ProxyError,
    RequestTimeout,
    SlowDown,
)
from proxy.relay import accesslog
from proxy.relay.errorpages import error_document, error_parts, new_request_id
from proxy.relay.fastpath import FastConnection
from proxy.relay.fastplan import FastPath
from proxy.relay.listener import ListenerServer, ListenerSettings, SendWatch
from proxy.relay.metrics import CONTENT_TYPE_LATEST, Metrics
from proxy.relay.pipeline import Exchange, IncomingRequest, Pipeline, ProxyResponse, UpstreamBody
from proxy.relay.pool import UpstreamPool
from proxy.relay.tlsrelay import relay_tls
from proxy.relay.zerocopy import RelayAborted, relay, socket_fd

__all__ = ["DataServer", "build_metrics_app", "error_document", "error_parts"]

_log = structlog.get_logger("format_proxy.access")
_WRITE_BUFFER = 1024 * 1024
# Where aiohttp's parser messages start quoting the client's bytes: ": b'..." or " b'...".
_RAW_BYTES = re.compile(r":?\s*(?:\bbytearray\()?\bb['\"]")


class _ClientStream:
    """aiohttp's request body, answering ``Expect: 100-continue`` on the first read.

    Each read waits at most ``idle_timeout`` for the next bytes (a client that stops sending
    mid-body, or never sends the body it announced with ``100-continue``, would otherwise hold
    the connection and the upstream request it feeds forever). Framing errors become
    ``IncompleteBody`` without the raw bytes aiohttp quotes in its message.
    """

    __slots__ = ("_continue", "_idle_timeout", "_on_timeout", "_request")

    def __init__(
        self, request: web.BaseRequest, idle_timeout: float, on_timeout: Callable[[], None]
    ) -> None:
        self._request = request
        self._idle_timeout = idle_timeout
        self._on_timeout = on_timeout
        expect = request.headers.get("Expect", "")
        self._continue = expect.lower() == "100-continue" and request.version == HttpVersion11

    async def read(self) -> bytes:
        if self._continue:
            self._continue = False
            writer = self._request.writer
            await writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            # Not part of the final response's size accounting.
            writer.output_size -= 25
        # readchunk hands over received buffers without joining (copying) them.
        content = self._request.content
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout):
                    chunk, end_of_http_chunk = await content.readchunk()
            except TimeoutError:
                self._on_timeout()
                err = RequestTimeout(
                    "no request body bytes arrived for "
                    f"{self._idle_timeout:g} seconds; the request was abandoned"
                )
                _abandon_body(self._request, err)
                raise err from None
            except HttpProcessingError as exc:
                raise MalformedBody(
                    f"the request body's HTTP framing is invalid: {_parse_problem(exc)}"
                ) from None
            # (b"", False) is EOF, (b"", True) a chunk boundary — except that aiohttp's shared
            # empty-payload reader answers (b"", True) forever after its first call.
            if chunk or not end_of_http_chunk or content.at_eof():
                return chunk


def _abandon_body(request: web.BaseRequest, err: Exception) -> None:
    """Give up on the rest of a stalled body: later reads fail, aiohttp does not wait for it
    after the answer (its lingering read), and the connection closes once the answer is out."""
    content = request.content
    content.set_exception(err)
    content.feed_eof()
    request.protocol.close()


def _parse_problem(exc: BaseException) -> str:
    """What aiohttp's parser objected to, without the raw bytes its message quotes
    (``Invalid header value char``, ``Got more than 8190 bytes when reading``)."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    first = _RAW_BYTES.split(first, maxsplit=1)[0].rstrip(" :.")
    return first[:120] or type(exc).__name__


class DataServer:
    """The S3 request handler: pipeline + error rendering + metrics + access log.

    ``zero_copy_min_bytes``: an unmodified upstream GET body at least this large is moved from
    the upstream socket to the client's inside the kernel (:mod:`proxy.relay.zerocopy`) when both
    sides are plain sockets; 0 turns that off. ``body_idle_timeout``: longest wait for the next
    bytes of a request body, and longest a client may leave its response unread. Also the
    listener's :class:`~proxy.relay.listener.ErrorPages`.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        metrics: Metrics,
        *,
        zero_copy_min_bytes: int = 0,
        body_idle_timeout: float = 60.0,
        fast_pool: UpstreamPool | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._fast_pool = fast_pool
        self._m = metrics
        self._zero_copy_min = zero_copy_min_bytes
        self._body_idle_timeout = body_idle_timeout
        self._inflight = 0
        #: The loop requests run on (kept: get_running_loop costs a getpid system call).
        self._loop: asyncio.AbstractEventLoop | None = None
        # Read at scrape time: no lock taken twice per request.
        metrics.inflight.set_function(lambda: self._inflight)
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    async def drain(self, grace: float) -> bool:
        """Mark responses ``Connection: close`` and wait for in-flight requests (True if all
        finished within ``grace`` seconds)."""
        self._draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            _log.warning("shutdown_grace_expired", inflight=self._inflight)
            return False
        return True

    def make_server(self, settings: ListenerSettings, **kwargs: Any) -> web.Server:
        # auto_decompress=False: a "Content-Encoding: gzip" body is the object's bytes, to be
        # stored as sent, not something for the proxy to inflate.
        front = None
        if self._fast_pool is not None:
            fast = FastPath(
                server=self,
                pipeline=self._pipeline,
                pool=self._fast_pool,
                zero_copy_min_bytes=self._zero_copy_min,
                body_idle_timeout=self._body_idle_timeout,
                new_request_id=new_request_id,
                error_parts=error_parts,
                is_loopback=_is_loopback,
            )

            def front(listener: ListenerServer) -> FastConnection:
                return FastConnection(fast, listener)

        return ListenerServer(
            self.handle,
            settings=settings,
            metrics=self._m,
            pages=self,
            front=front,
            auto_decompress=False,
            **kwargs,
        )

    def refusal(self) -> bytes:
        """A whole ``503 SlowDown`` response for a connection past the cap."""
        request_id = new_request_id()
        err = SlowDown("too many client connections are open at the proxy; retry later")
        body = error_document(err, "", request_id)
        head = (
            "HTTP/1.1 503 Slow Down\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"x-amz-request-id: {request_id}\r\n"
            "Retry-After: 1\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + body

    def protocol_error(
        self, request: web.BaseRequest, status: int, exc: BaseException | None
    ) -> web.StreamResponse:
        """The answer to a request aiohttp rejected before the handler (unparseable request
        line, headers or chunked framing) or, for a bug, after it. Neither the log line nor
        the answer quotes the client's bytes."""
        request_id = new_request_id()
        if status < 500:
            problem = _parse_problem(exc) if exc is not None else "malformed request"
            err: ProxyError = ClientError(f"the request is not valid HTTP/1.1: {problem}")
            self._m.refused.labels("malformed_request").inc()
            kind = type(exc).__name__ if exc is not None else "BadRequest"
            _log.info(
                "bad_request", status=err.status, error=f"{kind}: {problem}", request_id=request_id
            )
        else:
            err = ProxyError("internal error in format-proxy; see its log")
            _log.error("unhandled error", request_id=request_id, exc_info=exc or True)
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        return web.Response(
            status=err.status, body=error_document(err, "", request_id), headers=headers
        )

    def _body_timed_out(self) -> None:
        self._m.client_timeouts.labels("body").inc()

    def _response_stalled(self) -> None:
        self._m.client_timeouts.labels("response").inc()

    @property
    def draining(self) -> bool:
        """Responses close their connections (the proxy is shutting down)."""
        return self._draining

    def begin(self) -> None:
        """A request starts (counted in flight until :meth:`finish`)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._inflight += 1
        self._idle.clear()

    def finish(
        self, ex: Exchange, status: int, bytes_in: int, bytes_out: int, failed: str | None
    ) -> None:
        """A request is over: its metrics and its access-log line."""
        m = self._m
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()
        elapsed = time.perf_counter() - ex.started
        op = ex.operation
        child = self._child
        child(m.requests, op, str(status)).inc()
        child(m.request_duration, op).observe(elapsed)
        if ex.upstream_seconds is not None:
            child(m.upstream_duration, op).observe(ex.upstream_seconds)
        if bytes_in:
            child(m.request_bytes, op).inc(bytes_in)
        if bytes_out:
            child(m.response_bytes, op).inc(bytes_out)
        self._log(ex, status, bytes_in, bytes_out, elapsed, failed)

    def _child(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)``, looked up once (``labels()`` takes a lock and builds a
        key on every call); a series still appears only when first used."""
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= 4096:  # operations x statuses is small; bounded anyway
                self._children.clear()
            child = self._children[key] = family.labels(*labels)
        return child

    def internal_error(self, ex: Exchange, exc: Exception) -> tuple[ProxyError, str]:
        """A bug: logged with its traceback; the error to answer with and the log's reason."""
        _log.error("unhandled error", request_id=ex.request_id, exc_info=exc)
        internal = ProxyError("internal error in format-proxy; see its log")
        return internal, f"InternalError: {type(exc).__name__}"

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        ex = Exchange(request_id=new_request_id(), method=request.method)
        self.begin()
        status = 500
        bytes_out = 0
        failed: str | None = None
        try:
            incoming = IncomingRequest(
                method=request.method,
                raw_target=request.raw_path,
                headers=request.headers,
                body=_ClientStream(request, self._body_idle_timeout, self._body_timed_out),
            )
            try:
                presp = await self._pipeline.handle(incoming, ex)
            except ProxyError as err:
                failed = f"{err.code}: {err.message}"
                status = err.status
                return await self._write_error(request, err, ex)
            except Exception as exc:  # a bug: still an S3-shaped answer, and a traceback in logs
                internal, failed = self.internal_error(ex, exc)
                status = internal.status
                return await self._write_error(request, internal, ex)
            status = presp.status
            response, bytes_out, failed = await self._write(request, presp, ex)
            return response
        finally:
            bytes_in = ex.body.received if ex.body is not None else 0
            self.finish(ex, status, bytes_in, bytes_out, failed)

    def _log(
        self,
        ex: Exchange,
        status: int,
        bytes_in: int,
        bytes_out: int,
        elapsed: float,
        failed: str | None,
    ) -> None:
        fields: dict[str, Any] = {
            "method": ex.method,
            "operation": ex.operation,
            "bucket": ex.bucket,
            "status": status,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "duration_ms": round(elapsed * 1000, 3),
            "request_id": ex.upstream_request_id or ex.request_id,
            "proxy_request_id": ex.request_id,
        }
        if ex.upstream_seconds is not None:
            fields["upstream_ms"] = round(ex.upstream_seconds * 1000, 3)
        if ex.route is not None:
            fields["route"] = ex.route
        if failed is not None:
            fields["error"] = failed
        if ex.log_fields:
            fields.update(ex.log_fields)
        warn = status >= 500 or (failed is not None and status < 400)
        # Keys can be personal data or business identifiers: only at debug level.
        debug = accesslog.debug_enabled()
        # Batched with other lines only while other requests are in flight (see emit), and
        # never when a key line follows it.
        batch = self._inflight > 0 and not debug
        accesslog.emit("warning" if warn else "info", fields, loop=self._loop if batch else None)
        if debug:
            _log.debug("request.key", request_id=fields["request_id"], key=ex.key)

    async def _write_error(
        self, request: web.BaseRequest, err: ProxyError, ex: Exchange
    ) -> web.StreamResponse:
        headers, body = error_parts(err, request.method, request.raw_path, ex.request_id)
        response = web.Response(status=err.status, body=body, headers=headers)
        if self._draining or not _body_consumed(request):
            response.force_close()
        return response

    async def _write(
        self, request: web.BaseRequest, presp: ProxyResponse, ex: Exchange
    ) -> tuple[web.StreamResponse, int, str | None]:
        """Write the response; returns it, the body bytes written and, if the body could not be
        completed after the status line went out (upstream failed mid-body, client went away),
        why — the connection is then closed so the client sees a truncated response, never a
        silently short one."""
        release: Callable[[], None] | None = presp.release  # type: ignore[assignment]
        written = _Counter()
        response = _Response(status=presp.status)
        watch = SendWatch(
            request.transport,
            lambda: written.n,
            self._body_idle_timeout,
            self._response_stalled,
        )
        try:
            hdrs = response.headers
            for name, value in presp.headers:
                hdrs.add(name, value)
            body = presp.body
            # Decided at prepare time: the client body may still be streaming upstream.
            if self._draining or not _body_consumed(request):
                response.force_close()
            if isinstance(body, bytes):
                response.content_length = len(body)
                await response.prepare(request)
                if body:
                    await response.write(body)
                    written.n = len(body)
            else:
                writer = await response.prepare(request)
                if body is not None and not (
                    isinstance(body, UpstreamBody)
                    and writer is not None
                    and await self._relay(request, response, writer, body, written, ex)
                ):
                    transport = request.transport
                    if transport is not None:
                        # Fewer pause/resume round trips on large bodies; still bounded.
                        transport.set_write_buffer_limits(high=_WRITE_BUFFER)
                    await _pump(body, response, written)
            await response.write_eof()
            return response, written.n, None
        except Exception as exc:
            if not response.prepared:
                raise
            if written.n == 0:
                # The status line waits for the first body bytes (_Response): send it now, so
                # the client sees a response that started and broke, never a bare close.
                with contextlib.suppress(Exception):
                    await response.write(b"")
            transport = request.transport
            if transport is not None:
                transport.close()
            if isinstance(exc, RelayAborted):
                if exc.stalled:
                    self._response_stalled()
                sent = f"{written.n} of {response.content_length} body bytes sent"
                return response, written.n, f"response aborted: {exc.reason} ({sent})"
            return response, written.n, f"response aborted: {type(exc).__name__}: {exc}"
        finally:
            watch.cancel()
            if release is not None:
                release()

    async def _relay(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        writer: AbstractStreamWriter,
        body: UpstreamBody,
        written: _Counter,
        ex: Exchange,
    ) -> bool:
        """Send an unmodified upstream GET body with a zero-copy relay (over an HTTPS upstream,
        the TLS relay: decrypted in large batches, :mod:`proxy.relay.tlsrelay`); False (body
        untouched, nothing sent) where that does not apply: off, below the threshold, a TLS
        client connection, no Content-Length (chunked), or a declared length that is not the
        upstream's.

        Order on the client socket: the buffered status line and headers together with the
        body bytes aiohttp had already received, flushed completely out of the transport;
        then the rest, socket to socket. aiohttp's writer is then told the body went out, so
        the connection stays reusable. A body that cannot be completed raises: the caller
        closes the connection, so the client sees a truncated response, never a short one.
        """
        length = writer.length
        if (
            not self._zero_copy_min
            or length is None
            or length < self._zero_copy_min
            or getattr(writer, "chunked", True)
            or socket_fd(request.transport) is None
        ):
            return False
        detached = body.detach(length, tls=True)
        if detached is None:
            return False
        try:
            await response.write(detached.received)  # also sends the held-back headers
            written.n += len(detached.received)
            transport = request.transport
            await _flushed(transport, writer)
            client_fd = socket_fd(transport)
            if transport is None or client_fd is None:
                raise ConnectionResetError("the client connection closed")

            def progress(n: int) -> None:
                written.n += n

            local = _is_loopback(transport.get_extra_info("peername"))
            if detached.tls is not None:
                ex.log_fields["relay"] = "tls"
                moved = await relay_tls(
                    detached.tls,
                    client_fd,
                    detached.remaining,
                    read_timeout=detached.read_timeout,
                    write_timeout=self._body_idle_timeout,
                    progress=progress,
                    local_client=local,
                )
            else:
                ex.log_fields["relay"] = "zero-copy"
                moved = await relay(
                    detached.fd,
                    client_fd,
                    detached.remaining,
                    read_timeout=detached.read_timeout,
                    # The send watch sees only the transport's buffer, empty while the kernel
                    # relays.
                    write_timeout=self._body_idle_timeout,
                    progress=progress,
                    local_client=local,
                )
            # What aiohttp would have counted had it written these bytes itself.
            writer.output_size += moved
            writer.length = 0
        finally:
            detached.close()
        return True


class _Response(web.StreamResponse):
    # Hold the status line and headers until the first body bytes (or the end), so a small
    # response leaves in one write — one syscall and one packet instead of two.
    _send_headers_immediately = False


def _body_consumed(request: web.BaseRequest) -> bool:
    """False if part of the client's body is still unread (we answered early, e.g. an error
    while the client waits for 100-continue): the connection must not be reused, or the
    client's next request would be read as the rest of this body."""
    content = request.content
    return content.exception() is None and content.at_eof()


async def _flushed(transport: Any, writer: AbstractStreamWriter) -> None:
    """Wait until the transport's write buffer is empty: bytes written around it must not
    overtake bytes still queued in it."""
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client connection closed")
    if not transport.get_write_buffer_size():
        return
    low, high = transport.get_write_buffer_limits()
    # With both limits at 0 the protocol is paused until the buffer is empty, and drain()
    # waits for exactly that.
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await writer.drain()
    finally:
        if not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=low)
    if transport.is_closing() or transport.get_write_buffer_size():
        raise ConnectionResetError("the client connection closed")


def _is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False
    try:
        return ipaddress.ip_address(peer[0].partition("%")[0]).is_loopback
    except ValueError:
        return False


class _Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


async def _pump(
    body: AsyncIterator[bytes], response: web.StreamResponse, written: _Counter
) -> None:
    async for chunk in body:
        await response.write(chunk)
        written.n += len(chunk)


def build_metrics_app(
    metrics: Metrics, *, ready: Callable[[], tuple[bool, str]]
) -> web.Application:
    """``/metrics`` (Prometheus text), ``/healthz`` (alive), ``/readyz`` (ready to serve)."""

    async def metrics_handler(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        ok, why = ready()
        return web.Response(status=200 if ok else 503, text=("ok" if ok else why) + "\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
