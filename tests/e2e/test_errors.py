"""Errors: upstream errors pass through unchanged; the proxy's own are precise S3 XML errors."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

from tests.support.backends import Backend
from tests.support.clients import boto3_client
from tests.support.ports import free_port
from tests.support.proxy import ProxyProcess, run_proxy_command
from tests.support.rawhttp import request_head, send, send_raw, sigv4_headers


def _request_ids(headers: dict[str, str]) -> dict[str, str]:
    names = ("x-amz-request-id", "x-amz-id-2", "x-amzn-requestid")
    return {n: headers[n] for n in names if n in headers}


@pytest.mark.parametrize(
    "method,path_fmt,headers_fmt",
    [
        ("GET", "/{bucket}/no-such-key", {}),
        ("GET", "/no-such-bucket-{rand}/key", {}),
        ("PUT", "/{bucket}/copy", {"x-amz-copy-source": "/{bucket}/no-such-source"}),
        ("GET", "/{bucket}/present", {"Range": "bytes=100-200"}),  # 416
    ],
    ids=["NoSuchKey", "NoSuchBucket", "copy-NoSuchKey", "InvalidRange"],
)
def test_upstream_errors_pass_through_unchanged(
    proxy: ProxyProcess,
    backend: Backend,
    bucket: str,
    method: str,
    path_fmt: str,
    headers_fmt: dict[str, str],
) -> None:
    backend.direct.put_object(Bucket=bucket, Key="present", Body=b"x")
    path = path_fmt.format(bucket=bucket, rand=os.urandom(4).hex())
    headers = {k: v.format(bucket=bucket) for k, v in headers_fmt.items()}
    via_proxy = send(proxy.endpoint, method, path, headers=headers)
    # The same request signed by the backend's own key, sent directly.
    direct_headers = sigv4_headers(
        method,
        f"{backend.endpoint}{path}",
        headers,
        payload_hash=hashlib.sha256(b"").hexdigest(),
        credentials=backend.credentials,
    )
    direct = send(backend.endpoint, method, path, headers=direct_headers)
    assert direct.status >= 400, "the scenario must make the backend fail"
    assert via_proxy.status == direct.status
    assert via_proxy.header("content-type") == direct.header("content-type")
    proxy_err, direct_err = via_proxy.error(), direct.error()
    volatile = {"RequestId", "HostId"}
    assert {k: v for k, v in proxy_err.items() if k not in volatile} == {
        k: v for k, v in direct_err.items() if k not in volatile
    }
    # The backend's request-id headers come through (values differ per request).
    assert set(_request_ids(via_proxy.headers)) == set(_request_ids(direct.headers))
    if "RequestId" in proxy_err and "x-amz-request-id" in via_proxy.headers:
        assert proxy_err["RequestId"] == via_proxy.headers["x-amz-request-id"]


def _assert_service_unavailable(proxy: ProxyProcess, bucket: str = "some-bucket") -> None:
    resp = send(proxy.endpoint, "GET", f"/{bucket}/key", timeout=60)
    assert resp.status == 503
    err = resp.error()
    assert err["Code"] == "ServiceUnavailable"
    assert err["Message"]
    assert err["Resource"] == f"/{bucket}/key"
    assert err["RequestId"]
    assert resp.header("content-type") in ("application/xml", "text/xml")
    # Where the upstream is stays in the proxy's log, out of the client's answer.
    upstream = proxy.config["upstream"]["endpoint"].split("://", 1)[1]
    assert upstream.encode() not in resp.body, resp.body
    assert proxy.wait_for_log(
        lambda line: line.get("status") == 503 and upstream in str(line.get("error"))
    )
    # boto3 sees a retryable ServiceUnavailable.
    client = boto3_client(proxy, total_max_attempts=2, read_timeout=60)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 1


def test_unreachable_upstream_is_503(start_proxy, moto_backend: Backend) -> None:
    dead = free_port()  # nothing listens here
    proxy = start_proxy(
        upstream=f"http://127.0.0.1:{dead}",
        credentials=moto_backend.credentials,
        upstream_options={"connect_timeout": 2},
    )
    _assert_service_unavailable(proxy)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_timed_out_upstream_is_503(start_proxy, moto_backend: Backend, black_hole: int) -> None:
    proxy = start_proxy(
        upstream=f"http://127.0.0.1:{black_hole}",
        credentials=moto_backend.credentials,
        upstream_options={"read_timeout": 1, "connect_timeout": 1},
    )
    started = time.monotonic()
    _assert_service_unavailable(proxy)
    assert time.monotonic() - started < 30


def test_body_shorter_than_content_length_writes_nothing(
    proxy: ProxyProcess, backend: Backend, bucket: str
) -> None:
    """The client promises 1 MiB, sends half and stops sending: 400 if anyone is listening,
    and in any case nothing is stored upstream."""
    head = request_head(
        "PUT",
        f"/{bucket}/short",
        {"Host": f"127.0.0.1:{proxy.port}", "Content-Length": str(1 << 20)},
    )
    resp = send_raw(proxy.endpoint, head, os.urandom(1 << 19), half_close=True, timeout=30)
    if resp is not None:
        assert resp.status == 400, (resp.status, resp.body)
        assert resp.error()["Code"] in {"IncompleteBody", "InvalidRequest"}
    time.sleep(0.5)
    assert not backend.exists(bucket, "short")
    # The proxy is fine afterwards.
    assert send(proxy.endpoint, "GET", f"/{bucket}?list-type=2").status == 200


def test_expect_100_continue(proxy: ProxyProcess, backend: Backend, bucket: str) -> None:
    """The client waits for ``100 Continue`` before sending the body, as SDKs do."""
    body = os.urandom(100_000)
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    try:
        sock.sendall(
            request_head(
                "PUT",
                f"/{bucket}/expect",
                {
                    "Host": f"127.0.0.1:{proxy.port}",
                    "Content-Length": str(len(body)),
                    "Expect": "100-continue",
                },
            )
        )
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body)
        final = b""
        while b"\r\n\r\n" not in final:
            final += sock.recv(4096)
        assert final.startswith(b"HTTP/1.1 200"), final
    finally:
        sock.close()
    assert backend.read(bucket, "expect") == body


# --- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config,key_path,fragment",
    [
        ({"upstream": {"endpoint": "htp:/x"}}, "upstream.endpoint", "not a URL: 'htp:/x'"),
        ({"listen": "nonsense"}, "listen", "nonsense"),
        ({"upstream": {"read_timeout": -1}}, "upstream.read_timeout", ""),
        ({"limits": {"max_translate_bytes": "lots"}}, "limits.max_translate_bytes", "lots"),
        ({"no_such_key": 1}, "no_such_key", "unknown key"),
        ({"routes": "not-a-list"}, "routes", ""),
    ],
)
def test_invalid_config_exits_2_with_key_path(
    tmp_path: Path, config: dict, key_path: str, fragment: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_proxy_command(["serve", "--config", str(path)])
    assert result.returncode == 2, result
    assert f"{key_path}: " in result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("port", ["notaport", "70000", "0"])
@pytest.mark.parametrize("command", ["serve", "check"])
def test_invalid_upstream_port_exits_2(tmp_path: Path, command: str, port: str) -> None:
    url = f"http://127.0.0.1:{port}"
    if command == "serve":
        result = run_proxy_command(["serve", "--upstream", url])
    else:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"upstream": {"endpoint": url}}))
        result = run_proxy_command(["check", "--config", str(path)])
    assert result.returncode == 2, result
    assert f"upstream.endpoint: not a valid port in '{url}'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invalid_flag_value_exits_2(tmp_path: Path) -> None:
    result = run_proxy_command(["serve", "--upstream", "htp:/x"])
    assert result.returncode == 2
    assert "upstream.endpoint: not a URL: 'htp:/x'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_config_file_exits_2(tmp_path: Path) -> None:
    result = run_proxy_command(["serve", "--config", str(tmp_path / "missing.yaml")])
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr
    assert "Traceback" not in result.stderr
