"""Slow and stalled clients made by hand: raw sockets that send part of a request and stop."""

from __future__ import annotations

import socket
import time

from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import request_head


def connect(proxy: ProxyProcess, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def stalled_put(proxy: ProxyProcess, bucket: str, key: str, *, sent: int = 1024) -> socket.socket:
    """A PUT that announces 1 MiB, sends ``sent`` bytes of it and stops sending."""
    sock = connect(proxy)
    head = request_head(
        "PUT",
        f"/{bucket}/{key}",
        {"Host": f"127.0.0.1:{proxy.port}", "Content-Length": str(1 << 20)},
    )
    sock.sendall(head + b"x" * sent)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (seconds
    from now); raises TimeoutError if it is still open after ``timeout``."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
