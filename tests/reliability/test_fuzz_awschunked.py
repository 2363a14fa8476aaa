"""Fuzzing the aws-chunked decoder (pure): any framing and trailer, fed in any split, decodes
or fails with MalformedBody/BadDigest, never another exception, never a hang; a valid encoding
of any body with any chunk sizes decodes to that body."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import time
import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import BadDigest, MalformedBody
from proxy.s3.awschunked import STREAMING_MARKERS, AwsChunkedDecoder, framing_for

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: One decode of a few KiB takes microseconds; this is a hang detector, not a benchmark.
BUDGET = 2.0
SIG = "chunk-signature=" + "a" * 64
MARKERS = sorted(STREAMING_MARKERS)
TRAILERS = st.sampled_from([(), ("x-amz-checksum-crc32",), ("x-amz-checksum-sha256",), ("x",)])


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def decode(marker: str, trailer_names: tuple[str, ...], declared: int, pieces: list[bytes]) -> Any:
    framing = framing_for(marker, "aws-chunked")
    assert framing is not None
    decoder = AwsChunkedDecoder(framing, decoded_length=declared, trailer_names=trailer_names)
    out = b"".join(b"".join(decoder.feed(p)) for p in pieces)
    return out, decoder.finish()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@st.composite
def framings(draw: Any) -> bytes:
    """Chunk streams that are mostly well formed, with random damage."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 5))):
        payload = draw(st.binary(max_size=64))
        size = draw(st.sampled_from([len(payload), len(payload) + 1, max(0, len(payload) - 1)]))
        size_text = draw(st.sampled_from([f"{size:x}", f"{size:X}", f"0{size:x}", "-1", "zz", ""]))
        ext = draw(st.sampled_from(["", ";" + SIG, ";chunk-signature=", ";x=y"]))
        end = draw(st.sampled_from([b"\r\n", b"\n", b""]))
        parts.append(
            f"{size_text}{ext}".encode()
            + end
            + payload
            + draw(st.sampled_from([b"\r\n", b"", b"x\r\n"]))
        )
    parts.append(draw(st.sampled_from([b"0;" + SIG.encode() + b"\r\n", b"0\r\n", b""])))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["x-amz-checksum-crc32", "x-amz-trailer-signature", "x", ""]))
        value = draw(st.sampled_from(["AAAAAA==", "", "a" * 64, "::"]))
        parts.append(f"{name}:{value}".encode() + draw(st.sampled_from([b"\r\n", b""])))
    parts.append(draw(st.sampled_from([b"\r\n", b""])))
    if draw(st.booleans()):
        data = b"".join(parts)
        cut = draw(st.integers(0, len(data)))
        return data[:cut] + draw(st.binary(max_size=8)) + data[cut:]
    return b"".join(parts)


@FUZZ
@given(
    marker=st.sampled_from(MARKERS),
    trailer_names=TRAILERS,
    declared=st.integers(0, 400),
    data=framings() | st.binary(max_size=512),
    cuts=st.lists(st.integers(0, 4096), max_size=6),
)
def test_any_framing_decodes_or_fails_cleanly(
    marker: str, trailer_names: tuple[str, ...], declared: int, data: bytes, cuts: list[int]
) -> None:
    started = time.monotonic()
    with contextlib.suppress(MalformedBody, BadDigest):
        decode(marker, trailer_names, declared, split(data, cuts))
    assert time.monotonic() - started < BUDGET


def encode(body: bytes, sizes: list[int], *, signed: bool, trailer: str | None) -> bytes:
    out, pos, i = [], 0, 0
    ext = (";" + SIG) if signed else ""
    while pos < len(body):
        size = sizes[i % len(sizes)]
        i += 1
        chunk = body[pos : pos + size]
        pos += size
        out.append(f"{len(chunk):x}{ext}\r\n".encode() + chunk + b"\r\n")
    out.append(f"0{ext}\r\n".encode())
    if trailer is not None:
        out.append(f"{trailer}:{crc32_b64(body)}\r\n".encode())
        if signed:
            out.append(b"x-amz-trailer-signature:" + b"b" * 64 + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


@FUZZ
@given(
    body=st.binary(max_size=4096),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    marker=st.sampled_from(MARKERS),
    with_checksum=st.booleans(),
    cuts=st.lists(st.integers(0, 8192), max_size=6),
)
def test_valid_encodings_decode_to_the_body(
    body: bytes, sizes: list[int], marker: str, with_checksum: bool, cuts: list[int]
) -> None:
    signed, has_trailer = STREAMING_MARKERS[marker]
    trailer = "x-amz-checksum-crc32" if (has_trailer and with_checksum) else None
    encoded = encode(body, sizes, signed=signed, trailer=trailer)
    decoded, trailers = decode(
        marker, (trailer,) if trailer else (), len(body), split(encoded, cuts)
    )
    assert decoded == body
    if trailer:
        assert trailers[trailer] == crc32_b64(body)
