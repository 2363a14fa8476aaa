"""Fuzzing the request parser through a real proxy process: raw bytes (request lines, header
blocks, chunked and aws-chunked framings, plain noise) sent to the data port each end in a
response or a closed connection within a time budget, and the proxy stays healthy."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.faults import exchange
from tests.support.backends import Backend
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.slow

#: The proxy's client timeouts here; an input that stops early is dropped after this.
CLIENT_TIMEOUT = 2.0
#: Time to an answer or a close: the timeouts plus a busy machine.
BUDGET = CLIENT_TIMEOUT + 4.0

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKENS = st.sampled_from([b"GET", b"PUT", b"POST", b"DELETE", b"HEAD", b"OPTIONS", b"G\x00T", b""])
PATHS = st.sampled_from(
    [
        b"/",
        b"/fuzz",
        b"/fuzz/k",
        b"/fuzz/k?uploads",
        b"/fuzz?list-type=2",
        b"*",
        b"//..//",
        b"/%zz",
        b"/fuzz/k?partNumber=x&uploadId=",
        b"http://127.0.0.1/fuzz/k",
        b"/" + b"a" * 9000,
    ]
) | st.binary(max_size=40)
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b"", b"HTTP/9"])
HEADERS = st.sampled_from(
    [
        (b"Host", b"127.0.0.1"),
        (b"Content-Length", b"5"),
        (b"Content-Length", b"-1"),
        (b"Content-Length", b"99999999999999999999"),
        (b"Content-Length", b"5, 6"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Transfer-Encoding", b"gzip, chunked"),
        (b"Transfer-Encoding", b"identity"),
        (b"Expect", b"100-continue"),
        (b"Connection", b"close"),
        (b"Content-Encoding", b"aws-chunked"),
        (b"x-amz-content-sha256", b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        (b"x-amz-content-sha256", b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        (b"x-amz-decoded-content-length", b"3"),
        (b"x-amz-trailer", b"x-amz-checksum-crc32"),
        (b"Content-MD5", b"not-base64"),
        (b"Range", b"bytes=5-1"),
        (b"Authorization", b"AWS4-HMAC-SHA256 Credential=x"),
        (b" Folded", b"x"),
        (b"Bad Name", b"x"),
        (b"X", b"\x00\xff"),
        (b"X-Long", b"v" * 10000),
    ]
) | st.tuples(st.binary(max_size=12), st.binary(max_size=24))
EOLS = st.sampled_from([b"\r\n", b"\n", b"\r"])
CHUNKS = st.lists(
    st.tuples(
        st.sampled_from([b"3", b"0", b"ffffffffffffffff", b"x", b"3;chunk-signature=ab", b""]),
        st.binary(max_size=8),
    ),
    max_size=4,
).map(lambda cs: b"".join(size + b"\r\n" + data + b"\r\n" for size, data in cs))


@st.composite
def requests(draw: Any) -> bytes:
    eol = draw(EOLS)
    line = b" ".join([draw(TOKENS), draw(PATHS), draw(VERSIONS)])
    headers = draw(st.lists(HEADERS, max_size=8))
    head = line + eol + b"".join(k + b": " + v + eol for k, v in headers)
    if draw(st.booleans()):
        head += eol
    body = draw(CHUNKS | st.binary(max_size=64))
    return head + body


def answer_or_close(proxy: ProxyProcess, data: bytes) -> tuple[bytes, float]:
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=BUDGET)
    received = b""
    try:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return received, time.monotonic() - started  # closed on us while sending: fine
        while time.monotonic() - started < BUDGET:
            sock.settimeout(max(0.01, BUDGET - (time.monotonic() - started)))
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
            if received.startswith(b"HTTP/1."):
                break  # an answer: enough
        return received, time.monotonic() - started
    finally:
        sock.close()


@pytest.fixture(scope="module")
def fuzz_proxy(moto_backend: Backend, proxy_factory) -> Iterator[ProxyProcess]:
    moto_backend.direct.create_bucket(Bucket="fuzz")
    proxy = proxy_factory(
        moto_backend,
        extra_config={
            "server": {
                "idle_timeout": CLIENT_TIMEOUT,
                "header_timeout": CLIENT_TIMEOUT,
                "body_idle_timeout": CLIENT_TIMEOUT,
            }
        },
        name="fuzz-parser",
    )
    yield proxy
    proxy.stop()


@FUZZ
@given(data=requests() | st.binary(max_size=256))
def test_every_input_ends_in_an_answer_or_a_close(fuzz_proxy: ProxyProcess, data: bytes) -> None:
    received, took = answer_or_close(fuzz_proxy, data)
    assert took < BUDGET, (data[:200], received[:200])
    assert not received or received.startswith(b"HTTP/1."), received[:200]
    assert fuzz_proxy.probe("/healthz") == 200, data[:200]


def test_the_proxy_is_healthy_after_the_fuzzing(fuzz_proxy: ProxyProcess) -> None:
    # Runs after the fuzz test in file order; on its own it checks a fresh proxy, also fine.
    assert fuzz_proxy.alive()
    assert fuzz_proxy.probe("/healthz") == 200
    assert exchange(fuzz_proxy, "PUT", "/fuzz/after", body=b"still here").status == 200
    assert exchange(fuzz_proxy, "GET", "/fuzz/after").body == b"still here"
