"""The zero-copy relay of large passthrough GET bodies, end to end: real proxy process, real
backends and clients; plus a scripted raw-socket upstream that dies mid-body (the one fault a
real backend cannot be made to commit on cue)."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest

from tests.support.backends import Backend, Credentials
from tests.support.clients import boto3_client
from tests.support.proxy import ProxyProcess, TLSFiles

MiB = 1024 * 1024
SIZE = 24 * MiB + 11  # above the default 1 MiB threshold, not a multiple of anything


def _gets(proxy: ProxyProcess, bucket: str) -> list[dict]:
    return [
        line
        for line in proxy.log_lines()
        if line.get("operation") == "GetObject" and line.get("bucket") == bucket
    ]


def _response_bytes(proxy: ProxyProcess) -> float:
    return proxy.scrape().value("format_proxy_response_bytes_total", operation="GetObject")


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.mark.parametrize("checksum_mode", ["default", "when_required"])
def test_large_get_is_relayed_intact(
    proxy: ProxyProcess, backend: Backend, bucket: str, payload: bytes, checksum_mode: str
) -> None:
    s3 = boto3_client(proxy, checksum_mode=checksum_mode, read_timeout=120)
    # Stored through the proxy: in default mode boto3 sends a CRC32, which it then validates
    # over the relayed body on the way back.
    s3.put_object(Bucket=bucket, Key="big", Body=payload)
    assert backend.sha256(bucket, "big") == hashlib.sha256(payload).hexdigest()
    before = _response_bytes(proxy)

    got = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    start, end = 3 * MiB + 5, 11 * MiB
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{end}")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == payload[start : end + 1]
    small = s3.get_object(Bucket=bucket, Key="big", Range="bytes=0-999")["Body"].read()
    assert small == payload[:1000]

    lines = proxy.wait_for_log(
        lambda line: line.get("operation") == "GetObject" and line.get("bucket") == bucket,
        count=3,
    )
    full, part, tiny = lines[-3:]
    assert (full["status"], full["bytes_out"], full.get("relay")) == (200, SIZE, "zero-copy")
    assert (part["status"], part["bytes_out"], part.get("relay")) == (
        206,
        end + 1 - start,
        "zero-copy",
    )
    assert "relay" not in tiny and tiny["bytes_out"] == 1000  # below the threshold
    assert _response_bytes(proxy) - before == SIZE + (end + 1 - start) + 1000


def test_client_connection_is_kept_alive_after_a_relayed_body(
    proxy: ProxyProcess, backend: Backend, bucket: str, payload: bytes
) -> None:
    backend.direct.put_object(Bucket=bucket, Key="big", Body=payload)
    backend.direct.put_object(Bucket=bucket, Key="small", Body=b"tiny")
    logged_before = len(_gets(proxy, bucket))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
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
    # Each access-log line is written after its response went out: wait for all three.
    lines = proxy.wait_for_log(
        lambda line: line.get("operation") == "GetObject" and line.get("bucket") == bucket,
        count=logged_before + 3,
    )
    relayed = [line.get("relay") for line in lines[-3:]]
    assert relayed == ["zero-copy", None, "zero-copy"]


def _pipes(proxy: ProxyProcess) -> int:
    fd_dir = Path(f"/proc/{proxy.pid}/fd")
    return sum(1 for fd in fd_dir.iterdir() if os.readlink(fd).startswith("pipe:"))


def test_client_going_away_mid_relay(
    proxy: ProxyProcess, backend: Backend, bucket: str, payload: bytes
) -> None:
    big = payload * 3  # 72 MiB: far more than the socket buffers hold
    backend.direct.put_object(Bucket=bucket, Key="huge", Body=big)
    pipes_before = _pipes(proxy)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    conn.request("GET", f"/{bucket}/huge")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read(MiB) == big[:MiB]
    client_port = conn.sock.getsockname()[1]
    # Reset, not a polite close: the proxy's next write fails at once.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.sock.close()
    conn.close()

    [line] = proxy.wait_for_log(
        lambda line: line.get("bucket") == bucket and "error" in line, timeout=30
    )
    assert line["status"] == 200 and line["relay"] == "zero-copy"
    assert line["error"].startswith("response aborted: the client went away")
    assert MiB <= line["bytes_out"] < len(big)
    # Nothing left behind: no relay pipe, no socket to the client.
    deadline = time.monotonic() + 10
    while _pipes(proxy) != pipes_before or any(
        c.laddr and c.raddr and c.raddr[1] == client_port for c in proxy.psutil().net_connections()
    ):
        assert time.monotonic() < deadline, "relay pipe or client socket left open"
        time.sleep(0.1)
    # And the proxy serves the next request, relayed again.
    s3 = boto3_client(proxy, checksum_mode="when_required", read_timeout=120)
    assert s3.get_object(Bucket=bucket, Key="huge")["Body"].read() == big
    assert proxy.probe("/healthz") == 200


def test_tls_listener_streams_large_gets_normally(
    start_proxy, backend: Backend, bucket: str, payload: bytes, tls_files: TLSFiles
) -> None:
    proxy = start_proxy(tls=tls_files)
    backend.direct.put_object(Bucket=bucket, Key="big", Body=payload)
    s3 = boto3_client(proxy, read_timeout=120)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == payload
    [line] = proxy.wait_for_log(lambda line: line.get("operation") == "GetObject")
    assert line["bytes_out"] == SIZE and "relay" not in line


def test_sigterm_lets_a_relayed_download_finish(
    start_proxy, backend: Backend, bucket: str, payload: bytes
) -> None:
    proxy = start_proxy(shutdown_grace_seconds=30)
    backend.direct.put_object(Bucket=bucket, Key="big", Body=payload)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    conn.request("GET", f"/{bucket}/big")
    resp = conn.getresponse()
    got = bytearray(resp.read(MiB))
    proxy.process.popen.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proxy.alive(), "exited before the relayed download finished"
    while chunk := resp.read(MiB):
        got += chunk
        time.sleep(0.01)
    conn.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert proxy.process.wait(30) == 0
    [line] = proxy.wait_for_log(lambda line: line.get("operation") == "GetObject")
    assert line["relay"] == "zero-copy" and line["bytes_out"] == SIZE and "error" not in line


# --- an upstream that dies mid-body ----------------------------------------------------------


class DyingUpstream:
    """Raw HTTP on loopback: ``/b/ok`` answers in full; ``/b/fin`` and ``/b/rst`` declare
    ``DECLARED`` bytes, send ``SENT`` of them, then close (FIN) or reset (RST)."""

    DECLARED = 16 * MiB
    SENT = 5 * MiB

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._body = os.urandom(self.DECLARED)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                path = head.split(b" ", 2)[1].decode()
                length = 4 if path.startswith("/b/ok") else self.DECLARED
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Length: {length}\r\n\r\n".encode()
                )
                if length == 4:
                    conn.sendall(b"fine")
                    continue
                conn.sendall(self._body[: self.SENT])
                time.sleep(0.3)  # the proxy is mid-body now
                if path.startswith("/b/rst"):
                    conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="module")
def dying_upstream() -> Iterator[DyingUpstream]:
    upstream = DyingUpstream()
    yield upstream
    upstream.close()


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("zero_copy", ["1MiB", 0], ids=["relay", "copy"])
def test_upstream_dying_mid_body_is_a_truncated_response(
    proxy_factory, dying_upstream: DyingUpstream, how: str, zero_copy: object
) -> None:
    proxy = proxy_factory(
        upstream=dying_upstream.endpoint,
        credentials=Credentials("AKIDEXAMPLE", "secret"),
        limits={"zero_copy_min_bytes": zero_copy},
    )
    declared, sent = DyingUpstream.DECLARED, DyingUpstream.SENT

    # A raw client: the status and length arrive, then fewer bytes and the end of the stream.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.request("GET", f"/b/{how}-raw")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == str(declared)
    with pytest.raises(http.client.IncompleteRead) as caught:
        resp.read()
    conn.close()
    assert 0 < len(caught.value.partial) <= sent

    # boto3 refuses the short body instead of handing it over as the object.
    s3 = boto3_client(proxy, checksum_mode="when_required")
    body = s3.get_object(Bucket="b", Key=f"{how}-boto3")["Body"]
    with pytest.raises(
        (botocore.exceptions.IncompleteReadError, botocore.exceptions.ResponseStreamingError)
    ):
        body.read()

    lines = proxy.wait_for_log(lambda line: "error" in line, count=2)
    for line in lines:
        assert line["status"] == 200
        assert line["error"].startswith("response aborted:"), line
        assert 0 < line["bytes_out"] <= sent
        assert line.get("relay") == ("zero-copy" if zero_copy else None)
    # The proxy is fine: the next request gets its full answer.
    assert s3.get_object(Bucket="b", Key="ok")["Body"].read() == b"fine"
    proxy.stop()
