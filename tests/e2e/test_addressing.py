"""Addressing: path style and virtual-hosted style in, awkward keys byte-for-byte upstream."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
from urllib.parse import quote, urlsplit

import botocore.exceptions
import pytest

from tests.support.backends import Backend
from tests.support.clients import CHECKSUM_MODES, boto3_client
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import EMPTY_SHA256, send, sigv4_headers

# Keys whose bytes an S3 path can easily mangle on the way through a proxy.
AWKWARD_KEYS = [
    "with space",
    "plus+sign",
    "colon:key",
    "literal%2Fslash",
    "dollar$sign",
    "tilde~key",
    "double//slash",
    "//leading",
    "ünïcödé/日本語",
    "trailing/",
    "mixed ?#&=;,@!'()*[]",
    "a%20b+c%2Bd",
]


@pytest.fixture(params=CHECKSUM_MODES)
def s3(request: pytest.FixtureRequest, proxy: ProxyProcess):
    return boto3_client(proxy, checksum_mode=request.param)


def test_awkward_keys_arrive_byte_for_byte(s3, backend: Backend, bucket: str) -> None:
    """Each key written through the proxy is stored exactly as the same key written directly.

    (SeaweedFS folds ``//`` to ``/`` itself, so the comparison is against the backend's own
    handling of the key; on moto, which keeps keys verbatim, it must equal the key itself.)
    """
    for i, key in enumerate(AWKWARD_KEYS):
        body = f"{i}:{key}".encode()
        s3.put_object(Bucket=bucket, Key=f"proxy/{key}", Body=body)
        backend.direct.put_object(Bucket=bucket, Key=f"direct/{key}", Body=body)
    via_proxy = sorted(k.removeprefix("proxy/") for k in backend.keys(bucket, "proxy/"))
    direct = sorted(k.removeprefix("direct/") for k in backend.keys(bucket, "direct/"))
    assert via_proxy == direct
    if backend.name == "moto":
        assert via_proxy == sorted(AWKWARD_KEYS)
    # Stored bytes equal the direct write's, and read back the same through the proxy.
    # (SeaweedFS keeps no content for a key ending in "/": it is a directory there.)
    for i, key in enumerate(AWKWARD_KEYS):
        stored = backend.read(bucket, f"proxy/{key}")
        assert stored == backend.read(bucket, f"direct/{key}")
        if backend.name == "moto" or not key.endswith("/"):
            assert stored == f"{i}:{key}".encode()
        assert s3.get_object(Bucket=bucket, Key=f"proxy/{key}")["Body"].read() == stored
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="proxy/")["Contents"]]
    assert sorted(listed) == sorted(f"proxy/{k}" for k in via_proxy)


def _virtual_url(proxy: ProxyProcess, bucket: str, key: str) -> tuple[str, str]:
    host = f"{bucket}.localhost:{proxy.port}"
    return f"http://{host}/{quote(key, safe='/~')}", host


def test_virtual_hosted_raw_requests(proxy: ProxyProcess, backend: Backend, bucket: str) -> None:
    """``Host: <bucket>.localhost`` addressing (what the JS SDK v3 sends) for PUT, GET, list."""
    body = os.urandom(3000)
    key = "vhost/a b+c"
    url, host = _virtual_url(proxy, bucket, key)
    headers = sigv4_headers(
        "PUT", url, {"Host": host}, payload_hash=hashlib.sha256(body).hexdigest()
    )
    resp = send(proxy.endpoint, "PUT", urlsplit(url).path, headers=headers, body=body)
    assert resp.status == 200, resp.body
    assert backend.read(bucket, key) == body

    headers = sigv4_headers("GET", url, {"Host": host}, payload_hash=EMPTY_SHA256)
    resp = send(proxy.endpoint, "GET", urlsplit(url).path, headers=headers)
    assert resp.status == 200
    assert resp.body == body

    list_url = f"http://{host}/?list-type=2&prefix=vhost%2F"
    headers = sigv4_headers("GET", list_url, {"Host": host}, payload_hash=EMPTY_SHA256)
    resp = send(proxy.endpoint, "GET", "/?list-type=2&prefix=vhost%2F", headers=headers)
    assert resp.status == 200
    assert b"<Key>vhost/a b+c</Key>" in resp.body


def test_virtual_hosted_boto3(proxy: ProxyProcess, backend: Backend, bucket: str) -> None:
    """Real boto3 in virtual-hosted mode (``bucket.localhost``), connecting to 127.0.0.1."""
    client = boto3_client(
        f"http://localhost:{proxy.port}", addressing_style="virtual", checksum_mode="default"
    )

    def to_loopback(request, **_kwargs) -> None:
        # bucket.localhost doesn't resolve everywhere: connect to 127.0.0.1, keep the Host header.
        parts = urlsplit(request.url)
        request.headers["Host"] = parts.netloc
        request.url = request.url.replace(parts.netloc, f"127.0.0.1:{proxy.port}", 1)

    client.meta.events.register_last("before-send.s3", to_loopback)
    body = os.urandom(10_000)
    client.put_object(Bucket=bucket, Key="v/h o+st", Body=body)
    assert backend.read(bucket, "v/h o+st") == body
    assert client.get_object(Bucket=bucket, Key="v/h o+st")["Body"].read() == body
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="v/")["Contents"]]
    assert keys == ["v/h o+st"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.get_object(Bucket=bucket, Key="v/missing")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"


class RecordingRelay:
    """A TCP relay that notes the ``Host`` header of every request passing through it.

    Sits between the proxy and the backend, so a test can see which host each upstream request
    was addressed to without trusting the proxy's own account of it.
    """

    HOST = re.compile(rb"\r\nHost: ([^\r]*)\r\n", re.IGNORECASE)

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hosts: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        tail = b""
        try:
            while chunk := src.recv(65536):
                if record:
                    # The bodies in this test are short ASCII: a header never spans reads.
                    seen = tail + chunk
                    self.hosts += [m.decode() for m in self.HOST.findall(seen)]
                    tail = seen[-1:]
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


def test_upstream_virtual_addressing(start_proxy, backend: Backend, bucket: str) -> None:
    """``addressing_style: virtual`` forwards as ``<bucket>.<endpoint host>`` for path clients.

    The upstream endpoint is ``localhost`` (through a relay that records Host headers), so the
    proxy must reach ``<bucket>.localhost``: its resolver treats ``*.localhost`` as loopback
    (RFC 6761), whatever the system resolver does.
    """
    backend_port = urlsplit(backend.endpoint).port
    assert backend_port is not None
    relay = RecordingRelay(backend_port)
    try:
        proxy = start_proxy(
            upstream=f"http://localhost:{relay.port}",
            upstream_options={"addressing_style": "virtual"},
        )
        path_client = boto3_client(proxy)
        key = "virt/h o+st:~$ ü"
        path_client.put_object(Bucket=bucket, Key=key, Body=b"virtual")
        assert backend.read(bucket, key) == b"virtual"
        assert path_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"virtual"
        assert path_client.head_object(Bucket=bucket, Key=key)["ContentLength"] == 7
        listed = path_client.list_objects_v2(Bucket=bucket, Prefix="virt/")["Contents"]
        assert [o["Key"] for o in listed] == [key]
        path_client.copy_object(
            Bucket=bucket, Key="virt/copy", CopySource={"Bucket": bucket, "Key": key}
        )
        assert backend.read(bucket, "virt/copy") == b"virtual"
        path_client.delete_object(Bucket=bucket, Key=key)
        with pytest.raises(botocore.exceptions.ClientError) as info:
            backend.read(bucket, key)
        assert info.value.response["Error"]["Code"] == "NoSuchKey"
        # Every request the proxy sent went to the bucket's own host, none path-style.
        assert relay.hosts, "no request passed through the relay"
        assert set(relay.hosts) == {f"{bucket}.localhost:{relay.port}"}
    finally:
        relay.close()
