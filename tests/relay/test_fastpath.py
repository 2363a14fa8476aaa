"""The lean HTTP/1.1 path answers exactly as the general (aiohttp) path does.

The same requests go to two proxies in front of the same fake upstream, one with
``server.fast_path`` on and one with it off; status lines, headers (but the date and request ids),
bodies, metrics and access-log fields must be the same. Requests the lean path does not serve
are handed to aiohttp mid-connection, per request or for good, and come out the same too.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.app.logging import configure_logging
from proxy.relay import fastplan
from tests.support.inprocess import FakeUpstream, Seen, spy_on_lean_path

pytestmark = pytest.mark.timeout(60)

#: Differ between any two answers: the time and the proxy's own request ids.
_VOLATILE = re.compile(rb"^(date|x-amz-request-id): .*$", re.IGNORECASE | re.MULTILINE)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("info", stream=buf)
    yield buf
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Methods of the requests the lean path served."""
    return spy_on_lean_path(monkeypatch)


async def _responder(request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
    key = request.raw_path.partition("?")[0]
    ids = {"x-amz-request-id": "UPSTREAMREQ1", "ETag": '"e1"'}
    if key.endswith("/missing"):
        body = b"<Error><Code>NoSuchKey</Code></Error>"
        return web.Response(status=404, body=body, headers={**ids, "Content-Type": "text/xml"})
    if key.endswith("/chunked") and request.method == "GET":
        resp = web.StreamResponse(status=200, headers=ids)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for piece in (b"first ", b"second ", b"third"):
            await resp.write(piece)
        await resp.write_eof()
        return resp
    if request.method == "DELETE":
        return web.Response(status=204, headers=ids)
    if request.method == "PUT":
        return web.Response(status=200, headers=ids)
    payload = b"x" * 4096 + key.encode()
    return web.Response(status=200, body=payload, headers=ids)


async def _exchange(port: int, raw: bytes, answers: int, heads: int = 0) -> list[bytes]:
    """Send ``raw`` on one connection and read ``answers`` whole responses (the last
    ``heads`` of them answer HEAD requests)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    out = [await _read_response(reader, head=i >= answers - heads) for i in range(answers)]
    writer.close()
    return out


async def _sequential(port: int, raws: list[bytes]) -> list[bytes]:
    """Each request after the previous answer, all on one keep-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for raw in raws:
        writer.write(raw)
        out.append(await _read_response(reader, head=raw.startswith(b"HEAD ")))
    writer.close()
    return out


async def _read_response(reader: asyncio.StreamReader, *, head: bool = False) -> bytes:
    start = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lower = start.lower()
    status = int(start.split(b" ", 2)[1])
    if head or status in (204, 304):
        return start
    if b"\r\ncontent-length: " in lower:
        n = int(lower.split(b"\r\ncontent-length: ")[1].split(b"\r\n")[0])
        return start + await asyncio.wait_for(reader.readexactly(n), 10)
    if b"transfer-encoding: chunked" in lower:
        # Chunk boundaries follow the upstream's timing: keep the decoded body only.
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                return start + b"[chunked]" + body
    return start


def _request(method: str, target: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if body or method == "PUT":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _port(proxy: Any) -> int:
    return int(proxy.addresses.data[1])


def _stable(answer: bytes) -> bytes:
    answer = re.sub(rb"<RequestId>\w+</RequestId>", b"<RequestId/>", answer)
    return _VOLATILE.sub(b"\\1: -", answer.replace(b"\r\n", b"\n"))


def _request_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    out = []
    for line in buf.getvalue().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "request":
            for volatile in ("ts", "duration_ms", "upstream_ms", "request_id", "proxy_request_id"):
                entry.pop(volatile, None)
            out.append(entry)
    return out


def _counters(proxy: Any) -> list[str]:
    text = proxy.metrics.render().decode()
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith(
            (
                "format_proxy_requests_total",
                "format_proxy_request_bytes_total",
                "format_proxy_response_bytes_total",
                "format_proxy_request_duration_seconds_count",
                "format_proxy_upstream_request_duration_seconds_count",
                "format_proxy_client_connections ",
                "format_proxy_requests_in_flight",
            )
        )
    )


REQUESTS = [
    _request("GET", "/b/k1"),
    _request("HEAD", "/b/k1"),
    _request("GET", "/b/missing"),
    _request("GET", "/b/chunked"),
    _request("PUT", "/b/k2", b"small body", x_amz_content_sha256="UNSIGNED-PAYLOAD"),
    _request("DELETE", "/b/k2"),
    _request("GET", "/b/k%2Fslash?versionId=3&x-id=GetObject"),
]


async def test_both_paths_answer_count_and_log_the_same(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any, logs: io.StringIO, served: list[str]
) -> None:
    fake_upstream.respond = _responder
    answers: dict[bool, list[bytes]] = {}
    lines: dict[bool, list[dict[str, Any]]] = {}
    counters: dict[bool, list[str]] = {}
    for fast in (True, False):
        proxy = await start_inprocess_proxy(fake_upstream.url, server={"fast_path": fast})
        logs.truncate(0)
        logs.seek(0)
        fake_upstream.seen.clear()
        answers[fast] = await _sequential(_port(proxy), REQUESTS)
        await asyncio.sleep(0.05)  # the last access line is written after the response
        lines[fast] = _request_lines(logs)
        counters[fast] = _counters(proxy)
        upstream_views = [
            (s.method, s.raw_path, s.body, sorted(s.names())) for s in fake_upstream.seen
        ]
        if fast:
            fast_upstream = upstream_views
        else:
            assert upstream_views == fast_upstream  # the upstream saw the same requests
    assert served == ["GET", "HEAD", "GET", "GET", "PUT", "DELETE", "GET"]
    assert [_stable(a) for a in answers[True]] == [_stable(a) for a in answers[False]]
    assert lines[True] == lines[False] and len(lines[True]) == len(REQUESTS)
    assert counters[True] == counters[False]


async def test_unreachable_upstream_is_the_same_503(
    start_inprocess_proxy: Any, unused_tcp_port_factory: Any, served: list[str]
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port_factory()}"
    got = []
    for fast in (True, False):
        proxy = await start_inprocess_proxy(url, server={"fast_path": fast})
        got.append(_stable((await _exchange(_port(proxy), _request("GET", "/b/k"), 1))[0]))
    assert got[0] == got[1] and got[0].startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"<Code>ServiceUnavailable</Code>" in got[0] and served == ["GET"]


async def test_handoff_mid_connection_and_back(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any, served: list[str]
) -> None:
    """On one keep-alive connection: a lean GET, a large PUT (delegated to aiohttp for that
    request), a lean GET again, then a chunked PUT (aiohttp keeps the connection), a GET."""
    fake_upstream.respond = _responder
    proxy = await start_inprocess_proxy(fake_upstream.url)
    port = _port(proxy)
    big = b"B" * (200 * 1024)
    chunked = (
        b"PUT /b/c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for raw in (
        _request("GET", "/b/one"),
        _request("PUT", "/b/big", big),
        _request("GET", "/b/two"),
        chunked,
        _request("GET", "/b/three"),
    ):
        writer.write(raw)
        answers.append(await _read_response(reader))
    writer.close()
    await writer.wait_closed()
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 5
    assert answers[2].endswith(b"/b/two") and answers[4].endswith(b"/b/three")
    assert served == ["GET", "GET"]  # the third GET is aiohttp's: the chunked PUT kept it
    bodies = {s.raw_path: s.body for s in fake_upstream.seen if s.method == "PUT"}
    assert bodies == {"/b/big": big, "/b/c": b"hello"}
    for _ in range(100):  # the proxy sees the close a moment later
        if proxy.metrics.client_connections._value.get() == 0:
            break
        await asyncio.sleep(0.01)
    assert proxy.metrics.client_connections._value.get() == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n",
        b"GET /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"BREW /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /b/k\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4 x\x01\r\n\r\n",
        b"GET /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"A" * 9000 + b"\r\n\r\n",
        b"GET /b/k?p=" + b"x" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
    ids=["header-name", "two-lengths", "method", "target", "control", "long-header", "long-line"],
)
async def test_malformed_requests_get_the_same_answer(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any, raw: bytes
) -> None:
    got = []
    for fast in (True, False):
        proxy = await start_inprocess_proxy(fake_upstream.url, server={"fast_path": fast})
        got.append(_stable((await _exchange(_port(proxy), raw, 1))[0]))
    assert got[0] == got[1]


