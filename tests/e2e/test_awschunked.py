"""``Content-Encoding: aws-chunked``: real boto3 over the TLS listener, and every framing by hand.

The proxy decodes the framing, checks any trailing checksum and forwards the decoded bytes; a
malformed body is a 400 with nothing written upstream.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import boto3.s3.transfer
import pytest

from tests.support import awschunked
from tests.support.awschunked import SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER, VARIANTS
from tests.support.backends import Backend
from tests.support.clients import boto3_client, sha256_of_file
from tests.support.proxy import ProxyProcess, TLSFiles
from tests.support.rawhttp import Response, request_head, send, send_raw

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def tls_proxy(backend: Backend, proxy_factory, tls_files: TLSFiles) -> Iterator[ProxyProcess]:
    p = proxy_factory(backend, tls=tls_files)
    yield p
    p.stop()


def _recording_client(proxy: ProxyProcess) -> tuple[object, list[dict[str, str]]]:
    client = boto3_client(proxy, checksum_mode="default")
    seen: list[dict[str, str]] = []

    def record(request, **_kwargs) -> None:
        seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )

    client.meta.events.register("before-send.s3", record)
    return client, seen


def test_boto3_over_tls_sends_aws_chunked_and_decoded_bytes_are_stored(
    tls_proxy: ProxyProcess, backend: Backend, bucket: str
) -> None:
    client, seen = _recording_client(tls_proxy)
    body = os.urandom(300_000)
    client.put_object(Bucket=bucket, Key="chunked", Body=body)
    # Prove the real client really used aws-chunked here (else this test proves nothing).
    put = [h for h in seen if "aws-chunked" in h.get("content-encoding", "")]
    assert put, f"boto3 didn't send aws-chunked: {seen}"
    assert put[0]["x-amz-content-sha256"] == UNSIGNED_TRAILER
    stored = backend.direct.head_object(Bucket=bucket, Key="chunked")
    assert stored["ContentLength"] == len(body)
    assert "aws-chunked" not in stored.get("ContentEncoding", "")
    assert backend.sha256(bucket, "chunked") == hashlib.sha256(body).hexdigest()
    got = client.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == body


def test_boto3_over_tls_trailer_checksum_kept_upstream(
    tls_proxy: ProxyProcess, backend: Backend, bucket: str
) -> None:
    """The CRC32 the client sent in the trailer is the object's checksum upstream too."""
    import base64
    import zlib

    client, _ = _recording_client(tls_proxy)
    body = os.urandom(50_000)
    client.put_object(Bucket=bucket, Key="crc", Body=body)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    head = backend.direct.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == crc


def test_boto3_over_tls_multipart_upload(
    tls_proxy: ProxyProcess, backend: Backend, bucket: str, tmp_path: Path
) -> None:
    client, seen = _recording_client(tls_proxy)
    src = tmp_path / "mp.bin"
    src.write_bytes(os.urandom(17 * MiB))
    cfg = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    client.upload_file(str(src), bucket, "tls/mp.bin", Config=cfg)
    assert sum("aws-chunked" in h.get("content-encoding", "") for h in seen) >= 3
    assert backend.sha256(bucket, "tls/mp.bin") == sha256_of_file(src)


def _put(proxy: ProxyProcess, bucket: str, key: str, up: awschunked.ChunkedUpload, chunked: bool):
    return send(
        proxy.endpoint, "PUT", f"/{bucket}/{key}", headers=up.headers, body=up.body, chunked=chunked
    )


def _url(proxy: ProxyProcess, bucket: str, key: str) -> str:
    return f"{proxy.endpoint}/{bucket}/{key}"


