"""Objects on a translating route, end to end: real proxy processes (v1 and v2) in front of
both real backends, driven by boto3 in both checksum modes. What is stored is always read back
directly from the backend; documents are compared as data (tests.datapath.orders)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3.s3.transfer
import botocore.exceptions
import pytest

from tests.datapath.orders import (
    big_order,
    json_bytes,
    order,
    orders_route,
    same_xml,
    xml_bytes,
)
from tests.support.backends import Backend
from tests.support.clients import CHECKSUM_MODES, boto3_client
from tests.support.proxy import ProxyProcess

MiB = 1024 * 1024
SMALL_PARTS = boto3.s3.transfer.TransferConfig(
    multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
)


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def error_of(info: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str, str]:
    r = info.value.response
    return (
        r["ResponseMetadata"]["HTTPStatusCode"],
        r["Error"]["Code"],
        r["Error"].get("Message", ""),
    )


@pytest.fixture(scope="module")
def route_bucket(backend: Backend) -> str:
    return backend.new_bucket("route")


@pytest.fixture(scope="module")
def proxies(
    backend: Backend,
    route_bucket: str,
    proxy_factory: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ProxyProcess]]:
    """v2 (reads/writes JSON, stores XML), v1 (XML) and a v2 with on_error: passthrough."""
    spool = tmp_path_factory.mktemp("spool")
    started = {
        "v2": proxy_factory(
            backend,
            app_version="v2",
            routes=[orders_route(route_bucket)],
            extra_config={"spool_dir": str(spool / "v2")},
            name=f"route-v2-{backend.name}",
        ),
        "v1": proxy_factory(
            backend,
            app_version="v1",
            routes=[orders_route(route_bucket)],
            extra_config={"spool_dir": str(spool / "v1")},
            name=f"route-v1-{backend.name}",
        ),
        "lenient": proxy_factory(
            backend,
            app_version="v2",
            routes=[orders_route(route_bucket, on_error="passthrough")],
            name=f"route-lenient-{backend.name}",
        ),
    }
    yield started
    for p in started.values():
        p.stop()


@pytest.fixture(params=CHECKSUM_MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def v2(proxies: dict[str, ProxyProcess], mode: str) -> Any:
    return boto3_client(proxies["v2"], checksum_mode=mode)


@pytest.fixture
def v1(proxies: dict[str, ProxyProcess], mode: str) -> Any:
    return boto3_client(proxies["v1"], checksum_mode=mode)


_keys = iter(range(1, 10**6))


def key(name: str) -> str:
    return f"orders/{name}-{next(_keys)}"


def store_xml_directly(backend: Backend, bucket: str, k: str, doc: dict[str, Any]) -> bytes:
    body = xml_bytes(doc)
    backend.direct.put_object(
        Bucket=bucket,
        Key=k,
        Body=body,
        ContentType="application/xml",
        Metadata={"format": "xml", "owner": "legacy"},
        ChecksumAlgorithm="CRC32",
    )
    return body


def uploads_in_spool(proxy: ProxyProcess) -> list[Path]:
    """Multipart uploads the proxy holds on disk right now."""
    root = Path(proxy.config["spool_dir"])
    return [u for d in root.iterdir() for u in d.iterdir()]


# --- GET / HEAD -------------------------------------------------------------------------------


def test_get_translates_stored_xml_for_v2_and_serves_it_native_to_v1(
    v1: Any, v2: Any, backend: Backend, route_bucket: str, mode: str
) -> None:
    doc = order(1)
    k = key("get")
    stored = store_xml_directly(backend, route_bucket, k, doc)
    got = v2.get_object(Bucket=route_bucket, Key=k)  # default mode validates our CRC32
    body = got["Body"].read()
    assert json.loads(body) == doc
    assert got["ContentType"] == "application/json"
    assert got["ContentLength"] == len(body)
    assert got["ETag"] == md5_etag(body)
    assert got["Metadata"] == {"format": "xml", "owner": "legacy"}
    if mode == "default":
        assert got.get("ChecksumCRC32") is not None
    native = v1.get_object(Bucket=route_bucket, Key=k)
    assert native["Body"].read() == stored
    assert native["ETag"] == md5_etag(stored)

    head = v2.head_object(Bucket=route_bucket, Key=k)
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == got["ETag"] and head["ContentType"] == "application/json"
    assert head["Metadata"] == got["Metadata"]
    assert v1.head_object(Bucket=route_bucket, Key=k)["ContentLength"] == len(stored)


def test_ranges_and_part_numbers_apply_to_translated_bytes(
    v2: Any, backend: Backend, route_bucket: str
) -> None:
    k = key("range")
    store_xml_directly(backend, route_bucket, k, order(2))
    full = v2.get_object(Bucket=route_bucket, Key=k)["Body"].read()
    n = len(full)
    for rng, (start, end) in {
        "bytes=0-9": (0, 9),
        "bytes=-7": (n - 7, n - 1),
        "bytes=10-": (10, n - 1),
        "bytes=0-8388607": (0, n - 1),
    }.items():
        r = v2.get_object(Bucket=route_bucket, Key=k, Range=rng)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["ContentRange"] == f"bytes {start}-{end}/{n}"
        assert r["Body"].read() == full[start : end + 1]
    part = v2.get_object(Bucket=route_bucket, Key=k, PartNumber=1)
    assert part["Body"].read() == full
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.get_object(Bucket=route_bucket, Key=k, Range=f"bytes={n + 5}-")
    assert error_of(info)[:2] == (416, "InvalidRange")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.get_object(Bucket=route_bucket, Key=k, PartNumber=2)
    assert error_of(info)[0] == 416


def test_conditional_requests_see_the_translated_representation(
    v2: Any, backend: Backend, route_bucket: str
) -> None:
    k = key("cond")
    stored = store_xml_directly(backend, route_bucket, k, order(3))
    etag = v2.head_object(Bucket=route_bucket, Key=k)["ETag"]
    assert v2.get_object(Bucket=route_bucket, Key=k, IfMatch=etag)["ETag"] == etag
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.get_object(Bucket=route_bucket, Key=k, IfNoneMatch=etag)
    assert error_of(info)[0] == 304
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.get_object(Bucket=route_bucket, Key=k, IfMatch=md5_etag(stored))
    assert error_of(info)[:2] == (412, "PreconditionFailed")
    future = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.head_object(Bucket=route_bucket, Key=k, IfModifiedSince=future)
    assert error_of(info)[0] == 304
    past = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.get_object(Bucket=route_bucket, Key=k, IfUnmodifiedSince=past)
    assert error_of(info)[0] == 412
    assert v2.get_object(Bucket=route_bucket, Key=k, IfModifiedSince=past)["ETag"] == etag


def test_download_file(v2: Any, backend: Backend, route_bucket: str, tmp_path: Path) -> None:
    k = key("download")
    doc = order(4, 20)
    store_xml_directly(backend, route_bucket, k, doc)
    target = tmp_path / "order.json"
    v2.download_file(route_bucket, k, str(target))  # when_required: one GET with a Range
    assert json.loads(target.read_bytes()) == doc


# --- PUT --------------------------------------------------------------------------------------


def test_put_stores_the_route_format_with_metadata_and_checksums(
    v2: Any, v1: Any, backend: Backend, route_bucket: str
) -> None:
    doc = order(5)
    k = key("put")
    put = v2.put_object(
        Bucket=route_bucket,
        Key=k,
        Body=json_bytes(doc),
        ContentType="application/json",
        Metadata={"owner": "team-b"},
        Tagging="phase=2",
        CacheControl="max-age=60",
    )
    stored = backend.read(route_bucket, k)
    assert same_xml(stored, xml_bytes(doc))
    direct = backend.direct.head_object(Bucket=route_bucket, Key=k, ChecksumMode="ENABLED")
    assert direct["Metadata"] == {"owner": "team-b", "format": "xml"}
    assert direct["ContentType"] == "application/xml"
    assert direct["CacheControl"] == "max-age=60"
    assert put["ETag"] == direct["ETag"] == md5_etag(stored)
    # The checksum the backend holds is of the stored bytes (validated by botocore here).
    backend.direct.get_object(Bucket=route_bucket, Key=k, ChecksumMode="ENABLED")["Body"].read()
    tags = backend.direct.get_object_tagging(Bucket=route_bucket, Key=k)["TagSet"]
    assert tags == [{"Key": "phase", "Value": "2"}]
    # Each version reads it in its own format.
    assert json.loads(v2.get_object(Bucket=route_bucket, Key=k)["Body"].read()) == doc
    assert same_xml(v1.get_object(Bucket=route_bucket, Key=k)["Body"].read(), xml_bytes(doc))


def test_v1_put_of_xml_is_stored_unchanged(v1: Any, backend: Backend, route_bucket: str) -> None:
    k = key("put-v1")
    body = xml_bytes(order(6))
    v1.put_object(Bucket=route_bucket, Key=k, Body=body)
    assert backend.read(route_bucket, k) == body
    assert backend.direct.head_object(Bucket=route_bucket, Key=k)["Metadata"] == {"format": "xml"}


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        (json.dumps({**order(1), "status": "lost"}).encode(), "InvalidDocument.", "/status"),
        (json.dumps({**order(1), "id": 5}).encode(), "InvalidDocument.", "/id"),
        (json.dumps({**order(1), "extra": 1}).encode(), "InvalidDocument.", ""),
        (b"<order/>", "InvalidDocument.not_well_formed", ""),
        (b"{not json", "InvalidDocument.not_well_formed", ""),
    ],
)
def test_invalid_documents_are_refused_and_nothing_is_stored(
    v2: Any, backend: Backend, route_bucket: str, body: bytes, code: str, where: str
) -> None:
    k = key("invalid")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.put_object(Bucket=route_bucket, Key=k, Body=body)
    status, got_code, message = error_of(info)
    assert status == 400 and got_code.startswith(code), (got_code, message)
    assert where in message
    assert not backend.exists(route_bucket, k)


def test_checksum_mismatches_are_refused_and_nothing_is_stored(
    v2: Any, backend: Backend, route_bucket: str
) -> None:
    body = json_bytes(order(7))
    k = key("digest")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.put_object(Bucket=route_bucket, Key=k, Body=body, ChecksumCRC32="AAAAAA==")
    assert error_of(info)[:2] == (400, "BadDigest")
    wrong_md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # md5 of b""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.put_object(Bucket=route_bucket, Key=k, Body=body, ContentMD5=wrong_md5)
    assert error_of(info)[:2] == (400, "BadDigest")
    assert not backend.exists(route_bucket, k)


# --- multipart -------------------------------------------------------------------------------


def test_upload_file_multipart_is_assembled_translated_and_stored_whole(
    v2: Any, proxies: dict[str, ProxyProcess], backend: Backend, route_bucket: str, tmp_path: Path
) -> None:
    doc = big_order(8, 11 * MiB)  # three parts of 5 MiB, sent in parallel
    src = tmp_path / "big.json"
    src.write_bytes(json_bytes(doc))
    k = key("multipart")
    v2.upload_file(
        str(src), route_bucket, k, Config=SMALL_PARTS, ExtraArgs={"Metadata": {"m": "1"}}
    )
    stored = backend.read(route_bucket, k)
    assert same_xml(stored, xml_bytes(doc))
    head = backend.direct.head_object(Bucket=route_bucket, Key=k)
    assert head["Metadata"] == {"m": "1", "format": "xml"}
    assert head["ETag"] == md5_etag(stored)  # one object, not a multipart one
    assert uploads_in_spool(proxies["v2"]) == []
    out = tmp_path / "back.json"
    v2.download_file(route_bucket, k, str(out), Config=SMALL_PARTS)
    assert json.loads(out.read_bytes()) == doc


def test_multipart_abort_and_failure_clean_up(
    v2: Any, proxies: dict[str, ProxyProcess], backend: Backend, route_bucket: str, tmp_path: Path
) -> None:
    k = key("abort")
    up = v2.create_multipart_upload(Bucket=route_bucket, Key=k)
    part = v2.upload_part(
        Bucket=route_bucket, Key=k, UploadId=up["UploadId"], PartNumber=1, Body=b"{" * 1000
    )
    assert part["ETag"] == md5_etag(b"{" * 1000)
    listed = v2.list_parts(Bucket=route_bucket, Key=k, UploadId=up["UploadId"])
    assert [p["PartNumber"] for p in listed["Parts"]] == [1]
    assert len(uploads_in_spool(proxies["v2"])) == 1
    v2.abort_multipart_upload(Bucket=route_bucket, Key=k, UploadId=up["UploadId"])
    assert uploads_in_spool(proxies["v2"]) == []

    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"id": 1, "pad": "' + b"x" * (11 * MiB) + b'"}')
    with pytest.raises(boto3.exceptions.S3UploadFailedError) as info:
        v2.upload_file(str(bad), route_bucket, k, Config=SMALL_PARTS)
    assert "InvalidDocument." in str(info.value)
    assert not backend.exists(route_bucket, k)
    assert uploads_in_spool(proxies["v2"]) == []


# --- copy, listings, on_error -----------------------------------------------------------------


def test_copy_keeps_stored_bytes_and_format(v2: Any, backend: Backend, route_bucket: str) -> None:
    src = key("copy-src")
    doc = order(9)
    stored = store_xml_directly(backend, route_bucket, src, doc)
    for directive, extra in (("COPY", {}), ("REPLACE", {"Metadata": {"new": "1"}})):
        dst = key(f"copy-{directive}")
        v2.copy_object(
            Bucket=route_bucket,
            Key=dst,
            CopySource={"Bucket": route_bucket, "Key": src},
            MetadataDirective=directive,
            **extra,
        )
        assert backend.read(route_bucket, dst) == stored
        meta = backend.direct.head_object(Bucket=route_bucket, Key=dst)["Metadata"]
        assert meta["format"] == "xml"
        assert json.loads(v2.get_object(Bucket=route_bucket, Key=dst)["Body"].read()) == doc


def test_managed_copy_copies_what_the_client_sees(
    v1: Any, v2: Any, proxies: dict[str, ProxyProcess], backend: Backend, route_bucket: str
) -> None:
    """A multipart copy (UploadPartCopy, sized on a HEAD through the proxy) of a translated
    object: onto the route it is assembled, validated and stored in the route's format; out of
    the route the copy holds the translated bytes; a v1 reader's copy is the stored bytes."""
    src = key("mcopy-src")
    doc = big_order(11, 11 * MiB)  # three 5 MiB parts of JSON
    stored = store_xml_directly(backend, route_bucket, src, doc)
    seen = v2.get_object(Bucket=route_bucket, Key=src)["Body"].read()
    assert len(seen) != len(stored)  # part ranges over the stored bytes would be wrong

    onto = key("mcopy-onto")
    v2.copy({"Bucket": route_bucket, "Key": src}, route_bucket, onto, Config=SMALL_PARTS)
    assert same_xml(backend.read(route_bucket, onto), stored)
    head = backend.direct.head_object(Bucket=route_bucket, Key=onto)
    assert head["Metadata"]["format"] == "xml"
    assert json.loads(v2.get_object(Bucket=route_bucket, Key=onto)["Body"].read()) == doc
    assert uploads_in_spool(proxies["v2"]) == []

    out = f"outside/mcopy-{next(_keys)}"
    v2.copy({"Bucket": route_bucket, "Key": src}, route_bucket, out, Config=SMALL_PARTS)
    assert backend.read(route_bucket, out) == seen
    assert json.loads(seen) == doc

    native = f"outside/mcopy-native-{next(_keys)}"
    v1.copy({"Bucket": route_bucket, "Key": src}, route_bucket, native, Config=SMALL_PARTS)
    assert backend.read(route_bucket, native) == stored


