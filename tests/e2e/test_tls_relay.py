"""The TLS relay of large GET bodies from an HTTPS upstream, end to end: real proxy process,
SeaweedFS serving S3 over HTTPS, real clients; plus a scripted TLS upstream that dies or stalls
mid-body."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import botocore.exceptions
import pytest

from tests.e2e.test_zero_copy import DyingUpstream
from tests.support.backends import Backend, Credentials
from tests.support.clients import boto3_client
from tests.support.proxy import ProxyProcess, TLSFiles

MiB = 1024 * 1024
SIZE = 24 * MiB + 11  # above the default 1 MiB threshold, not a multiple of anything


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def tls_proxy(
    seaweedfs_tls_backend: Backend,
    tls_files: TLSFiles,
    start_proxy: Callable[..., ProxyProcess],
) -> ProxyProcess:
    """A plain-HTTP proxy whose upstream is SeaweedFS over HTTPS."""
    return start_proxy(seaweedfs_tls_backend, env={"SSL_CERT_FILE": str(tls_files.ca)})


def _gets(proxy: ProxyProcess, bucket: str, count: int) -> list[dict]:
    return proxy.wait_for_log(
        lambda line: line.get("operation") == "GetObject" and line.get("bucket") == bucket,
        count=count,
    )


def test_large_get_over_https_upstream_is_relayed_intact(
    tls_proxy: ProxyProcess, seaweedfs_tls_backend: Backend, payload: bytes
) -> None:
    backend = seaweedfs_tls_backend
    bucket = backend.new_bucket("tlsrelay")
    backend.direct.put_object(Bucket=bucket, Key="big", Body=payload)
    before = tls_proxy.scrape().value("format_proxy_response_bytes_total", operation="GetObject")
    s3 = boto3_client(tls_proxy, read_timeout=120)  # validates the stored CRC over the body
    got = s3.get_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    start, end = 3 * MiB + 5, 11 * MiB
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{end}")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == payload[start : end + 1]
    tiny = s3.get_object(Bucket=bucket, Key="big", Range="bytes=0-999")["Body"].read()
    assert tiny == payload[:1000]

    full, part, small = _gets(tls_proxy, bucket, 3)[-3:]
    assert (full["status"], full["bytes_out"], full.get("relay")) == (200, SIZE, "tls")
    assert (part["status"], part["bytes_out"], part.get("relay")) == (206, end + 1 - start, "tls")
    assert "relay" not in small and small["bytes_out"] == 1000  # below the threshold
    after = tls_proxy.scrape().value("format_proxy_response_bytes_total", operation="GetObject")
    assert after - before == SIZE + (end + 1 - start) + 1000


def test_client_connection_is_kept_alive_after_a_tls_relayed_body(
    tls_proxy: ProxyProcess, seaweedfs_tls_backend: Backend, payload: bytes
) -> None:
    backend = seaweedfs_tls_backend
    bucket = backend.new_bucket("tlsrelay")
    backend.direct.put_object(Bucket=bucket, Key="big", Body=payload)
    backend.direct.put_object(Bucket=bucket, Key="small", Body=b"tiny")
    conn = http.client.HTTPConnection("127.0.0.1", tls_proxy.port, timeout=60)
    try:
        expected = {"big": payload, "small": b"tiny"}
        sock = None
        for key in ("big", "small", "big"):
            conn.request("GET", f"/{bucket}/{key}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and not resp.will_close
            assert body == expected[key], key
            sock = sock or conn.sock
            assert conn.sock is sock  # the same connection all along
    finally:
        conn.close()
    relayed = [line.get("relay") for line in _gets(tls_proxy, bucket, 3)[-3:]]
    assert relayed == ["tls", None, "tls"]


def test_client_going_away_mid_tls_relay(
    tls_proxy: ProxyProcess, seaweedfs_tls_backend: Backend, payload: bytes
) -> None:
    backend = seaweedfs_tls_backend
    bucket = backend.new_bucket("tlsrelay")
    big = payload * 3  # 72 MiB: far more than the socket buffers hold
    backend.direct.put_object(Bucket=bucket, Key="huge", Body=big)
    conn = http.client.HTTPConnection("127.0.0.1", tls_proxy.port, timeout=60)
    conn.request("GET", f"/{bucket}/huge")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read(MiB) == big[:MiB]
    client_port = conn.sock.getsockname()[1]
    # Reset, not a polite close: the proxy's next write fails at once.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.sock.close()
    conn.close()

    [line] = tls_proxy.wait_for_log(
        lambda line: line.get("bucket") == bucket and "error" in line, timeout=30
    )
    assert line["status"] == 200 and line["relay"] == "tls"
    assert line["error"].startswith("response aborted: the client went away")
    assert MiB <= line["bytes_out"] < len(big)
    deadline = time.monotonic() + 10
    while any(
        c.laddr and c.raddr and c.raddr[1] == client_port
        for c in tls_proxy.psutil().net_connections()
    ):
        assert time.monotonic() < deadline, "client socket left open"
        time.sleep(0.1)
    # The proxy serves the next request, relayed again.
    s3 = boto3_client(tls_proxy, checksum_mode="when_required", read_timeout=120)
    assert s3.get_object(Bucket=bucket, Key="huge")["Body"].read() == big
    assert tls_proxy.probe("/healthz") == 200


# --- a TLS upstream that dies or stalls mid-body ---------------------------------------------


class DyingTLSUpstream(DyingUpstream):
    """:class:`DyingUpstream` over TLS; ``/b/stall`` sends ``SENT`` bytes, then nothing for
    ``STALL`` seconds (the connection stays open)."""

    STALL = 8.0

    def __init__(self, tls: TLSFiles) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(tls.cert, tls.key)
        super().__init__()
        self.endpoint = f"https://127.0.0.1:{self.port}"

    def _answer(self, conn: socket.socket) -> None:
        try:
            wrapped = self._context.wrap_socket(conn, server_side=True)
            head = wrapped.recv(65536)
            while head and b"\r\n\r\n" not in head:
                head += wrapped.recv(65536)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        if b" /b/stall" not in head.split(b"\r\n", 1)[0]:
            super()._answer(_Replay(wrapped, head))
            return
        with wrapped:
            wrapped.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                + f"Content-Length: {self.DECLARED}\r\n\r\n".encode()
            )
            wrapped.sendall(self._body[: self.SENT])
            time.sleep(self.STALL)


class _Replay:
    """A socket whose first ``recv`` answers bytes already read (the request head)."""

    def __init__(self, sock: ssl.SSLSocket, first: bytes) -> None:
        self._sock = sock
        self._first: bytes | None = first

    def recv(self, n: int) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._sock.recv(n)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)

    def __enter__(self) -> _Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


@pytest.fixture
def dying_tls_upstream(tls_files: TLSFiles) -> Iterator[DyingTLSUpstream]:
    upstream = DyingTLSUpstream(tls_files)
    yield upstream
    upstream.close()


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_tls_upstream_dying_mid_body_is_a_truncated_response(
    start_proxy: Callable[..., ProxyProcess],
    dying_tls_upstream: DyingTLSUpstream,
    tls_files: TLSFiles,
    how: str,
) -> None:
    proxy = start_proxy(
        upstream=dying_tls_upstream.endpoint,
        credentials=Credentials("AKIDEXAMPLE", "secret"),
        env={"SSL_CERT_FILE": str(tls_files.ca)},
    )
    declared, sent = DyingUpstream.DECLARED, DyingUpstream.SENT
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.request("GET", f"/b/{how}-raw")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == str(declared)
    with pytest.raises(http.client.IncompleteRead) as caught:
        resp.read()
    conn.close()
    assert 0 < len(caught.value.partial) <= sent

    s3 = boto3_client(proxy, checksum_mode="when_required")
    body = s3.get_object(Bucket="b", Key=f"{how}-boto3")["Body"]
    with pytest.raises(
        (botocore.exceptions.IncompleteReadError, botocore.exceptions.ResponseStreamingError)
    ):
        body.read()

    for line in proxy.wait_for_log(lambda line: "error" in line, count=2):
        assert line["status"] == 200 and line["relay"] == "tls"
        assert line["error"].startswith("response aborted:"), line
        assert 0 < line["bytes_out"] <= sent
    assert s3.get_object(Bucket="b", Key="ok")["Body"].read() == b"fine"


def test_tls_upstream_stalling_mid_body_is_cut_after_the_read_timeout(
    start_proxy: Callable[..., ProxyProcess],
    dying_tls_upstream: DyingTLSUpstream,
    tls_files: TLSFiles,
) -> None:
    proxy = start_proxy(
        upstream=dying_tls_upstream.endpoint,
        credentials=Credentials("AKIDEXAMPLE", "secret"),
        upstream_options={"read_timeout": 1.5},
        env={"SSL_CERT_FILE": str(tls_files.ca)},
    )
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.request("GET", "/b/stall")
    resp = conn.getresponse()
    started = time.monotonic()
    with pytest.raises(http.client.IncompleteRead) as caught:
        resp.read()
    waited = time.monotonic() - started
    conn.close()
    assert 0 < len(caught.value.partial) <= DyingUpstream.SENT
    assert waited < DyingTLSUpstream.STALL - 2  # cut by the proxy, not by the upstream's end
    [line] = proxy.wait_for_log(lambda line: "error" in line)
    assert line["relay"] == "tls"
    assert "the upstream sent nothing for 1.5 s" in line["error"]


def test_client_that_stops_reading_is_cut_after_the_body_idle_timeout(
    seaweedfs_tls_backend: Backend,
    tls_files: TLSFiles,
    start_proxy: Callable[..., ProxyProcess],
    payload: bytes,
) -> None:
    proxy = start_proxy(
        seaweedfs_tls_backend,
        env={"SSL_CERT_FILE": str(tls_files.ca)},
        extra_config={"server": {"body_idle_timeout": 1, "idle_timeout": 30}},
    )
    bucket = seaweedfs_tls_backend.new_bucket("tlsrelay")
    seaweedfs_tls_backend.direct.put_object(Bucket=bucket, Key="big", Body=payload)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", proxy.port))
    try:
        sock.sendall(f"GET /{bucket}/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")  # then it stops reading
        deadline = time.monotonic() + 10
        while not proxy.scrape().value("format_proxy_client_timeouts_total", phase="response"):
            assert time.monotonic() < deadline, "the unread response was never aborted"
            time.sleep(0.2)
    finally:
        sock.close()
    [line] = proxy.wait_for_log(lambda line: "error" in line)
    assert line["relay"] == "tls" and line["status"] == 200
    assert line["error"].startswith("response aborted: the client took nothing for 1 s"), line
    assert line["bytes_out"] < SIZE