async def test_pipelined_requests_are_answered_in_order(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any
) -> None:
    fake_upstream.respond = _responder
    got = []
    raw = _request("GET", "/b/p1") + _request("GET", "/b/p2") + _request("HEAD", "/b/p3")
    for fast in (True, False):
        proxy = await start_inprocess_proxy(fake_upstream.url, server={"fast_path": fast})
        got.append([_stable(a) for a in await _exchange(_port(proxy), raw, 3, heads=1)])
    assert got[0] == got[1]
    assert got[0][0].endswith(b"/b/p1") and got[0][1].endswith(b"/b/p2")


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each task the lean path started was for (its coroutine's name)."""
    from proxy.relay.fastexchange import FastExchange

    names: list[str] = []
    real = FastExchange._spawn

    def spy(self: FastExchange, step: Any) -> None:
        names.append(step.__name__)
        real(self, step)

    monkeypatch.setattr(FastExchange, "_spawn", spy)
    return names


async def test_keep_alive_requests_are_relayed_without_a_task(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any, served: list[str], spawned: list[str]
) -> None:
    """Only the first request waits (for its upstream connection to open); every later one on
    the kept-alive connections is sent and answered from the connections' callbacks."""
    fake_upstream.respond = _responder
    proxy = await start_inprocess_proxy(fake_upstream.url)
    answers = await _sequential(_port(proxy), REQUESTS * 3)
    assert served == ["GET", "HEAD", "GET", "GET", "PUT", "DELETE", "GET"] * 3
    assert spawned == ["_send_later"]
    again = await _sequential(_port(proxy), REQUESTS)
    assert [_stable(a) for a in again] == [_stable(a) for a in answers[: len(REQUESTS)]]
    assert spawned == ["_send_later"]
    assert answers[0].startswith(b"HTTP/1.1 200 OK") and answers[0].endswith(b"x/b/k1")


async def test_requests_wait_for_credentials_being_refreshed(
    fake_upstream: FakeUpstream,
    start_inprocess_proxy: Any,
    served: list[str],
    spawned: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Credentials that cannot be had without a wait are awaited in a task, with the same
    answers and the same signed upstream requests."""
    from proxy.relay.credentials import StaticCredentials

    fake_upstream.respond = _responder
    proxy = await start_inprocess_proxy(fake_upstream.url)
    expected = await _sequential(_port(proxy), REQUESTS)
    signed = [(s.header("Authorization") or "")[:60] for s in fake_upstream.seen]
    fake_upstream.seen.clear()
    spawned.clear()
    monkeypatch.setattr(StaticCredentials, "now", lambda self: None)
    answers = await _sequential(_port(proxy), REQUESTS)
    assert [_stable(a) for a in answers] == [_stable(a) for a in expected]
    assert spawned == ["_sign_later"] * len(REQUESTS)
    assert [(s.header("Authorization") or "")[:60] for s in fake_upstream.seen] == signed
    assert all(a.startswith("AWS4-HMAC-SHA256 Credential=") for a in signed)


async def test_bytes_after_a_response_are_never_the_next_answer(
    start_inprocess_proxy: Any, served: list[str]
) -> None:
    """An upstream that sends more than the response asked for (here a whole second response
    in the same write): the connection is not reused, and a request that waited behind the
    first (sent before its answer) gets its own upstream answer, not those bytes."""
    answered = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                answered += 1
                if answered == 1:
                    await asyncio.sleep(0.2)  # the next request arrives at the proxy meanwhile
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"
                    )
                else:
                    name = head.split(b" ")[1].rsplit(b"/", 1)[1]
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + name)

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        proxy = await start_inprocess_proxy(f"http://127.0.0.1:{port}")
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(proxy))
        writer.write(_request("GET", "/b/one"))
        await asyncio.sleep(0.05)
        writer.write(_request("GET", "/b/two"))
        first = await _read_response(reader)
        second = await _read_response(reader)
        writer.close()
    finally:
        server.close()
    assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"\r\n\r\none")
    assert second.startswith(b"HTTP/1.1 200 OK") and second.endswith(b"\r\n\r\ntwo")
    assert served == ["GET", "GET"] and answered == 2


async def test_a_large_body_that_came_with_its_head_keeps_the_connection(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any, served: list[str]
) -> None:
    """A GET over the zero-copy threshold whose whole body arrived with its head is written at
    once and its upstream connection reused (the kernel-side relay, which closes the
    connection after it, is for bodies still to come)."""
    peers: set[Any] = set()
    body = os.urandom(20_000)

    async def large(request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(body=body)

    fake_upstream.respond = large
    proxy = await start_inprocess_proxy(fake_upstream.url, limits={"zero_copy_min_bytes": 8192})
    answers = await _sequential(_port(proxy), [_request("GET", f"/b/k{i}") for i in range(8)])
    assert all(a.startswith(b"HTTP/1.1 200 OK") and a.endswith(body) for a in answers)
    assert served == ["GET"] * 8
    # One connection when every body came with its head; a body split over two reads on a
    # busy machine is relayed kernel-side and costs that connection.
    assert len(peers) <= 3


async def test_an_interim_answer_is_skipped_as_the_general_path_does(
    start_inprocess_proxy: Any, served: list[str]
) -> None:
    """A 1xx answer before the final one (103 Early Hints here) is not the response: both
    paths relay the final answer, and the lean path keeps the connection."""
    connections = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(
                    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e"\r\n\r\nfinal'
                )

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    got: dict[bool, list[bytes]] = {}
    try:
        for fast in (True, False):
            proxy = await start_inprocess_proxy(
                f"http://127.0.0.1:{port}", server={"fast_path": fast}
            )
            got[fast] = await _sequential(_port(proxy), [_request("GET", "/b/k")] * 3)
    finally:
        server.close()
    assert [_stable(a) for a in got[True]] == [_stable(a) for a in got[False]]
    assert all(a.startswith(b"HTTP/1.1 200 OK") and a.endswith(b"final") for a in got[True])
    assert served == ["GET"] * 3
    assert connections == 2  # one per proxy: the lean path reused its connection


async def test_pool_is_bounded_and_reused(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any, served: list[str]
) -> None:
    peers: set[Any] = set()
    active = 0
    most = 0

    async def slow(request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        nonlocal active, most
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.02)
        active -= 1
        return web.Response(body=b"ok")

    fake_upstream.respond = slow
    proxy = await start_inprocess_proxy(fake_upstream.url, upstream={"max_connections": 1})
    answers = await asyncio.gather(
        *(_exchange(_port(proxy), _request("GET", f"/b/k{i}"), 1) for i in range(6))
    )
    assert all(a[0].startswith(b"HTTP/1.1 200 OK") for a in answers)
    assert served == ["GET"] * 6
    assert most == 1 and len(peers) == 1  # one upstream connection, reused


async def test_waiting_for_a_pooled_connection_is_bounded(
    fake_upstream: FakeUpstream, start_inprocess_proxy: Any
) -> None:
    async def stuck(request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        await asyncio.sleep(3)
        return web.Response(body=b"late")

    fake_upstream.respond = stuck
    proxy = await start_inprocess_proxy(
        fake_upstream.url, upstream={"max_connections": 1, "connect_timeout": 0.2}
    )
    first = asyncio.ensure_future(_exchange(_port(proxy), _request("GET", "/b/a"), 1))
    await asyncio.sleep(0.1)
    second = await _exchange(_port(proxy), _request("GET", "/b/b"), 1)
    assert second[0].startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"did not answer in time" in second[0]
    first.cancel()


_ORIGINS = [
    "http://127.0.0.1:8333",
    "http://Upper.Example:80",
    "https://s3.eu-west-3.amazonaws.com:443",
    "https://bucket.s3.amazonaws.com",
    "http://[::1]:9000",
]


@settings(max_examples=300, deadline=None)
@given(
    origin=st.sampled_from(_ORIGINS),
    paths=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)), min_size=2),
    query=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E)),
)
def test_the_url_check_per_origin_is_yarls_answer(
    origin: str, paths: list[str], query: str
) -> None:
    """The lean path serves a request only if aiohttp's client would send its URL unchanged;
    the answer cached per origin must be the one yarl gives for every path and query."""
    from yarl import URL

    from proxy.s3.address import UpstreamTarget

    state = SimpleNamespace(_origins={})
    for raw in paths:
        path = "/" + raw
        url = f"{origin}{path}" + (f"?{query}" if query else "")
        target = UpstreamTarget(url=url, host=origin.split("//")[1], path=path, query=query)
        expected = str(URL(url, encoded=True)) == url
        assert fastplan.FastPath._sent_as_built(state, target) == expected, url  # type: ignore[arg-type]