def test_managed_copy_out_of_the_route_with_a_checksum_algorithm(
    v2: Any, backend: Backend, route_bucket: str
) -> None:
    """An upload created with a checksum algorithm: the translated part goes upstream without
    a checksum header (the proxy does not know the upload's algorithm); the upstream computes
    the part's checksum in that algorithm, as S3 does, and boto3 completes with the checksums
    the CopyPartResults carry (it fails client-side if one is missing)."""
    src = key("mcopy-sum-src")
    doc = big_order(13, 11 * MiB)
    store_xml_directly(backend, route_bucket, src, doc)
    seen = v2.get_object(Bucket=route_bucket, Key=src)["Body"].read()
    out = f"outside/mcopy-sum-{next(_keys)}"
    v2.copy(
        {"Bucket": route_bucket, "Key": src},
        route_bucket,
        out,
        ExtraArgs={"ChecksumAlgorithm": "CRC32"},
        Config=SMALL_PARTS,
    )
    assert backend.read(route_bucket, out) == seen


def test_part_copy_errors(v2: Any, backend: Backend, route_bucket: str) -> None:
    """Missing sources, failed source conditions and bad ranges fail the part, not the upload."""
    src = key("pcopy-src")
    store_xml_directly(backend, route_bucket, src, order(12))
    visible_etag = v2.head_object(Bucket=route_bucket, Key=src)["ETag"]
    dst = key("pcopy-dst")
    up = v2.create_multipart_upload(Bucket=route_bucket, Key=dst)["UploadId"]
    part = {"Bucket": route_bucket, "Key": dst, "UploadId": up, "PartNumber": 1}
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.upload_part_copy(**part, CopySource={"Bucket": route_bucket, "Key": key("none")})
    assert error_of(info)[:2] == (404, "NoSuchKey")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.upload_part_copy(
            **part, CopySource={"Bucket": route_bucket, "Key": src}, CopySourceIfMatch='"0"'
        )
    assert error_of(info)[:2] == (412, "PreconditionFailed")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.upload_part_copy(
            **part,
            CopySource={"Bucket": route_bucket, "Key": src},
            CopySourceIfNoneMatch=visible_etag,
        )
    assert error_of(info)[:2] == (412, "PreconditionFailed")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.upload_part_copy(
            **part, CopySource={"Bucket": route_bucket, "Key": src}, CopySourceRange="bytes=9-3"
        )
    assert error_of(info)[:2] == (400, "InvalidArgument")
    # The same source, with its visible ETag and a range of the visible bytes, is one part.
    r = v2.upload_part_copy(
        **part,
        CopySource={"Bucket": route_bucket, "Key": src},
        CopySourceIfMatch=visible_etag,
        CopySourceRange="bytes=0-9",
    )
    seen = v2.get_object(Bucket=route_bucket, Key=src)["Body"].read()
    assert r["CopyPartResult"]["ETag"] == md5_etag(seen[:10])
    listed = v2.list_parts(Bucket=route_bucket, Key=dst, UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 10)]
    v2.abort_multipart_upload(Bucket=route_bucket, Key=dst, UploadId=up)
    assert not backend.exists(route_bucket, dst)


