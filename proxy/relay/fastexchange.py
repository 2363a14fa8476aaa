"""One request on the lean path: forwarded over the upstream pool, answered as aiohttp would.

:class:`FastPath` decides whether a parsed request is the fast path's (the pipeline's own address
parse and route decision), and :class:`FastExchange` serves one: the pipeline's body framing and
signing, the response head aiohttp's ``StreamResponse`` would write (same default headers), the
body streamed with flow control or relayed kernel-side (zero-copy) when large, failures answered
by the one error rendering, and the data server's metrics and access line.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict
from yarl import URL

from proxy.config import RouteConfig
from proxy.errors import ProxyError, UpstreamError
from proxy.relay.listener import SendWatch
from proxy.relay.pipeline import BodyCopy, Exchange, Pipeline
from proxy.relay.pool import HostPool, UpstreamConnection, UpstreamPool
from proxy.relay.tlsrelay import TLSSource, can_take_over, relay_tls, take_over
from proxy.relay.zerocopy import RelayAborted, relay, socket_fd
from proxy.s3.address import S3Address, UpstreamTarget
from proxy.s3.awschunked import framing_for
from proxy.s3.signing import forwardable_request_headers, forwardable_response_headers

if TYPE_CHECKING:
    from proxy.relay.listener import ListenerServer
    from proxy.relay.server import DataServer

__all__ = ["FastExchange", "FastPath", "Plan"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
#: A path and query yarl sends exactly as given (``encoded=True`` leaves these alone).
_PLAIN_REST = re.compile(r'/[!"$-~]*')  # printable ASCII but "#"
#: Origins checked against yarl (see :meth:`FastPath._sent_as_built`), at most this many.
_MAX_ORIGINS = 1024
#: Response body bytes held before the head is written (one or two socket reads).
_EARLY_LIMIT = 256 * 1024


class Client(Protocol):
    """The client connection an exchange answers on."""

    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def write_paused(self) -> bool: ...
    @property
    def listener(self) -> ListenerServer: ...

    closing: bool


@dataclass(slots=True)
class Plan:
    """An eligible request, resolved: what the fast path will send."""

    address: S3Address
    ex: Exchange
    headers: CIMultiDict[str]
    method: str
    raw_target: str
    target: UpstreamTarget
    #: The route of a routed request its handler only passes through (shadow mode).
    route: RouteConfig | None = None


class _BytesStream:
    """The already received body, as the pipeline's body framing reads it."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        data, self._data = self._data, b""
        return data


class FastPath:
    """What every fast connection of one listener shares."""

    def __init__(
        self,
        *,
        server: DataServer,
        pipeline: Pipeline,
        pool: UpstreamPool,
        zero_copy_min_bytes: int,
        body_idle_timeout: float,
        new_request_id: Callable[[], str],
        error_parts: Callable[[ProxyError, str, str, str], tuple[dict[str, str], bytes]],
        is_loopback: Callable[[object], bool],
        small_body_bytes: int = 64 * 1024,
    ) -> None:
        self.new_request_id = new_request_id
        self.error_parts = error_parts
        self.is_loopback = is_loopback
        self.server = server
        self.pipeline = pipeline
        self.pool = pool
        self.zero_copy_min = zero_copy_min_bytes
        self.body_idle_timeout = body_idle_timeout
        self.small_body = small_body_bytes
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every call.
        self.loop = asyncio.get_running_loop()
        self._origins: dict[str, bool] = {}
        #: The route handler, when it tells which routed requests it only passes through.
        self.through = pipeline.passing_through

    def plan(self, method: str, raw_target: str, headers: CIMultiDict[str]) -> Plan | None:
        """The resolved request, or None if the general path must serve it."""
        if method == "PUT":
            length = headers.get("Content-Length")
            if length is None or not length.isdigit() or int(length) > self.small_body:
                return None
            if framing_for(headers.get("x-amz-content-sha256"), headers.get("Content-Encoding")):
                return None
        elif headers.get("Content-Length", "0") != "0":
            return None
        if len(headers.getall("Host", ())) != 1 or len(headers.getall("Content-Length", ())) > 1:
            return None
        ex = Exchange(request_id="", method=method)
        try:
            address, route = self.pipeline.resolve(method, raw_target, headers, ex)
            if route is not None:
                through = self.through
                if through is None or not through.passes_through(route, ex.operation, address):
                    return None
                ex.route = route.name
            target = self.pipeline.target(address)
            if not self._sent_as_built(target):
                return None
        except Exception:
            return None
        return Plan(
            address=address,
            ex=ex,
            headers=headers,
            method=method,
            raw_target=raw_target,
            target=target,
            route=route,
        )

    def _sent_as_built(self, target: UpstreamTarget) -> bool:
        """Whether aiohttp's client would send ``target.url`` unchanged, as the fast path does.
        yarl only ever rewrites the origin part of an encoded URL (a default port, the host's
        case), so the answer is looked up once per origin; a path or query with anything but
        printable ASCII is always checked whole."""
        url = target.url
        rest = len(target.path) + (len(target.query) + 1 if target.query else 0)
        origin = url[: len(url) - rest]
        if "?" in target.path or not _PLAIN_REST.fullmatch(url, len(origin)):
            return str(URL(url, encoded=True)) == url
        known = self._origins.get(origin)
        if known is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            known = self._origins[origin] = str(URL(url, encoded=True)) == url
        return known


