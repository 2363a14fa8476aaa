"""A translating route driven by aws-cli and s3fs (real processes, both backends): uploads,
downloads (multipart and ranged, which exercise the translation cache), HEAD sizes, listings,
refused documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.datapath.orders import big_order, json_bytes, order, orders_route, same_xml, xml_bytes
from tests.support.backends import Backend
from tests.support.clients import AwsCli, s3fs_filesystem
from tests.support.proxy import ProxyProcess

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cli_bucket(backend: Backend) -> str:
    return backend.new_bucket("clients")


@pytest.fixture(scope="module")
def v2_proxy(backend: Backend, cli_bucket: str, proxy_factory: Any) -> Iterator[ProxyProcess]:
    p = proxy_factory(
        backend,
        app_version="v2",
        routes=[orders_route(cli_bucket)],
        name=f"clients-v2-{backend.name}",
    )
    yield p
    p.stop()


@pytest.fixture(scope="module")
def v1_proxy(backend: Backend, cli_bucket: str, proxy_factory: Any) -> Iterator[ProxyProcess]:
    p = proxy_factory(
        backend,
        app_version="v1",
        routes=[orders_route(cli_bucket)],
        name=f"clients-v1-{backend.name}",
    )
    yield p
    p.stop()


def translations(proxy: ProxyProcess, operation: str) -> float:
    return proxy.scrape().value(
        "format_proxy_translations_total", route="orders", operation=operation
    )


def test_aws_cli_round_trip(
    v2_proxy: ProxyProcess, backend: Backend, cli_bucket: str, tmp_path: Path
) -> None:
    aws = AwsCli.for_target(v2_proxy, cwd=tmp_path)
    doc = order(21, 5)
    (tmp_path / "o.json").write_bytes(json_bytes(doc))
    url = f"s3://{cli_bucket}/orders/cli.json"
    aws.run("s3", "cp", "o.json", url)
    stored = backend.read(cli_bucket, "orders/cli.json")
    assert same_xml(stored, xml_bytes(doc))

    aws.run("s3", "cp", url, "back.json")
    translated = (tmp_path / "back.json").read_bytes()
    assert json.loads(translated) == doc

    head = json.loads(
        aws.run("s3api", "head-object", "--bucket", cli_bucket, "--key", "orders/cli.json").stdout
    )
    assert head["ContentLength"] == len(translated)
    assert head["ContentType"] == "application/json"
    aws.run(
        "s3api",
        "get-object",
        "--bucket",
        cli_bucket,
        "--key",
        "orders/cli.json",
        "--range",
        "bytes=0-9",
        "part.bin",
    )
    assert (tmp_path / "part.bin").read_bytes() == translated[:10]

    listing = aws.run("s3", "ls", f"s3://{cli_bucket}/orders/cli.json").stdout
    assert f" {len(stored)} cli.json" in listing  # listings show stored sizes


def test_aws_cli_refuses_invalid_documents(
    v2_proxy: ProxyProcess, backend: Backend, cli_bucket: str, tmp_path: Path
) -> None:
    aws = AwsCli.for_target(v2_proxy, cwd=tmp_path)
    (tmp_path / "bad.json").write_text('{"id": "OR-1"}')
    proc = aws.run("s3", "cp", "bad.json", f"s3://{cli_bucket}/orders/bad.json", check=False)
    assert proc.returncode != 0
    assert "InvalidDocument." in proc.stderr
    assert not backend.exists(cli_bucket, "orders/bad.json")


def test_aws_cli_multipart_upload_and_parallel_ranged_download(
    v2_proxy: ProxyProcess,
    v1_proxy: ProxyProcess,
    backend: Backend,
    cli_bucket: str,
    tmp_path: Path,
) -> None:
    doc = big_order(22, 11 * MiB)  # aws-cli: multipart above 8 MiB (compact JSON > 8 MiB too)
    (tmp_path / "big.json").write_bytes(json_bytes(doc))
    url = f"s3://{cli_bucket}/orders/big.json"
    v2 = AwsCli.for_target(v2_proxy, cwd=tmp_path)
    v2.run("s3", "cp", "big.json", url)
    stored = backend.read(cli_bucket, "orders/big.json")
    assert same_xml(stored, xml_bytes(doc))
    assert len(stored) > 8 * MiB  # so v1's download below is multipart too (native)

    before = translations(v2_proxy, "get")
    v2.run("s3", "cp", url, "back.json")  # JSON > 8 MiB: parallel ranged GETs of one translation
    assert json.loads((tmp_path / "back.json").read_bytes()) == doc
    assert translations(v2_proxy, "get") - before >= 2

    v1 = AwsCli.for_target(v1_proxy, cwd=tmp_path)
    v1.run("s3", "cp", url, "back.xml")
    assert (tmp_path / "back.xml").read_bytes() == stored

    # A recursive download takes size and ETag from the listing (the stored ones) and sends
    # ranged GETs with If-Match: <stored ETag>. The proxy refuses those (412) rather than let
    # the file be cut at the stored size: a loud failure, never a truncated document.
    proc = v2.run(
        "s3", "cp", "--recursive", f"s3://{cli_bucket}/orders/", "tree",
        "--exclude", "*", "--include", "big.json", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "did not match expected ETag" in proc.stderr, proc.stderr  # aws-cli's word for 412
    assert not (tmp_path / "tree" / "big.json").exists()

    # A bucket-to-bucket copy above 8 MiB is a multipart copy sized on v2's HEAD: onto the
    # route it is stored in the route's format again; out of it, it holds what v2 reads.
    v2.run("s3", "cp", url, f"s3://{cli_bucket}/orders/big-copy.json")
    assert same_xml(backend.read(cli_bucket, "orders/big-copy.json"), stored)
    v2.run("s3", "cp", url, f"s3://{cli_bucket}/exports/big.json")
    assert json.loads(backend.read(cli_bucket, "exports/big.json")) == doc
    v1.run("s3", "cp", url, f"s3://{cli_bucket}/exports/big.xml")
    assert backend.read(cli_bucket, "exports/big.xml") == stored


def test_aws_cli_recursive_download_of_small_documents(
    v2_proxy: ProxyProcess, backend: Backend, cli_bucket: str, tmp_path: Path
) -> None:
    docs = {f"orders/tree/{n}.json": order(30 + n, 4) for n in range(3)}
    for k, doc in docs.items():
        backend.direct.put_object(
            Bucket=cli_bucket, Key=k, Body=xml_bytes(doc), Metadata={"format": "xml"}
        )
    aws = AwsCli.for_target(v2_proxy, cwd=tmp_path)
    aws.run("s3", "cp", "--recursive", f"s3://{cli_bucket}/orders/tree/", "tree")
    for k, doc in docs.items():
        assert json.loads((tmp_path / "tree" / k.rsplit("/", 1)[1]).read_bytes()) == doc


def test_s3fs(
    v2_proxy: ProxyProcess, v1_proxy: ProxyProcess, backend: Backend, cli_bucket: str
) -> None:
    fs = s3fs_filesystem(v2_proxy)
    doc = order(23, 40)
    path = f"{cli_bucket}/orders/fs.json"
    fs.pipe(path, json_bytes(doc))
    stored = backend.read(cli_bucket, "orders/fs.json")
    assert same_xml(stored, xml_bytes(doc))

    translated = fs.cat(path)
    assert json.loads(translated) == doc
    assert fs.info(path)["size"] == len(translated)
    assert fs.cat_file(path, start=5, end=50) == translated[5:50]
    with fs.open(path, "rb", block_size=256, cache_type="bytes") as f:
        f.seek(100)
        assert f.read(300) == translated[100:400]
        f.seek(0)
        assert f.read() == translated  # many ranged GETs, one translation
    listed = {e["name"]: e["size"] for e in fs.ls(f"{cli_bucket}/orders/", detail=True)}
    assert listed[path] == len(stored)

    v1 = s3fs_filesystem(v1_proxy)
    assert v1.cat(path) == stored
    with v1.open(f"{cli_bucket}/orders/fs-v1.xml", "wb") as f:
        f.write(xml_bytes(order(24)))
    assert json.loads(fs.cat(f"{cli_bucket}/orders/fs-v1.xml")) == order(24)
