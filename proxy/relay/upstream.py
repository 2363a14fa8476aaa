"""The upstream S3 client: one pooled aiohttp session, the one place where aiohttp client
exceptions become domain errors.

URLs are handed to aiohttp pre-encoded (``yarl.URL(..., encoded=True)``) so nothing is re-quoted
between signing and sending; a URL yarl would still change (it drops tabs and newlines, for
one) is refused rather than sent as something other than what was signed and routed. aiohttp
adds no headers of its own (no ``Accept-Encoding``, no default ``Content-Type``, no
``User-Agent``): what we signed is what goes out. Responses are not decompressed: a
``Content-Encoding: gzip`` object is passed through as stored.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from proxy.errors import InvalidURI, ProxyError, UpstreamError
from proxy.relay.tlsrelay import TLSSource, can_take_over, take_over
from proxy.relay.zerocopy import socket_fd

__all__ = ["DetachedBody", "LocalhostResolver", "Upstream", "UpstreamSettings", "detach_body"]

# aiohttp must not add headers after signing; Host is set explicitly by the signer.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout: float
    read_timeout: float
    #: Maximum pooled connections (0 = unlimited).
    max_connections: int = 0
    #: Read buffer per response; bigger chunks mean fewer event-loop turns per byte.
    read_bufsize: int = 1024 * 1024
    ssl_verify: bool = True


class LocalhostResolver(AbstractResolver):
    """The default resolver, except that every ``*.localhost`` name is loopback (RFC 6761 §6.3).

    Virtual-hosted addressing sends ``<bucket>.<endpoint host>``; with a local backend at
    ``localhost`` that is ``<bucket>.localhost``, which most resolvers (glibc without
    nss-myhostname) don't answer. Such names resolve exactly as ``localhost`` does.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").casefold()
        if name != "localhost" and not name.endswith(".localhost"):
            return await self._inner.resolve(host, port, family)
        found = await self._inner.resolve("localhost", port, family)
        return [ResolveResult(**{**r, "hostname": host}) for r in found]

    async def close(self) -> None:
        await self._inner.close()


class Upstream:
    """Sends signed requests upstream over a shared connection pool."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(
            resolver=LocalhostResolver(),
            limit=s.max_connections,
            ttl_dns_cache=60,
            enable_cleanup_closed=False,
            ssl=s.ssl_verify,  # True: verify with the default context
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=s.connect_timeout,
                sock_connect=s.connect_timeout,
                sock_read=s.read_timeout,
            ),
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            read_bufsize=s.read_bufsize,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None,
        *,
        body_error: Callable[[], ProxyError | None] = lambda: None,
        retry_safe: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request; the caller must ``release()`` the response.

        ``body_error`` reports why the request body stream failed (a malformed client body): that
        error wins over the transport error it causes. ``retry_safe`` allows one retry on a
        pooled connection the upstream had already closed (only for requests without a body
        stream, which cannot be replayed).
        """
        session = self._session
        if session is None:
            raise UpstreamError("upstream client is not started")
        target = URL(url, encoded=True)
        if str(target) != url:
            # The path parsers would send is not the one the request was routed and signed on.
            raise InvalidURI("the request target cannot be forwarded unchanged")
        attempts = 2 if retry_safe else 1
        for attempt in range(attempts):
            try:
                return await session.request(
                    method,
                    target,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=None,
                    chunked=None,
                )
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                err = body_error()
                if err is not None:
                    raise err from None
                if attempt + 1 < attempts:
                    continue
                raise UpstreamError(_describe(exc, url)) from None
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                err = body_error()
                if err is not None:
                    raise err from None
                raise UpstreamError(_describe(exc, url)) from None
            except ProxyError:
                raise
        raise AssertionError("unreachable")


def _describe(exc: BaseException, url: str) -> str:
    origin = URL(url, encoded=True).origin()
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return f"upstream {origin} did not answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"upstream {origin} is unreachable: {exc.os_error.strerror or exc.os_error}"
    text = str(exc) or type(exc).__name__
    return f"upstream {origin} failed: {text}"


class DetachedBody:
    """The rest of an upstream response body, taken away from aiohttp for a zero-copy relay.

    ``received`` are the body bytes aiohttp had already read (they go to the client first);
    ``remaining`` more are still on the socket ``fd`` (a duplicate owned by this object) — as
    ciphertext when ``tls`` is set (an HTTPS upstream, taken over from asyncio's SSL transport).
    ``close()`` closes the duplicate and the upstream connection: its HTTP parser still expects
    the body it never saw, so the connection cannot go back to the pool.
    """

    __slots__ = ("_resp", "fd", "read_timeout", "received", "remaining", "tls")

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        fd: int,
        received: bytes,
        remaining: int,
        read_timeout: float | None,
        tls: TLSSource | None = None,
    ) -> None:
        self._resp: aiohttp.ClientResponse | None = resp
        self.fd = fd
        self.received = received
        self.remaining = remaining
        self.read_timeout = read_timeout
        self.tls = tls

    def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            os.close(self.fd)
            resp.close()
            if self.tls is not None:
                self.tls.close()


def detach_body(
    resp: aiohttp.ClientResponse, length: int, *, tls: bool = False
) -> DetachedBody | None:
    """Take the rest of ``resp``'s body away from aiohttp, if it is a plain-socket response
    (with ``tls``, also a response over asyncio's SSL transport) whose Content-Length is
    ``length`` and whose body nobody has read yet; None (and ``resp`` untouched) otherwise.

    Everything aiohttp holds is collected: the StreamReader's buffer and what its parser held
    back while the buffer was over its limit (reading the buffer resumes the parser, which
    feeds the held bytes in; repeat until empty). Reading is then paused on the transport, so
    the loop never reads the socket again; the bytes still to come are exactly ``remaining``.
    """
    conn = resp.connection
    if resp.content_length != length or conn is None:
        return None
    transport, protocol = conn.transport, conn.protocol
    fd = socket_fd(transport)
    secure = fd is None and tls and can_take_over(transport)
    if (fd is None and not secure) or protocol is None or not hasattr(transport, "is_reading"):
        return None
    content = resp.content
    if content.exception() is not None or content.is_eof() or content.total_bytes > length:
        return None
    # Past this point the body is ours: any failure closes the connection.
    parts: list[bytes] = []
    try:
        while chunk := content.read_nowait(-1):
            parts.append(chunk)
        protocol.pause_reading()
        if transport is None or transport.is_reading():
            raise UpstreamError("cannot take over the upstream connection (reading not paused)")
        received = b"".join(parts) if len(parts) != 1 else parts[0]
        if len(received) != content.total_bytes:
            # Someone had already read part of the body: what is left is not the whole body.
            raise UpstreamError("upstream body was partly consumed before the relay")
        source = take_over(transport) if secure else None
        if secure:
            if source is None:
                raise UpstreamError("cannot take over the upstream TLS connection")
            fd = source.fd
    except UpstreamError:
        resp.close()
        raise
    except (aiohttp.ClientError, OSError) as exc:  # the parser failed on bytes it held back
        resp.close()
        raise UpstreamError(f"reading the upstream response failed: {exc}") from None
    assert fd is not None
    return DetachedBody(
        resp,
        os.dup(fd),
        received,
        length - len(received),
        getattr(protocol, "read_timeout", None),  # aiohttp's sock_read, as on the normal path
        source,
    )