class FastExchange:
    """One fast-path request and its response (the upstream connection's ResponseSink)."""

    def __init__(self, fast: FastPath, client: Client, plan: Plan) -> None:
        self._fast = fast
        self._client = client
        self._plan = plan
        self._conn: UpstreamConnection | None = None
        self._head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] | None = None
        self._end: asyncio.Future[None] | None = None
        self._early: list[bytes] = []
        self._early_len = 0
        self._streaming = False
        self._chunked = False
        self._written = 0
        self._drained: asyncio.Future[None] | None = None
        #: A copy of the response body being made (shadow mode).
        self._copy: BodyCopy | None = None

    @property
    def _transport(self) -> asyncio.Transport | None:
        return self._client.transport

    async def run(self, body: bytes) -> None:
        plan = self._plan
        server = self._fast.server
        ex: Exchange = plan.ex
        ex.request_id = self._fast.new_request_id()
        ex.started = time.perf_counter()
        server.begin()
        status = 500
        bytes_out = 0
        failed: str | None = None
        try:
            try:
                status, failed = await self._forward(plan, ex, body)
            except ProxyError as err:
                failed = f"{err.code}: {err.message}"
                status = err.status
                self._write_error(err, plan, ex)
            except Exception as exc:  # a bug: still an S3-shaped answer, and a traceback in logs
                internal, failed = server.internal_error(ex, exc)
                status = internal.status
                self._write_error(internal, plan, ex)
            bytes_out = self._written
        finally:
            bytes_in = ex.body.received if ex.body is not None else 0
            server.finish(ex, status, bytes_in, bytes_out, failed)

    # --- the client connection's events ------------------------------------------------------

    def client_paused(self) -> None:
        if self._conn is not None:
            self._conn.pause()

    def client_resumed(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self._conn is not None and self._streaming:
            self._conn.resume()

    def client_lost(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_exception(ConnectionResetError("the client connection closed"))
        if self._streaming:
            # Nobody reads the rest: stop the upstream sending it (a response still on its way
            # is awaited, then dropped, as on the general path).
            end = self._end
            if end is not None and not end.done():
                end.set_exception(ConnectionResetError("the client connection closed"))
            if self._conn is not None:
                self._conn.close()

    async def _forward(self, plan: Plan, ex: Exchange, data: bytes) -> tuple[int, str | None]:
        fast = self._fast
        headers = plan.headers
        body = ex.body = fast.pipeline.open_body(headers, _BytesStream(data))
        try:
            await body.prepare()
            fwd = forwardable_request_headers(headers.items(), drop=body.drop_headers)
            fwd.extend(body.extra_headers)
            if body.length is not None and body.present:
                fwd.append(("Content-Length", str(body.length)))
            payload_hash = body.payload_hash(headers.get("x-amz-content-sha256"))
            upstream_data = body.upstream_data()
        finally:
            body.close()
        if upstream_data is not None and not isinstance(upstream_data, bytes):
            raise ProxyError("fast path: a small body was not read whole")
        method = plan.method
        target = plan.target
        signed = await fast.pipeline.sign(method, target, fwd, upstream_data, payload_hash)
        if (
            upstream_data is None
            and method not in ("GET", "HEAD")
            and not any(k.lower() == "content-length" for k, _ in signed)
        ):
            signed.append(("Content-Length", "0"))  # what aiohttp's client adds
        path = target.path + (f"?{target.query}" if target.query else "")
        lines = [f"{method} {path} HTTP/1.1\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in signed)
        lines.append("\r\n")
        wire = "".join(lines).encode("utf-8") + (upstream_data or b"")

        pool = fast.pool.host(target.host)
        copy: BodyCopy | None = None
        started = time.perf_counter()
        try:
            if plan.route is not None and fast.through is not None and upstream_data is not None:
                copy = fast.through.request_copy(
                    plan.route, ex.operation, plan.address, len(upstream_data)
                )
                if copy is not None and copy.copying:
                    copy.add(upstream_data)
            status, raw, conn = await self._exchange(pool, wire, method)
        except BaseException:
            if copy is not None:
                copy.discard()
            raise
        finally:
            ex.upstream_seconds = time.perf_counter() - started
        if copy is not None:
            if 200 <= status < 300:
                copy.end()  # the upstream accepted the whole body
                copy.finish()
            else:
                copy.discard()
        return await self._respond(plan, ex, conn, status, raw)

    async def _exchange(
        self, pool: HostPool, wire: bytes, method: str
    ) -> tuple[int, list[tuple[bytes, bytes]], UpstreamConnection]:
        """Send the request and wait for the response head (once more on a connection the
        upstream closed before answering)."""
        loop = self._fast.loop
        for attempt in range(2):
            conn = self._conn = await pool.get()
            self._head = loop.create_future()
            self._end = loop.create_future()
            conn.send(wire, self, head_only=method == "HEAD")
            try:
                status, raw = await self._head
                return status, raw, conn
            except _Retry as retry:
                # As the general path: one more attempt for these idempotent, replayable
                # requests when the upstream closed without answering.
                if attempt:
                    raise retry.error from None
                self._early, self._early_len = [], 0
        raise AssertionError("unreachable")

    async def _respond(
        self,
        plan: Plan,
        ex: Exchange,
        conn: UpstreamConnection,
        status: int,
        raw: list[tuple[bytes, bytes]],
    ) -> tuple[int, str | None]:
        method = plan.method
        hdrs = forwardable_response_headers([(_text(k), _text(v)) for k, v in raw])
        lowered = [name.lower() for name, _ in hdrs]
        if "x-amz-request-id" in lowered:
            ex.upstream_request_id = hdrs[lowered.index("x-amz-request-id")][1]
        through = self._fast.through
        copy = self._copy = (
            through.response_copy(plan.route, ex.operation, plan.address, status, list(hdrs))
            if plan.route is not None and method == "GET" and through is not None
            else None
        )
        try:
            return await self._answer(plan, ex, conn, status, hdrs, lowered)
        finally:
            if copy is not None:
                copy.finish()  # after the whole body was written, or abandoned

    async def _answer(
        self,
        plan: Plan,
        ex: Exchange,
        conn: UpstreamConnection,
        status: int,
        hdrs: list[tuple[str, str]],
        lowered: list[str],
    ) -> tuple[int, str | None]:
        method = plan.method
        copy = self._copy
        head, length = self._response_head(method, status, hdrs, lowered)
        transport = self._transport
        if transport is None:
            conn.close()
            return status, "response aborted: ConnectionResetError: the client connection closed"
        if (
            method == "GET"
            and copy is None  # a body being copied takes the copy path
            and self._fast.zero_copy_min
            and length is not None
            and length >= self._fast.zero_copy_min
            and self._end is not None
            and not self._end.done()
            and socket_fd(transport) is not None
            and (socket_fd(conn.transport) is not None or can_take_over(conn.transport))
        ):
            return status, await self._splice(ex, conn, head, length)
        watch: SendWatch | None = None
        try:
            early, self._early = self._early, []
            self._early_len = 0
            self._streaming = True
            first = b"".join(early)
            self._written += len(first)
            if copy is not None:
                copy.add(first)
            transport.write(head + self._frame(first))
            if self._client.write_paused:
                conn.pause()
            else:
                conn.resume()  # paused while the head was pending
            end = self._end
            assert end is not None
            if not end.done():
                # The body is still coming: a client that stops reading must not hold the
                # upstream connection (a whole response already handed over holds nothing).
                watch = SendWatch(
                    transport, lambda: self._written, self._fast.body_idle_timeout, self._stalled
                )
            await end  # a done future answers at once, without a loop turn
            if self._chunked:
                transport.write(b"0\r\n\r\n")
            if copy is not None:
                copy.end()  # the client has been given the whole body
            conn.release()
            return status, None
        except (UpstreamError, ConnectionError) as exc:
            conn.close()
            if self._transport is not None:
                self._transport.close()
            return status, f"response aborted: {type(exc).__name__}: {exc}"
        finally:
            if watch is not None:
                watch.cancel()

    def _stalled(self) -> None:
        self._client.listener.metrics.client_timeouts.labels("response").inc()

    async def _splice(
        self, ex: Exchange, conn: UpstreamConnection, head: bytes, length: int
    ) -> str | None:
        """The body from the upstream socket to the client's: inside the kernel (zero-copy) from
        a plain upstream, decrypted in large batches (:mod:`proxy.relay.tlsrelay`) from TLS."""
        conn.pause()
        conn.detach()
        transport = self._transport
        source: TLSSource | None = None
        try:
            received = b"".join(self._early)
            self._early, self._early_len = [], 0
            assert transport is not None
            transport.write(head + received)
            self._written += len(received)
            await self._flushed()
            client_fd = socket_fd(self._transport)
            src_fd = socket_fd(conn.transport)
            if src_fd is None:
                source = take_over(conn.transport)
            if client_fd is None or (src_fd is None and source is None):
                raise ConnectionResetError("the client connection closed")

            def progress(n: int) -> None:
                self._written += n

            local = self._fast.is_loopback(transport.get_extra_info("peername"))
            read_timeout = self._fast.pool.settings.read_timeout
            if source is not None:
                ex.log_fields["relay"] = "tls"
                await relay_tls(
                    source,
                    client_fd,
                    length - len(received),
                    read_timeout=read_timeout,
                    write_timeout=self._fast.body_idle_timeout,
                    progress=progress,
                    local_client=local,
                )
            else:
                assert src_fd is not None
                ex.log_fields["relay"] = "zero-copy"
                await relay(
                    src_fd,
                    client_fd,
                    length - len(received),
                    read_timeout=read_timeout,
                    write_timeout=self._fast.body_idle_timeout,
                    progress=progress,
                    local_client=local,
                )
            return None
        except (RelayAborted, ConnectionError) as exc:
            if self._transport is not None:
                self._transport.close()
            if isinstance(exc, RelayAborted) and exc.stalled:
                self._stalled()
            sent = f"{self._written} of {length} body bytes sent"
            reason = exc.reason if isinstance(exc, RelayAborted) else str(exc)
            return f"response aborted: {reason} ({sent})"
        finally:
            if source is not None:
                source.close()
            conn.close()

    async def _flushed(self) -> None:
        """Wait until the client transport's buffer is empty (bytes must not overtake it): with
        both write limits at 0 the client is paused until the buffer is empty, and resumed
        then. A client that takes nothing for ``body_idle_timeout`` is a stalled one."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client connection closed")
        if not transport.get_write_buffer_size():
            return
        low, high = transport.get_write_buffer_limits()
        self._drained = asyncio.get_running_loop().create_future()
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            async with asyncio.timeout(self._fast.body_idle_timeout):
                await self._drained
        except TimeoutError:
            self._stalled()
            transport.abort()
            raise ConnectionResetError("the client stopped reading") from None
        finally:
            self._drained = None
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
        if transport.is_closing() or transport.get_write_buffer_size():
            raise ConnectionResetError("the client connection closed")

    def _response_head(
        self, method: str, status: int, hdrs: list[tuple[str, str]], lowered: list[str]
    ) -> tuple[bytes, int | None]:
        """The status line and headers aiohttp's StreamResponse would write for them
        (``lowered``: their names in lower case)."""
        names = set(lowered)
        length: int | None = None
        if "content-length" in names:
            length = int(hdrs[lowered.index("content-length")][1])
        empty = must_be_empty_body(method, status)
        if empty:
            if length is not None and should_remove_content_length(method, status):
                hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-length"]
        else:
            if length is None:
                self._chunked = True
                hdrs.append(("Transfer-Encoding", "chunked"))
            if length != 0 and "content-type" not in names:
                hdrs.append(("Content-Type", "application/octet-stream"))
        if "date" not in names:
            hdrs.append(("Date", rfc822_formatted_time()))
        if "server" not in names:
            hdrs.append(("Server", SERVER_SOFTWARE))
        if self._client.closing or self._fast.server.draining:
            self._client.closing = True
            hdrs.append(("Connection", "close"))
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in hdrs)
        lines.append("\r\n")
        return "".join(lines).encode("utf-8"), None if empty else length

    def _frame(self, data: bytes) -> bytes:
        if not self._chunked or not data:
            return data
        return b"%x\r\n%b\r\n" % (len(data), data)

    def _write_error(self, err: ProxyError, plan: Plan, ex: Exchange) -> None:
        transport = self._transport
        if transport is None:
            return
        headers, body = self._fast.error_parts(err, plan.method, plan.raw_target, ex.request_id)
        hdrs = list(headers.items())
        if "Content-Length" not in headers:
            hdrs.append(("Content-Length", str(len(body))))
        if "Content-Type" not in headers and body:
            hdrs.append(("Content-Type", "application/octet-stream"))
        hdrs.append(("Date", rfc822_formatted_time()))
        hdrs.append(("Server", SERVER_SOFTWARE))
        if self._client.closing or self._fast.server.draining:
            self._client.closing = True
            hdrs.append(("Connection", "close"))
        lines = [f"HTTP/1.1 {err.status} {_REASONS.get(err.status, '')}\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in hdrs)
        lines.append("\r\n")
        self._written = len(body)
        transport.write("".join(lines).encode("utf-8") + body)

    # --- the upstream response (ResponseSink) --------------------------------------------------

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result((status, list(headers)))

    def response_body(self, data: bytes) -> None:
        if not self._streaming:
            self._early.append(data)
            self._early_len += len(data)
            if self._early_len > _EARLY_LIMIT and self._conn is not None:
                self._conn.pause()
            return
        transport = self._transport
        if transport is None:
            return
        self._written += len(data)
        if self._copy is not None:
            self._copy.add(data)
        transport.write(self._frame(data))

    def response_end(self) -> None:
        if self._end is not None and not self._end.done():
            self._end.set_result(None)

    def response_failed(self, err: UpstreamError, retryable: bool) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(_Retry(err) if retryable else err)
        end = self._end
        if end is not None and not end.done():
            end.set_exception(err)
            end.exception()  # retrieved: a failed head leaves it unawaited


class _Retry(Exception):
    """The upstream closed a connection before answering: the request may be sent again."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
