"""Upstream connections are reused: 1,000 sequential requests through the proxy open (almost)
no new connections to the backend, over plain HTTP and over HTTPS.

A counting TCP relay sits between the proxy and SeaweedFS; TLS passes through it untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.support.backends import Backend
from tests.support.clients import boto3_client
from tests.support.proxy import ProxyProcess, TLSFiles
from tests.support.tcprelay import CountingRelay

REQUESTS = 1_000
BODY = b"k" * 4096


def _sequential_requests(
    backend: Backend,
    start_proxy: Callable[..., ProxyProcess],
    env: dict[str, str] | None = None,
) -> tuple[int, int]:
    """(connections the backend accepted, requests sent) for REQUESTS GETs and PUTs."""
    bucket = backend.new_bucket("keepalive")
    backend.direct.put_object(Bucket=bucket, Key="small", Body=BODY)
    parts = urlsplit(backend.endpoint)
    assert parts.port is not None
    with CountingRelay(parts.port) as relay:
        proxy = start_proxy(
            backend, upstream=f"{parts.scheme}://127.0.0.1:{relay.port}", env=env or {}
        )
        s3 = boto3_client(proxy, checksum_mode="when_required")
        for i in range(REQUESTS):
            if i % 10 == 0:
                s3.put_object(Bucket=bucket, Key="small", Body=BODY)
            else:
                assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == BODY
        return relay.accepted, REQUESTS


@pytest.mark.timeout(300)
def test_plain_http_upstream_connections_are_reused(
    seaweedfs_backend: Backend, start_proxy: Callable[..., ProxyProcess]
) -> None:
    accepted, sent = _sequential_requests(seaweedfs_backend, start_proxy)
    # One connection carries everything (the readiness probe does not reach the backend).
    assert 1 <= accepted <= 2, f"{accepted} upstream connections for {sent} sequential requests"


@pytest.mark.timeout(300)
def test_https_upstream_connections_are_reused(
    seaweedfs_tls_backend: Backend,
    tls_files: TLSFiles,
    start_proxy: Callable[..., ProxyProcess],
) -> None:
    # The proxy trusts the test CA through the standard OpenSSL variable.
    accepted, sent = _sequential_requests(
        seaweedfs_tls_backend, start_proxy, env={"SSL_CERT_FILE": str(tls_files.ca)}
    )
    assert 1 <= accepted <= 2, f"{accepted} upstream connections for {sent} sequential requests"
