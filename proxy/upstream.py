"""The upstream S3 client: one pooled aiohttp session, the one place where aiohttp client
exceptions become domain errors.

URLs are handed to aiohttp pre-encoded (``yarl.URL(..., encoded=True)``) so nothing is re-quoted
between signing and sending. aiohttp adds no headers of its own (no ``Accept-Encoding``, no
default ``Content-Type``, no ``User-Agent``): what we signed is what goes out. Responses are not
decompressed: a ``Content-Encoding: gzip`` object is passed through as stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from proxy.errors import ProxyError, UpstreamError

__all__ = ["Upstream", "UpstreamSettings"]

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


class Upstream:
    """Sends signed requests upstream over a shared connection pool."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(
            limit=s.max_connections,
            ttl_dns_cache=60,
            enable_cleanup_closed=False,
            ssl=None if s.ssl_verify else False,
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