@pytest.mark.parametrize("http_chunked", [False, True], ids=["content-length", "te-chunked"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_hand_made_framings_store_decoded_bytes(
    proxy: ProxyProcess, backend: Backend, bucket: str, variant: str, http_chunked: bool
) -> None:
    data = os.urandom(200_001)
    up = awschunked.build(
        _url(proxy, bucket, "hand"),
        data,
        variant=variant,
        chunk_size=64 * 1024,
        http_chunked=http_chunked,
    )
    resp = _put(proxy, bucket, "hand", up, http_chunked)
    assert resp.status == 200, resp.body
    assert backend.read(bucket, "hand") == data


@pytest.mark.parametrize("checksum", ["crc32", "sha1", "sha256"])
def test_trailer_checksum_algorithms(proxy, backend: Backend, bucket: str, checksum: str) -> None:
    data = os.urandom(70_000)
    up = awschunked.build(
        _url(proxy, bucket, "alg"), data, variant=UNSIGNED_TRAILER, checksum=checksum
    )
    resp = _put(proxy, bucket, "alg", up, False)
    assert resp.status == 200, resp.body
    assert backend.read(bucket, "alg") == data


def test_other_content_encodings_are_kept(proxy: ProxyProcess, backend: Backend, bucket: str):
    import gzip

    data = gzip.compress(b'{"hello": "world"}' * 1000)
    up = awschunked.build(
        _url(proxy, bucket, "gz"), data, variant=SIGNED, content_encoding="aws-chunked,gzip"
    )
    resp = _put(proxy, bucket, "gz", up, False)
    assert resp.status == 200, resp.body
    head = backend.direct.head_object(Bucket=bucket, Key="gz")
    assert head.get("ContentEncoding") == "gzip"
    assert backend.read(bucket, "gz") == data


def _assert_rejected(resp: Response | None, backend: Backend, bucket: str, key: str) -> None:
    assert resp is not None, "connection closed without an answer"
    assert resp.status == 400, (resp.status, resp.body)
    err = resp.error()
    assert err["Code"] in {"IncompleteBody", "BadDigest", "InvalidRequest", "InvalidArgument"}
    assert err["Message"], "the error must say what is wrong"
    assert err.get("RequestId")
    assert not backend.exists(bucket, key), "a malformed upload must not be written"


@pytest.mark.parametrize("variant", [UNSIGNED_TRAILER, SIGNED_TRAILER])
def test_bad_trailer_checksum_is_400_and_nothing_written(
    proxy: ProxyProcess, backend: Backend, bucket: str, variant: str
) -> None:
    data = os.urandom(150_000)
    up = awschunked.build(
        _url(proxy, bucket, "badsum"), data, variant=variant, corrupt_checksum=True
    )
    resp = _put(proxy, bucket, "badsum", up, False)
    _assert_rejected(resp, backend, bucket, "badsum")
    assert resp.error()["Code"] == "BadDigest"


@pytest.mark.parametrize("declared_delta", [-1, +1, +100_000])
@pytest.mark.parametrize("variant", VARIANTS)
def test_decoded_length_mismatch_is_400(
    proxy, backend: Backend, bucket: str, variant: str, declared_delta: int
) -> None:
    data = os.urandom(100_000)
    up = awschunked.build(
        _url(proxy, bucket, "len"),
        data,
        variant=variant,
        declared_length=len(data) + declared_delta,
    )
    _assert_rejected(_put(proxy, bucket, "len", up, False), backend, bucket, "len")


def _mangle(body: bytes, how: str) -> bytes:
    first_line_end = body.index(b"\r\n")
    size_token = body[:first_line_end].split(b";")[0]
    if how == "non-hex-size":
        return b"zz" + body[len(size_token) :]
    if how == "missing-crlf-after-data":
        start = first_line_end + 2 + int(size_token, 16)
        return body[:start] + b"XX" + body[start + 2 :]
    if how == "no-final-chunk":  # cut just before the zero-size chunk
        return body[: body.rfind(b"\r\n0") + 2]
    if how == "oversized-chunk-header":  # a 20 kB chunk-size line (slow-loris style)
        return b"1" + b"0" * 20000 + body[len(size_token) :]
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["non-hex-size", "missing-crlf-after-data", "no-final-chunk", "oversized-chunk-header"]
)
@pytest.mark.parametrize("variant", [SIGNED, UNSIGNED_TRAILER])
def test_bad_framing_is_400_and_nothing_written(
    proxy: ProxyProcess, backend: Backend, bucket: str, variant: str, how: str
) -> None:
    data = os.urandom(100_000)
    up = awschunked.build(_url(proxy, bucket, "frame"), data, variant=variant, chunk_size=32768)
    body = _mangle(up.body, how)
    headers = {k: v for k, v in up.headers.items() if k.lower() != "content-length"}
    headers["Content-Length"] = str(len(body))
    headers["Host"] = f"127.0.0.1:{proxy.port}"
    resp = send_raw(proxy.endpoint, request_head("PUT", f"/{bucket}/frame", headers), body)
    _assert_rejected(resp, backend, bucket, "frame")
