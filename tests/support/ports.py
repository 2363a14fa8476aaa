"""Free loopback ports for processes the tests start."""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"

# Ports handed out in this session: the kernel may offer a just-closed port again before the
# process we gave it to has bound it, so never hand the same one out twice.
_issued: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and not issued before)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port not in _issued:
            _issued.add(port)
            return port


def free_port_with_grpc(offset: int = 10000) -> int:
    """A free port ``p`` such that ``p + offset`` is free too (SeaweedFS's gRPC convention)."""
    while True:
        port = free_port()
        if port + offset <= 65535 and port + offset not in _issued and _bindable(port + offset):
            _issued.add(port + offset)
            return port


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port`` now."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False
