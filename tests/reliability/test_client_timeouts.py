"""Client-side timeouts: idle connections, slow request heads, stalled bodies, 100-continue
without a body. Each closes the connection in bounded time and frees what it held."""

from __future__ import annotations

import socket
import time

import pytest

from tests.reliability.helpers import connect, read_until_closed, stalled_put, status_of
from tests.support.backends import Backend
from tests.support.clients import boto3_client
from tests.support.rawhttp import request_head, send


def _proxy(start_proxy, backend: Backend, **server: float):
    timeouts = {"idle_timeout": 30, "header_timeout": 30, "body_idle_timeout": 30, **server}
    return start_proxy(backend=backend, extra_config={"server": timeouts})


def test_idle_connection_closed_after_idle_timeout(start_proxy, moto_backend: Backend) -> None:
    proxy = _proxy(start_proxy, moto_backend, idle_timeout=1)
    fresh = connect(proxy)  # never sends a byte
    data, closed_after = read_until_closed(fresh, timeout=15)
    assert data == b"" and 0.7 <= closed_after <= 3.0, closed_after
    # Between keep-alive requests too.
    bucket = moto_backend.new_bucket()
    used = connect(proxy)
    used.sendall(request_head("GET", f"/{bucket}?list-type=2", {"Host": "127.0.0.1"}))
    answer, closed_after = read_until_closed(used, timeout=15)
    assert status_of(answer) == 200, answer[:200]
    assert 0.7 <= closed_after <= 3.0, closed_after


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length body, from a raw keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return head


def test_keep_alive_requests_restart_the_idle_timeout(start_proxy, moto_backend: Backend) -> None:
    """Requests spaced closer than the idle timeout keep a connection open well past it; the
    timeout counts from the last response. Stray bytes after a response (a bare CRLF) start the
    header timeout: they never keep a connection open."""
    proxy = _proxy(start_proxy, moto_backend, idle_timeout=1, header_timeout=1)
    bucket = moto_backend.new_bucket()
    sock = connect(proxy)
    started = time.monotonic()
    for _ in range(4):  # 4 x 0.5 s: twice the idle timeout
        sock.sendall(request_head("GET", f"/{bucket}?list-type=2", {"Host": "127.0.0.1"}))
        assert status_of(_read_response(sock)) == 200
        time.sleep(0.5)
    assert time.monotonic() - started >= 2.0
    data, closed_after = read_until_closed(sock, timeout=15)
    assert data == b"" and 0.2 <= closed_after <= 2.5, closed_after

    sock = connect(proxy)
    sock.sendall(request_head("GET", f"/{bucket}?list-type=2", {"Host": "127.0.0.1"}))
    assert status_of(_read_response(sock)) == 200
    time.sleep(0.5)
    sock.sendall(b"\r\n")  # ends the idle wait; no request follows
    data, closed_after = read_until_closed(sock, timeout=15)
    assert closed_after <= 2.5, closed_after


