"""The TLS relay against asyncio's own SSL transport, in process: take the connection over
mid-stream (plaintext already delivered, ciphertext still buffered) and relay the rest."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.relay.tlsrelay import can_take_over, relay_tls, take_over
from proxy.relay.zerocopy import RelayAborted
from tests.support.proxy import TLSFiles

MiB = 1024 * 1024

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return TLSFiles.create(Path(tmp_path_factory.mktemp("tls")))


class _Server:
    """A TLS server that sends ``payload`` to each connection, then optionally stalls."""

    def __init__(self, tls: TLSFiles, payload: bytes, *, stall: float = 0.0) -> None:
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(tls.cert, tls.key)
        self._payload = payload
        self._stall = stall
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with self._ctx.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.sendall(self._payload)
            if self._stall:
                threading.Event().wait(self._stall)

    def close(self) -> None:
        self._listener.close()


class _Collect(asyncio.Protocol):
    """Keeps what arrives; pauses reading once ``enough`` bytes are in."""

    def __init__(self, enough: int) -> None:
        self.enough = enough
        self.data = bytearray()
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.enough and not self.ready.done():
            assert self.transport is not None
            self.transport.pause_reading()
            self.ready.set_result(None)


@pytest.fixture
def sink() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


async def _connect(tls: TLSFiles, port: int, enough: int) -> _Collect:
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: _Collect(enough), "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
    )
    await proto.ready
    return proto


def _drain(sock: socket.socket, count: int, out: bytearray) -> None:
    while len(out) < count:
        chunk = sock.recv(MiB)
        if not chunk:
            return
        out += chunk


async def test_takes_over_mid_stream_and_relays_the_rest(
    tls: TLSFiles, sink: tuple[socket.socket, socket.socket]
) -> None:
    payload = os.urandom(9 * MiB + 7)
    server = _Server(tls, payload)
    try:
        proto = await _connect(tls, server.port, MiB)
        assert can_take_over(proto.transport)
        source = take_over(proto.transport)
        assert source is not None and not source.transport.is_reading()
        head = bytes(proto.data)
        rest = len(payload) - len(head)
        got = bytearray()
        reader = threading.Thread(target=_drain, args=(sink[1], rest, got))
        reader.start()
        moved = await relay_tls(source, sink[0].fileno(), rest, read_timeout=5)
        reader.join(10)
        source.close()
    finally:
        server.close()
    assert moved == rest
    assert hashlib.sha256(head + got).digest() == hashlib.sha256(payload).digest()


async def test_a_stalled_source_is_cut_after_the_read_timeout(
    tls: TLSFiles, sink: tuple[socket.socket, socket.socket]
) -> None:
    server = _Server(tls, b"x" * (2 * MiB), stall=5)
    try:
        proto = await _connect(tls, server.port, 64 * 1024)
        source = take_over(proto.transport)
        assert source is not None
        rest = 4 * MiB  # more than the server will send
        got = bytearray()
        reader = threading.Thread(target=_drain, args=(sink[1], rest, got), daemon=True)
        reader.start()
        with pytest.raises(RelayAborted) as caught:
            await relay_tls(source, sink[0].fileno(), rest, read_timeout=0.5)
        source.close()
    finally:
        server.close()
    assert caught.value.side == "upstream"
    assert caught.value.reason == "the upstream sent nothing for 0.5 s"
    assert caught.value.moved == 2 * MiB - len(proto.data)


async def test_plain_transports_are_not_taken_over() -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    try:
        assert not can_take_over(transport)
        assert take_over(transport) is None
        assert transport.is_reading()  # untouched
    finally:
        transport.close()
        server.close()
