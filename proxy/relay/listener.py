"""Client connections of the S3 data listener: timeouts, a connection cap, parse errors.

aiohttp's low-level server, with its connection protocol extended by what a sidecar needs and
aiohttp lacks: a request-head timeout (slow-loris clients), a global cap on open connections with
a clean, counted ``503 SlowDown`` refusal, and parse-error handling that neither logs nor echoes
the client's raw bytes (aiohttp's own quotes the offending header or request line — signatures,
session tokens and object keys included). The keep-alive idle timeout is aiohttp's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import structlog
from aiohttp import web

# aiohttp offers no public hook for a parse error's record; the reliability suite pins the
# behaviour this relies on, so an aiohttp upgrade that changes it fails CI, not production.
from aiohttp.web_protocol import RequestHandler, _ErrInfo  # noqa: PLC2701

from proxy.relay.metrics import Metrics
from proxy.relay.ratelimit import RateLimitedLog

__all__ = ["ErrorPages", "ListenerServer", "ListenerSettings", "SendWatch"]

_log = structlog.get_logger("format_proxy.listener")


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    #: Close a connection with no request in progress after this long (aiohttp's keep-alive).
    idle_timeout: float
    #: From the first byte of a request until its request line and headers are complete.
    header_timeout: float
    #: Most client connections open at once; more are refused with 503 SlowDown.
    max_connections: int
    #: How long a refused connection is kept open to drain what the client already sent.
    refusal_linger: float = 1.0


class ErrorPages(Protocol):
    """How the listener's own answers look (rendered where every other error is)."""

    def refusal(self) -> bytes:
        """A complete ``503 SlowDown`` HTTP response with ``Connection: close``."""
        ...

    def protocol_error(
        self, request: web.BaseRequest, status: int, exc: BaseException | None
    ) -> web.StreamResponse:
        """The answer (and log line) for a request aiohttp could not parse or serve."""
        ...


