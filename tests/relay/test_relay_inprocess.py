"""The zero-copy GET relay inside the server, in-process against a scripted upstream: when it
is used, when it is not (fallbacks), and what the client sees when a relay cannot finish."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.relay import fastexchange as fastpath_module
from proxy.relay import server as server_module
from tests.support.inprocess import FakeUpstream, Seen, data_url

MiB = 1024 * 1024
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def relays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Byte counts of the relays the server started (the real relay still runs)."""
    started: list[int] = []
    real = server_module.relay

    async def spy(src: int, dst: int, count: int, **kwargs: Any) -> int:
        started.append(count)
        return await real(src, dst, count, **kwargs)

    monkeypatch.setattr(server_module, "relay", spy)
    monkeypatch.setattr(fastpath_module, "relay", spy)  # the lean path relays the same way
    return started


def serve(payload: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    async def respond(_r: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        return web.Response(status=status, body=payload, headers=headers)

    return respond


async def get(url: str, target: str, **kwargs: Any) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.get(url + target, **kwargs) as resp,
    ):
        return resp.status, resp.headers.copy(), await resp.read()  # case-insensitive


def response_bytes(proxy: Any, op: str = "GetObject") -> float:
    return float(proxy.metrics.response_bytes.labels(op)._value.get())


@pytest.mark.parametrize("min_bytes", ["1MiB", 0], ids=["on", "off"])
async def test_large_get_is_relayed_unless_turned_off(
    fake_upstream: FakeUpstream,
    start_inprocess_proxy: Callable[..., Any],
    relays: list[int],
    min_bytes: Any,
) -> None:
    payload = os.urandom(5 * MiB + 7)
    fake_upstream.respond = serve(payload, headers={"ETag": '"abc"'})
    proxy = await start_inprocess_proxy(
        fake_upstream.url, limits={"zero_copy_min_bytes": min_bytes}
    )
    status, headers, body = await get(data_url(proxy), "/b/big")
    assert status == 200 and headers["ETag"] == '"abc"'
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    assert response_bytes(proxy) == len(payload)
    if min_bytes:
        # What aiohttp had already read went out first; the relay moved the rest.
        assert len(relays) == 1 and 0 < relays[0] <= len(payload)
    else:
        assert relays == []


async def test_range_get_is_relayed(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Callable[..., Any], relays: list[int]
) -> None:
    part = os.urandom(3 * MiB)
    fake_upstream.respond = serve(
        part, status=206, headers={"Content-Range": f"bytes 0-{len(part) - 1}/{10 * MiB}"}
    )
    proxy = await start_inprocess_proxy(fake_upstream.url)
    status, headers, body = await get(
        data_url(proxy), "/b/big", headers={"Range": f"bytes=0-{len(part) - 1}"}
    )
    assert status == 206 and body == part and len(relays) == 1
    assert headers["Content-Range"] == f"bytes 0-{len(part) - 1}/{10 * MiB}"


async def test_small_chunked_put_and_head_responses_use_the_normal_path(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Callable[..., Any], relays: list[int]
) -> None:
    big = os.urandom(3 * MiB)

    async def respond(request: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        if request.path == "/b/small":
            return web.Response(body=big[: 512 * 1024])
        if request.path == "/b/chunked":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(0, len(big), 256 * 1024):
                await resp.write(big[i : i + 256 * 1024])
            await resp.write_eof()
            return resp
        return web.Response(body=big)  # PUT (a large response body) and HEAD

    fake_upstream.respond = respond
    proxy = await start_inprocess_proxy(fake_upstream.url)
    url = data_url(proxy)
    assert (await get(url, "/b/small"))[2] == big[: 512 * 1024]
    status, headers, body = await get(url, "/b/chunked")
    assert status == 200 and body == big and "Content-Length" not in headers
    async with aiohttp.ClientSession() as s:
        async with s.put(url + "/b/put", data=b"x") as r:
            assert await r.read() == big
        async with s.head(url + "/b/head") as r:
            assert r.headers["Content-Length"] == str(len(big))
    assert relays == []


async def test_tls_listener_uses_the_normal_path(
    fake_upstream: FakeUpstream,
    start_inprocess_proxy: Callable[..., Any],
    relays: list[int],
    tmp_path: Any,
) -> None:
    import trustme

    ca = trustme.CA()
    pem = tmp_path / "proxy.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    payload = os.urandom(4 * MiB)
    fake_upstream.respond = serve(payload)
    proxy = await start_inprocess_proxy(fake_upstream.url, tls={"cert": str(pem), "key": str(pem)})
    host, port = proxy.addresses.data
    status, _, body = await get(f"https://{host}:{port}", "/b/big", ssl=ctx)
    assert status == 200 and body == payload
    assert relays == []
    assert response_bytes(proxy) == len(payload)


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


async def test_client_connection_is_reused_after_a_relayed_response(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Callable[..., Any], relays: list[int]
) -> None:
    objects = {"/b/one": os.urandom(3 * MiB), "/b/two": b"small", "/b/three": os.urandom(2 * MiB)}

    async def respond(request: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        return web.Response(body=objects[request.path])

    fake_upstream.respond = respond
    proxy = await start_inprocess_proxy(fake_upstream.url)
    host, port = proxy.addresses.data
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for target, payload in objects.items():
            writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, body = await _read_response(reader)
            assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
            assert body == payload, target
        assert len(relays) == 2
        assert response_bytes(proxy) == sum(len(p) for p in objects.values())
    finally:
        writer.close()


async def test_upstream_dying_mid_relay_truncates_and_closes(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Callable[..., Any], relays: list[int]
) -> None:
    declared = 8 * MiB

    async def dies(request: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_length = declared
        await resp.prepare(request)
        await resp.write(os.urandom(3 * MiB))
        await asyncio.sleep(0.2)
        assert request.transport is not None
        request.transport.abort()
        return resp

    fake_upstream.respond = dies
    proxy = await start_inprocess_proxy(fake_upstream.url)
    host, port = proxy.addresses.data
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {declared}".encode() in head
    body = await asyncio.wait_for(reader.read(), 10)  # until the proxy closes the connection
    writer.close()
    assert 0 < len(body) < declared  # the client can tell: fewer bytes than declared, then EOF
    assert len(relays) == 1
    assert response_bytes(proxy) == len(body)
    fake_upstream.respond = serve(b"fine")
    status, _, again = await get(data_url(proxy), "/b/next")
    assert (status, again) == (200, b"fine")


async def test_upstream_stalling_mid_relay_times_out(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Callable[..., Any], relays: list[int]
) -> None:
    declared = 8 * MiB
    release = asyncio.Event()

    async def stalls(request: web.BaseRequest, _s: Seen) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_length = declared
        await resp.prepare(request)
        await resp.write(os.urandom(3 * MiB))
        await release.wait()
        return resp

    fake_upstream.respond = stalls
    proxy = await start_inprocess_proxy(fake_upstream.url, upstream={"read_timeout": 1})
    host, port = proxy.addresses.data
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    body = await asyncio.wait_for(reader.read(), 10)
    release.set()
    writer.close()
    assert len(body) == 3 * MiB and len(relays) == 1


async def test_stop_lets_an_in_flight_relay_finish(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Callable[..., Any], relays: list[int]
) -> None:
    payload = os.urandom(16 * MiB)
    fake_upstream.respond = serve(payload)
    proxy = await start_inprocess_proxy(fake_upstream.url, shutdown_grace_seconds=20)
    host, port = proxy.addresses.data
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /b/big HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    got = bytearray(await reader.readexactly(MiB))
    stopping = asyncio.create_task(proxy.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()
    while len(got) < len(payload):
        chunk = await asyncio.wait_for(reader.read(256 * 1024), 10)
        assert chunk, f"cut short at {len(got)} bytes"
        got += chunk
        await asyncio.sleep(0.005)
    assert bytes(got) == payload
    await asyncio.wait_for(stopping, 20)
    assert len(relays) == 1
    writer.close()
