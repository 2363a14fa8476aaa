"""Metrics scraped from the running proxy, JSON request logs, and no secret in any log line."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import socket
import time
import urllib.error
import urllib.request
from email.utils import formatdate
from urllib.parse import parse_qsl, urlsplit

import botocore.exceptions
import pytest

from tests.support import awschunked
from tests.support.backends import Backend
from tests.support.clients import CLIENT_CREDENTIALS, AwsCli, boto3_client
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import request_head, send, send_raw, sigv4_headers


def _traffic(proxy: ProxyProcess, bucket: str) -> dict[str, int]:
    """A known mix of requests; returns how many of each (operation, code) were made."""
    s3 = boto3_client(proxy)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"m/{i}", Body=b"x" * (i + 1))
    for i in range(2):
        s3.get_object(Bucket=bucket, Key=f"m/{i}")["Body"].read()
    s3.list_objects_v2(Bucket=bucket)
    s3.head_object(Bucket=bucket, Key="m/0")
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError):
            s3.get_object(Bucket=bucket, Key="m/missing")
    up = s3.create_multipart_upload(Bucket=bucket, Key="m/mp")
    s3.abort_multipart_upload(Bucket=bucket, Key="m/mp", UploadId=up["UploadId"])
    s3.delete_object(Bucket=bucket, Key="m/2")
    return {
        "PutObject/200": 3,
        "GetObject/200": 2,
        "ListObjectsV2/200": 1,
        "HeadObject/200": 1,
        "GetObject/404": 2,
        "CreateMultipartUpload/200": 1,
        "AbortMultipartUpload/204": 1,
        "DeleteObject/204": 1,
    }


def test_health_endpoints(proxy: ProxyProcess) -> None:
    assert proxy.probe("/healthz") == 200
    assert proxy.probe("/readyz") == 200


def test_readyz_fails_without_credentials(start_proxy, moto_backend: Backend) -> None:
    """No credentials anywhere in the chain: alive (``/healthz``), never ready (``/readyz``)."""
    proxy = start_proxy(upstream=moto_backend.endpoint, credentials=None, wait=False)
    proxy.process.wait_until(lambda: proxy.probe("/healthz") == 200, timeout=30, what="alive")
    for _ in range(10):
        assert proxy.probe("/readyz") == 503
        time.sleep(0.1)
    assert proxy.alive()


def test_request_metrics_after_traffic(start_proxy, backend: Backend, bucket: str) -> None:
    proxy = start_proxy(app_version="v1")
    before = proxy.scrape()
    expected = _traffic(proxy, bucket)
    after = proxy.scrape()
    for op_code, count in expected.items():
        op, code = op_code.split("/")
        delta = after.value("format_proxy_requests_total", operation=op, code=code) - before.value(
            "format_proxy_requests_total", operation=op, code=code
        )
        assert delta == count, f"{op_code}: {delta} != {count}"
        assert after.value("format_proxy_request_duration_seconds_count", operation=op) >= count
        assert after.value("format_proxy_upstream_duration_seconds_count", operation=op) >= count
    total = sum(v for _, v in after.find("format_proxy_requests_total"))
    assert total == sum(expected.values())  # nothing counted twice, nothing extra
    assert after.value("format_proxy_inflight_requests") == 0
    info = after.find("format_proxy_build_info")
    assert len(info) == 1 and info[0][1] == 1
    assert info[0][0]["app_version"] == "v1"
    assert info[0][0]["version"]
    # Bounded labels only: never a bucket, key or request id.
    for name, labels, _ in after.samples:
        assert not {"bucket", "key", "request_id"} & set(labels), (name, labels)
        assert bucket not in "".join(labels.values()), (name, labels)


def test_request_log_lines(start_proxy, backend: Backend, bucket: str) -> None:
    proxy = start_proxy()
    s3 = boto3_client(proxy)
    s3.put_object(Bucket=bucket, Key="logged/secret-key-name", Body=b"12345")
    s3.get_object(Bucket=bucket, Key="logged/secret-key-name")["Body"].read()
    # The access-log line is written after the response went out: wait for both.
    lines = proxy.wait_for_log(
        lambda line: line.get("operation") in ("PutObject", "GetObject"), count=2
    )
    assert [line["operation"] for line in lines] == ["PutObject", "GetObject"]
    put, get = lines
    for line in lines:
        assert line["bucket"] == bucket
        assert line["status"] == 200
        assert line["request_id"]
        assert isinstance(line["duration_ms"], int | float)
        ts = dt.datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
        assert ts.utcoffset() == dt.timedelta(0)
    assert put["bytes_in"] == 5
    assert get["bytes_out"] == 5
    # At info level the key is not logged.
    assert "secret-key-name" not in proxy.output()
    assert not proxy.non_json_stdout_lines(), proxy.non_json_stdout_lines()


def test_keys_logged_at_debug_level(start_proxy, backend: Backend, bucket: str) -> None:
    proxy = start_proxy(log_level="debug")
    boto3_client(proxy).put_object(Bucket=bucket, Key="dbg/visible-key", Body=b"x")
    assert proxy.wait_for_log(lambda line: "dbg/visible-key" in str(line.values()))


def _collect_client_secrets(client) -> list[str]:
    """Record every signature the client computes (from the requests it sends)."""
    seen: list[str] = []

    def record(request, **_kwargs) -> None:
        auth = request.headers.get("Authorization")
        if auth:
            auth = auth.decode() if isinstance(auth, bytes) else auth
            seen.append(auth)
            seen.extend(re.findall(r"Signature=([0-9a-f]+)", auth))

    client.meta.events.register("before-send.s3", record)
    return seen


def _malformed_requests(proxy: ProxyProcess, bucket: str) -> list[str]:
    """Requests aiohttp's HTTP parser rejects, each quoting a secret or a private object key in
    the bytes it objects to; returns those secrets. None of them may come back either."""
    host = f"127.0.0.1:{proxy.port}"
    secrets: list[str] = []

    def signed(key: str) -> dict[str, str]:
        headers = sigv4_headers(
            "PUT", f"http://{host}/{bucket}/{key}", {"Host": host}, payload_hash="UNSIGNED-PAYLOAD"
        )
        secrets.append(headers["Authorization"].split("Signature=")[1])
        secrets.append(headers["X-Amz-Security-Token"])
        return headers

    def private_key() -> str:
        key = f"customer-ssn-123-45-{os.urandom(4).hex()}.json"
        secrets.append(key)
        return key

    def rejected(raw: bytes) -> None:
        resp = send_raw(proxy.endpoint, raw, b"", timeout=10)
        assert resp is not None and resp.status == 400, resp
        assert resp.error()["Code"] == "InvalidRequest"
        leaked = [s for s in secrets if s.encode() in resp.body]
        assert not leaked, f"secrets echoed in the error body: {leaked}"

    # A bad character at the end of the Authorization value itself.
    key = private_key()
    head = request_head("GET", f"/{bucket}/{key}", signed(key))
    rejected(head.replace(b"\r\nX-Amz-Date", b"\x01\r\nX-Amz-Date", 1))
    # A bad header line right after Authorization and the session token.
    key = private_key()
    headers = signed(key)
    rejected(request_head("GET", f"/{bucket}/{key}", {**headers, "X-Bad\x01": "v"}))
    # An over-long header line: the session token, padded past aiohttp's line limit.
    token = os.urandom(30).hex()
    secrets.append(token)
    rejected(
        request_head(
            "GET", f"/{bucket}/k", {"Host": host, "X-Amz-Security-Token": token + "A" * 9000}
        )
    )
    # A bad request line carrying a presigned query.
    key = private_key()
    sig, tok = os.urandom(32).hex(), os.urandom(24).hex()
    secrets += [sig, tok]
    query = f"X-Amz-Signature={sig}&X-Amz-Security-Token={tok}&X-Amz-Credential=AKIATEST"
    rejected(f"GET /{bucket}/{key}?{query} HTTP/1.1 junk\r\nHost: {host}\r\n\r\n".encode())
    # An over-long request line with the signature in front.
    key = private_key()
    sig = os.urandom(32).hex()
    secrets.append(sig)
    rejected(f"GET /{bucket}/{key}?X-Amz-Signature={sig}&p={'x' * 9000} HTTP/1.1\r\n\r\n".encode())
    # Bad chunked framing right after a signed head.
    key = private_key()
    head = request_head("PUT", f"/{bucket}/{key}", {**signed(key), "Transfer-Encoding": "chunked"})
    rejected(head + f"zz{os.urandom(8).hex()}\r\nabc\r\n".encode())
    # Bad chunked framing in the middle of a body the handler is already streaming.
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    try:
        chunk_secret = "zz" + os.urandom(16).hex()  # not a chunk size
        secrets.append(chunk_secret)
        headers = {**signed("s/midbody"), "Transfer-Encoding": "chunked"}
        sock.sendall(request_head("PUT", f"/{bucket}/s/midbody", headers) + b"5\r\nhello\r\n")
        time.sleep(0.3)
        sock.sendall(f"{chunk_secret}\r\n".encode() + b"zz" * 10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert chunk_secret.encode() not in answer
    finally:
        sock.close()
    return secrets


def test_no_secret_in_any_log_line(start_proxy, backend: Backend, bucket: str) -> None:
    """Every secret that reaches or belongs to the proxy is absent from its output, at debug
    level, through a mix of auth styles (SigV4 header, SigV2 header, presigned SigV2/SigV4,
    session tokens, aws-chunked with chunk signatures, errors)."""
    proxy = start_proxy(log_level="debug")
    secrets: list[str] = [*CLIENT_CREDENTIALS.secrets(), *backend.credentials.secrets()]

    s3 = boto3_client(proxy)
    secrets += _collect_client_secrets(s3)
    s3.put_object(Bucket=bucket, Key="s/1", Body=b"one")
    s3.get_object(Bucket=bucket, Key="s/1")["Body"].read()
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket=bucket, Key="s/missing")

    for sv in (None, "s3v4"):
        presigner = boto3_client(proxy, signature_version=sv)
        url = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "s/1"}, ExpiresIn=300
        )
        query = dict(parse_qsl(urlsplit(url).query))
        for name in (
            "Signature",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
            "x-amz-security-token",
        ):
            if name in query:
                secrets.append(query[name])
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.read() == b"one"
        # A presigned URL for a missing key: the error path logs too.
        bad = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "s/nope"}, ExpiresIn=300
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(bad, timeout=30)

    cli_url = AwsCli.for_target(proxy).run("s3", "presign", f"s3://{bucket}/s/1").stdout.strip()
    secrets.append(dict(parse_qsl(urlsplit(cli_url).query))["Signature"])
    with urllib.request.urlopen(cli_url, timeout=30) as r:
        assert r.read() == b"one"

    date = formatdate(usegmt=True)
    v2sig = base64.b64encode(
        hmac.new(b"k", f"GET\n\n\n{date}\n/{bucket}/s/1".encode(), hashlib.sha1).digest()
    ).decode()
    secrets.append(v2sig)
    resp = send(
        proxy.endpoint,
        "GET",
        f"/{bucket}/s/1",
        headers={"Date": date, "Authorization": f"AWS {CLIENT_CREDENTIALS.access_key}:{v2sig}"},
    )
    assert resp.status == 200

    data = os.urandom(20_000)
    up = awschunked.build(
        f"{proxy.endpoint}/{bucket}/s/chunked", data, variant=awschunked.SIGNED_TRAILER
    )
    secrets += re.findall(r"chunk-signature=([0-9a-f]{64})", up.body.decode("latin-1"))
    secrets += re.findall(r"x-amz-trailer-signature:([0-9a-f]{64})", up.body.decode("latin-1"))
    secrets.append(up.headers["Authorization"].split("Signature=")[1])
    resp = send(proxy.endpoint, "PUT", f"/{bucket}/s/chunked", headers=up.headers, body=up.body)
    assert resp.status == 200, resp.body
    assert backend.read(bucket, "s/chunked") == data

    secrets += _malformed_requests(proxy, bucket)

    proxy.wait_for_log(lambda line: line.get("event") == "request", count=10)
    proxy.wait_for_log(lambda line: line.get("event") == "bad_request", count=6)
    secrets = sorted({s for s in secrets if s and len(s) >= 8})
    assert len(secrets) >= 10, "the test must really have collected secrets"
    output = proxy.output()
    assert output.count('"request"') >= 8, "the proxy must really have logged the requests"
    leaked = [s for s in secrets if s in output]
    assert not leaked, f"secrets in the proxy's log: {leaked}"
    # And nothing that merely looks like a signature or a credential scope.
    assert not re.search(r"Signature=[0-9a-fA-F]{16,}", output)
    assert not re.search(r"Credential=AKIA", output)
    assert CLIENT_CREDENTIALS.session_token not in output
    # Requests the HTTP parser rejected are logged once each, without what they quoted.
    assert len([ln for ln in proxy.log_lines() if ln.get("event") == "bad_request"]) == 6
    assert not [ln for ln in proxy.log_lines() if ln.get("level") == "error"]
    assert "customer-ssn-" not in output
