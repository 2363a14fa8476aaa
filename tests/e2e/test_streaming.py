"""Streaming: large bodies pass through without being held in memory; SIGTERM drains."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.backends import Backend
from tests.support.clients import boto3_client
from tests.support.peakrss import PeakRSS
from tests.support.proxy import ProxyProcess

MiB = 1024 * 1024
LARGE = 160 * MiB
#: The proxy may use some memory per transfer (buffers), never anything like the body's size.
RSS_GROWTH_LIMIT = 64 * MiB


def _big_file(path: Path, size: int) -> str:
    """Write ``size`` random-ish bytes (a 4 MiB random block repeated with a counter)."""
    block = os.urandom(4 * MiB)
    h = hashlib.sha256()
    with path.open("wb") as f:
        written = 0
        n = 0
        while written < size:
            piece = (n.to_bytes(8, "big") + block)[: size - written]
            f.write(piece)
            h.update(piece)
            written += len(piece)
            n += 1
    return h.hexdigest()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "large.bin"
    return path, _big_file(path, LARGE)


def test_large_put_and_get_stream_with_bounded_memory(
    proxy: ProxyProcess, backend: Backend, bucket: str, big_file: tuple[Path, str]
) -> None:
    path, digest = big_file
    client = boto3_client(proxy, checksum_mode="when_required", read_timeout=300)
    client.put_object(Bucket=bucket, Key="warm-up", Body=b"x" * 100_000)  # settle allocations
    client.get_object(Bucket=bucket, Key="warm-up")["Body"].read()

    with PeakRSS(proxy.pid) as put_rss, path.open("rb") as f:
        client.put_object(Bucket=bucket, Key="large", Body=f, ContentLength=LARGE)
    assert backend.sha256(bucket, "large") == digest
    assert put_rss.growth <= RSS_GROWTH_LIMIT, f"PUT grew RSS by {put_rss.growth / MiB:.1f} MiB"

    h = hashlib.sha256()
    with PeakRSS(proxy.pid) as get_rss:
        body = client.get_object(Bucket=bucket, Key="large")["Body"]
        for chunk in iter(lambda: body.read(MiB), b""):
            h.update(chunk)
    assert h.hexdigest() == digest
    assert get_rss.growth <= RSS_GROWTH_LIMIT, f"GET grew RSS by {get_rss.growth / MiB:.1f} MiB"


def _refuses_new_connections(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/")
        conn.getresponse().read()
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError):
        return True
    finally:
        conn.close()
    return False


def test_sigterm_drains_in_flight_get_and_put(start_proxy, backend: Backend, bucket: str) -> None:
    """SIGTERM mid-transfer: both transfers complete intact, new connections are refused,
    and the proxy exits 0."""
    proxy = start_proxy(shutdown_grace_seconds=30)
    size = 24 * MiB
    payload = os.urandom(size)
    backend.direct.put_object(Bucket=bucket, Key="download", Body=payload)

    # An in-flight download, read slowly.
    down = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    down.request("GET", f"/{bucket}/download")
    resp = down.getresponse()
    assert resp.status == 200
    got = bytearray(resp.read(MiB))

    # An in-flight upload, sent slowly.
    up = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    up.putrequest("PUT", f"/{bucket}/upload")
    up.putheader("Content-Length", str(size))
    up.endheaders()
    up.send(payload[: 4 * MiB])

    proxy.process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while not _refuses_new_connections(proxy.port):
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.1)
    assert proxy.alive(), "exited before the in-flight transfers finished"
    time.sleep(0.5)  # the rest of the upload arrives well after shutdown began

    for i in range(4 * MiB, size, 2 * MiB):
        up.send(payload[i : i + 2 * MiB])
        time.sleep(0.02)
    up_resp = up.getresponse()
    assert up_resp.status == 200, up_resp.read()
    while chunk := resp.read(MiB):
        got += chunk
        time.sleep(0.01)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert backend.sha256(bucket, "upload") == hashlib.sha256(payload).hexdigest()
    assert proxy.process.wait(30) == 0
    down.close()
    up.close()
