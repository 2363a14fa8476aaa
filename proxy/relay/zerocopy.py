"""Zero-copy body relay: move a response body from one socket to another inside the kernel.

A large passthrough GET spends nearly all of the proxy's CPU copying bytes through user space
(receive, HTTP parser, stream buffers, send). With ``os.splice`` (socket → pipe → socket) the
bytes never enter the process: the pipe holds references to the received pages and the sending
socket takes them over.

The relay runs in the event loop, on *duplicates* of the two socket descriptors:

- the caller has stopped every transport from touching the bytes (the upstream transport's
  reading is paused; the client transport's write buffer is empty and nothing writes to it);
- readiness is awaited with ``loop.add_reader``/``add_writer`` on the duplicates, which are
  distinct descriptors for the loop (no clash with a transport's own registration on the
  original), and are removed again before they are closed;
- a transport that closes its socket meanwhile (the client went away) cannot make us write to a
  reused descriptor number: the duplicate keeps the socket itself open until we are done;
- the sockets stay non-blocking (asyncio made them so; a duplicate shares the flag), so no file
  status flags are changed and none need restoring.

Two socket options cut the kernel's work per byte (measured: about a quarter of the relay's
CPU, see docs/benchmarks.md):

- ``SO_RCVLOWAT`` on the source: the loop is woken once a large batch has arrived rather than for
  every segment (the source is discarded after the relay, so nothing needs restoring). A short
  flush interval bounds the delay a slow source sees;
- for a client on this host (``local_client``), the destination is switched to the ``reno``
  congestion control: the default may be BBR, whose pacing without an ``fq`` qdisc costs a
  timer per burst — pointless on loopback. Where the option is not permitted it stays as is.

Where ``os.splice`` is missing or the kernel refuses it for these descriptors (``EINVAL``,
``ENOSYS`` on the first call, before any byte moved), the same loop copies through a user-space
buffer instead. Pure I/O on descriptors: no aiohttp here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from collections.abc import Callable, Iterator

__all__ = [
    "SPLICE_AVAILABLE",
    "RelayAborted",
    "client_stalled",
    "duplicated",
    "relay",
    "set_option",
    "socket_fd",
    "wait_fd",
]

SPLICE_AVAILABLE: bool = sys.platform == "linux" and hasattr(os, "splice")

#: Pipe capacity to ask for: more bytes per system call. 1 MiB is the default
#: /proc/sys/fs/pipe-max-size, the most an unprivileged process may ask for.
_PIPE_BYTES = 1024 * 1024
#: Wake for the source once this much is waiting (or it ends, or the flush interval passes).
_LOWAT_BYTES = 1024 * 1024
_FLUSH_SECONDS = 0.02
#: Bytes moved between yields to the event loop when both sockets stay ready: a fast pair of
#: sockets would otherwise keep the loop from every other connection until the body is done.
_YIELD_BYTES = 8 * 1024 * 1024
#: Buffer of the user-space fallback copy.
_COPY_BYTES = 256 * 1024
_F_SETPIPE_SZ = 1031
_NO_SPLICE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def socket_fd(transport: asyncio.BaseTransport | None) -> int | None:
    """The descriptor of a transport's plain stream socket; None for TLS (the bytes on the
    socket are ciphertext), a closing transport, or anything without a socket."""
    if transport is None or transport.is_closing():
        return None
    if (
        transport.get_extra_info("ssl_object") is not None
        or transport.get_extra_info("sslcontext") is not None
    ):
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    fd = sock.fileno()
    return fd if fd >= 0 else None


class RelayAborted(Exception):
    """The body could not be completed. ``side`` is ``"upstream"`` (it ended early, failed or
    stalled) or ``"client"`` (it went away); ``moved`` is how many bytes reached the client
    (whatever had been received before an upstream failure is still delivered); ``stalled``
    says the client stopped taking bytes for longer than the write timeout."""

    def __init__(self, side: str, reason: str, moved: int, *, stalled: bool = False) -> None:
        super().__init__(reason)
        self.side = side
        self.reason = reason
        self.moved = moved
        self.stalled = stalled


async def relay(
    src_fd: int,
    dst_fd: int,
    count: int,
    *,
    read_timeout: float | None,
    write_timeout: float | None = None,
    progress: Callable[[int], None] | None = None,
    local_client: bool = False,
    use_splice: bool = True,
) -> int:
    """Move exactly ``count`` bytes from socket ``src_fd`` to socket ``dst_fd``.

    Both descriptors are duplicated before the first ``await``; the originals may be closed by
    their owners meanwhile. The source must not be read by anyone else afterwards (its receive
    low-water mark is changed). ``read_timeout``: longest the source may send nothing (None: no
    bound); ``write_timeout``: longest the destination may take nothing while bytes wait for it
    (a client that stopped reading; None: no bound); ``progress`` is called with each batch of
    bytes delivered; ``local_client``: the destination's peer is on this host. Returns
    ``count``; raises :class:`RelayAborted` otherwise (``CancelledError`` passes through;
    descriptors closed).
    """
    with duplicated(src_fd, dst_fd, local_client=local_client) as (src, dst):
        if use_splice and SPLICE_AVAILABLE:
            moved = await _splice(src, dst, count, read_timeout, write_timeout, progress)
            if moved is not None:
                return moved
        return await _copy(src, dst, count, read_timeout, write_timeout, progress)


@contextlib.contextmanager
def duplicated(src_fd: int, dst_fd: int, *, local_client: bool) -> Iterator[tuple[int, int]]:
    """Duplicates of a relay's two descriptors, closed on exit; a destination whose peer is on
    this host (``local_client``) is switched to ``reno`` (see the module docstring)."""
    src = os.dup(src_fd)
    try:
        dst = os.dup(dst_fd)
    except BaseException:
        os.close(src)
        raise
    try:
        if local_client:
            set_option(dst, socket.IPPROTO_TCP, "TCP_CONGESTION", b"reno")
        yield src, dst
    finally:
        os.close(dst)
        os.close(src)


async def _splice(
    src: int,
    dst: int,
    count: int,
    read_timeout: float | None,
    write_timeout: float | None,
    progress: Callable[[int], None] | None,
) -> int | None:
    """The splice loop; None if the kernel refuses splice for the source (nothing moved)."""
    pipe_r, pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        try:
            capacity = _grow_pipe(pipe_w)
        except OSError:
            capacity = 64 * 1024  # the default pipe size
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
        loop = asyncio.get_running_loop()
        remaining = count  # still to take from the source
        in_pipe = 0
        moved = 0  # delivered to the client
        failure: str | None = None
        lowat = 0
        unyielded = 0
        last_in = loop.time()
        while remaining or in_pipe:
            progressed = False
            src_empty = False
            if remaining and in_pipe < capacity:
                try:
                    n = os.splice(src, pipe_w, min(remaining, capacity - in_pipe), flags=flags)
                except BlockingIOError:
                    # Source empty, or the pipe out of slots (small segments): the write side
                    # below makes room; only an empty pipe waits for the source.
                    src_empty = True
                except OSError as exc:
                    if exc.errno in _NO_SPLICE and remaining == count:
                        return None
                    failure, remaining = f"reading the upstream failed: {_text(exc)}", 0
                else:
                    if n == 0:
                        failure, remaining = "the upstream closed the connection", 0
                    else:
                        remaining -= n
                        in_pipe += n
                        progressed = True
                        last_in = loop.time()
            if in_pipe:
                try:
                    n = os.splice(pipe_r, dst, in_pipe, flags=flags)
                except BlockingIOError:
                    if not await wait_fd(dst, writable=True, limit=write_timeout):
                        raise client_stalled(write_timeout, moved) from None
                    continue
                except OSError as exc:
                    raise RelayAborted("client", _went_away(exc), moved) from None
                in_pipe -= n
                moved += n
                progressed = True
                if progress is not None:
                    progress(n)
                unyielded += n
                if unyielded >= _YIELD_BYTES:
                    unyielded = 0
                    await asyncio.sleep(0)
            if src_empty and not progressed:  # the pipe is empty too
                if read_timeout is not None and loop.time() - last_in >= read_timeout:
                    failure, remaining = _stalled(read_timeout), 0
                    continue
                if lowat != (want := min(remaining, _LOWAT_BYTES)):
                    set_option(src, socket.SOL_SOCKET, "SO_RCVLOWAT", want)
                    lowat = want
                # Woken by a full batch, the end, an error — or the flush interval, after which
                # whatever has arrived is moved on.
                await wait_fd(src, writable=False, limit=_FLUSH_SECONDS)
        if failure is not None:
            raise RelayAborted("upstream", failure, moved)
        return moved
    finally:
        os.close(pipe_w)
        os.close(pipe_r)


async def _copy(
    src: int,
    dst: int,
    count: int,
    read_timeout: float | None,
    write_timeout: float | None,
    progress: Callable[[int], None] | None,
) -> int:
    """User-space fallback: receive into one buffer, send it all, repeat."""
    buf = bytearray(min(_COPY_BYTES, max(count, 1)))
    view = memoryview(buf)
    remaining = count
    moved = 0
    unyielded = 0
    while remaining:
        try:
            n = os.readv(src, [view[: min(remaining, len(buf))]])
        except BlockingIOError:
            if not await wait_fd(src, writable=False, limit=read_timeout):
                raise RelayAborted("upstream", _stalled(read_timeout), moved) from None
            continue
        except OSError as exc:
            reason = f"reading the upstream failed: {_text(exc)}"
            raise RelayAborted("upstream", reason, moved) from None
        if n == 0:
            raise RelayAborted("upstream", "the upstream closed the connection", moved)
        remaining -= n
        data = view[:n]
        while data:
            try:
                sent = os.write(dst, data)
            except BlockingIOError:
                if not await wait_fd(dst, writable=True, limit=write_timeout):
                    raise client_stalled(write_timeout, moved) from None
                continue
            except OSError as exc:
                raise RelayAborted("client", _went_away(exc), moved) from None
            data = data[sent:]
            moved += sent
            if progress is not None:
                progress(sent)
            unyielded += sent
            if unyielded >= _YIELD_BYTES:
                unyielded = 0
                await asyncio.sleep(0)
    return moved


def set_option(fd: int, level: int, name: str, value: int | bytes) -> None:
    """Best effort: an option this platform lacks or this process may not set is skipped."""
    option = getattr(socket, name, None)
    if option is None:
        return
    sock = socket.socket(fileno=fd)
    try:
        sock.setsockopt(level, option, value)
    except OSError:
        pass
    finally:
        sock.detach()


def _grow_pipe(fd: int) -> int:
    import fcntl

    return int(fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES))


async def wait_fd(fd: int, *, writable: bool, limit: float | None) -> bool:
    """Until ``fd`` is readable/writable or in error (epoll reports errors as both); False if
    ``limit`` seconds passed first. (A plain timer, cheaper than ``asyncio.timeout`` here.)"""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[bool] = loop.create_future()

    def ready(ok: bool = True) -> None:
        if not waiter.done():
            waiter.set_result(ok)

    if writable:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    timer = loop.call_later(limit, ready, False) if limit else None
    try:
        return await waiter
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()


def _text(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _went_away(exc: OSError) -> str:
    return f"the client went away: {_text(exc)}"


def client_stalled(timeout: float | None, moved: int) -> RelayAborted:
    """The abort of a relay whose client took nothing for ``timeout`` seconds."""
    reason = f"the client took nothing for {timeout or 0:g} s"
    return RelayAborted("client", reason, moved, stalled=True)


def _stalled(timeout: float | None) -> str:
    return f"the upstream sent nothing for {timeout or 0:g} s"
