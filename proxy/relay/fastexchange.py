"""One request on the lean path: forwarded over the upstream pool, answered as aiohttp would.

:class:`FastExchange` serves a :class:`~proxy.relay.fastplan.Plan`: the pipeline's body framing
and signing, the response head aiohttp's ``StreamResponse`` would write (same default headers),
the body relayed read by read with flow control, or kernel-side (zero-copy) when large, failures
answered by the one error rendering, and the data server's metrics and access line. It is driven
by the connections' callbacks: the usual exchange runs without a task (see the class).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from proxy.errors import ProxyError, UpstreamError
from proxy.relay.fastheads import chunk, decoded, error_head, response_head
from proxy.relay.fastplan import FastPath, Plan
from proxy.relay.listener import SendWatch
from proxy.relay.pipeline import BodyCopy, Exchange
from proxy.relay.pool import HostPool, UpstreamConnection
from proxy.relay.tlsrelay import TLSSource, can_take_over, relay_tls, take_over
from proxy.relay.zerocopy import RelayAborted, relay, socket_fd
from proxy.s3.signing import forwardable_request_headers, forwardable_response_pairs

if TYPE_CHECKING:
    from proxy.relay.listener import ListenerServer

__all__ = ["FastExchange"]


class Client(Protocol):
    """The client connection an exchange answers on."""

    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def write_paused(self) -> bool: ...
    @property
    def listener(self) -> ListenerServer: ...

    closing: bool


class _BytesStream:
    """The already received body, as the pipeline's body framing reads it."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        data, self._data = self._data, b""
        return data


_CLIENT_GONE = "response aborted: ConnectionResetError: the client connection closed"
_CANCELLED = "response aborted: cancelled"
_T = TypeVar("_T")
#: What a response is doing: waiting for its head, relayed read by read, held until its first
#: read ends (a large GET: relayed kernel-side if more is to come), relayed by a task, over.
_WAITING, _STREAMING, _HELD, _SPLICING, _OVER = range(5)


