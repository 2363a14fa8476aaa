"""Request bodies: the client's body as the upstream (or a route handler) should see it.

:func:`open_request_body` looks at the framing headers once and returns a :class:`RequestBody`
that yields the *decoded* bytes in bounded pieces, knows their length, the headers to drop and
add when forwarding, and the payload hash to sign. It never holds a large body whole in memory:

- plain ``Content-Length`` bodies stream through; bodies up to ``small_body_bytes`` are read
  first (one upstream write, and a short body is caught before anything is sent);
- ``aws-chunked`` bodies are decoded on the fly; the last decoded piece is held back until the
  framing, the length and any trailer have been validated, so the upstream — which was promised
  ``x-amz-decoded-content-length`` bytes — never receives the final byte of a bad body and never
  completes the write;
- ``aws-chunked`` bodies with a trailing checksum are spooled (memory up to
  ``limits.spool_memory_bytes``, then a temporary file), verified, and then forwarded with the
  checksum as an ``x-amz-checksum-*`` header, so the stored object keeps the client's checksum.

A failure raises :class:`~proxy.errors.MalformedBody`/:class:`~proxy.errors.BadDigest` and is
also remembered in :attr:`RequestBody.error`, because aiohttp swallows exceptions raised inside
a request body generator and reports a connection error instead.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from proxy.errors import ClientError, EntityTooLarge, MalformedBody, ProxyError
from proxy.s3.awschunked import AwsChunkedDecoder, framing_for
from proxy.s3.signing import EMPTY_SHA256, UNSIGNED_PAYLOAD, is_real_sha256

__all__ = ["ClientStream", "RequestBody", "open_request_body"]

#: Chunk size for spool reads; aiohttp's own reads are bounded by its buffer (64-256 KiB).
_SPOOL_READ = 256 * 1024


class ClientStream(Protocol):
    """The raw client body as the HTTP server delivers it (HTTP chunked already removed)."""

    async def read(self) -> bytes:
        """Next piece of the body; ``b""`` at its end. Raises on a broken connection."""


class RequestBody:
    """Base: no body at all (GET, HEAD, DELETE without Content-Length)."""

    #: Decoded length, or None when unknown (HTTP chunked without aws-chunked).
    length: int | None = None
    #: Lower-case header names not to forward (framing of the client's encoding).
    drop_headers: frozenset[str] = frozenset()
    #: True when the bytes forwarded are exactly the bytes the client signed.
    unchanged: bool = True

    def __init__(self) -> None:
        self.error: ProxyError | None = None
        self.received = 0  # raw bytes read from the client
        self.extra_headers: list[tuple[str, str]] = []
        self._tap: Callable[[bytes], None] | None = None

    @property
    def present(self) -> bool:
        return False

    def tap(self, sink: Callable[[bytes], None]) -> None:
        """Hand ``sink`` every decoded piece as it goes upstream (a copy for a background
        check); the forwarded bytes are unchanged. Set before :meth:`upstream_data`."""
        self._tap = sink

    def upstream_data(self) -> bytes | AsyncIterator[bytes] | None:
        """What to hand aiohttp as the request body."""
        data = self._data()
        sink = self._tap
        if sink is None or data is None:
            return data
        if isinstance(data, bytes):
            sink(data)
            return data
        return _tapped(data, sink)

    def _data(self) -> bytes | AsyncIterator[bytes] | None:
        return None

    async def prepare(self) -> None:
        """Read ahead what must be read before the upstream request starts."""

    def payload_hash(self, client_hash: str | None) -> str:
        if self.unchanged and is_real_sha256(client_hash):
            return client_hash.lower()
        if self.length == 0 or not self.present:
            return EMPTY_SHA256
        return UNSIGNED_PAYLOAD

    async def read_all(self, max_bytes: int) -> bytes:
        """The whole decoded body (validated), for route handlers that must see it whole."""
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        return b""

    def close(self) -> None:
        """Release spool files."""

    def _fail(self, err: ProxyError) -> ProxyError:
        if self.error is None:
            self.error = err
        return self.error


class _StreamingBody(RequestBody):
    def __init__(self, stream: ClientStream, length: int | None, small_body_bytes: int) -> None:
        super().__init__()
        self._stream = stream
        self.length = length
        self._small = small_body_bytes
        self._buffered: bytes | None = None
        self._iterating = False

    @property
    def present(self) -> bool:
        return True

    def payload_hash(self, client_hash: str | None) -> str:
        # A decoded body we hold whole anyway (small aws-chunked bodies): sign its real digest,
        # so the upstream verifies it end to end. Cheap at this size.
        if not self.unchanged and self._buffered is not None:
            return hashlib.sha256(self._buffered).hexdigest()
        return super().payload_hash(client_hash)

    async def _read(self) -> bytes:
        try:
            data = await self._stream.read()
        except ProxyError as exc:
            raise self._fail(exc) from None
        except Exception as exc:
            raise self._fail(self._broken(exc)) from None
        self.received += len(data)
        return data

    def _broken(self, exc: BaseException) -> ProxyError:
        declared = f" of {self.length} declared" if self.length is not None else ""
        detail = f": {exc}" if str(exc) else ""
        return MalformedBody(
            f"the request body ended after {self.received} bytes{declared} "
            f"(connection broken{detail})"
        )

    async def _pieces(self) -> AsyncIterator[bytes]:
        """Decoded pieces, validated; subclasses define the decoding."""
        raise NotImplementedError
        yield b""  # pragma: no cover

    async def prepare(self) -> None:
        if self.length is not None and self.length <= self._small:
            self._buffered = await self._collect(self._small)

    async def _collect(self, max_bytes: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        async for piece in self._pieces():
            total += len(piece)
            if total > max_bytes:
                raise self._fail(
                    EntityTooLarge(f"the request body is larger than {max_bytes} bytes")
                )
            parts.append(piece)
        return b"".join(parts)

    def _data(self) -> bytes | AsyncIterator[bytes] | None:
        if self._buffered is not None:
            return self._buffered
        if self._iterating:
            raise RuntimeError("request body can be streamed only once")
        self._iterating = True
        return self._pieces()

    async def read_all(self, max_bytes: int) -> bytes:
        if self._buffered is not None:
            if len(self._buffered) > max_bytes:
                raise EntityTooLarge(f"the request body is larger than {max_bytes} bytes")
            return self._buffered
        if self.length is not None and self.length > max_bytes:
            raise self._fail(
                EntityTooLarge(
                    f"the request body ({self.length} bytes) is larger than {max_bytes} bytes"
                )
            )
        self._buffered = await self._collect(max_bytes)
        return self._buffered


class _PlainBody(_StreamingBody):
    """Content-Length (or HTTP chunked) body forwarded byte for byte."""

    async def _pieces(self) -> AsyncIterator[bytes]:
        length = self.length
        got = 0
        while True:
            data = await self._read()
            if not data:
                break
            got += len(data)
            if length is not None and got > length:  # cannot happen with HTTP framing
                raise self._fail(MalformedBody(f"the request body is longer than {length} bytes"))
            yield data
        if length is not None and got != length:
            raise self._fail(
                MalformedBody(
                    f"the request body ended after {got} of {length} bytes declared by "
                    "Content-Length"
                )
            )


class _AwsChunkedBody(_StreamingBody):
    """aws-chunked body decoded on the fly; the final piece is held until validation."""

    unchanged = False

    def __init__(
        self,
        stream: ClientStream,
        decoder: AwsChunkedDecoder,
        length: int,
        small_body_bytes: int,
        drop: frozenset[str],
        content_encoding: str | None,
    ) -> None:
        super().__init__(stream, length, small_body_bytes)
        self._decoder = decoder
        self.drop_headers = drop
        if content_encoding:
            self.extra_headers.append(("Content-Encoding", content_encoding))
        self.trailers: dict[str, str] = {}

    async def _pieces(self) -> AsyncIterator[bytes]:
        decoder = self._decoder
        held: bytes | None = None
        try:
            while True:
                data = await self._read()
                if not data:
                    break
                for piece in decoder.feed(data):
                    if held is not None:
                        yield held
                    held = piece
            self.trailers = decoder.finish()
        except ProxyError as exc:
            raise self._fail(exc) from None
        if held is not None:
            yield held


class _SpooledAwsChunkedBody(_AwsChunkedBody):
    """aws-chunked body with a trailing checksum: spooled and verified before forwarding."""

    def __init__(
        self, *args: object, spool_memory_bytes: int, spool_dir: str | None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._spool_memory = spool_memory_bytes
        self._spool_dir = spool_dir
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None

    async def prepare(self) -> None:
        if self.length is not None and self.length <= self._small:
            self._buffered = await self._collect(self._small)
        else:
            # Spool writes are small synchronous page-cache writes: cheaper than a thread hop.
            spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
                max_size=self._spool_memory, dir=self._spool_dir
            )
            self._spool = spool
            async for piece in _AwsChunkedBody._pieces(self):
                spool.write(piece)
            spool.seek(0)
        self._add_checksum_header()

    def _add_checksum_header(self) -> None:
        name = self._decoder.checksum_header
        if name is not None and name in self.trailers:
            self.extra_headers.append((name, self.trailers[name]))

    async def _from_spool(self) -> AsyncIterator[bytes]:
        spool = self._spool
        assert spool is not None
        while True:
            data = spool.read(_SPOOL_READ)
            if not data:
                break
            yield data

    def _data(self) -> bytes | AsyncIterator[bytes] | None:
        if self._spool is not None:
            return self._from_spool()
        return super()._data()

    async def read_all(self, max_bytes: int) -> bytes:
        if self._spool is not None:
            if self.length is not None and self.length > max_bytes:
                raise EntityTooLarge(f"the request body is larger than {max_bytes} bytes")
            self._spool.seek(0)
            data = self._spool.read()
            self._spool.seek(0)
            return data
        return await super().read_all(max_bytes)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


async def _tapped(
    pieces: AsyncIterator[bytes], sink: Callable[[bytes], None]
) -> AsyncIterator[bytes]:
    async for piece in pieces:
        sink(piece)
        yield piece


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise ClientError(f"{name} is not a non-negative integer: {value[:40]!r}")
    return int(value)


def open_request_body(
    headers: Mapping[str, str],
    stream: ClientStream,
    *,
    small_body_bytes: int = 64 * 1024,
    spool_memory_bytes: int = 1024**2,
    spool_dir: str | None = None,
    max_line_bytes: int = 8192,
) -> RequestBody:
    """The right :class:`RequestBody` for a request's framing headers (case-insensitive)."""
    content_length = _int_header(headers, "Content-Length")
    chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
    framing = framing_for(headers.get("x-amz-content-sha256"), headers.get("Content-Encoding"))

    if framing is not None:
        decoded = _int_header(headers, "x-amz-decoded-content-length")
        if decoded is None:
            raise ClientError(
                f"x-amz-decoded-content-length is required with {framing.marker} bodies"
            )
        trailer_names = tuple(
            t.strip() for t in headers.get("x-amz-trailer", "").split(",") if t.strip()
        )
        decoder = AwsChunkedDecoder(
            framing,
            decoded_length=decoded,
            trailer_names=trailer_names,
            max_line_bytes=max_line_bytes,
        )
        # Drop only the aws-chunked token; other codings (gzip, ...) describe the object.
        codings = [
            t.strip()
            for t in headers.get("Content-Encoding", "").split(",")
            if t.strip() and t.strip().lower() != "aws-chunked"
        ]
        drop = frozenset({"content-encoding", "x-amz-decoded-content-length", "x-amz-trailer"})
        ce = ", ".join(codings) or None
        if decoder.checksum_header is not None:
            return _SpooledAwsChunkedBody(
                stream,
                decoder,
                decoded,
                small_body_bytes,
                drop,
                ce,
                spool_memory_bytes=spool_memory_bytes,
                spool_dir=spool_dir,
            )
        return _AwsChunkedBody(stream, decoder, decoded, small_body_bytes, drop, ce)

    if content_length is not None and not chunked:
        if content_length == 0:
            body: RequestBody = _PlainBody(stream, 0, small_body_bytes)
            return body
        return _PlainBody(stream, content_length, small_body_bytes)
    if chunked:
        return _PlainBody(stream, None, small_body_bytes)
    return RequestBody()
