"""A large upload with a CRC64NVME trailer does not stall other requests.

boto3 over the TLS listener sends ``aws-chunked`` with an ``x-amz-checksum-crc64nvme`` trailer;
the proxy verifies it piece by piece as the body arrives (compiled CRC), so a concurrent small
GET keeps its latency. The latency test runs against a sink upstream in its own process (a
storage server ingesting 64 MiB on two shared cores stalls its own GETs by hundreds of
milliseconds, proxy or not); the stored checksum is checked against SeaweedFS.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from awscrt import checksums

from tests.support.backends import Backend, Credentials
from tests.support.clients import boto3_client
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.proxy import ProxyProcess, TLSFiles

MiB = 1024 * 1024
P99_LIMIT = 0.050
ROOT = Path(__file__).resolve().parents[2]

# Run in its own process so the uploading client's CRC and TLS work don't take the reader's GIL.
_UPLOADER = """
import json, os, sys
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
from tests.support.clients import boto3_client
endpoint, ca, bucket, size = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
target = SimpleNamespace(endpoint=endpoint, tls=SimpleNamespace(ca=ca))
client = boto3_client(target, checksum_mode="default")
seen = []
client.meta.events.register(
    "before-send.s3",
    lambda request, **_: seen.append(
        {k.lower(): v.decode() if isinstance(v, bytes) else str(v)
         for k, v in request.headers.items()}
    ),
)
resp = client.put_object(Bucket=bucket, Key="big", Body=os.urandom(size),
                         ChecksumAlgorithm="CRC64NVME")
print(json.dumps({"sent": seen, "response": resp["ResponseMetadata"]["HTTPHeaders"]}))
"""


def _upload(proxy: ProxyProcess, tls: TLSFiles, bucket: str, size: int) -> subprocess.Popen[str]:
    # Niced: in production the uploading client runs elsewhere; here it must not take the
    # cores the proxy and the reader need (what is measured is the proxy's event loop).
    return subprocess.Popen(
        [
            "nice",
            "-n",
            "19",
            sys.executable,
            "-c",
            _UPLOADER,
            str(ROOT),
            proxy.endpoint,
            str(tls.ca),
            bucket,
            str(size),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def sink(e2e_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = ManagedProcess(
        "sink", [sys.executable, "-m", "tests.support.sinkserver", str(port)], e2e_dir, cwd=ROOT
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        import urllib.request

        with urllib.request.urlopen(endpoint + "/b/k", timeout=1) as r:
            return bool(r.status == 200)

    proc.wait_until(up, timeout=20, what="answering", interval=0.1)
    yield endpoint
    proc.stop()


@pytest.mark.timeout(300)
def test_crc64nvme_upload_leaves_small_gets_fast(
    sink: str, tls_files: TLSFiles, start_proxy: Callable[..., ProxyProcess]
) -> None:
    proxy = start_proxy(
        upstream=sink, credentials=Credentials("AKIDSINK", "sink-secret"), tls=tls_files
    )
    reader = boto3_client(proxy, checksum_mode="when_required")
    idle: list[float] = []
    for _ in range(20):  # warm the reader's connection and the proxy's upstream pool
        t0 = time.perf_counter()
        reader.get_object(Bucket="b", Key="small")["Body"].read()
        idle.append(time.perf_counter() - t0)

    uploader = _upload(proxy, tls_files, "b", 64 * MiB)
    latencies: list[float] = []
    while uploader.poll() is None:
        t0 = time.perf_counter()
        assert len(reader.get_object(Bucket="b", Key="small")["Body"].read()) == 4096
        latencies.append(time.perf_counter() - t0)
    out, err = uploader.communicate()
    assert uploader.returncode == 0, err

    result = json.loads(out)
    # The client really sent aws-chunked with a CRC64NVME trailer (else this proves nothing).
    puts = [h for h in result["sent"] if "aws-chunked" in h.get("content-encoding", "")]
    assert puts and puts[0].get("x-amz-trailer") == "x-amz-checksum-crc64nvme", result["sent"]
    # The proxy verified and forwarded the decoded body with the checksum as a header.
    answered = result["response"]
    assert answered["x-sink-received"] == str(64 * MiB)
    assert answered.get("x-sink-checksum-crc64nvme"), answered

    assert len(latencies) >= 10, f"only {len(latencies)} GETs ran during the upload"
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < P99_LIMIT, (
        f"p99 {p99 * 1000:.1f} ms over {len(latencies)} GETs during the upload "
        f"(median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f}; "
        f"idle median {statistics.median(idle) * 1000:.1f} ms)"
    )


@pytest.mark.timeout(300)
def test_crc64nvme_trailer_is_the_stored_checksum(
    seaweedfs_backend: Backend, tls_files: TLSFiles, start_proxy: Callable[..., ProxyProcess]
) -> None:
    backend = seaweedfs_backend
    bucket = backend.new_bucket("crc64")
    proxy = start_proxy(backend, tls=tls_files)
    uploader = _upload(proxy, tls_files, bucket, 8 * MiB)
    out, err = uploader.communicate(timeout=120)
    assert uploader.returncode == 0, err
    sent = json.loads(out)["sent"]
    assert any(h.get("x-amz-trailer") == "x-amz-checksum-crc64nvme" for h in sent), sent
    body = backend.read(bucket, "big")
    crc = base64.b64encode(checksums.crc64nvme(body).to_bytes(8, "big")).decode()
    head = backend.direct.head_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert head["ContentLength"] == 8 * MiB
    assert head.get("ChecksumCRC64NVME") == crc
