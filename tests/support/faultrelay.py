"""A loopback TCP relay that injects network faults between the proxy and a real backend.

The proxy's ``upstream.endpoint`` points at :attr:`FaultRelay.endpoint`; the relay forwards
bytes to the backend and, per exchange (a request and its response on one connection), may
inject one :class:`Fault`: a reset (RST through ``SO_LINGER`` 0), a stall, a slow drip, or a
close right after the response headers. Faults are queued (:meth:`FaultRelay.inject`, taken by
the next exchanges in order) or drawn at random (:meth:`FaultRelay.randomize`). The relay runs
its own event loop in a thread, so sync tests (boto3, http.client) can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from tests.support.ports import LOOPBACK

FaultKind = Literal["reset", "stall", "drip", "close_after_headers"]
Direction = Literal["request", "response"]
KINDS: tuple[FaultKind, ...] = ("reset", "stall", "drip", "close_after_headers")
_BLOCK = 16384


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    #: Which way the fault hits: the proxy's request to the backend, or the backend's answer.
    direction: Direction = "response"
    #: Bytes of that direction forwarded untouched before the fault starts.
    after: int = 0
    #: ``stall``: how long nothing is forwarded.
    seconds: float = 1.0
    #: ``drip``: bytes per second from ``after`` on.
    rate: int = 256 * 1024


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN: ``SO_LINGER`` on, timeout 0."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Exchange:
    """The fault (if any) of the exchange under way on one connection, and its byte counts."""

    def __init__(self, fault: Fault | None) -> None:
        self.fault = fault
        self.sent = {"request": 0, "response": 0}
        self.head = b""  # response bytes so far, until the end of the header block
        self.fired = False
        self.drip_started: float | None = None
        self.dripped = 0


class FaultRelay:
    """Start with :meth:`start`, point the proxy at :attr:`endpoint`, :meth:`stop` at the end."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname in (LOOPBACK, "localhost"), "the relay forwards to loopback only"
        self._target = (parts.hostname, parts.port or 80)
        self._queue: deque[Fault] = deque()
        self._rng: random.Random | None = None
        self._probability = 0.0
        self._choices: Sequence[Fault] = ()
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self.exchanges = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # --- control (any thread) -----------------------------------------------------------------

    @classmethod
    def start(cls, upstream: str) -> FaultRelay:
        relay = cls(upstream)
        relay._thread.start()
        asyncio.run_coroutine_threadsafe(relay._listen(), relay._loop).result(10)
        return relay

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next exchanges, one each, in order."""
        with self._lock:
            self._queue.extend(faults)

    def randomize(self, probability: float, choices: Sequence[Fault], *, seed: int = 0) -> None:
        """From now on each exchange gets one of ``choices`` with ``probability`` (0 = off)."""
        with self._lock:
            self._rng = random.Random(seed)
            self._probability = probability
            self._choices = tuple(choices)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._probability = 0.0

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Connections still relaying (a stall, a drip) end with the relay.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.exchanges += 1
            if self._queue:
                return self._queue.popleft()
            if self._rng is not None and self._rng.random() < self._probability:
                return self._rng.choice(self._choices)
        return None

    # --- the relay (its own loop) --------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(client_w)
            return
        state: dict[str, _Exchange | None] = {"exchange": None}
        done = asyncio.Event()

        def abort_both() -> None:
            _reset(client_w)
            _reset(up_w)
            done.set()

        def close_both() -> None:
            client_w.close()
            up_w.close()
            done.set()

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, way: Direction
        ) -> None:
            try:
                while not done.is_set():
                    data = await src.read(_BLOCK)
                    if not data:
                        break
                    if way == "request" and (
                        state["exchange"] is None or state["exchange"].sent["response"]
                    ):
                        # Request bytes after a response began: the next exchange starts.
                        state["exchange"] = _Exchange(self._next_fault())
                    exchange = state["exchange"]
                    if exchange is None:  # response bytes before any request: pass on
                        dst.write(data)
                        await dst.drain()
                        continue
                    if not await self._forward(exchange, way, data, dst, abort_both, close_both):
                        return
                if dst.can_write_eof():
                    dst.write_eof()
            except (ConnectionError, OSError):
                abort_both()

        tasks = [
            asyncio.create_task(pump(client_r, up_w, "request")),
            asyncio.create_task(pump(up_r, client_w, "response")),
        ]
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not done.is_set():
            # One side finished cleanly: let the other finish too.
            await asyncio.wait([*tasks, waiter], return_when=asyncio.ALL_COMPLETED, timeout=120)
        for t in (*tasks, waiter):
            t.cancel()
        for w in (client_w, up_w):
            if not w.is_closing():
                w.close()

    async def _forward(
        self,
        exchange: _Exchange,
        way: Direction,
        data: bytes,
        dst: asyncio.StreamWriter,
        abort_both: Callable[[], None],
        close_both: Callable[[], None],
    ) -> bool:
        """Forward ``data`` with the exchange's fault applied; False once the connection is gone."""
        fault = exchange.fault
        start = exchange.sent[way]
        exchange.sent[way] += len(data)
        if fault is None or fault.direction != way or (exchange.fired and fault.kind != "drip"):
            dst.write(data)
            await dst.drain()
            return True
        if fault.kind == "close_after_headers":
            exchange.head += data
            end = exchange.head.find(b"\r\n\r\n")
            if end < 0:
                dst.write(data)
                await dst.drain()
                return True
            keep = end + 4 - (len(exchange.head) - len(data))
            # Counted before the head goes on: a head that is the whole answer (an empty 200)
            # lets the client finish, and look at the count, before this task runs again.
            self._count(exchange, fault)
            dst.write(data[:keep])
            await dst.drain()
            close_both()
            return False
        cut = max(0, fault.after - start)
        if cut >= len(data):
            dst.write(data)
            await dst.drain()
            return True
        dst.write(data[:cut])
        await dst.drain()
        rest = data[cut:]
        if not exchange.fired:
            self._count(exchange, fault)
        if fault.kind == "reset":
            abort_both()
            return False
        if fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            dst.write(rest)
            await dst.drain()
            return True
        # drip: pieces of a tenth of the rate, paced on the time since the drip began
        loop = asyncio.get_running_loop()
        if exchange.drip_started is None:
            exchange.drip_started = loop.time()
        step = max(1, fault.rate // 10)
        for i in range(0, len(rest), step):
            piece = rest[i : i + step]
            dst.write(piece)
            await dst.drain()
            exchange.dripped += len(piece)
            due = exchange.drip_started + exchange.dripped / fault.rate
            await asyncio.sleep(max(0.0, due - loop.time()))
        return True

    def _count(self, exchange: _Exchange, fault: Fault) -> None:
        exchange.fired = True
        with self._lock:
            self.injected[f"{fault.kind}/{fault.direction}"] += 1
