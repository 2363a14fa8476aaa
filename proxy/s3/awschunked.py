"""Incremental decoder for S3's ``Content-Encoding: aws-chunked`` bodies (pure, bounded memory).

Framing (after any HTTP ``Transfer-Encoding: chunked`` has been removed by the HTTP server)::

    <hex-size>[;chunk-signature=<sig>]\\r\\n<size bytes>\\r\\n   ... repeated ...
    0[;chunk-signature=<sig>]\\r\\n
    [<trailer-name>:<value>\\r\\n ...]          (the *-TRAILER framings)
    \\r\\n

covering ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` and
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` (and their SigV4a ECDSA twins). The decoder never
buffers payload: data bytes are handed back as they arrive; only a size line or trailer line is
accumulated, bounded by ``max_line_bytes`` (default 8 KiB) so a malicious client cannot make it
grow. Everything it rejects raises :class:`~proxy.errors.MalformedBody` (framing) or
:class:`~proxy.errors.BadDigest` (trailing checksum mismatch) with a precise message.

Chunk signatures (``chunk-signature=``, ``x-amz-trailer-signature``) are parsed for presence but
not verified: the proxy does not verify client signatures at all (see ``docs/security.md``), and
the body it forwards is re-signed by the proxy. Integrity of the decoded bytes is checked through
the declared decoded length and the trailing checksum, which *is* verified.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.errors import BadDigest, MalformedBody
from proxy.s3.checksums import Checksum, algorithm_of_header, new_checksum

__all__ = [
    "STREAMING_MARKERS",
    "AwsChunkedDecoder",
    "Framing",
    "framing_for",
]

#: x-amz-content-sha256 values announcing an aws-chunked body → (signed chunks, trailer).
STREAMING_MARKERS: dict[str, tuple[bool, bool]] = {
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD": (True, False),
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": (True, True),
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER": (False, True),
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD": (True, False),
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER": (True, True),
}


@dataclass(frozen=True, slots=True)
class Framing:
    #: Chunks carry ``;chunk-signature=``; None = not announced (accept either).
    signed: bool | None
    #: Trailer lines may follow the final chunk.
    trailer: bool
    marker: str


def framing_for(content_sha256: str | None, content_encoding: str | None) -> Framing | None:
    """The framing a request announces, or None if its body is not aws-chunked."""
    marker = (content_sha256 or "").strip()
    known = STREAMING_MARKERS.get(marker)
    if known is not None:
        return Framing(signed=known[0], trailer=known[1], marker=marker)
    if not content_encoding:  # the usual case: no tokens to look at
        return None
    tokens = [t.strip().lower() for t in content_encoding.split(",")]
    if "aws-chunked" in tokens:
        return Framing(signed=None, trailer=True, marker=marker or "aws-chunked")
    return None


_SIZE, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)
_MAX_HEX_DIGITS = 16


class AwsChunkedDecoder:
    """Push decoder: ``feed()`` encoded bytes, get decoded pieces; ``finish()`` at EOF."""

    def __init__(
        self,
        framing: Framing,
        *,
        decoded_length: int,
        trailer_names: tuple[str, ...] = (),
        max_line_bytes: int = 8192,
    ) -> None:
        self._framing = framing
        self._declared = decoded_length
        self._trailer_names = tuple(n.strip().lower() for n in trailer_names if n.strip())
        self._max_line = max_line_bytes
        self._state = _SIZE
        self._line = bytearray()
        self._remaining = 0
        self._decoded = 0
        self._offset = 0  # encoded bytes consumed, for error messages
        self._chunk = 0  # index of the current chunk
        self._chunk_size = 0
        self._trailers: dict[str, str] = {}
        self._checksum: Checksum | None = None
        self._checksum_header: str | None = None
        if self._trailer_names and not framing.trailer:
            raise MalformedBody(f"x-amz-trailer is set but {framing.marker} has no trailer section")
        for name in self._trailer_names:
            alg = algorithm_of_header(name)
            if alg is not None:
                if self._checksum is not None:
                    raise MalformedBody("x-amz-trailer names more than one checksum")
                self._checksum = new_checksum(alg)
                self._checksum_header = name
            elif name.startswith("x-amz-checksum-"):
                raise MalformedBody(f"unsupported checksum trailer {name!r}")

    @property
    def decoded_bytes(self) -> int:
        return self._decoded

    @property
    def checksum_header(self) -> str | None:
        """The ``x-amz-checksum-*`` header name announced as a trailer, if any."""
        return self._checksum_header

    def feed(self, data: bytes) -> list[bytes]:
        """Consume encoded bytes; return the decoded payload they contain (possibly none)."""
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, n - pos)
                piece = data if (pos == 0 and take == n) else data[pos : pos + take]
                self._emit(piece, out)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_CRLF
            elif state == _DATA_CRLF:
                need = 2 - len(self._line)
                self._line += data[pos : pos + need]
                pos += min(need, n - pos)
                if len(self._line) == 2:
                    if self._line != b"\r\n":
                        raise MalformedBody(
                            f"aws-chunked chunk {self._chunk} ({self._chunk_size} bytes) is not "
                            f"followed by CRLF at byte {self._offset + pos - 2}: the chunk is "
                            "longer than its declared size"
                        )
                    self._line.clear()
                    self._chunk += 1
                    self._state = _SIZE
            elif state in (_SIZE, _TRAILER):
                idx = data.find(b"\n", pos)
                end = n if idx == -1 else idx + 1
                self._line += data[pos:end]
                pos = end
                if len(self._line) > self._max_line:
                    what = "chunk-size line" if state == _SIZE else "trailer line"
                    raise MalformedBody(
                        f"aws-chunked {what} longer than {self._max_line} bytes near byte "
                        f"{self._offset + pos}"
                    )
                if idx != -1:
                    line = bytes(self._line)
                    self._line.clear()
                    if not line.endswith(b"\r\n"):
                        raise MalformedBody(
                            f"aws-chunked line not terminated by CRLF at byte {self._offset + pos}"
                        )
                    if state == _SIZE:
                        self._size_line(line[:-2], self._offset + pos)
                    else:
                        self._trailer_line(line[:-2], self._offset + pos)
            else:  # _DONE
                raise MalformedBody(
                    f"{n - pos} unexpected bytes after the final aws-chunked chunk "
                    f"(at byte {self._offset + pos})"
                )
        self._offset += n
        return out

    def _emit(self, piece: bytes, out: list[bytes]) -> None:
        self._decoded += len(piece)
        if self._decoded > self._declared:
            raise MalformedBody(
                f"aws-chunked body decodes to more than x-amz-decoded-content-length "
                f"({self._declared}) bytes"
            )
        if self._checksum is not None:
            self._checksum.update(piece)
        out.append(piece)

    def _size_line(self, line: bytes, at: int) -> None:
        size_part, _, ext = line.partition(b";")
        size_text = size_part.strip()
        if (
            not size_text
            or len(size_text) > _MAX_HEX_DIGITS
            or any(c not in b"0123456789abcdefABCDEF" for c in size_text)
        ):
            shown = size_text[:32].decode("ascii", "backslashreplace")
            raise MalformedBody(
                f"aws-chunked chunk {self._chunk}: invalid chunk size {shown!r} at byte {at}"
            )
        size = int(size_text, 16)
        if self._framing.signed and not ext.strip().startswith(b"chunk-signature="):
            raise MalformedBody(
                f"aws-chunked chunk {self._chunk} has no chunk-signature "
                f"({self._framing.marker} requires one)"
            )
        if size > self._declared - self._decoded:
            raise MalformedBody(
                f"aws-chunked chunk {self._chunk} declares {size} bytes, more than the "
                f"{self._declared - self._decoded} left of x-amz-decoded-content-length "
                f"({self._declared})"
            )
        self._chunk_size = size
        if size == 0:
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _trailer_line(self, line: bytes, at: int) -> None:
        if not line:
            self._state = _DONE
            return
        if not self._framing.trailer:
            raise MalformedBody(
                f"unexpected data after the final aws-chunked chunk at byte {at} "
                f"({self._framing.marker} has no trailer section)"
            )
        name_b, sep, value_b = line.partition(b":")
        name = name_b.decode("latin-1").strip().lower()
        if not sep or not name:
            raise MalformedBody(f"malformed aws-chunked trailer line at byte {at}")
        if name in self._trailers:
            raise MalformedBody(f"aws-chunked trailer {name!r} appears twice")
        self._trailers[name] = value_b.decode("latin-1").strip()

    def finish(self) -> dict[str, str]:
        """Validate the end of the body; return the trailers (lower-case names)."""
        state = self._state
        # Tolerated: EOF right after the last trailer line without the closing empty line.
        if state == _TRAILER and not self._line and self._trailers:
            state = self._state = _DONE
        if state != _DONE:
            if state == _DATA:
                where = (
                    f"in the middle of chunk {self._chunk} "
                    f"({self._chunk_size - self._remaining} of {self._chunk_size} bytes)"
                )
            elif state == _TRAILER:
                where = "in the trailer section"
            else:
                where = "before the final zero-length chunk"
            raise MalformedBody(
                f"aws-chunked body ended {where}: {self._decoded} of "
                f"{self._declared} decoded bytes received"
            )
        if self._decoded != self._declared:
            raise MalformedBody(
                f"aws-chunked body decodes to {self._decoded} bytes but "
                f"x-amz-decoded-content-length is {self._declared}"
            )
        for name in self._trailer_names:
            if name not in self._trailers:
                raise MalformedBody(f"aws-chunked trailer {name!r} announced but missing")
        if (
            self._framing.signed
            and self._framing.trailer
            and self._trailer_names
            and "x-amz-trailer-signature" not in self._trailers
        ):
            raise MalformedBody("aws-chunked trailer x-amz-trailer-signature is missing")
        if self._checksum is not None and self._checksum_header is not None:
            sent = self._trailers[self._checksum_header]
            actual = self._checksum.b64digest()
            if sent != actual:
                raise BadDigest(
                    f"the {self._checksum_header} trailer ({sent}) does not match the "
                    f"{self._checksum.name.upper()} of the {self._decoded} decoded bytes "
                    f"({actual})"
                )
        return dict(self._trailers)