def test_listings_report_stored_sizes(v2: Any, backend: Backend, route_bucket: str) -> None:
    k = key("list")
    stored = store_xml_directly(backend, route_bucket, k, order(10))
    listed = v2.list_objects_v2(Bucket=route_bucket, Prefix=k)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(k, len(stored))]
    assert v2.head_object(Bucket=route_bucket, Key=k)["ContentLength"] != len(stored)


def test_untranslatable_objects_follow_on_error(
    proxies: dict[str, ProxyProcess], backend: Backend, route_bucket: str, mode: str
) -> None:
    k = key("broken")
    broken = b'<order xmlns="urn:example:shop:orders:1" id="OR-1"><bogus/></order>'
    backend.direct.put_object(Bucket=route_bucket, Key=k, Body=broken, Metadata={"format": "xml"})
    strict = boto3_client(proxies["v2"], checksum_mode=mode)
    before = proxies["v2"].scrape()
    with pytest.raises(botocore.exceptions.ClientError) as info:
        strict.get_object(Bucket=route_bucket, Key=k)
    status, code, message = error_of(info)
    assert status == 422 and code.startswith("UntranslatableObject."), code
    reason = code.split(".", 1)[1]
    assert reason in message and "/order" in message
    after = proxies["v2"].scrape()
    name = "format_proxy_translation_failures_total"
    labels = {"route": "orders", "direction": "xml_to_json", "reason": reason}
    assert after.value(name, **labels) - before.value(name, **labels) == 1
    lenient = boto3_client(proxies["lenient"], checksum_mode=mode)
    got = lenient.get_object(Bucket=route_bucket, Key=k)
    assert got["Body"].read() == broken
    lines = [
        line
        for line in proxies["lenient"].log_lines()
        if line.get("event") == "translation_failed" and line.get("key") == k
    ]
    assert lines and lines[-1]["reason"] == reason and lines[-1]["direction"] == "xml_to_json"
    assert lines[-1]["location"].startswith("/order")


def test_objects_outside_the_prefix_are_untouched(
    v2: Any, backend: Backend, route_bucket: str
) -> None:
    body = xml_bytes(order(11))
    v2.put_object(Bucket=route_bucket, Key="elsewhere/x.xml", Body=body)
    assert backend.read(route_bucket, "elsewhere/x.xml") == body
    assert v2.get_object(Bucket=route_bucket, Key="elsewhere/x.xml")["Body"].read() == body


def test_conditional_write_uses_the_etag_the_writer_saw(
    v2: Any, backend: Backend, route_bucket: str
) -> None:
    k = key("cas")
    store_xml_directly(backend, route_bucket, k, order(12))
    seen = v2.get_object(Bucket=route_bucket, Key=k)["ETag"]
    changed = {**order(12), "status": "paid"}
    v2.put_object(Bucket=route_bucket, Key=k, Body=json_bytes(changed), IfMatch=seen)
    assert same_xml(backend.read(route_bucket, k), xml_bytes(changed))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.put_object(Bucket=route_bucket, Key=k, Body=json_bytes(order(13)), IfMatch=seen)
    assert error_of(info)[:2] == (412, "PreconditionFailed")
    assert same_xml(backend.read(route_bucket, k), xml_bytes(changed))
