"""TLS body relay: decrypt the rest of an HTTPS upstream's response body in large batches.

The zero-copy relay (:mod:`proxy.relay.zerocopy`) cannot move ciphertext: over an HTTPS upstream
every byte must be decrypted in the process. The normal path does that through asyncio's SSL
protocol and aiohttp (a receive, a decrypt, a join, the HTTP parser's copy, stream-reader
bookkeeping, timers and task switches per piece, pieces of 16-256 KiB). This relay keeps only
what cannot go: one receive into a reused buffer, the decrypt into a second reused buffer of up
to 1 MiB, one send to the client. Measured, about 30 % less CPU for a large GET (see
docs/benchmarks.md); receiving, decrypting (AES-GCM) and sending are the floor that remains.

:func:`take_over` detaches the TLS state from asyncio's SSL transport: the ``SSLObject`` and its
incoming ``MemoryBIO`` (with whatever ciphertext it already holds), and the raw socket, whose
transport is paused so the loop never reads it again. That needs the SSL protocol's attributes
(stable since Python 3.11's rewrite of ``asyncio.sslproto``); where they are missing, it answers
None and the normal path runs. The relay itself runs in the event loop on a duplicate of the
socket descriptor, like the zero-copy relay (readiness via ``add_reader``/``add_writer``, the
same errors and upstream read timeout), decrypting at most one batch per step; unlike it, it
also gives up on a client that takes nothing for a while (the buffered path's bound).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from proxy.relay.zerocopy import (
    RelayAborted,
    client_stalled,
    duplicated,
    set_option,
    socket_fd,
    wait_fd,
)

__all__ = ["TLSSource", "can_take_over", "relay_tls", "take_over"]

#: Plaintext gathered before each send, and the most ciphertext taken per receive.
_BATCH_BYTES = 1024 * 1024
#: Wake for the source once this much ciphertext is waiting (or the flush interval passes).
_LOWAT_BYTES = 512 * 1024
_FLUSH_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class TLSSource:
    """An upstream TLS connection taken away from asyncio: ``fd`` is the raw socket (ciphertext),
    ``sslobj`` its TLS state, ``incoming``/``outgoing`` the memory BIOs it reads and writes,
    ``transport`` the raw socket's (paused) transport, aborted by :meth:`close`."""

    fd: int
    sslobj: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    transport: asyncio.Transport

    def close(self) -> None:
        """Drop the connection: its TLS and HTTP state were advanced behind asyncio's back."""
        self.transport.abort()


def can_take_over(transport: asyncio.BaseTransport | None) -> bool:
    """Whether :func:`take_over` would succeed (nothing changed)."""
    return _parts(transport) is not None


def take_over(transport: asyncio.BaseTransport | None) -> TLSSource | None:
    """The TLS state and raw socket under asyncio's SSL ``transport``, with every reader in the
    loop stopped; None (nothing changed) where this is not asyncio's SSL transport over a plain
    socket. The caller must already have taken the plaintext the application side received."""
    parts = _parts(transport)
    if parts is None or not isinstance(transport, asyncio.ReadTransport):
        return None
    proto, source = parts
    transport.pause_reading()  # plaintext stays in the SSL object
    source.transport.pause_reading()  # ciphertext stays in the socket (and the incoming BIO)
    # The SSL protocol's own flow control resumes the socket only after pausing it itself:
    # marked as not paused, it never will.
    proto._ssl_reading_paused = False
    return source


def _parts(transport: asyncio.BaseTransport | None) -> tuple[Any, TLSSource] | None:
    proto = getattr(transport, "_ssl_protocol", None)
    sslobj = getattr(proto, "_sslobj", None)
    incoming = getattr(proto, "_incoming", None)
    outgoing = getattr(proto, "_outgoing", None)
    raw = getattr(proto, "_transport", None)
    if (
        transport is None
        or not isinstance(sslobj, ssl.SSLObject)
        or not isinstance(incoming, ssl.MemoryBIO)
        or not isinstance(outgoing, ssl.MemoryBIO)
        or not isinstance(raw, asyncio.Transport)
        or not hasattr(proto, "_ssl_reading_paused")
        or not hasattr(raw, "is_reading")
    ):
        return None
    fd = socket_fd(raw)
    if fd is None:
        return None
    return proto, TLSSource(fd, sslobj, incoming, outgoing, raw)


