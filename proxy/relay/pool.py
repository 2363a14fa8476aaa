"""The fast path's upstream connections: a bounded keep-alive pool, responses parsed by httptools.

One :class:`UpstreamConnection` carries one request at a time. Its response is parsed by
llhttp (``httptools.HttpResponseParser``) straight from ``data_received`` and handed to a
:class:`ResponseSink` (the fast path's request in progress): the head once, then the body pieces as
they arrive and the end of each read — the sink pauses and resumes reading (flow control) and may
take the socket over for a zero-copy relay instead. The response's end is delivered only once the
read that ended it is parsed whole, so the sink may reuse the connection at once. A connection
goes back to the pool only after a complete response the upstream wants kept alive; anything
doubtful (a parse error, bytes after a response or after a HEAD answer's head, a response read
to the close, a timeout) closes it.

Timeouts and error wording are the general path's (:mod:`proxy.relay.upstream`): connect within
``connect_timeout``; after the request is sent, at most ``read_timeout`` between received bytes
while reading is not paused. The pool holds at most ``max_connections`` per upstream host (0:
unbounded, idle ones capped); a request waits for a free connection (aiohttp's connector does
the same).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Protocol

import httptools

from proxy.errors import UpstreamError

__all__ = ["HostPool", "PoolSettings", "ResponseSink", "UpstreamConnection", "UpstreamPool"]

#: Idle connections kept per upstream host when ``max_connections`` is 0 (unbounded).
_IDLE_CAP = 64


@dataclass(frozen=True, slots=True)
class PoolSettings:
    scheme: str
    connect_timeout: float
    read_timeout: float
    max_connections: int = 0
    ssl_verify: bool = True


class ResponseSink(Protocol):
    """Who receives an upstream response (the fast path's request in progress)."""

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_read_end(self) -> None:
        """Everything of one upstream read has been delivered (the response goes on)."""

    def response_end(self) -> None: ...
    def response_failed(self, err: UpstreamError, retryable: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One upstream connection (plain or TLS), one request at a time."""

    def __init__(self, pool: HostPool) -> None:
        self._pool = pool
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every call.
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._sink: ResponseSink | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_only = False
        self._in_head = False
        #: The response is whole; the sink hears of it once the read that ended it is parsed.
        self._complete = False
        self._interim = False  # a 1xx answer is being read
        self._to_close = False  # the body ends when the upstream closes (no length given)
        self._got_bytes = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # None: no response awaited, nothing to time
        self._paused = False
        self._reusable = True
        self.requests = 0  # requests sent on this connection so far
        self.closed = False

    # --- used by the fast path --------------------------------------------------------------

    def send(self, data: bytes, sink: ResponseSink, *, head_only: bool) -> None:
        """Write one whole request and route its response to ``sink``."""
        assert self.transport is not None and self._sink is None
        self._sink = sink
        self._head_only = head_only
        self._complete = self._interim = False
        self._headers = []
        self._got_bytes = False
        self._to_close = False
        self.requests += 1
        self.transport.write(data)
        self._arm()

    @property
    def reusable(self) -> bool:
        """Whether another request may be sent on this connection."""
        return self._reusable and not self.closed

    def pause(self) -> None:
        """Stop reading (the client's transport is full); no read timeout meanwhile."""
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
            self._disarm()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
            if self._sink is not None:
                self._arm()

    def detach(self) -> None:
        """The response is no longer ours to parse (a zero-copy relay took the socket):
        reading stays paused and the connection is discarded once the relay is done."""
        self._sink = None
        self._reusable = False
        self._disarm()

    def release(self) -> None:
        """Give the connection back after its response (or close it if it cannot be reused)."""
        self._sink = None
        self._deadline = None
        reusable = self.reusable and self.transport is not None
        if reusable and self._paused:
            # Paused for a slow client, but the response is whole: reading resumes for the
            # next one (bytes nobody asked for close an idle connection).
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        self._pool.put(self, reusable)

    def close(self) -> None:
        self._reusable = False
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        sink, self._sink = self._sink, None
        self._pool.forget(self)
        if sink is not None and self._to_close and exc is None:
            sink.response_end()  # a body delimited by the close is complete
        elif sink is not None:
            text = str(exc) if exc else "Server disconnected"
            sink.response_failed(self._pool.failed(text), not self._got_bytes)

    def data_received(self, data: bytes) -> None:
        if self._sink is None:
            self._reusable = False  # bytes nobody asked for: never reuse
            if self.transport is not None:
                self.transport.close()
            return
        self._got_bytes = True
        self._arm()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._complete:
                self._fail(self._pool.failed(f"invalid HTTP response: {type(exc).__name__}"))
                return
            self._reusable = False  # the response was whole; what came after it is not
        if self._complete:
            # Delivered only now, after the whole read was parsed: the sink may give the
            # connection back and send the next request on it at once, and no byte of this
            # read may be taken for that request's answer.
            self._finish()
        elif self._sink is not None:
            self._sink.response_read_end()

    def pause_writing(self) -> None:  # requests are small; nothing to hold back
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            self._reusable = False  # bytes after the response: nobody asked for them
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        if not parser.should_keep_alive():
            self._reusable = False
        sink = self._sink
        if sink is None or self._complete:
            return
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows, as
            # aiohttp's client reads it.
            self._headers = []
            self._interim = True
            return
        names = {name.lower() for name, _ in self._headers}
        self._to_close = (
            not self._head_only
            and status >= 200
            and status not in (204, 304)
            and b"content-length" not in names
            and b"transfer-encoding" not in names
        )
        if self._to_close:
            self._reusable = False
        sink.response_head(status, self._headers)
        if self._head_only:
            # The parser does not know this answers a HEAD and expects the body the headers
            # announce; the response is over. A fresh parser reads the next response.
            self._parser = httptools.HttpResponseParser(self)
            self._complete = True

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is None or self._head_only or self._complete:
            self._reusable = False
            return
        sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif self._sink is not None:
            self._complete = True

    # --- internals ---------------------------------------------------------------------------

    def _finish(self) -> None:
        self._deadline = None  # the timer may tick on: the next request re-arms it
        self._complete = False
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.response_end()

    def _fail(self, err: UpstreamError) -> None:
        self._reusable = False
        sink, self._sink = self._sink, None
        self.close()
        if sink is not None:
            sink.response_failed(err, False)

    def _arm(self) -> None:
        """The read timeout restarts now. One timer per connection, not per response or read:
        activity only moves the deadline, a finished response clears it, and the timer
        re-schedules itself to the deadline when it fires early (scheduling and cancelling a
        timer per request costs more than the rest of the timeout handling)."""
        if self._paused:
            return
        loop = self._loop
        deadline = self._deadline = loop.time() + self._pool.settings.read_timeout
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # between responses: the next request starts a timer again
        loop = self._loop
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_deadline)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        self._fail(UpstreamError(f"upstream {self._pool.origin} did not answer in time"))


class HostPool:
    """The connections to one upstream host:port."""

    def __init__(
        self, settings: PoolSettings, host: str, port: int, sni: str, ctx: ssl.SSLContext | None
    ) -> None:
        self.settings = settings
        self._host = host
        self._port = port
        self._sni = sni
        self._ctx = ctx
        default = 443 if settings.scheme == "https" else 80
        netloc = sni if port == default else f"{sni}:{port}"
        if ":" in sni and not sni.startswith("["):
            netloc = f"[{sni}]" if port == default else f"[{sni}]:{port}"
        self.origin = f"{settings.scheme}://{netloc}"
        self._idle: list[UpstreamConnection] = []
        self._open = 0
        self._waiters: list[asyncio.Future[None]] = []

    def failed(self, text: str) -> UpstreamError:
        return UpstreamError(f"upstream {self.origin} failed: {text}")

    def idle(self) -> UpstreamConnection | None:
        """A kept-alive connection ready for a request, if there is one (no wait)."""
        while self._idle:
            conn = self._idle.pop()
            transport = conn.transport
            if conn.reusable and transport is not None and not transport.is_closing():
                return conn
            conn.close()  # connection_lost forgets it
        return None

    async def get(self) -> UpstreamConnection:
        conn = self.idle()
        if conn is not None:
            return conn
        limit = self.settings.max_connections
        if limit and self._open >= limit:
            # As aiohttp's connector: a free connection within connect_timeout, else 503.
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    while self._open >= limit and not self._idle:
                        waiter = asyncio.get_running_loop().create_future()
                        self._waiters.append(waiter)
                        try:
                            await waiter
                        finally:
                            if waiter in self._waiters:
                                self._waiters.remove(waiter)
            except TimeoutError:
                raise UpstreamError(f"upstream {self.origin} did not answer in time") from None
            if self._idle:
                return await self.get()
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        host = self._host
        if host == "localhost" or host.endswith(".localhost"):
            host = "localhost"  # RFC 6761 §6.3, as LocalhostResolver does for aiohttp
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self),
                    host,
                    self._port,
                    ssl=self._ctx,
                    server_hostname=self._sni if self._ctx is not None else None,
                )
        except TimeoutError:
            raise UpstreamError(f"upstream {self.origin} did not answer in time") from None
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UpstreamError(f"upstream {self.origin} is unreachable: {why}") from None
        return conn

    def put(self, conn: UpstreamConnection, reusable: bool) -> None:
        cap = self.settings.max_connections or _IDLE_CAP
        if reusable and len(self._idle) < cap:
            self._idle.append(conn)
            self._wake()
        else:
            conn.close()  # connection_lost forgets it

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class UpstreamPool:
    """Keep-alive connections per upstream host, for the fast path."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._hosts: dict[str, HostPool] = {}
        self._ctx: ssl.SSLContext | None = None
        if settings.scheme == "https":
            self._ctx = ssl.create_default_context()
            if not settings.ssl_verify:
                self._ctx.check_hostname = False
                self._ctx.verify_mode = ssl.CERT_NONE

    def host(self, netloc: str) -> HostPool:
        """The pool for ``netloc`` (the Host header sent: ``host[:port]``)."""
        pool = self._hosts.get(netloc)
        if pool is None:
            pool = self._hosts[netloc] = self._new(netloc)
        return pool

    def _new(self, netloc: str) -> HostPool:
        default = 443 if self.settings.scheme == "https" else 80
        if netloc.startswith("["):
            name, _, rest = netloc[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else default
        else:
            name, _, port_text = netloc.partition(":")
            port = int(port_text) if port_text else default
        if len(self._hosts) >= 1024:  # virtual-hosted buckets: keep the table bounded
            for pool in self._hosts.values():
                pool.close()
            self._hosts.clear()
        return HostPool(self.settings, name, port, name, self._ctx)

    def close(self) -> None:
        for pool in self._hosts.values():
            pool.close()
        self._hosts.clear()
