"""aws-chunked decoding: all framings, any split of the input, every way to be malformed."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import BadDigest, MalformedBody
from proxy.s3.awschunked import AwsChunkedDecoder, Framing, framing_for
from proxy.s3.checksums import new_checksum

SIGNED = framing_for("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "aws-chunked")
UNSIGNED_TRAILER = framing_for("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "aws-chunked")
SIGNED_TRAILER = framing_for("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "aws-chunked")
SIG = "chunk-signature=" + "0" * 64


def b64(alg: str, data: bytes) -> str:
    c = new_checksum(alg)
    c.update(data)
    return c.b64digest()


def encode(
    data: bytes,
    framing: Framing,
    *,
    chunk: int = 7,
    trailers: dict[str, str] | None = None,
    final_crlf: bool = True,
) -> bytes:
    ext = f";{SIG}" if framing.signed else ""
    out = bytearray()
    for i in range(0, len(data), chunk):
        piece = data[i : i + chunk]
        out += f"{len(piece):x}{ext}\r\n".encode() + piece + b"\r\n"
    out += f"0{ext}\r\n".encode()
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    if framing.signed and framing.trailer and trailers:
        out += b"x-amz-trailer-signature:" + b"1" * 64 + b"\r\n"
    if final_crlf:
        out += b"\r\n"
    return bytes(out)


def decode(
    body: bytes,
    framing: Framing,
    declared: int,
    trailer_names: tuple[str, ...] = (),
    splits: list[int] | None = None,
) -> tuple[bytes, dict[str, str]]:
    dec = AwsChunkedDecoder(framing, decoded_length=declared, trailer_names=trailer_names)
    out = bytearray()
    pos = 0
    for cut in sorted(splits or []):
        for piece in dec.feed(body[pos:cut]):
            out += piece
        pos = cut
    for piece in dec.feed(body[pos:]):
        out += piece
    return bytes(out), dec.finish()


def test_framing_detection() -> None:
    assert framing_for("UNSIGNED-PAYLOAD", None) is None
    assert framing_for("e3b0" * 16, "gzip") is None
    assert SIGNED is not None
    assert (SIGNED.signed, SIGNED.trailer) == (True, False)
    assert UNSIGNED_TRAILER.trailer and not UNSIGNED_TRAILER.signed
    assert SIGNED_TRAILER.trailer and SIGNED_TRAILER.signed
    lenient = framing_for(None, "gzip, aws-chunked")
    assert lenient is not None and lenient.signed is None


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
@pytest.mark.parametrize("framing", [UNSIGNED_TRAILER, SIGNED_TRAILER], ids=["unsigned", "signed"])
def test_trailer_checksums_are_verified(alg: str, framing: Framing) -> None:
    data = os.urandom(1000)
    name = f"x-amz-checksum-{alg}"
    body = encode(data, framing, chunk=300, trailers={name: b64(alg, data)})
    out, trailers = decode(body, framing, len(data), (name,))
    assert out == data
    assert trailers[name] == b64(alg, data)
    bad = encode(data, framing, chunk=300, trailers={name: b64(alg, data + b"x")})
    with pytest.raises(BadDigest, match=f"{name} trailer .* does not match"):
        decode(bad, framing, len(data), (name,))


def test_signed_payload_without_trailer() -> None:
    data = b"hello world, this is aws-chunked"
    assert decode(encode(data, SIGNED), SIGNED, len(data)) == (data, {})


def test_empty_body() -> None:
    name = "x-amz-checksum-crc32"
    body = encode(b"", UNSIGNED_TRAILER, trailers={name: b64("crc32", b"")})
    assert decode(body, UNSIGNED_TRAILER, 0, (name,))[0] == b""


def test_known_boto3_body() -> None:
    # Exactly what botocore's AwsChunkedWrapper produces for b"hello" with CRC32.
    crc = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
    out, trailers = decode(body, UNSIGNED_TRAILER, 5, ("x-amz-checksum-crc32",))
    assert out == b"hello" and trailers == {"x-amz-checksum-crc32": crc}


def test_missing_final_crlf_after_trailer_is_tolerated() -> None:
    name = "x-amz-checksum-sha256"
    data = b"abc"
    body = encode(data, UNSIGNED_TRAILER, trailers={name: b64("sha256", data)}, final_crlf=False)
    assert decode(body, UNSIGNED_TRAILER, 3, (name,))[0] == data


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=300),
    chunk=st.integers(min_value=1, max_value=64),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    framing=st.sampled_from([SIGNED, UNSIGNED_TRAILER, SIGNED_TRAILER]),
)
def test_any_split_decodes_the_same(
    data: bytes, chunk: int, cuts: list[int], framing: Framing
) -> None:
    trailers = {"x-amz-checksum-crc32": b64("crc32", data)} if framing.trailer else {}
    body = encode(data, framing, chunk=chunk, trailers=trailers)
    splits = [c % (len(body) + 1) for c in cuts]
    out, got = decode(body, framing, len(data), tuple(trailers), splits)
    assert out == data
    for k, v in trailers.items():
        assert got[k] == v


@pytest.mark.parametrize(
    ("body", "declared", "message"),
    [
        (b"zz\r\nab\r\n0\r\n\r\n", 2, "invalid chunk size 'zz'"),
        (b"-2\r\nab\r\n0\r\n\r\n", 2, "invalid chunk size"),
        (b"\r\nab\r\n0\r\n\r\n", 2, "invalid chunk size ''"),
        (b"2\r\nabc\r\n0\r\n\r\n", 3, "not followed by CRLF"),
        (b"3\r\nab\r\n0\r\n\r\n", 3, "not followed by CRLF"),
        (b"2\nab\r\n0\r\n\r\n", 2, "not terminated by CRLF"),
        (b"2\r\nab\r\n", 2, "before the final zero-length chunk"),
        (b"4\r\nab", 4, r"in the middle of chunk 0 \(2 of 4 bytes\)"),
        (b"2\r\nab\r\n0\r\n\r\n", 3, "decodes to 2 bytes but x-amz-decoded-content-length is 3"),
        (b"3\r\nabc\r\n0\r\n\r\n", 2, "more than the 2 left"),
        (b"2\r\nab\r\n0\r\n\r\nGARBAGE", 2, "unexpected bytes after the final"),
        (b"2\r\nab\r\n0\r\nx-amz-foo:1\r\n\r\n", 2, "has no trailer section"),
        (b"2\r\nab\r\n0\r\n", 2, "in the trailer section"),
        (b"1" * 20 + b"\r\n", 2, "invalid chunk size"),
    ],
)
def test_malformed_framing(body: bytes, declared: int, message: str) -> None:
    framing = Framing(signed=False, trailer=False, marker="STREAMING-UNSIGNED-PAYLOAD")
    with pytest.raises(MalformedBody, match=message):
        decode(body, framing, declared)


def test_signed_framing_requires_chunk_signatures() -> None:
    with pytest.raises(MalformedBody, match="has no chunk-signature"):
        decode(b"2\r\nab\r\n0\r\n\r\n", SIGNED, 2)


def test_announced_trailer_must_be_present() -> None:
    body = encode(b"ab", UNSIGNED_TRAILER)
    with pytest.raises(MalformedBody, match="announced but missing"):
        decode(body, UNSIGNED_TRAILER, 2, ("x-amz-checksum-crc32",))


def test_signed_trailer_requires_trailer_signature() -> None:
    name = "x-amz-checksum-crc32"
    body = encode(b"ab", SIGNED_TRAILER, trailers={name: b64("crc32", b"ab")})
    assert decode(body, SIGNED_TRAILER, 2, (name,))[0] == b"ab"
    stripped = body.replace(b"x-amz-trailer-signature:" + b"1" * 64 + b"\r\n", b"")
    assert stripped != body
    with pytest.raises(MalformedBody, match="x-amz-trailer-signature is missing"):
        decode(stripped, SIGNED_TRAILER, 2, (name,))


def test_overlong_size_line_is_rejected_without_buffering_it() -> None:
    dec = AwsChunkedDecoder(UNSIGNED_TRAILER, decoded_length=10, max_line_bytes=64)
    with pytest.raises(MalformedBody, match="longer than 64 bytes"):
        for _ in range(100):
            dec.feed(b"a" * 10)


def test_unsupported_or_duplicate_checksum_trailers() -> None:
    with pytest.raises(MalformedBody, match="unsupported checksum trailer"):
        AwsChunkedDecoder(UNSIGNED_TRAILER, decoded_length=1, trailer_names=("x-amz-checksum-md5",))
    with pytest.raises(MalformedBody, match="more than one checksum"):
        AwsChunkedDecoder(
            UNSIGNED_TRAILER,
            decoded_length=1,
            trailer_names=("x-amz-checksum-crc32", "x-amz-checksum-sha1"),
        )
    with pytest.raises(MalformedBody, match="has no trailer section"):
        AwsChunkedDecoder(SIGNED, decoded_length=1, trailer_names=("x-amz-checksum-crc32",))


def test_large_chunks_pass_through_without_copies() -> None:
    data = os.urandom(1 << 20)
    head = f"{len(data):x}\r\n".encode()
    dec = AwsChunkedDecoder(UNSIGNED_TRAILER, decoded_length=len(data))
    assert dec.feed(head) == []
    pieces = dec.feed(data)
    assert pieces[0] is data  # a whole-payload feed is handed back as is
    dec.feed(b"\r\n0\r\n\r\n")
    dec.finish()


@pytest.mark.parametrize(
    ("alg", "check"),
    [
        ("crc32", "cbf43926"),
        ("crc32c", "e3069283"),
        ("crc64nvme", "ae8b14860a799888"),
        ("sha1", hashlib.sha1(b"123456789").hexdigest()),
        ("sha256", hashlib.sha256(b"123456789").hexdigest()),
    ],
)
def test_checksum_check_values(alg: str, check: str) -> None:
    c = new_checksum(alg)
    c.update(b"1234")
    c.update(memoryview(b"56789"))
    assert base64.b64decode(c.b64digest()).hex() == check