def test_slow_request_head_closed_after_header_timeout(start_proxy, moto_backend: Backend) -> None:
    """A slow-loris head: one header byte every 0.2 s keeps the connection busy, never idle."""
    proxy = _proxy(start_proxy, moto_backend, header_timeout=1)
    sock = connect(proxy)
    sock.sendall(b"GET /bucket/key HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 10:
        try:
            sock.sendall(b"X")
        except OSError:
            closed = True
            break
        sock.settimeout(0.2)
        try:
            if sock.recv(65536) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except OSError:
            closed = True
            break
    elapsed = time.monotonic() - started
    sock.close()
    assert closed and elapsed <= 3.0, elapsed
    samples = proxy.scrape()
    assert samples.value("format_proxy_client_timeouts_total", phase="header") == 1
    assert proxy.wait_for_log(
        lambda line: line.get("event") == "client_timeout" and line.get("phase") == "header"
    )


def test_stalled_upload_times_out_and_frees_its_upstream_connection(
    start_proxy, moto_backend: Backend
) -> None:
    """Stalled PUT bodies hold upstream connections; with the pool that small, every other
    request would wait for them. After body_idle_timeout they are answered, closed and their
    upstream connections released."""
    proxy = start_proxy(
        backend=moto_backend,
        upstream_options={"max_connections": 2, "connect_timeout": 2},
        extra_config={"server": {"body_idle_timeout": 2, "idle_timeout": 30}},
    )
    bucket = moto_backend.new_bucket()
    stalled = [stalled_put(proxy, bucket, f"stalled/{i}") for i in range(2)]
    for sock in stalled:
        answer, closed_after = read_until_closed(sock, timeout=15)
        sock.close()
        assert status_of(answer) == 400, answer[:300]
        assert b"<Code>RequestTimeout</Code>" in answer
        assert closed_after <= 5.0, closed_after
    s3 = boto3_client(proxy)
    for i in range(4):  # more than the pool holds: the stalled uploads' connections came back
        s3.put_object(Bucket=bucket, Key=f"after/{i}", Body=b"ok")
        assert s3.get_object(Bucket=bucket, Key=f"after/{i}")["Body"].read() == b"ok"
    assert not moto_backend.exists(bucket, "stalled/0")
    samples = proxy.scrape()
    assert samples.value("format_proxy_client_timeouts_total", phase="body") == 2
    assert samples.value("format_proxy_requests_total", operation="PutObject", code="400") == 2


def test_expect_100_continue_without_a_body_times_out(start_proxy, moto_backend: Backend) -> None:
    proxy = _proxy(start_proxy, moto_backend, body_idle_timeout=1)
    bucket = moto_backend.new_bucket()
    sock = connect(proxy)
    head = {
        "Host": f"127.0.0.1:{proxy.port}",
        "Content-Length": "10",
        "Expect": "100-continue",
    }
    sock.sendall(request_head("PUT", f"/{bucket}/never", head))
    answer, closed_after = read_until_closed(sock, timeout=15)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), answer[:200]
    final = answer[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    assert status_of(final) == 400 and b"<Code>RequestTimeout</Code>" in final, final[:300]
    assert closed_after <= 4.0, closed_after
    assert not moto_backend.exists(bucket, "never")
    # The proxy is fine afterwards.
    assert send(proxy.endpoint, "GET", f"/{bucket}?list-type=2").status == 200


@pytest.mark.parametrize("key", ["server.idle_timeout", "server.body_idle_timeout"])
def test_timeouts_must_be_positive(key: str, tmp_path) -> None:
    from tests.support.proxy import run_proxy_command

    section, name = key.split(".")
    config = tmp_path / "c.yaml"
    config.write_text(f"{section}:\n  {name}: 0\n")
    result = run_proxy_command(["check", "--config", str(config)])
    assert result.returncode == 2, result
    assert key in result.stderr


@pytest.mark.parametrize("relay", ["buffered", "zero-copy"])
def test_unread_response_is_aborted_and_frees_its_upstream_connection(
    start_proxy, moto_backend: Backend, relay: str
) -> None:
    """A client that asks for a large object and never reads it: the response is aborted after
    body_idle_timeout and the upstream connection it held is released — on the buffered path and
    in the kernel-side zero-copy relay alike."""
    proxy = start_proxy(
        backend=moto_backend,
        upstream_options={"max_connections": 1, "connect_timeout": 2},
        limits={"zero_copy_min_bytes": 0 if relay == "buffered" else 1 << 20},
        extra_config={"server": {"body_idle_timeout": 1, "idle_timeout": 30}},
    )
    bucket = moto_backend.new_bucket()
    s3 = boto3_client(proxy)
    s3.put_object(Bucket=bucket, Key="big", Body=b"z" * (32 << 20))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", proxy.port))
    try:
        sock.sendall(request_head("GET", f"/{bucket}/big", {"Host": "127.0.0.1"}))
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")  # then it stops reading
        deadline = time.monotonic() + 10
        while not proxy.scrape().value("format_proxy_client_timeouts_total", phase="response"):
            assert time.monotonic() < deadline, "the unread response was never aborted"
            time.sleep(0.2)
    finally:
        sock.close()
    # The single pooled upstream connection is free again.
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == 32 << 20
    (line,) = proxy.wait_for_log(
        lambda line: (
            line.get("operation") == "GetObject" and "response aborted" in str(line.get("error"))
        )
    )
    assert (line.get("relay") == "zero-copy") == (relay == "zero-copy"), line