async def relay_tls(
    source: TLSSource,
    dst_fd: int,
    count: int,
    *,
    read_timeout: float | None,
    write_timeout: float | None = None,
    progress: Callable[[int], None] | None = None,
    local_client: bool = False,
) -> int:
    """Decrypt exactly ``count`` more plaintext bytes from ``source`` and send them to socket
    ``dst_fd``. ``read_timeout``, ``progress`` and ``local_client`` as for
    :func:`proxy.relay.zerocopy.relay`; ``write_timeout``: longest the client may take nothing
    (the relay then aborts with a ``stalled`` :class:`RelayAborted`). Returns ``count`` or
    raises :class:`RelayAborted`."""
    with duplicated(source.fd, dst_fd, local_client=local_client) as (src, dst):
        client = _Client(dst, write_timeout, progress)
        return await _relay(source, src, client, count, read_timeout)


async def _relay(
    source: TLSSource,
    src: int,
    client: _Client,
    count: int,
    read_timeout: float | None,
) -> int:
    loop = asyncio.get_running_loop()
    sslobj, incoming = source.sslobj, source.incoming
    plain = memoryview(bytearray(min(_BATCH_BYTES, max(count, 1))))
    cipher = memoryview(bytearray(_BATCH_BYTES))
    remaining = count  # still to decrypt
    moved = 0  # delivered to the client
    lowat = 0
    last_in = loop.time()
    while remaining:
        # Decrypt what has arrived, record by record, into one batch.
        filled = 0
        want_read = False
        limit = min(remaining, len(plain))
        while filled < limit:
            try:
                # With a buffer, read() answers the byte count (typeshed says bytes).
                n = cast(int, sslobj.read(limit - filled, plain[filled:limit]))
            except ssl.SSLWantReadError:
                want_read = True
                break
            except ssl.SSLError as exc:
                reason = f"the upstream's TLS stream failed: {exc.reason or exc}"
                raise RelayAborted("upstream", reason, moved) from None
            if n == 0:
                raise RelayAborted("upstream", "the upstream closed the connection", moved)
            filled += n
        if source.outgoing.pending:
            # Post-handshake messages (a key update) want an answer; upstream writes are
            # not expected on a response, and none is sent: the connection is dropped after.
            source.outgoing.read()
        if filled:
            remaining -= filled
            moved = await client.send_all(plain[:filled], moved)
            # A source and a client that are always ready would otherwise never let the
            # loop run anything else: one turn per batch.
            await asyncio.sleep(0)
            continue
        if not want_read:
            continue
        if source.transport.is_reading():
            raise RelayAborted("upstream", "the upstream connection was read elsewhere", moved)
        try:
            got = os.readv(src, [cipher])
        except BlockingIOError:
            if read_timeout is not None and loop.time() - last_in >= read_timeout:
                raise RelayAborted("upstream", _stalled(read_timeout), moved) from None
            if lowat != (want := max(1, min(remaining - incoming.pending, _LOWAT_BYTES))):
                set_option(src, socket.SOL_SOCKET, "SO_RCVLOWAT", want)
                lowat = want
            await wait_fd(src, writable=False, limit=_FLUSH_SECONDS)
            continue
        except OSError as exc:
            reason = f"reading the upstream failed: {exc.strerror or exc}"
            raise RelayAborted("upstream", reason, moved) from None
        if got == 0:
            raise RelayAborted("upstream", "the upstream closed the connection", moved)
        incoming.write(cipher[:got])
        last_in = loop.time()
    return moved


class _Client:
    """The client side: sends everything, or aborts when the client takes nothing for
    ``timeout`` seconds."""

    __slots__ = ("fd", "progress", "timeout")

    def __init__(
        self, fd: int, timeout: float | None, progress: Callable[[int], None] | None
    ) -> None:
        self.fd = fd
        self.timeout = timeout
        self.progress = progress

    async def send_all(self, data: memoryview, moved: int) -> int:
        while data:
            try:
                sent = os.write(self.fd, data)
            except BlockingIOError:
                if not await wait_fd(self.fd, writable=True, limit=self.timeout):
                    raise client_stalled(self.timeout, moved) from None
                continue
            except OSError as exc:
                reason = f"the client went away: {exc.strerror or exc}"
                raise RelayAborted("client", reason, moved) from None
            data = data[sent:]
            moved += sent
            if self.progress is not None:
                self.progress(sent)
        return moved


def _stalled(timeout: float) -> str:
    return f"the upstream sent nothing for {timeout:g} s"