class ListenerServer(web.Server):
    """``web.Server`` whose connections are :class:`_Connection`\\ s."""

    def __init__(
        self,
        handler: Any,
        *,
        settings: ListenerSettings,
        metrics: Metrics,
        pages: ErrorPages,
        front: Callable[[ListenerServer], asyncio.Protocol] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["keepalive_timeout"] = settings.idle_timeout
        kwargs.setdefault("access_log", None)  # the data server writes its own access log
        super().__init__(handler, **kwargs)
        self._protocol_kwargs = kwargs
        self._listener_loop = asyncio.get_running_loop()
        self.settings = settings
        self.metrics = metrics
        self.pages = pages
        self.open_connections = 0
        self.refusal_log = RateLimitedLog(_log, interval=10.0)
        self._front = front
        #: Connections the front protocol still has (closed at shutdown like aiohttp's own).
        self.fast_connections: set[Any] = set()

    def __call__(self) -> RequestHandler:
        if self._front is not None:
            # asyncio only needs a protocol; aiohttp's Server is typed for its own.
            return cast(RequestHandler, self._front(self))
        return self.aiohttp_connection()

    def aiohttp_connection(self) -> RequestHandler:
        """A new aiohttp connection protocol (also what a front protocol hands a connection to)."""
        return _Connection(self, loop=self._listener_loop, **self._protocol_kwargs)

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        for conn in list(self.fast_connections):
            conn.shutdown()
        await super().shutdown(timeout)


class _Connection(RequestHandler):
    """One client connection. Besides aiohttp's work it enforces the head timeout and the
    connection cap, and owns the answer and the log line for requests that fail to parse."""

    def __init__(self, listener: ListenerServer, **kwargs: Any) -> None:
        super().__init__(listener, **kwargs)
        self._listener = listener
        self._refused = False
        self._counted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_mark = 0
        #: Set by a front protocol that delegated one request: told when it is answered, and
        #: whether the connection is reusable at that request's end.
        self.on_answered: Callable[[RequestHandler, bool], None] | None = None

    # --- the connection cap ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self._listener
        if listener.open_connections >= listener.settings.max_connections:
            self._refuse(cast(asyncio.Transport, transport))
            return
        listener.open_connections += 1
        listener.metrics.client_connections.inc()
        self._counted = True
        super().connection_made(transport)

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        listener = self._listener
        listener.metrics.refused.labels("max_client_connections").inc()
        listener.refusal_log.warning(
            "client_connection_refused",
            reason="max_client_connections",
            max_client_connections=listener.settings.max_connections,
        )
        transport.write(listener.pages.refusal())
        if transport.can_write_eof():
            transport.write_eof()
        # Closing with the client's request still unread would reset the connection, and a
        # reset can destroy the answer before the client reads it: drain briefly, then close.
        asyncio.get_running_loop().call_later(listener.settings.refusal_linger, transport.close)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        self._stop_head_timer()
        if self._counted:
            self._counted = False
            self._listener.open_connections -= 1
            self._listener.metrics.client_connections.dec()
        super().connection_lost(exc)

    # --- the request-head timeout -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped: the refusal is already on its way
        # Bytes arriving while the connection waits for its next request start that request's
        # head: it must be complete within header_timeout, however slowly it trickles in.
        waiting = self._waiter is not None or self._request_count == 0
        if data and waiting and self._head_timer is None:
            self._head_mark = self._request_count
            self._head_timer = asyncio.get_running_loop().call_later(
                self._listener.settings.header_timeout, self._head_expired
            )
        super().data_received(data)
        if self._head_timer is not None and self._request_count != self._head_mark:
            self._stop_head_timer()  # the head is complete (or rejected)
        if self._messages and self._current_request is not None:
            failed = self._messages[-1][0]
            if isinstance(failed, _ErrInfo):
                # Broken framing in the body being read (a bad chunk size): aiohttp queues a
                # 400 for after the handler but leaves the handler waiting for body bytes that
                # will never come. Fail its body read instead; the body is over (no lingering
                # read of it after the handler) and the connection closes after the answer.
                content = self._current_request.content
                content.set_exception(failed.exc)
                content.feed_eof()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport is None or self._request_count != self._head_mark:
            return
        self._listener.metrics.client_timeouts.labels("header").inc()
        _log.info(
            "client_timeout",
            phase="header",
            timeout_seconds=self._listener.settings.header_timeout,
        )
        self.force_close()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        answered = self.on_answered
        if answered is not None:
            self.on_answered = None
            reset = result[1]
            answered(
                self,
                not reset
                and resp.keep_alive is True
                and not self._force_close
                and not self._close
                and request.content.is_eof()
                and request.content.exception() is None
                and not self._messages
                and self.transport is not None,
            )
        return result

    # --- requests that fail before (or outside) the handler -------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's version logs the exception (whose message quotes the raw request bytes)
        # and answers with that text; this one logs and answers without them.
        if request.writer.output_size > 0:
            # Part of a response already went out: nothing more can be said on this connection.
            raise ConnectionError("a response was already started; closing the connection")
        response = self._listener.pages.protocol_error(request, status, exc)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # aiohttp's remaining error logs ("Unhandled exception", ...): through the redacting
        # structured logger instead of the plain one.
        message = str(args[0]) if args else "aiohttp error"
        _log.error(message, exc_info=kw.get("exc_info", True))


class SendWatch:
    """Aborts a response whose client stopped reading: nothing written and nothing of the
    queued bytes taken for ``timeout`` seconds (checked once per period, so a stall is caught
    within one to two periods). Without it a client that never reads would hold its upstream
    connection for as long as it stays connected."""

    __slots__ = ("_handle", "_last", "_on_stall", "_progress", "_timeout", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport | None,
        progress: Callable[[], int],
        timeout: float,
        on_stall: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._progress = progress
        self._timeout = timeout
        self._on_stall = on_stall
        self._last = (-1, -1)
        self._handle: asyncio.TimerHandle | None = None
        if transport is not None:
            self._handle = asyncio.get_running_loop().call_later(timeout, self._check)

    def _check(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._handle = None
            return
        queued = transport.get_write_buffer_size()
        state = (self._progress(), queued)
        if queued and state == self._last:
            self._handle = None
            self._on_stall()
            transport.abort()  # close() would wait for the queued bytes to be read
            return
        self._last = state
        self._handle = asyncio.get_running_loop().call_later(self._timeout, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
