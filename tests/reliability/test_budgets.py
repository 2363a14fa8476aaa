"""End to end on SeaweedFS: the proxy's global byte budgets. Past them a request is refused at
once with ``503 SlowDown`` (counted in ``format_proxy_refused_total``) and nothing is stored;
spool directories left by a proxy that was killed are removed when the next one starts."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.reliability.hostile import Client, schemaless_route
from tests.support.backends import Backend
from tests.support.clients import boto3_client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MiB = 1024 * 1024


@pytest.fixture
def bucket(seaweedfs_backend: Backend) -> str:
    return seaweedfs_backend.new_bucket("budgets")


def test_concurrent_puts_past_the_inflight_budget_get_slowdown_and_store_nothing(
    seaweedfs_backend: Backend, bucket: str, start_proxy: Any
):
    proxy = start_proxy(
        seaweedfs_backend,
        app_version="v2",
        routes=[schemaless_route(bucket)],
        limits={"max_translate_bytes": "3MiB", "max_inflight_translate_bytes": "3MiB"},
    )
    # ~1.5 MiB each: two fit the budget at once, eight arrive together.
    doc = json.dumps({"doc": {f"k{i}": "v" * 20 for i in range(50_000)}}).encode()
    assert MiB < len(doc) < 2 * MiB
    barrier = threading.Barrier(8)
    statuses: dict[str, tuple[int, bytes]] = {}

    def put(i: int) -> None:
        client = Client(proxy.endpoint)
        barrier.wait()
        got = client.request(
            "PUT", f"/{bucket}/docs/{i}", body=doc, headers={"Content-Type": "application/json"}
        )
        statuses[f"docs/{i}"] = (got.status, got.body)
        client.close()

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    refused = [k for k, (s, _) in statuses.items() if s == 503]
    stored = [k for k, (s, _) in statuses.items() if s == 200]
    assert len(refused) + len(stored) == 8, statuses
    assert refused and stored
    assert all(b"<Code>SlowDown</Code>" in statuses[k][1] for k in refused)
    for key in refused:
        assert not seaweedfs_backend.exists(bucket, key)
    for key in stored:
        assert seaweedfs_backend.exists(bucket, key)
    samples = proxy.scrape()
    assert samples.value("format_proxy_refused_total", reason="translate_budget") == len(refused)
    assert samples.value("format_proxy_refused_total", reason="spool_budget") == 0


def test_upload_part_past_the_spool_budget_gets_slowdown(
    seaweedfs_backend: Backend, bucket: str, start_proxy: Any
):
    proxy = start_proxy(
        seaweedfs_backend,
        app_version="v2",
        routes=[schemaless_route(bucket)],
        limits={"max_spool_bytes": "8MiB"},
    )
    s3 = boto3_client(proxy)
    first = s3.create_multipart_upload(Bucket=bucket, Key="docs/a.json")["UploadId"]
    second = s3.create_multipart_upload(Bucket=bucket, Key="docs/b.json")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="docs/a.json", UploadId=first, PartNumber=1, Body=b"a" * 5 * MiB
    )
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.upload_part(
            Bucket=bucket, Key="docs/b.json", UploadId=second, PartNumber=1, Body=b"b" * 5 * MiB
        )
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert proxy.scrape().value("format_proxy_refused_total", reason="spool_budget") == 1
    # Aborting the first upload frees its part's room.
    s3.abort_multipart_upload(Bucket=bucket, Key="docs/a.json", UploadId=first)
    s3.upload_part(
        Bucket=bucket, Key="docs/b.json", UploadId=second, PartNumber=1, Body=b"b" * 5 * MiB
    )


def test_a_restarted_proxy_removes_the_spool_of_a_dead_one(
    seaweedfs_backend: Backend, bucket: str, start_proxy: Any, tmp_path: Path
):
    spool = tmp_path / "spool"
    spool.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = spool / f"format-proxy-uploads-{dead.pid}-x1"
    (stale / "upload").mkdir(parents=True)
    (stale / "upload" / "part-00001").write_bytes(b"p" * 1024)
    unrelated = spool / "notes"
    unrelated.mkdir()
    proxy = start_proxy(
        seaweedfs_backend,
        app_version="v2",
        routes=[schemaless_route(bucket)],
        extra_config={"spool_dir": str(spool)},
    )
    assert not stale.exists()
    assert unrelated.exists()
    ours = [p.name for p in spool.iterdir() if p.name.startswith("format-proxy-uploads-")]
    assert ours and all(n.startswith(f"format-proxy-uploads-{proxy.pid}-") for n in ours)
    # A proxy killed outright leaves its spool behind; the next one removes it.
    s3 = boto3_client(proxy)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="docs/k.json")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="docs/k.json", UploadId=upload, PartNumber=1, Body=b"k" * 1024
    )
    os.kill(proxy.pid, 9)
    proxy.process.wait(10)
    assert [p for p in spool.iterdir() if p.name in ours]  # left behind
    start_proxy(
        seaweedfs_backend,
        app_version="v2",
        routes=[schemaless_route(bucket)],
        extra_config={"spool_dir": str(spool)},
    )
    assert not [p for p in spool.iterdir() if p.name in ours]
