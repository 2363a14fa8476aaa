"""The zero-copy relay on its own: real TCP sockets on loopback, both the splice path and the
user-space fallback, and every way a relay can end."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.relay import zerocopy
from proxy.relay.zerocopy import RelayAborted, relay, socket_fd

MiB = 1024 * 1024
pytestmark = pytest.mark.timeout(60)


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return a, b


@pytest.fixture
def sockets() -> Iterator[dict[str, socket.socket]]:
    """upstream -> [src ... dst] -> client, two TCP connections; the relay ends non-blocking
    as asyncio makes them."""
    upstream, src = _tcp_pair()
    dst, client = _tcp_pair()
    for s in (src, dst):
        s.setblocking(False)
    socks = {"upstream": upstream, "src": src, "dst": dst, "client": client}
    yield socks
    for s in socks.values():
        s.close()


async def _feed(sock: socket.socket, data: bytes, *, close: bool = False) -> None:
    await asyncio.to_thread(sock.sendall, data)
    if close:
        sock.shutdown(socket.SHUT_WR)


async def _drain(sock: socket.socket, limit: int) -> bytes:
    def run() -> bytes:
        out = bytearray()
        sock.settimeout(20)
        while len(out) < limit:
            chunk = sock.recv(MiB)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    return await asyncio.to_thread(run)


class _DescriptorLedger:
    """Stands in for ``os`` inside the relay module and records every descriptor the relay
    opens (duplicates, pipe ends) and closes. Counting ``/proc/self/fd`` instead would also see
    descriptors of other objects in the test process opening or closing meanwhile."""

    def __init__(self) -> None:
        self.opened: list[int] = []
        self.closed: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def dup(self, fd: int) -> int:
        new = os.dup(fd)
        self.opened.append(new)
        return new

    def pipe2(self, flags: int) -> tuple[int, int]:
        r, w = os.pipe2(flags)
        self.opened += [r, w]
        return r, w

    def close(self, fd: int) -> None:
        os.close(fd)
        self.closed.append(fd)

    def still_open(self) -> list[int]:
        left = list(self.opened)
        for fd in self.closed:
            if fd in left:
                left.remove(fd)
        return left


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> _DescriptorLedger:
    book = _DescriptorLedger()
    monkeypatch.setattr(zerocopy, "os", book)
    return book


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_relays_exactly_count_bytes(
    sockets: dict[str, Any], use_splice: bool, ledger: _DescriptorLedger
) -> None:
    body = os.urandom(5 * MiB + 123)
    extra = b"NEXT RESPONSE"  # what follows the body on the source must stay there
    delivered: list[int] = []
    feeding = asyncio.create_task(_feed(sockets["upstream"], body + extra))
    receiving = asyncio.create_task(_drain(sockets["client"], len(body)))
    moved = await relay(
        sockets["src"].fileno(),
        sockets["dst"].fileno(),
        len(body),
        read_timeout=10,
        progress=delivered.append,
        use_splice=use_splice,
    )
    await feeding
    got = await receiving
    assert moved == len(body) == sum(delivered)
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    # The relay raised the source's receive low-water mark (it is the caller's to discard).
    sockets["src"].setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    sockets["src"].setblocking(True)
    assert sockets["src"].recv(100) == extra
    # Two duplicates, plus the pipe's two ends on the splice path; all of them closed.
    assert len(ledger.opened) == (4 if use_splice else 2)
    assert ledger.still_open() == []


async def test_falls_back_to_copying_when_the_kernel_refuses_splice(
    sockets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def refuse(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(zerocopy.os, "splice", refuse, raising=False)
    monkeypatch.setattr(zerocopy, "SPLICE_AVAILABLE", True)
    body = os.urandom(3 * MiB)
    feeding = asyncio.create_task(_feed(sockets["upstream"], body))
    receiving = asyncio.create_task(_drain(sockets["client"], len(body)))
    moved = await relay(
        sockets["src"].fileno(), sockets["dst"].fileno(), len(body), read_timeout=10
    )
    await feeding
    assert moved == len(body) and calls == [1]
    assert await receiving == body


async def test_copies_where_splice_does_not_exist(
    sockets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zerocopy, "SPLICE_AVAILABLE", False)
    monkeypatch.delattr(zerocopy.os, "splice", raising=False)  # as on macOS
    body = os.urandom(MiB + 1)
    feeding = asyncio.create_task(_feed(sockets["upstream"], body))
    receiving = asyncio.create_task(_drain(sockets["client"], len(body)))
    assert await relay(
        sockets["src"].fileno(), sockets["dst"].fileno(), len(body), read_timeout=10
    ) == len(body)
    await feeding
    assert await receiving == body


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_source_ending_early_is_an_upstream_abort_after_delivering_what_came(
    sockets: dict[str, Any], use_splice: bool, ledger: _DescriptorLedger
) -> None:
    part = os.urandom(2 * MiB)
    feeding = asyncio.create_task(_feed(sockets["upstream"], part, close=True))
    receiving = asyncio.create_task(_drain(sockets["client"], len(part)))
    with pytest.raises(RelayAborted) as caught:
        await relay(
            sockets["src"].fileno(),
            sockets["dst"].fileno(),
            8 * MiB,
            read_timeout=10,
            use_splice=use_splice,
        )
    await feeding
    assert caught.value.side == "upstream"
    assert "closed the connection" in caught.value.reason
    assert caught.value.moved == len(part)
    assert await receiving == part
    assert ledger.opened and ledger.still_open() == []


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_client_going_away_is_a_client_abort(
    sockets: dict[str, Any], use_splice: bool
) -> None:
    client = sockets["client"]
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # reset
    feeding = asyncio.create_task(_feed(sockets["upstream"], os.urandom(4 * MiB)))
    with pytest.raises(RelayAborted) as caught:
        await relay(
            sockets["src"].fileno(),
            sockets["dst"].fileno(),
            4 * MiB,
            read_timeout=10,
            use_splice=use_splice,
        )
    assert caught.value.side == "client"
    assert "went away" in caught.value.reason
    sockets["upstream"].shutdown(socket.SHUT_RDWR)  # unblock the feeder: nobody reads now
    with contextlib.suppress(OSError):
        await feeding


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_a_stalled_source_times_out(sockets: dict[str, Any], use_splice: bool) -> None:
    await _feed(sockets["upstream"], b"x" * 1000)
    receiving = asyncio.create_task(_drain(sockets["client"], 1000))
    with pytest.raises(RelayAborted) as caught:
        await relay(
            sockets["src"].fileno(),
            sockets["dst"].fileno(),
            MiB,
            read_timeout=0.3,
            use_splice=use_splice,
        )
    assert caught.value.side == "upstream" and "sent nothing for 0.3 s" in caught.value.reason
    assert caught.value.moved == 1000
    assert await receiving == b"x" * 1000


async def test_cancellation_closes_everything(
    sockets: dict[str, Any], ledger: _DescriptorLedger
) -> None:
    task = asyncio.create_task(
        relay(sockets["src"].fileno(), sockets["dst"].fileno(), MiB, read_timeout=None)
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ledger.opened and ledger.still_open() == []


async def test_originals_closed_mid_relay_do_not_matter(sockets: dict[str, Any]) -> None:
    """A transport closing its socket while the relay runs (the client went away, or shutdown)
    cannot make the relay touch a reused descriptor number: it works on duplicates."""
    body = os.urandom(2 * MiB)
    src, dst = sockets["src"], sockets["dst"]
    task = asyncio.create_task(relay(src.fileno(), dst.fileno(), len(body), read_timeout=10))
    await asyncio.sleep(0)  # the relay has duplicated both descriptors
    src.close()
    dst.close()
    feeding = asyncio.create_task(_feed(sockets["upstream"], body))
    got = await _drain(sockets["client"], len(body))
    assert await task == len(body)
    await feeding
    assert got == body


class _Transport:
    def __init__(self, extra: dict[str, Any], closing: bool = False) -> None:
        self._extra = extra
        self._closing = closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing


def test_socket_fd_only_for_plain_open_stream_sockets(sockets: dict[str, Any]) -> None:
    sock = sockets["src"]
    assert socket_fd(_Transport({"socket": sock})) == sock.fileno()
    assert socket_fd(None) is None
    assert socket_fd(_Transport({"socket": sock}, closing=True)) is None
    # TLS: the socket is there, but it carries ciphertext.
    assert socket_fd(_Transport({"socket": sock, "ssl_object": object()})) is None
    assert socket_fd(_Transport({"socket": sock, "sslcontext": object()})) is None
    assert socket_fd(_Transport({})) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert socket_fd(_Transport({"socket": udp})) is None


async def test_a_trickling_source_is_passed_on_promptly_and_never_times_out(
    sockets: dict[str, Any],
) -> None:
    """Batches are collected up to a low-water mark, but a source sending less than that still
    gets its bytes to the client within the flush interval, and counts as alive."""
    pieces = [os.urandom(100) for _ in range(12)]
    client = sockets["client"]
    client.settimeout(5)

    async def trickle() -> None:
        for piece in pieces:
            sockets["upstream"].sendall(piece)
            await asyncio.sleep(0.1)

    feeding = asyncio.create_task(trickle())
    task = asyncio.create_task(
        relay(sockets["src"].fileno(), sockets["dst"].fileno(), 1200, read_timeout=0.3)
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = await asyncio.to_thread(client.recv, 100)
    assert first == pieces[0] and loop.time() - started < 0.5
    assert await task == 1200  # 1.2 s of trickle, never 0.3 s of silence
    await feeding
    assert first + await _drain(client, 1100) == b"".join(pieces)


_CC_LIST = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")
_AVAILABLE_CC = _CC_LIST.read_text().split() if _CC_LIST.exists() else []


@pytest.mark.parametrize("local_client", [True, False])
async def test_local_client_connection_is_not_paced(
    sockets: dict[str, Any], local_client: bool
) -> None:
    dst = sockets["dst"]
    available = _AVAILABLE_CC
    other = next((a for a in ("bbr", "cubic") if a in available), None)
    if other is None:
        pytest.skip("no congestion control other than reno on this kernel")
    dst.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, other.encode())
    body = os.urandom(MiB)
    feeding = asyncio.create_task(_feed(sockets["upstream"], body))
    receiving = asyncio.create_task(_drain(sockets["client"], len(body)))
    await relay(
        sockets["src"].fileno(), dst.fileno(), len(body), read_timeout=10, local_client=local_client
    )
    await feeding
    assert await receiving == body
    algorithm = dst.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0")
    assert algorithm == (b"reno" if local_client else other.encode())
