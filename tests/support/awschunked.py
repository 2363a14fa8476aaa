"""Build ``Content-Encoding: aws-chunked`` uploads by hand, in every framing SDKs use.

The chunk and trailer signatures are real (computed from the client's seed signature the way
the SigV4 streaming spec says), so the bytes are what an SDK would send; the proxy must decode
them whatever it thinks of the client's signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from tests.support.backends import Credentials
from tests.support.clients import CLIENT_CREDENTIALS
from tests.support.rawhttp import EMPTY_SHA256, signing_parts, sigv4_headers

SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
VARIANTS = (SIGNED, UNSIGNED_TRAILER, SIGNED_TRAILER)


def checksum_b64(algorithm: str, data: bytes) -> str:
    """The base64 value of an ``x-amz-checksum-<algorithm>`` header for ``data``."""
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm in ("sha1", "sha256"):
        raw = hashlib.new(algorithm, data).digest()
    else:
        raise ValueError(f"no stdlib implementation for {algorithm}")
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class ChunkedUpload:
    headers: dict[str, str]
    body: bytes  # the aws-chunked encoded body (not HTTP-chunked)


def _signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def build(
    url: str,
    data: bytes,
    *,
    variant: str,
    chunk_size: int = 64 * 1024,
    checksum: str = "crc32",
    corrupt_checksum: bool = False,
    declared_length: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    credentials: Credentials = CLIENT_CREDENTIALS,
    region: str = "us-east-1",
    content_encoding: str = "aws-chunked",
    http_chunked: bool = False,
) -> ChunkedUpload:
    """An aws-chunked PUT of ``data`` to ``url`` (which carries the Host to sign).

    ``declared_length`` overrides ``x-amz-decoded-content-length`` (to lie about it);
    ``corrupt_checksum`` puts a wrong value in the trailer. With ``http_chunked`` the headers
    omit ``Content-Length`` (send the body with ``Transfer-Encoding: chunked``).
    """
    trailer = variant in (UNSIGNED_TRAILER, SIGNED_TRAILER)
    headers: dict[str, str] = {
        "Content-Encoding": content_encoding,
        "x-amz-decoded-content-length": str(
            len(data) if declared_length is None else declared_length
        ),
        **(extra_headers or {}),
    }
    if trailer:
        headers["x-amz-trailer"] = f"x-amz-checksum-{checksum}"
        headers["x-amz-sdk-checksum-algorithm"] = checksum.upper()

    # The body length must be known before signing when Content-Length is sent; it doesn't depend
    # on signature values (fixed 64 hex chars), so build once with placeholders to measure it.
    def encode(seed: str, date: str, scope: str) -> bytes:
        key = _signing_key(credentials.secret_key, date, region)
        prev = seed
        out = bytearray()
        pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
        for piece in pieces:
            if variant == UNSIGNED_TRAILER:
                out += b"%x\r\n" % len(piece)
            else:
                to_sign = "\n".join(
                    [
                        "AWS4-HMAC-SHA256-PAYLOAD",
                        date,
                        scope,
                        prev,
                        EMPTY_SHA256,
                        hashlib.sha256(piece).hexdigest(),
                    ]
                )
                prev = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
                out += b"%x;chunk-signature=%s\r\n" % (len(piece), prev.encode())
            if piece:
                out += piece + b"\r\n"
        if trailer:
            value = checksum_b64(checksum, data)
            if corrupt_checksum:
                value = checksum_b64(checksum, data + b"corrupt")
            line = f"x-amz-checksum-{checksum}:{value}"
            out += line.encode() + b"\r\n"
            if variant == SIGNED_TRAILER:
                to_sign = "\n".join(
                    [
                        "AWS4-HMAC-SHA256-TRAILER",
                        date,
                        scope,
                        prev,
                        hashlib.sha256((line + "\n").encode()).hexdigest(),
                    ]
                )
                sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
                out += f"x-amz-trailer-signature:{sig}".encode() + b"\r\n"
        out += b"\r\n"
        return bytes(out)

    if not http_chunked:
        placeholder = encode("0" * 64, "20000101T000000Z", "20000101/us-east-1/s3/aws4_request")
        headers["Content-Length"] = str(len(placeholder))
    signed = sigv4_headers(
        "PUT", url, headers, payload_hash=variant, credentials=credentials, region=region
    )
    date, scope, seed = signing_parts(signed)
    body = encode(seed, date, scope)
    if not http_chunked:
        assert int(signed["Content-Length"]) == len(body)
    return ChunkedUpload(signed, body)
