"""The lean path for small passthrough requests: HTTP/1.1 on asyncio protocols with httptools.

Each client connection starts here. Its requests are parsed by llhttp
(``httptools.HttpRequestParser``); one the fast path can serve entirely — an unrouted (or
passthrough) HTTP/1.1 keep-alive GET, HEAD, DELETE or PUT with at most ``small_body_bytes`` of
plain ``Content-Length`` body, ordinary ASCII headers, nothing pipelined behind it — is forwarded
over :mod:`proxy.relay.pool` with the general path's own parts: the pipeline's address parse,
route decision, body framing and signing, the one error rendering (:func:`error_parts`), the data
server's metrics and access line, the listener's connection cap and timeouts.

Everything else, and anything the fast path is unsure of (a parse error, a header it does not
expect, a body still arriving after a short grace), goes to aiohttp — the listener's own aiohttp
connection protocol, fed the bytes received so far, so it sees the request exactly as if it had
had the connection from the start (at a request boundary):

- a request of known length (``Content-Length``, HTTP/1.1 keep-alive) is *delegated*: a fresh
  aiohttp connection serves exactly that request's bytes (later ones wait here), and once it has
  answered with the connection still reusable the connection comes back to the fast path (a
  client mixing large uploads and small GETs on one keep-alive connection keeps the lean path);
- anything else (pipelined requests, ``Transfer-Encoding``, HTTP/1.0, ``Connection: close``,
  bytes llhttp rejects) is *given away*: aiohttp keeps the connection, as before this path
  existed, and answers exactly as it always has.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools
import structlog
from multidict import CIMultiDict

from proxy.relay.fastexchange import FastExchange
from proxy.relay.fastplan import FastPath, Plan

if TYPE_CHECKING:
    from proxy.relay.listener import ListenerServer

__all__ = ["FastConnection", "FastPath"]

_log = structlog.get_logger("format_proxy.listener")
_METHODS = frozenset({b"GET", b"HEAD", b"DELETE", b"PUT"})
#: Request headers that mean framing or semantics the fast path leaves to aiohttp.
_HANDOFF_HEADERS = frozenset(
    {b"transfer-encoding", b"expect", b"connection", b"upgrade", b"te", b"trailer"}
)
_MAX_HEADERS = 100
#: aiohttp's longest request line and header field; longer ones it refuses with 400.
_MAX_LINE = 8190
#: The control characters (all but the tab); deleted by a table lookup per byte, several times
#: cheaper than a regex's character-class scan.
_CONTROL = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
#: Bytes of a request head the fast path buffers (beyond a small body) before handing off.
_MAX_HEAD_BYTES = 16 * 1024
#: How long a fast-path body may take to arrive whole before aiohttp (and its per-read body
#: idle timeout) takes over.
_BODY_GRACE = 1.0


class _Request:
    __slots__ = ("body", "body_len", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_len = 0


class FastConnection(asyncio.Protocol):
    """One client connection while the fast path has it."""

    def __init__(self, fast: FastPath, listener: ListenerServer) -> None:
        self._fast = fast
        self._listener = listener
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every call.
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._pending = bytearray()
        self._req: _Request | None = None
        self._done: list[_Request] = []
        self._plan: Plan | None = None
        self._handoff_wanted = False
        #: The request's length after its head (None: unknown, or not HTTP/1.1 keep-alive).
        self._length: int | None = None
        #: The aiohttp connection serving a delegated request, and its bytes still to come.
        self._handler: asyncio.Protocol | None = None
        self._left = 0
        self._busy = False
        self._counted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        #: When an idle connection is closed (None: not idle). The idle timer outlives requests
        #: and re-schedules itself to this when it fires early.
        self._idle_deadline: float | None = None
        #: The current request's head is complete (its header timeout no longer applies).
        self._head_done = False
        self._read_paused = False
        self._exchange: FastExchange | None = None
        #: The client stopped taking bytes (the transport's buffer is over its high mark).
        self.write_paused = False
        #: Close after the response in progress (shutdown, or the response said so).
        self.closing = False

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def listener(self) -> ListenerServer:
        return self._listener

    # --- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        listener = self._listener
        if listener.open_connections >= listener.settings.max_connections:
            self._handoff()  # the aiohttp connection refuses it, counted and answered
            return
        listener.open_connections += 1
        listener.metrics.client_connections.inc()
        listener.fast_connections.add(self)
        self._counted = True
        self._start_idle()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self._listener.open_connections -= 1
            self._listener.metrics.client_connections.dec()
            self._listener.fast_connections.discard(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        self._uncount()
        self._transport = None
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.connection_lost(exc)
        if self._exchange is not None:
            self._exchange.client_lost()

    def shutdown(self) -> None:
        """Close now if idle, else after the response in progress."""
        self.closing = True
        if not self._busy and self._handler is None and self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            return self._handler.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()
            return
        self.write_paused = True
        if self._exchange is not None:
            self._exchange.client_paused()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()
            return
        self.write_paused = False
        if self._exchange is not None:
            self._exchange.client_resumed()

    # --- reading requests ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        handler = self._handler
        if handler is not None:
            left = self._left
            if left:
                part = data[:left]
                self._left -= len(part)
                data = data[left:]
                handler.data_received(part)
            if not data:
                return
        self._pending += data
        if self._busy or handler is not None:
            # Pipelined behind a request in progress: kept, parsed after the response.
            if len(self._pending) > _MAX_HEAD_BYTES + self._fast.small_body:
                self._pause_reading()
            return
        self._feed(data)

    def _feed(self, data: bytes | bytearray) -> None:
        self._idle_deadline = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._handoff()  # aiohttp answers a malformed request as it always has
            return
        if self._handoff_wanted or len(self._done) > 1 or (self._done and self._req):
            self._handoff()  # not for the fast path, or pipelined
        elif self._done:
            self._stop_timers(final=False)
            self._start(self._done.pop())
        else:
            # Part of a head (or stray bytes) came: the header timeout runs from now. A request
            # that arrives whole in one read, the usual case, never starts this timer.
            if not self._head_done and self._head_timer is None:
                self._head_timer = self._loop.call_later(
                    self._listener.settings.header_timeout, self._head_expired
                )
            if self._req is None:
                return
            if len(self._pending) > _MAX_HEAD_BYTES + self._fast.small_body:
                self._handoff()
            elif self._plan is not None and self._body_timer is None:
                self._body_timer = self._loop.call_later(
                    min(_BODY_GRACE, self._fast.body_idle_timeout), self._handoff
                )

    def on_message_begin(self) -> None:
        self._req = _Request()
        self._length = None
        self._head_done = False

    def on_url(self, url: bytes) -> None:
        assert self._req is not None
        self._req.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._req is not None
        self._req.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        req = self._req
        assert req is not None
        # Lowered once for both checks.
        names = [name.lower() for name, _ in req.headers]
        self._length = self._framing(req, names)
        self._plan = self._eligible(req, names)
        if self._plan is None:
            self._handoff_wanted = True

    def on_body(self, body: bytes) -> None:
        req = self._req
        assert req is not None
        req.body.append(body)
        req.body_len += len(body)
        if req.body_len > self._fast.small_body:
            self._handoff_wanted = True

    def on_message_complete(self) -> None:
        self._head_done = False  # bytes after this request are the next one's head
        req, self._req = self._req, None
        assert req is not None
        self._done.append(req)

    def _framing(self, req: _Request, names: list[bytes]) -> int | None:
        """The body's length (``names``: the header names in lower case)."""
        parser = self._parser
        if (
            parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
            or b"transfer-encoding" in names
        ):
            return None
        lengths = names.count(b"content-length")
        if lengths != 1:
            return 0 if not lengths else None
        length = req.headers[names.index(b"content-length")][1]
        return int(length) if length.isdigit() else None

    def _eligible(self, req: _Request, names: list[bytes]) -> Plan | None:
        parser = self._parser
        method = parser.get_method()
        if (
            method not in _METHODS
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
            or len(req.headers) > _MAX_HEADERS
            or not req.url.startswith(b"/")
        ):
            return None
        if len(req.url) > _MAX_LINE:
            return None
        raw = req.headers
        if not _HANDOFF_HEADERS.isdisjoint(names):
            return None
        # aiohttp's limits and strictness decide what is malformed: a line it would refuse
        # (too long, control characters llhttp lets through, non-ASCII) goes to aiohttp. One
        # scan of all values joined by a tab (which they may contain) checks them all.
        values = b"\t".join([value for _, value in raw])
        if (
            len(values.translate(None, _CONTROL)) != len(values)
            or not values.isascii()
            or not req.url.isascii()
        ):
            return None
        long_head = len(values) + sum(map(len, names)) > _MAX_LINE
        if long_head and any(len(n) + len(v) > _MAX_LINE for n, v in raw):
            return None
        try:
            headers: CIMultiDict[str] = CIMultiDict(
                [(name.decode("ascii"), value.decode("ascii")) for name, value in raw]
            )
        except UnicodeDecodeError:  # a non-ASCII name
            return None
        return self._fast.plan(method.decode(), req.url.decode("ascii"), headers)

    # --- timers --------------------------------------------------------------------------------

    def _start_idle(self) -> None:
        if self._transport is None:
            return
        loop = self._loop
        deadline = self._idle_deadline = loop.time() + self._listener.settings.idle_timeout
        if self._idle_timer is None:
            self._idle_timer = loop.call_at(deadline, self._idle_check)

    def _stop_timers(self, *, final: bool = True) -> None:
        """Stop the timeouts; between requests (not ``final``) the idle timer ticks on unarmed,
        so a keep-alive connection does not schedule and cancel a timer per request."""
        self._idle_deadline = None
        timers = [self._head_timer, self._body_timer]
        if final:
            timers.append(self._idle_timer)
            self._idle_timer = None
        for timer in timers:
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _idle_check(self) -> None:
        self._idle_timer = None
        deadline = self._idle_deadline
        if deadline is None:
            return  # busy: the next idle wait starts a timer again
        loop = self._loop
        if loop.time() < deadline:
            self._idle_timer = loop.call_at(deadline, self._idle_check)
        elif self._transport is not None and not self._busy:
            self._transport.close()

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._transport is None or self._busy:
            return
        self._listener.metrics.client_timeouts.labels("header").inc()
        _log.info(
            "client_timeout", phase="header", timeout_seconds=self._listener.settings.header_timeout
        )
        self._transport.close()

    def _pause_reading(self) -> None:
        if not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    # --- handing the connection to aiohttp -----------------------------------------------------

    def _handoff(self) -> None:
        """aiohttp serves the request buffered; for good if it is pipelined, malformed or of
        unknown length, else only that request (:meth:`_delegate`)."""
        transport = self._transport
        self._stop_timers()
        if transport is None or transport.is_closing():
            self._uncount()
            self._transport = None
            return
        length = self._length
        head_end = self._pending.find(b"\r\n\r\n") + 4
        if (
            length is None
            or self._done[1:]
            or (self._done and self._req is not None)
            or head_end < 4
            or not self._pending[:1].isalpha()
        ):
            self._give_away(transport)
        else:
            self._delegate(transport, head_end + length)

    def _give_away(self, transport: asyncio.Transport) -> None:
        """The connection is aiohttp's from here on."""
        self._uncount()
        self._transport = None
        handler = self._listener.aiohttp_connection()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            handler.data_received(data)

    def _delegate(self, transport: asyncio.Transport, total: int) -> None:
        """A fresh aiohttp connection serves exactly the next ``total`` bytes (one request);
        bytes after them wait here, and the connection comes back once it has answered."""
        self._uncount()
        handler = self._listener.aiohttp_connection()
        handler.on_answered = self._answered  # type: ignore[attr-defined]
        self._handler = handler
        data, self._pending = bytes(self._pending), bytearray()
        part = data[:total]
        self._pending += data[total:]
        self._left = total - len(part)
        handler.connection_made(transport)
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        handler.data_received(part)

    def _answered(self, handler: asyncio.Protocol, reusable: bool) -> None:
        """The delegated request is answered: take the connection back at the request
        boundary, or leave it to aiohttp for good."""
        if handler is not self._handler:
            return
        self._handler = None
        transport = self._transport
        if transport is None:
            return
        if not reusable or self._left or transport.is_closing():
            self._transport = None
            transport.set_protocol(handler)
            if self._pending:
                data, self._pending = bytes(self._pending), bytearray()
                handler.data_received(data)
            return
        # Detached without touching the transport: aiohttp's loop ends, its counts drop.
        handler.transport = None  # type: ignore[attr-defined]
        handler.force_close()  # type: ignore[attr-defined]
        handler.connection_lost(None)
        listener = self._listener
        listener.open_connections += 1
        listener.metrics.client_connections.inc()
        listener.fast_connections.add(self)
        self._counted = True
        # aiohttp may have paused reading (its own buffer limits): _next resumes it.
        self._read_paused = not transport.is_reading()
        self._parser = httptools.HttpRequestParser(self)
        self._req = None
        self._done = []
        self._plan = None
        self._handoff_wanted = False
        self._length = None
        self._head_done = False
        self._loop.call_soon(self._next)

    # --- serving one request -------------------------------------------------------------------

    def _start(self, req: _Request) -> None:
        plan, self._plan = self._plan, None
        assert plan is not None
        self._pending = bytearray()
        self._busy = True
        exchange = self._exchange = FastExchange(self._fast, self, plan, self._served)
        exchange.start(b"".join(req.body))

    def _served(self) -> None:
        self._exchange = None
        self._next()

    def _next(self) -> None:
        """After a response: the next request (maybe already buffered) or the idle wait."""
        self._busy = False
        transport = self._transport
        if transport is None:
            return
        if self.closing or transport.is_closing():
            transport.close()
            return
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        if self._pending:
            self._feed(bytes(self._pending))
        else:
            self._start_idle()
