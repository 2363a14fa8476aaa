"""The lean path's upstream connection: when a response ends, and when a connection is reused.

Unit tests of :class:`~proxy.relay.pool.UpstreamConnection` on a recording transport; the
end-to-end behaviour (through real sockets) is in ``test_fastpath.py``.
"""

from __future__ import annotations

import asyncio

from proxy.relay.pool import HostPool, PoolSettings, UpstreamConnection


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.reading = True
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Sink:
    """Records what the connection delivers, and what the connection's state was then."""

    def __init__(self, conn: UpstreamConnection, *, pause_on_head: bool = False) -> None:
        self.conn = conn
        self.events: list[str] = []
        self.pause_on_head = pause_on_head

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.events.append(f"head {status}")
        if self.pause_on_head:
            self.conn.pause()  # the client's buffer is full

    def response_body(self, data: bytes) -> None:
        self.events.append(f"body {data.decode()}")

    def response_read_end(self) -> None:
        self.events.append("read end")

    def response_end(self) -> None:
        self.events.append("end")
        self.conn.release()

    def response_failed(self, err: object, retryable: bool) -> None:
        self.events.append(f"failed {retryable}")


def _connection() -> tuple[HostPool, UpstreamConnection, _Transport]:
    pool = HostPool(PoolSettings("http", 1.0, 5.0), "127.0.0.1", 80, "127.0.0.1", None)
    conn = UpstreamConnection(pool)
    transport = _Transport()
    conn.connection_made(transport)
    pool._open = 1  # as get() counts a connection it opened
    return pool, conn, transport


async def test_a_response_ends_after_its_whole_read_and_the_connection_is_reused() -> None:
    pool, conn, transport = _connection()
    sink = _Sink(conn)
    conn.send(b"GET /b/k HTTP/1.1\r\n\r\n", sink, head_only=False)  # type: ignore[arg-type]
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert sink.events == ["head 200", "body ok", "end"]
    assert pool.idle() is conn and not transport.closed


async def test_bytes_after_a_response_close_it() -> None:
    pool, conn, transport = _connection()
    sink = _Sink(conn)
    conn.send(b"GET /b/k HTTP/1.1\r\n\r\n", sink, head_only=False)  # type: ignore[arg-type]
    conn.data_received(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad"
    )
    assert sink.events == ["head 200", "body ok", "end"]  # the stray answer is nobody's
    assert pool.idle() is None and transport.closed


async def test_a_response_paused_for_a_slow_client_still_returns_its_connection() -> None:
    pool, conn, transport = _connection()
    sink = _Sink(conn, pause_on_head=True)
    conn.send(b"GET /b/k HTTP/1.1\r\n\r\n", sink, head_only=False)  # type: ignore[arg-type]
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert sink.events == ["head 200", "body ok", "end"]
    assert pool.idle() is conn and transport.reading and not transport.closed


async def test_a_response_going_on_past_a_read_is_told_so() -> None:
    pool, conn, _transport = _connection()
    sink = _Sink(conn)
    conn.send(b"GET /b/k HTTP/1.1\r\n\r\n", sink, head_only=False)  # type: ignore[arg-type]
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
    conn.data_received(b"ok")
    assert sink.events == ["head 200", "body ok", "read end", "body ok", "end"]
    assert pool.idle() is conn


async def test_an_interim_answer_is_not_the_response() -> None:
    pool, conn, _transport = _connection()
    sink = _Sink(conn)
    conn.send(b"PUT /b/k HTTP/1.1\r\n\r\n", sink, head_only=False)  # type: ignore[arg-type]
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert sink.events == ["read end"]
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert sink.events == ["read end", "head 200", "end"]
    assert pool.idle() is conn
