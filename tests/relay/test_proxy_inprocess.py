"""The proxy in-process against a scripted fake upstream: what goes upstream, what comes back."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import zlib
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from lxml import etree
from yarl import URL

from tests.support.inprocess import (
    ACCESS_KEY,
    FakeUpstream,
    Seen,
    data_url,
    metrics_url,
    raw_exchange,
    verify_sigv4,
)

CLIENT_AUTH = (
    "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "c" * 64
)


async def send(
    url: str,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    data: Any = None,
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.request(
            method,
            URL(url + target, encoded=True),
            headers=headers,
            data=data,
            skip_auto_headers=("Content-Type",),
        ) as resp,
    ):
        # raw_headers: the names exactly as the proxy sent them.
        headers = {k.decode(): v.decode() for k, v in resp.raw_headers}
        return resp.status, headers, await resp.read()


def parse_error(body: bytes) -> dict[str, str]:
    root = etree.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


async def test_raw_paths_arrive_byte_for_byte(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    targets = [
        "/b/a%20b%2Bc%3A%24~/x//y/",
        "/b/%C3%BCn%C3%AF/%C3%A7",
        "/b/slash%2Fkey",
        "/b/trailing/",
        "/b//leading",
        "/b/k?versionId=abc%2B1&partNumber=2",
        "/b?list-type=2&prefix=a%2Fb&encoding-type=url",
    ]
    for t in targets:
        status, _, _ = await send(data_url(proxy), "GET", t)
        assert status == 200
    assert [s.raw_path for s in fake_upstream.seen] == [
        *targets[:-2],
        "/b/k?versionId=abc%2B1&partNumber=2",
        "/b?list-type=2&prefix=a%2Fb&encoding-type=url",
    ]
    for s in fake_upstream.seen:
        verify_sigv4(s)


async def test_virtual_hosted_client_is_forwarded_path_style(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    await send(data_url(proxy), "GET", "/dir/k%20x?tagging", headers={"Host": "shop.localhost"})
    seen = fake_upstream.seen[-1]
    assert seen.raw_path == "/shop/dir/k%20x?tagging"
    assert seen.header("Host") == f"127.0.0.1:{fake_upstream.server.port}"
    verify_sigv4(seen)


async def test_client_auth_is_stripped_and_every_header_is_signed(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    body = os.urandom(5000)
    digest = hashlib.sha256(body).hexdigest()
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    headers = {
        "Authorization": CLIENT_AUTH,
        "X-Amz-Security-Token": "CLIENT-SESSION-TOKEN",
        "X-Amz-Date": "20240101T000000Z",
        "Date": "Mon, 01 Jan 2024 00:00:00 GMT",
        "x-amz-content-sha256": digest,
        "x-amz-checksum-crc32": crc,
        "x-amz-sdk-checksum-algorithm": "CRC32",
        "Content-MD5": md5,
        "Content-Type": "application/xml",
        "x-amz-meta-owner": "team a",
        "x-amz-tagging": "a=b",
        "Cache-Control": "no-cache",
        "Connection": "keep-alive, x-hop",
        "x-hop": "must not pass",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "Expect": "100-continue",
    }
    status, resp_headers, _ = await send(data_url(proxy), "PUT", "/b/k", headers=headers, data=body)
    assert status == 200
    assert resp_headers["x-amz-request-id"] == "UPSTREAMREQ1"
    seen = fake_upstream.seen[-1]
    assert seen.body == body
    names = seen.names()
    for gone in (
        "x-amz-security-token",
        "date",
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "expect",
    ):
        assert gone not in names, gone
    assert "CLIENTKEY" not in seen.header("Authorization")
    assert f"Credential={ACCESS_KEY}/" in seen.header("Authorization")
    # The client's checksums and payload hash go upstream unchanged with the unchanged body.
    assert seen.header("x-amz-content-sha256") == digest
    assert seen.header("x-amz-checksum-crc32") == crc
    assert seen.header("Content-MD5") == md5
    assert seen.header("Content-Length") == "5000"
    signed = verify_sigv4(seen)
    unsigned = names - set(signed) - {"authorization"}
    assert unsigned <= {"user-agent"}, unsigned  # botocore never signs User-Agent
    assert {
        "x-amz-meta-owner",
        "x-amz-checksum-crc32",
        "content-md5",
        "content-type",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-tagging",
        "host",
    } <= set(signed)


async def test_presigned_queries_are_stripped(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    await send(
        data_url(proxy),
        "GET",
        "/b/k?AWSAccessKeyId=CLIENTKEY&Signature=c2lnbmF0dXJl&Expires=1700000000"
        "&response-content-type=text%2Fplain",
    )
    await send(
        data_url(proxy),
        "GET",
        "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=CLIENTKEY%2F20240101%2F"
        "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60"
        "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=TOK&X-Amz-Signature=" + "d" * 64,
    )
    assert fake_upstream.seen[0].raw_path == "/b/k?response-content-type=text%2Fplain"
    assert fake_upstream.seen[1].raw_path == "/b/k"
    for s in fake_upstream.seen:
        verify_sigv4(s)
        # No payload hash from a presigned GET: the empty body's hash is signed.
        assert s.header("x-amz-content-sha256") == hashlib.sha256(b"").hexdigest()


async def test_unsigned_payload_when_client_hash_is_not_a_digest(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    await send(
        data_url(proxy),
        "PUT",
        "/b/k",
        data=b"abc",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
    )
    await send(data_url(proxy), "PUT", "/b/k2", data=b"abc")
    assert [s.header("x-amz-content-sha256") for s in fake_upstream.seen] == [
        "UNSIGNED-PAYLOAD",
        "UNSIGNED-PAYLOAD",
    ]


async def test_upstream_errors_pass_through_unchanged(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        b"<Message>The specified key does not exist.</Message><Key>k</Key>"
        b"<RequestId>UP123</RequestId></Error>"
    )

    async def not_found(_r: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        return web.Response(
            status=404,
            body=doc,
            headers={
                "Content-Type": "application/xml",
                "x-amz-request-id": "UP123",
                "x-amz-id-2": "ID2+/=",
                "x-amz-delete-marker": "true",
            },
        )

    fake_upstream.respond = not_found
    proxy = await start_inprocess_proxy(fake_upstream.url)
    status, headers, body = await send(data_url(proxy), "GET", "/b/k")
    assert (status, body) == (404, doc)
    assert headers["x-amz-request-id"] == "UP123"
    assert headers["x-amz-id-2"] == "ID2+/="
    assert headers["x-amz-delete-marker"] == "true"
    status, headers, body = await send(data_url(proxy), "HEAD", "/b/k")
    assert status == 404 and body == b""
    assert headers["Content-Length"] == str(len(doc))


async def test_head_keeps_content_length_and_headers(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    async def head(request: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                "ETag": '"abc"',
                "Content-Type": "application/json",
                "x-amz-meta-a": "1",
                "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT",
            },
        )
        resp.content_length = 123456
        await resp.prepare(request)
        await resp.write_eof()
        return resp

    fake_upstream.respond = head
    proxy = await start_inprocess_proxy(fake_upstream.url)
    status, headers, body = await send(data_url(proxy), "HEAD", "/b/k")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == "123456"
    assert headers["ETag"] == '"abc"'
    assert headers["x-amz-meta-a"] == "1"


async def test_large_bodies_stream_both_ways(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    payload = os.urandom(9 * 1024 * 1024 + 17)

    async def echo(_r: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        return web.Response(
            body=seen.body,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
        )

    fake_upstream.respond = echo
    proxy = await start_inprocess_proxy(fake_upstream.url)

    async def gen() -> Any:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    status, headers, body = await send(
        data_url(proxy),
        "PUT",
        "/b/big",
        data=gen(),
        headers={"Content-Length": str(len(payload))},
    )
    assert status == 200
    assert body == payload  # gzip not decoded on the way back
    assert headers["Content-Encoding"] == "gzip"
    assert fake_upstream.seen[-1].body == payload
    assert fake_upstream.seen[-1].header("Content-Length") == str(len(payload))


async def test_unreachable_upstream_is_503(start_inprocess_proxy, unused_tcp_port_factory) -> None:
    proxy = await start_inprocess_proxy(f"http://127.0.0.1:{unused_tcp_port_factory()}")
    status, headers, body = await send(data_url(proxy), "GET", "/b/k?versionId=SECRETQ")
    assert status == 503
    err = parse_error(body)
    assert err["Code"] == "ServiceUnavailable"
    assert "unreachable" in err["Message"]
    assert err["Resource"] == "/b/k"
    assert err["RequestId"] == headers["x-amz-request-id"]
    assert headers["Content-Type"] == "application/xml"


async def test_slow_upstream_times_out_with_503(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    async def slow(_r: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    fake_upstream.respond = slow
    proxy = await start_inprocess_proxy(fake_upstream.url, upstream={"read_timeout": 0.3})
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, body = await send(data_url(proxy), "GET", "/b/k")
    assert status == 503
    assert parse_error(body)["Message"].endswith("did not answer in time")
    assert loop.time() - started < 3


async def test_expect_100_continue(fake_upstream: FakeUpstream, start_inprocess_proxy) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    host, port = proxy.addresses.data
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"hello")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert final.startswith(b"HTTP/1.1 200")
    writer.close()
    assert fake_upstream.seen[-1].body == b"hello"
    assert "expect" not in fake_upstream.seen[-1].names()


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024])
async def test_body_shorter_than_content_length_writes_nothing(
    fake_upstream: FakeUpstream, start_inprocess_proxy, size: int
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    host, port = proxy.addresses.data
    head = f"PUT /b/short HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    answer = await raw_exchange(host, port, head, [os.urandom(size - 10)], close_write=True)
    await asyncio.sleep(0.2)
    # Whatever reached the upstream never completed: the connection was aborted mid-body.
    assert all(s.body is None for s in fake_upstream.seen), [
        s.body_error for s in fake_upstream.seen
    ]
    if answer:  # the client half-closed, so it can still read the proxy's 400
        assert answer.startswith(b"HTTP/1.1 400")
        assert b"<Code>IncompleteBody</Code>" in answer


def _chunked(data: bytes, size: int = 65536, *, trailer: bytes = b"") -> bytes:
    out = bytearray()
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out + b"0\r\n" + trailer + b"\r\n")


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_aws_chunked_trailer_is_decoded_and_checksum_moved_to_header(
    fake_upstream: FakeUpstream, start_inprocess_proxy, transfer: str
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    data = os.urandom(3 * 1024 * 1024 + 5)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = _chunked(data, trailer=f"x-amz-checksum-crc32:{crc}\r\n".encode())
    headers = {
        "Content-Encoding": "aws-chunked,gzip",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }

    async def gen() -> Any:
        for i in range(0, len(body), 50_000):
            yield body[i : i + 50_000]

    if transfer == "content-length":
        headers["Content-Length"] = str(len(body))
        status, _, answer = await send(data_url(proxy), "PUT", "/b/k", headers=headers, data=body)
    else:
        status, _, answer = await send(data_url(proxy), "PUT", "/b/k", headers=headers, data=gen())
    assert status == 200, answer
    seen = fake_upstream.seen[-1]
    assert seen.body == data
    assert seen.header("Content-Length") == str(len(data))
    assert seen.header("Content-Encoding") == "gzip"
    assert seen.header("x-amz-checksum-crc32") == crc
    assert seen.header("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"
    for gone in ("x-amz-decoded-content-length", "x-amz-trailer", "transfer-encoding"):
        assert gone not in seen.names()
    verify_sigv4(seen)


async def test_aws_chunked_checksum_mismatch_is_400_and_nothing_is_sent(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    data = os.urandom(2 * 1024 * 1024)
    wrong = base64.b64encode(zlib.crc32(data + b"!").to_bytes(4, "big")).decode()
    body = _chunked(data, trailer=f"x-amz-checksum-crc32:{wrong}\r\n".encode())
    status, _headers, answer = await send(
        data_url(proxy),
        "PUT",
        "/b/k",
        data=body,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
        },
    )
    assert status == 400
    err = parse_error(answer)
    assert err["Code"] == "BadDigest"
    assert "x-amz-checksum-crc32 trailer" in err["Message"]
    assert fake_upstream.seen == []


async def test_aws_chunked_bad_framing_mid_stream_never_completes_upstream(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    data = os.urandom(4 * 1024 * 1024)
    sig = ";chunk-signature=" + "0" * 64
    good = bytearray()
    for i in range(0, len(data), 65536):
        piece = data[i : i + 65536]
        good += f"{len(piece):x}{sig}\r\n".encode() + piece + b"\r\n"
    # Corrupt the framing near the end: the declared chunk is longer than its data.
    bad = bytes(good[: -65536 - 2]) + b"XX\r\n" + f"0{sig}\r\n\r\n".encode()
    status, _, answer = await send(
        data_url(proxy),
        "PUT",
        "/b/k",
        data=bad,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "x-amz-decoded-content-length": str(len(data)),
        },
    )
    assert status == 400
    assert parse_error(answer)["Code"] == "IncompleteBody"
    await asyncio.sleep(0.2)
    # The upstream saw the start of the body but never all the bytes it was promised.
    assert all(s.body is None for s in fake_upstream.seen)


async def test_aws_chunked_without_decoded_length_is_400(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    status, _, answer = await send(
        data_url(proxy),
        "PUT",
        "/b/k",
        data=_chunked(b"abc"),
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        },
    )
    assert status == 400
    assert "x-amz-decoded-content-length is required" in parse_error(answer)["Message"]
    assert fake_upstream.seen == []


async def test_metrics_health_and_readiness(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url, app_version="v7")
    await send(data_url(proxy), "GET", "/b/k")
    await send(data_url(proxy), "PUT", "/b/k", data=b"12345")
    await send(data_url(proxy), "GET", "/b?list-type=2")
    async with aiohttp.ClientSession() as s:
        async with s.get(metrics_url(proxy) + "/healthz") as r:
            assert r.status == 200
        async with s.get(metrics_url(proxy) + "/readyz") as r:
            assert r.status == 200
        async with s.get(metrics_url(proxy) + "/metrics") as r:
            text = await r.text()
    assert 'format_proxy_requests_total{code="200",operation="GetObject"} 1.0' in text
    assert 'format_proxy_requests_total{code="200",operation="PutObject"} 1.0' in text
    assert 'format_proxy_requests_total{code="200",operation="ListObjectsV2"} 1.0' in text
    assert 'format_proxy_request_bytes_total{operation="PutObject"} 5.0' in text
    assert 'format_proxy_build_info{app_version="v7",version=' in text
    assert "format_proxy_inflight_requests 0.0" in text
    assert 'format_proxy_upstream_duration_seconds_count{operation="GetObject"} 1.0' in text
    for family in (
        "format_proxy_request_duration_seconds",
        "format_proxy_response_bytes_total",
        "format_proxy_translations_total",
        "format_proxy_route_objects_total",
        "format_proxy_translation_failures_total",
        "format_proxy_translation_duration_seconds",
        "format_proxy_translated_bytes_total",
        "format_proxy_cache_hits_total",
        "format_proxy_cache_misses_total",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    assert "/b/k" not in text and 'bucket="' not in text and "key=" not in text


async def test_upstream_reply_error_for_a_bug_is_still_s3_shaped(
    fake_upstream: FakeUpstream, start_inprocess_proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    import proxy.relay.pipeline as pipeline_mod

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline_mod, "detect_operation", boom)
    status, headers, body = await send(data_url(proxy), "GET", "/b/k")
    assert status == 500
    assert parse_error(body)["Code"] == "InternalError"
    assert "x-amz-request-id" in headers


async def test_empty_bodies_in_a_row(fake_upstream: FakeUpstream, start_inprocess_proxy) -> None:
    """aiohttp shares one empty-payload reader across requests; reading it twice must not
    spin (it once hung every empty request after the first)."""
    proxy = await start_inprocess_proxy(fake_upstream.url)
    for i in range(3):
        status, _, _ = await asyncio.wait_for(
            send(data_url(proxy), "PUT", f"/b/e{i}", data=b"", headers={"Content-Length": "0"}),
            5,
        )
        assert status == 200
        status, _, _ = await asyncio.wait_for(send(data_url(proxy), "POST", "/b/k?uploads"), 5)
        assert status == 200
    puts = [s for s in fake_upstream.seen if s.method == "PUT"]
    assert [s.header("Content-Length") for s in puts] == ["0", "0", "0"]


async def test_stop_drains_in_flight_transfers(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    """stop(): no new connections; a slow download and a slow upload in flight both complete
    intact (including what was still queued in the transport for the slow reader)."""
    payload = os.urandom(6 * 1024 * 1024)

    async def respond(request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        if request.method == "GET":
            return web.Response(body=payload)
        return web.Response()

    fake_upstream.respond = respond
    proxy = await start_inprocess_proxy(fake_upstream.url, shutdown_grace_seconds=20)
    host, port = proxy.addresses.data

    # Slow download: read the headers and a first piece, then stall.
    dreader, dwriter = await asyncio.open_connection(host, port)
    dwriter.write(b"GET /b/big HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await dreader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    got = bytearray(await dreader.readexactly(100_000))

    # Slow upload: headers and part of the body.
    ureader, uwriter = await asyncio.open_connection(host, port)
    upload = os.urandom(3 * 1024 * 1024)
    uwriter.write(
        f"PUT /b/up HTTP/1.1\r\nHost: x\r\nContent-Length: {len(upload)}\r\n\r\n".encode()
        + upload[:1_000_000]
    )
    await uwriter.drain()
    await asyncio.sleep(0.1)

    stopping = asyncio.create_task(proxy.stop())
    await asyncio.sleep(0.3)
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)
    assert not stopping.done()

    for i in range(1_000_000, len(upload), 500_000):
        uwriter.write(upload[i : i + 500_000])
        await uwriter.drain()
        await asyncio.sleep(0.02)
    uhead = await asyncio.wait_for(ureader.readuntil(b"\r\n\r\n"), 10)
    assert uhead.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in uhead

    while len(got) < len(payload):
        chunk = await asyncio.wait_for(dreader.read(200_000), 10)
        assert chunk, f"download cut short at {len(got)} bytes"
        got += chunk
        await asyncio.sleep(0.01)
    assert bytes(got) == payload
    await asyncio.wait_for(stopping, 20)
    assert [s.body for s in fake_upstream.seen if s.method == "PUT"] == [upload]
    dwriter.close()
    uwriter.close()


async def test_upstream_dying_mid_body_truncates_the_client_response(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    async def dies(request: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_length = 1_000_000
        await resp.prepare(request)
        await resp.write(b"x" * 100_000)
        assert request.transport is not None
        request.transport.abort()
        return resp

    fake_upstream.respond = dies
    proxy = await start_inprocess_proxy(fake_upstream.url)
    host, port = proxy.addresses.data
    answer = await raw_exchange(host, port, b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n", [])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1000000" in head
    # The proxy closed the connection: the client can tell the body is incomplete.
    assert len(body) < 1_000_000
    # And it keeps serving new requests.
    fake_upstream.respond = lambda _r, _s: _ok_response()
    status, _, _ = await send(data_url(proxy), "GET", "/b/k2")
    assert status == 200


async def _ok_response() -> web.StreamResponse:
    return web.Response(body=b"fine")


async def test_small_aws_chunked_body_is_signed_with_its_real_digest(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    data = b"small aws-chunked body"
    sig = ";chunk-signature=" + "0" * 64
    body = f"{len(data):x}{sig}\r\n".encode() + data + f"\r\n0{sig}\r\n\r\n".encode()
    status, _, _ = await send(
        data_url(proxy),
        "PUT",
        "/b/small",
        data=body,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "x-amz-decoded-content-length": str(len(data)),
        },
    )
    assert status == 200
    seen = fake_upstream.seen[-1]
    assert seen.body == data
    assert seen.header("x-amz-content-sha256") == hashlib.sha256(data).hexdigest()
    assert "content-encoding" not in seen.names()
    verify_sigv4(seen)


async def test_early_answer_with_unread_body_closes_the_connection(
    fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    """An error sent while the client still waits for 100-continue: the unread body must not
    be taken for the next request on the connection."""
    proxy = await start_inprocess_proxy(fake_upstream.url)
    host, port = proxy.addresses.data
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n"
        b"Content-Encoding: aws-chunked\r\n"
        b"x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 400")
    assert b"Connection: close" in head
    writer.close()
    assert fake_upstream.seen == []
    # A normal request keeps its connection.
    status, headers, _ = await send(data_url(proxy), "PUT", "/b/k", data=b"abc")
    assert status == 200 and headers.get("Connection") != "close"


@pytest.mark.parametrize("size", [10, 200_000])
async def test_boto3_over_tls_sends_aws_chunked_and_upstream_gets_decoded_bytes(
    fake_upstream: FakeUpstream, start_inprocess_proxy, tmp_path, size: int
) -> None:
    import boto3
    import trustme
    from botocore.config import Config

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "proxy.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(pem)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    proxy = await start_inprocess_proxy(fake_upstream.url, tls={"cert": str(pem), "key": str(pem)})
    host, port = proxy.addresses.data
    s3 = boto3.client(
        "s3",
        endpoint_url=f"https://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="client",
        aws_secret_access_key="client",
        verify=str(ca_file),
        config=Config(retries={"max_attempts": 1}),
    )
    data = os.urandom(size)
    await asyncio.to_thread(s3.put_object, Bucket="b", Key="k", Body=data)
    seen = fake_upstream.seen[-1]
    assert seen.body == data
    assert seen.header("Content-Length") == str(size)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert seen.header("x-amz-checksum-crc32") == crc
    assert seen.header("x-amz-sdk-checksum-algorithm") == "CRC32"
    for gone in ("x-amz-trailer", "x-amz-decoded-content-length", "content-encoding"):
        assert gone not in seen.names()
    verify_sigv4(seen)
    # The client really sent aws-chunked framing: more raw bytes than the object.
    received = proxy.metrics.request_bytes.labels("PutObject")._value.get()
    assert received > size + len("0\r\nx-amz-checksum-crc32:\r\n")


async def test_route_handler_seam(fake_upstream: FakeUpstream, tmp_path) -> None:
    """A route handler sees the decoded client body and sends a replaced request through the
    forwarder; unrouted requests never reach it."""
    import yaml

    from proxy.app.service import ProxyService
    from proxy.config import load_config
    from proxy.relay.credentials import StaticCredentials
    from proxy.relay.pipeline import Forwarder, ProxyResponse, S3Request
    from tests.support.inprocess import SECRET_KEY

    calls: list[tuple[str, str, bytes]] = []

    class Upper:
        async def handle(self, request: S3Request, route: Any, forward: Forwarder) -> ProxyResponse:
            data = await request.body.read_all(1 << 20)
            calls.append((route.name, request.operation, data))
            request.log_fields["seam"] = "used"
            reply = await forward.send(request, body=data.upper())  # client headers
            return reply.to_response()

    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "listen": "127.0.0.1:0",
                "metrics_listen": "127.0.0.1:0",
                "app_version": "v1",
                "upstream": {"endpoint": fake_upstream.url, "region": "eu-west-3"},
                "routes": [
                    {
                        "name": "docs",
                        "bucket": "b",
                        "prefix": "docs/",
                        "formats": {"v1": "xml"},
                        "store": "xml",
                    }
                ],
            }
        )
    )
    cfg = load_config(path, environ={})
    service = ProxyService(
        cfg, credentials=StaticCredentials(ACCESS_KEY, SECRET_KEY), route_handler=Upper()
    )
    await service.start()
    try:
        crc = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
        status, _, _ = await send(
            data_url(service),
            "PUT",
            "/b/docs/a.xml",
            data=b"hello",
            headers={
                "x-amz-checksum-crc32": crc,
                "Content-MD5": "x",
                "x-amz-sdk-checksum-algorithm": "CRC32",
                "x-amz-meta-owner": "me",
            },
        )
        assert status == 200
        status, _, _ = await send(data_url(service), "PUT", "/b/other/a.xml", data=b"plain")
        assert status == 200
    finally:
        await service.stop()
    assert calls == [("docs", "PutObject", b"hello")]
    routed, plain = fake_upstream.seen
    assert routed.body == b"HELLO" and plain.body == b"plain"
    assert routed.header("x-amz-meta-owner") == "me"
    assert routed.header("Content-Length") == "5"
    assert routed.header("x-amz-content-sha256") == hashlib.sha256(b"HELLO").hexdigest()
    assert {"x-amz-checksum-crc32", "content-md5", "x-amz-sdk-checksum-algorithm"}.isdisjoint(
        routed.names()
    )
    verify_sigv4(routed)
