"""Whole-tool flows through the proxy: aws-cli (``aws s3``, ``aws s3api``) and s3fs."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from tests.support.backends import Backend
from tests.support.clients import AwsCli, s3fs_filesystem, sha256_of_file
from tests.support.proxy import ProxyProcess

MiB = 1024 * 1024


@pytest.fixture
def cli(proxy: ProxyProcess, tmp_path: Path) -> AwsCli:
    return AwsCli.for_target(proxy, cwd=tmp_path)


def test_aws_s3_cp_ls_roundtrip(cli: AwsCli, backend: Backend, bucket: str, tmp_path: Path):
    small = tmp_path / "small file.txt"
    small.write_bytes(b"hello from aws-cli\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB))  # > 8 MiB: aws s3 cp goes multipart
    cli.run("s3", "cp", str(small), f"s3://{bucket}/cli/small file.txt")
    cli.run("s3", "cp", str(big), f"s3://{bucket}/cli/big.bin")
    assert backend.sha256(bucket, "cli/small file.txt") == sha256_of_file(small)
    assert backend.sha256(bucket, "cli/big.bin") == sha256_of_file(big)
    assert backend.direct.head_object(Bucket=bucket, Key="cli/big.bin")["ETag"].endswith('-2"')

    listing = cli.run("s3", "ls", f"s3://{bucket}/cli/").stdout
    assert "small file.txt" in listing and "big.bin" in listing
    back = tmp_path / "back.bin"
    cli.run("s3", "cp", f"s3://{bucket}/cli/big.bin", str(back))
    assert sha256_of_file(back) == sha256_of_file(big)
    cli.run("s3", "rm", f"s3://{bucket}/cli/small file.txt")
    assert not backend.exists(bucket, "cli/small file.txt")


def test_aws_s3_sync(cli: AwsCli, backend: Backend, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    files = {
        "a.xml": b"<a/>",
        "sub dir/b+c.json": b'{"b": 1}',
        "sub dir/deeper/ü.txt": "ünïcode".encode(),
        "empty": b"",
    }
    an_hour_ago = time.time() - 3600  # older than any LastModified: a re-sync uploads nothing
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
        os.utime(src / rel, (an_hour_ago, an_hour_ago))
    cli.run("s3", "sync", str(src), f"s3://{bucket}/tree")
    assert sorted(backend.keys(bucket, "tree/")) == sorted(f"tree/{k}" for k in files)
    for rel, data in files.items():
        assert backend.read(bucket, f"tree/{rel}") == data
    # Nothing changed: a second sync uploads nothing.
    again = cli.run("s3", "sync", str(src), f"s3://{bucket}/tree").stdout
    assert "upload:" not in again
    dst = tmp_path / "copy"
    cli.run("s3", "sync", f"s3://{bucket}/tree", str(dst))
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data


def test_aws_s3api(cli: AwsCli, backend: Backend, bucket: str, tmp_path: Path) -> None:
    body = tmp_path / "doc.json"
    body.write_bytes(b'{"doc": true}')
    out = cli.run(
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "api/doc.json",
        "--body",
        str(body),
        "--content-type",
        "application/json",
        "--metadata",
        "phase=two",
        "--tagging",
        "a=b",
    ).stdout
    assert json.loads(out)["ETag"]
    head = json.loads(
        cli.run("s3api", "head-object", "--bucket", bucket, "--key", "api/doc.json").stdout
    )
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"phase": "two"}
    assert backend.read(bucket, "api/doc.json") == b'{"doc": true}'
    listed = json.loads(
        cli.run("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "api/").stdout
    )
    assert [o["Key"] for o in listed["Contents"]] == ["api/doc.json"]
    tags = json.loads(
        cli.run("s3api", "get-object-tagging", "--bucket", bucket, "--key", "api/doc.json").stdout
    )
    assert tags["TagSet"] == [{"Key": "a", "Value": "b"}]
    outfile = tmp_path / "got.json"
    cli.run(
        "s3api",
        "get-object",
        "--bucket",
        bucket,
        "--key",
        "api/doc.json",
        "--range",
        "bytes=1-5",
        str(outfile),
    )
    assert outfile.read_bytes() == b'"doc"'
    missing = cli.run(
        "s3api", "get-object", "--bucket", bucket, "--key", "nope", str(outfile), check=False
    )
    assert missing.returncode != 0
    assert "NoSuchKey" in missing.stderr


def test_aws_cli_over_tls(backend: Backend, bucket: str, proxy_factory, tls_files, tmp_path):
    proxy = proxy_factory(backend, tls=tls_files)
    try:
        cli = AwsCli.for_target(proxy, cwd=tmp_path)
        src = tmp_path / "tls.bin"
        src.write_bytes(os.urandom(9 * MiB))
        cli.run("s3", "cp", str(src), f"s3://{bucket}/tls.bin")
        assert backend.sha256(bucket, "tls.bin") == sha256_of_file(src)
    finally:
        proxy.stop()


def test_s3fs_flows(proxy: ProxyProcess, backend: Backend, bucket: str, tmp_path: Path) -> None:
    fs = s3fs_filesystem(proxy)
    data = os.urandom(7 * MiB + 5)
    with fs.open(f"{bucket}/fs/one.bin", "wb", block_size=5 * MiB) as f:  # multipart writer
        f.write(data)
    assert backend.sha256(bucket, "fs/one.bin") == hashlib.sha256(data).hexdigest()
    fs.pipe(f"{bucket}/fs/two words.txt", b"second")
    assert backend.read(bucket, "fs/two words.txt") == b"second"
    assert sorted(fs.ls(f"{bucket}/fs/")) == [f"{bucket}/fs/one.bin", f"{bucket}/fs/two words.txt"]
    assert fs.info(f"{bucket}/fs/one.bin")["size"] == len(data)
    assert fs.cat(f"{bucket}/fs/one.bin") == data
    with fs.open(f"{bucket}/fs/one.bin", "rb") as f:
        f.seek(1000)
        assert f.read(100) == data[1000:1100]
    local = tmp_path / "got.bin"
    fs.get(f"{bucket}/fs/one.bin", str(local))
    assert local.read_bytes() == data
    fs.copy(f"{bucket}/fs/one.bin", f"{bucket}/fs/copy.bin")
    assert backend.sha256(bucket, "fs/copy.bin") == hashlib.sha256(data).hexdigest()
    fs.rm(f"{bucket}/fs/", recursive=True)
    assert backend.keys(bucket, "fs/") == []
    assert not fs.exists(f"{bucket}/fs/one.bin")