class FastExchange:
    """One fast-path request and its response, driven by the connections' own callbacks.

    The usual exchange needs no task and no future: the request is framed, signed and written
    from the client connection's read, and the response is relayed from the upstream
    connection's reads (this is its :class:`~proxy.relay.pool.ResponseSink`), each read's bytes
    written to the client in one call. A task hand-off costs an event-loop turn, which for one
    small request at a time is a large share of the proxy's CPU, so only what must wait runs in
    a task: credentials being refreshed, an upstream connection being opened (or waited for),
    and the kernel-side relay of a large body.
    """

    def __init__(
        self, fast: FastPath, client: Client, plan: Plan, done: Callable[[], None]
    ) -> None:
        self._fast = fast
        self._client = client
        self._plan = plan
        #: Called once, when the exchange is over (answered, failed or abandoned).
        self._done = done
        self._pool: HostPool | None = None
        self._conn: UpstreamConnection | None = None
        self._wire = b""
        self._attempts = 0
        self._sent_at = 0.0
        #: The task of a step that must wait (kept referenced while it runs).
        self._task: asyncio.Task[None] | None = None
        #: A copy of the request body (shadow mode) until the upstream's answer decides on it.
        self._request_copy: BodyCopy | None = None
        #: A copy of the response body being made (shadow mode).
        self._copy: BodyCopy | None = None
        self._phase = _WAITING
        self._status = 500
        #: Response bytes of the current upstream read, written to the client in one call.
        self._out: list[bytes] = []
        #: Body bytes that came with the head of a response the kernel-side relay takes over.
        self._early: list[bytes] = []
        #: The head of a response the kernel-side relay may take over, and its body length.
        self._splice_head: tuple[bytes, int] | None = None
        self._broken: UpstreamError | None = None
        self._chunked = False
        self._written = 0
        self._watch: SendWatch | None = None
        self._drained: asyncio.Future[None] | None = None

    @property
    def _transport(self) -> asyncio.Transport | None:
        return self._client.transport

    # --- the request ---------------------------------------------------------------------------

    def start(self, body: bytes) -> None:
        """Serve the request (``body``: all of it, already received)."""
        plan = self._plan
        fast = self._fast
        ex: Exchange = plan.ex
        ex.request_id = fast.new_request_id()
        ex.started = time.perf_counter()
        fast.server.begin()
        try:
            fwd, data, payload_hash = self._framed(plan, ex, body)
            signed = fast.pipeline.sign_now(plan.method, plan.target, fwd, data, payload_hash)
            if signed is None:  # the credentials are being refreshed
                self._spawn(self._sign_later(fwd, data, payload_hash))
            else:
                self._ready(signed, data)
        except Exception as exc:
            self._unanswered(exc)

    def _framed(
        self, plan: Plan, ex: Exchange, data: bytes
    ) -> tuple[list[tuple[str, str]], bytes | None, str]:
        """The headers to forward, the body and its payload hash (the pipeline's framing)."""
        headers = plan.headers
        body = ex.body = self._fast.pipeline.open_body(headers, _BytesStream(data))
        try:
            _now(body.prepare())
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
        return fwd, upstream_data, payload_hash

    async def _sign_later(
        self, fwd: list[tuple[str, str]], data: bytes | None, payload_hash: str
    ) -> None:
        plan = self._plan
        signing = self._fast.pipeline.sign(plan.method, plan.target, fwd, data, payload_hash)
        await self._then(signing, lambda signed: self._ready(signed, data))

    def _ready(self, signed: list[tuple[str, str]], data: bytes | None) -> None:
        """The signed request, encoded once and sent (a second attempt sends the same bytes)."""
        plan = self._plan
        fast = self._fast
        method = plan.method
        if (
            data is None
            and method not in ("GET", "HEAD")
            and not any(k.lower() == "content-length" for k, _ in signed)
        ):
            signed.append(("Content-Length", "0"))  # what aiohttp's client adds
        target = plan.target
        path = target.path + (f"?{target.query}" if target.query else "")
        # One join for all header lines (the signed headers are never none: Host at least).
        lines = "\r\n".join(map(": ".join, signed))
        head = f"{method} {path} HTTP/1.1\r\n{lines}\r\n\r\n"
        self._wire = head.encode("utf-8") + (data or b"")
        self._pool = fast.pool.host(target.host)
        self._sent_at = time.perf_counter()
        if plan.route is not None and fast.through is not None and data is not None:
            copy = self._request_copy = fast.through.request_copy(
                plan.route, plan.ex.operation, plan.address, len(data)
            )
            if copy is not None and copy.copying:
                copy.add(data)
        self._send()

    def _send(self) -> None:
        """On a kept-alive connection now, else on one opened (or freed) in a task."""
        assert self._pool is not None
        conn = self._pool.idle()
        if conn is None:
            self._spawn(self._send_later(self._pool))
        else:
            self._send_on(conn)

    async def _send_later(self, pool: HostPool) -> None:
        await self._then(pool.get(), self._send_on)

    async def _then(self, wait: Awaitable[_T], go_on: Callable[[_T], None]) -> None:
        """Wait in a task, then go on as from a callback; a failure of either is answered as
        an S3 error, a cancellation closes the client connection."""
        try:
            value = await wait
        except asyncio.CancelledError:
            self._abort(self._status, _CANCELLED)
            raise
        except Exception as exc:
            self._unanswered(exc)
            return
        try:
            go_on(value)
        except Exception as exc:
            self._unanswered(exc)

    def _send_on(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        self._attempts += 1
        conn.send(self._wire, self, head_only=self._plan.method == "HEAD")

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        self._task = self._fast.loop.create_task(step)

    def _unanswered(self, exc: BaseException) -> None:
        """No upstream answer to relay: an S3 error response instead."""
        plan = self._plan
        ex = plan.ex
        if self._sent_at:
            ex.upstream_seconds = time.perf_counter() - self._sent_at
        copy, self._request_copy = self._request_copy, None
        if copy is not None:
            copy.discard()
        if isinstance(exc, ProxyError):
            err, failed = exc, f"{exc.code}: {exc.message}"
        else:  # a bug: still an S3-shaped answer, and a traceback in logs
            err, failed = self._fast.server.internal_error(ex, exc)  # type: ignore[arg-type]
        try:
            self._write_error(err, plan, ex)
        finally:
            self._finish(err.status, failed)

    # --- the upstream response (ResponseSink) --------------------------------------------------

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self._phase != _WAITING:
            return
        try:
            self._head(status, headers)
        except Exception as exc:
            self._crashed(exc)

    def response_body(self, data: bytes) -> None:
        phase = self._phase
        if phase == _STREAMING:
            self._written += len(data)
            if self._copy is not None:
                self._copy.add(data)
            self._out.append(chunk(data) if self._chunked else data)
        elif phase == _HELD:
            self._early.append(data)

    def response_read_end(self) -> None:
        phase = self._phase
        if phase == _HELD:
            # The body goes on past the head's read: the relay takes the socket over.
            assert self._conn is not None and self._splice_head is not None
            self._phase = _SPLICING
            self._conn.pause()
            self._spawn(self._splice(self._plan.ex, self._conn, *self._splice_head))
            return
        if phase != _STREAMING:
            return
        self._flush()
        if self._watch is None:
            # The body is still coming: a client that stops reading must not hold the upstream
            # connection (a whole response already handed over holds nothing).
            self._watch = SendWatch(
                self._transport, lambda: self._written, self._fast.body_idle_timeout, self._stalled
            )

    def response_end(self) -> None:
        if self._phase == _HELD:
            self._streamed()  # the whole body came with the head: the connection is kept
        if self._phase != _STREAMING:
            return
        try:
            if self._chunked:
                self._out.append(b"0\r\n\r\n")
            self._flush()
            if self._copy is not None:
                self._copy.end()  # the client has been given the whole body
            assert self._conn is not None
            self._conn.release()
        except Exception as exc:
            self._crashed(exc)
            return
        self._finish(self._status, None)

    def response_failed(self, err: UpstreamError, retryable: bool) -> None:
        if self._phase == _HELD:
            self._streamed()  # failed within the head's read: what came goes out, then the end
        phase = self._phase
        if phase == _WAITING:
            self._conn = None
            if retryable and self._attempts < 2:
                # As the general path: one more attempt for these idempotent, replayable
                # requests when the upstream closed without answering.
                self._send()
            else:
                self._unanswered(err)
        elif phase == _SPLICING:
            self._broken = err
        elif phase == _STREAMING:
            self._abort(self._status, f"response aborted: {type(err).__name__}: {err}")

    def _head(self, status: int, raw: list[tuple[bytes, bytes]]) -> None:
        plan = self._plan
        ex = plan.ex
        fast = self._fast
        ex.upstream_seconds = time.perf_counter() - self._sent_at
        copy, self._request_copy = self._request_copy, None
        if copy is not None:
            if 200 <= status < 300:
                copy.end()  # the upstream accepted the whole body
                copy.finish()
            else:
                copy.discard()
        self._status = status
        method = plan.method
        hdrs, lowered = forwardable_response_pairs(*decoded(raw))
        if "x-amz-request-id" in lowered:
            ex.upstream_request_id = hdrs[lowered.index("x-amz-request-id")][1]
        through = fast.through
        self._copy = (
            through.response_copy(plan.route, ex.operation, plan.address, status, list(hdrs))
            if plan.route is not None and method == "GET" and through is not None
            else None
        )
        built = response_head(method, status, hdrs, lowered, close=self._closing())
        head, length, self._chunked = built.data, built.length, built.chunked
        conn = self._conn
        assert conn is not None
        transport = self._transport
        if transport is None:
            self._abort(status, _CLIENT_GONE)
            return
        if (
            method == "GET"
            and self._copy is None  # a body being copied takes the copy path
            and fast.zero_copy_min
            and length is not None
            and length >= fast.zero_copy_min
            and socket_fd(transport) is not None
            and (socket_fd(conn.transport) is not None or can_take_over(conn.transport))
        ):
            # Decided at the end of this read: a body that came whole with the head is
            # written at once, one that goes on is relayed (the bytes of this read kept).
            self._phase = _HELD
            self._splice_head = (head, length)
            return
        self._phase = _STREAMING
        self._out.append(head)
        if self._client.write_paused:
            conn.pause()

    def _streamed(self) -> None:
        """A response held for the kernel-side relay is written as a streamed one after all."""
        assert self._splice_head is not None
        self._phase = _STREAMING
        self._out.append(self._splice_head[0])
        self._out.extend(self._early)
        self._written += sum(map(len, self._early))
        self._early = []

    def _flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            transport = self._transport
            if transport is not None:
                transport.write(out[0] if len(out) == 1 else b"".join(out))

    # --- the client connection's events ------------------------------------------------------

    def client_paused(self) -> None:
        # Before the head, the head's own check pauses the upstream (nothing is written yet).
        if self._conn is not None and self._phase == _STREAMING:
            self._conn.pause()

    def client_resumed(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self._conn is not None and self._phase == _STREAMING:
            self._conn.resume()

    def client_lost(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_exception(ConnectionResetError("the client connection closed"))
        if self._phase == _STREAMING:
            # Nobody reads the rest: stop the upstream sending it (a response still on its way
            # is awaited, then dropped, as on the general path).
            self._abort(self._status, _CLIENT_GONE)

    # --- the end -------------------------------------------------------------------------------

    def _abort(self, status: int, failed: str) -> None:
        """The response cannot be completed: both connections closed, so the client sees a
        truncated response, never a silently short one."""
        if self._conn is not None:
            self._conn.close()
        if self._phase == _STREAMING:
            self._flush()  # what this read brought is counted as sent: it goes out first
        if self._transport is not None:
            self._transport.close()
        self._finish(status, failed)

    def _crashed(self, exc: Exception) -> None:
        """A bug while relaying the response: logged with its traceback, the exchange ended."""
        if self._phase == _OVER:
            self._fast.server.internal_error(self._plan.ex, exc)
            return
        if self._phase == _WAITING:
            if self._conn is not None:
                self._conn.close()
            self._unanswered(exc)
            return
        internal, failed = self._fast.server.internal_error(self._plan.ex, exc)
        self._abort(internal.status, failed)

    def _finish(self, status: int, failed: str | None) -> None:
        if self._phase == _OVER:
            return
        self._phase = _OVER
        self._out = self._early = []
        if self._watch is not None:
            self._watch.cancel()
        ex = self._plan.ex
        try:
            if self._request_copy is not None:  # no answer came to decide on it
                self._request_copy.discard()
            if self._copy is not None:
                self._copy.finish()  # after the whole body was written, or abandoned
            bytes_in = ex.body.received if ex.body is not None else 0
            self._fast.server.finish(ex, status, bytes_in, self._written, failed)
        except Exception as exc:  # a bug: logged; the connection still goes on
            self._fast.server.internal_error(ex, exc)
        finally:
            self._done()

    def _stalled(self) -> None:
        self._client.listener.metrics.client_timeouts.labels("response").inc()

    # --- a large body, relayed by the kernel or in large batches -------------------------------

    async def _splice(
        self, ex: Exchange, conn: UpstreamConnection, head: bytes, length: int
    ) -> None:
        failed: str | None = _CANCELLED
        try:
            failed = await self._relay(ex, conn, head, length)
        except asyncio.CancelledError:
            if self._transport is not None:
                self._transport.close()
            raise
        except Exception as exc:  # a bug: logged, the response cut short
            _, failed = self._fast.server.internal_error(ex, exc)
            if self._transport is not None:
                self._transport.close()
            conn.close()
        finally:
            self._finish(self._status, failed)

    async def _relay(
        self, ex: Exchange, conn: UpstreamConnection, head: bytes, length: int
    ) -> str | None:
        """The body from the upstream socket to the client's: inside the kernel (zero-copy) from
        a plain upstream, decrypted in large batches (:mod:`proxy.relay.tlsrelay`) from TLS."""
        conn.detach()
        transport = self._transport
        source: TLSSource | None = None
        received = b"".join(self._early)
        self._early = []
        try:
            if transport is None:
                raise ConnectionResetError("the client connection closed")
            transport.write(head + received)
            self._written += len(received)
            if self._broken is not None:
                raise self._broken
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
        except (RelayAborted, ConnectionError, UpstreamError) as exc:
            if self._transport is not None:
                self._transport.close()
            if isinstance(exc, RelayAborted) and exc.stalled:
                self._stalled()
            if isinstance(exc, UpstreamError):
                return f"response aborted: UpstreamError: {exc}"
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
        self._drained = self._fast.loop.create_future()
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

    def _closing(self) -> bool:
        """Whether this response closes the connection (shutdown, or the client said so)."""
        if self._client.closing or self._fast.server.draining:
            self._client.closing = True
        return self._client.closing

    def _write_error(self, err: ProxyError, plan: Plan, ex: Exchange) -> None:
        transport = self._transport
        if transport is None:
            return
        headers, body = self._fast.error_parts(err, plan.method, plan.raw_target, ex.request_id)
        head = error_head(err.status, headers, body, close=self._closing())
        self._written = len(body)
        transport.write(head + body)


def _now(step: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits (a body read from memory) to its end, without a task."""
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError("a read from memory waited")
