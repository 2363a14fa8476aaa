"""Object operations through the proxy with boto3 in both checksum modes, on both backends.

Every upload is read back straight from the backend (bypassing the proxy) and compared by
sha256; reads through the proxy are compared with what the backend holds.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path
from urllib.parse import unquote

import boto3.s3.transfer
import botocore.exceptions
import pytest

from tests.support.backends import Backend
from tests.support.clients import CHECKSUM_MODES, boto3_client, sha256_of_file
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import send

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=CHECKSUM_MODES)
def s3(request: pytest.FixtureRequest, proxy: ProxyProcess):
    """boto3 through the proxy, with deliberately wrong credentials."""
    return boto3_client(proxy, checksum_mode=request.param)


def error_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    resp = exc.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"]


@pytest.mark.parametrize("size", [0, 1, 4096, 5 * MiB + 3])
def test_put_get_roundtrip(s3, backend: Backend, bucket: str, size: int) -> None:
    body = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key="obj", Body=body)
    assert backend.sha256(bucket, "obj") == sha(body)
    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["ContentLength"] == size
    assert sha(got["Body"].read()) == sha(body)
    assert (
        got["ETag"] == put["ETag"] == backend.direct.head_object(Bucket=bucket, Key="obj")["ETag"]
    )


def test_head_and_metadata(s3, backend: Backend, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="meta",
        Body=b"{}",
        ContentType="application/json; charset=utf-8",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="x.json"',
        Metadata={"owner": "team-a", "schema-version": "2"},
    )
    direct = backend.direct.head_object(Bucket=bucket, Key="meta")
    assert direct["Metadata"] == {"owner": "team-a", "schema-version": "2"}
    assert direct["ContentType"] == "application/json; charset=utf-8"
    head = s3.head_object(Bucket=bucket, Key="meta")
    assert head["Metadata"] == {"owner": "team-a", "schema-version": "2"}
    assert head["ContentType"] == "application/json; charset=utf-8"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="x.json"'
    assert head["ContentLength"] == 2
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.head_object(Bucket=bucket, Key="missing")
    assert error_of(info)[0] == 404


def test_checksum_headers_forwarded_unchanged(s3, backend: Backend, bucket: str) -> None:
    body = os.urandom(10_000)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    sha_b64 = base64.b64encode(hashlib.sha256(body).digest()).decode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    # ChecksumAlgorithm makes boto3 send x-amz-sdk-checksum-algorithm with the value, which
    # both backends need in order to store the checksum (moto ignores a bare value).
    s3.put_object(Bucket=bucket, Key="crc", Body=body, ChecksumAlgorithm="CRC32", ContentMD5=md5)
    s3.put_object(Bucket=bucket, Key="sha", Body=body, ChecksumAlgorithm="SHA256")
    assert backend.sha256(bucket, "crc") == backend.sha256(bucket, "sha") == sha(body)
    # The backend stores the checksum the client sent: it went upstream unchanged.
    assert (
        backend.direct.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")[
            "ChecksumCRC32"
        ]
        == crc
    )
    assert (
        backend.direct.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")[
            "ChecksumSHA256"
        ]
        == sha_b64
    )
    got = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got.get("ChecksumCRC32") == crc
    assert sha(got["Body"].read()) == sha(body)


def test_wrong_content_md5_reaches_backend(s3, backend: Backend, bucket: str) -> None:
    if backend.name == "moto":
        pytest.skip("moto doesn't verify Content-MD5; SeaweedFS does, which proves forwarding")
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=wrong)
    assert error_of(info) == (400, "BadDigest")
    assert not backend.exists(bucket, "md5")


def test_conditional_get(s3, backend: Backend, bucket: str) -> None:
    backend.direct.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    etag = backend.direct.head_object(Bucket=bucket, Key="c")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert error_of(info)[0] == 304
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(info) == (412, "PreconditionFailed")


def test_range_get(s3, backend: Backend, bucket: str) -> None:
    body = os.urandom(100_000)
    backend.direct.put_object(Bucket=bucket, Key="r", Body=body)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-1009")
    assert got["ContentRange"] == f"bytes 10-1009/{len(body)}"
    assert got["ContentLength"] == 1000
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == body[10:1010]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(body) + 10}-")
    assert error_of(info) == (416, "InvalidRange")


def test_copy_object(s3, backend: Backend, bucket: str) -> None:
    body = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key="src/a", Body=body, Metadata={"k": "v"})
    other = backend.new_bucket()
    s3.copy_object(Bucket=other, Key="dst/a copy", CopySource={"Bucket": bucket, "Key": "src/a"})
    assert backend.sha256(other, "dst/a copy") == sha(body)
    assert backend.direct.head_object(Bucket=other, Key="dst/a copy")["Metadata"] == {"k": "v"}
    s3.copy_object(
        Bucket=bucket,
        Key="src/b",
        CopySource={"Bucket": bucket, "Key": "src/a"},
        MetadataDirective="REPLACE",
        Metadata={"k": "replaced"},
    )
    assert backend.direct.head_object(Bucket=bucket, Key="src/b")["Metadata"] == {"k": "replaced"}
    assert backend.sha256(bucket, "src/b") == sha(body)


def test_delete_objects(s3, backend: Backend, bucket: str) -> None:
    keys = ["d/1", "d/2 two", "d/3+three", "keep"]
    for k in keys:
        backend.direct.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:3]], "Quiet": False}
    )
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted(keys[:3])
    assert backend.keys(bucket) == ["keep"]
    s3.delete_object(Bucket=bucket, Key="keep")
    assert backend.keys(bucket) == []


def test_tagging(s3, backend: Backend, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="team=a&tier=gold")
    tags = backend.direct.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "a", "tier": "gold"}
    s3.put_object_tagging(
        Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "phase", "Value": "json 2"}]}
    )
    tags = backend.direct.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert tags == [{"Key": "phase", "Value": "json 2"}]
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == tags
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert backend.direct.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []


LIST_KEYS = ["a b/1", "a b/2+plus", "c:colon/x", "dollar$/~tilde", "é/ünï", "z/"]


def _seed(backend: Backend, bucket: str) -> None:
    for k in LIST_KEYS:
        backend.direct.put_object(Bucket=bucket, Key=k, Body=b"x")


def test_list_objects_v2(s3, backend: Backend, bucket: str) -> None:
    _seed(backend, bucket)
    # botocore asks for encoding-type=url itself and decodes the answer.
    resp = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in resp["Contents"]] == backend.keys(bucket)
    assert sorted(o["Key"] for o in resp["Contents"]) == sorted(LIST_KEYS)
    # Asked for explicitly, the keys stay url-encoded (botocore leaves them alone).
    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url", Delimiter="/")
    assert resp["EncodingType"] == "url"
    assert sorted(unquote(p["Prefix"]) for p in resp["CommonPrefixes"]) == sorted(
        {k.split("/")[0] + "/" for k in LIST_KEYS}
    )
    assert "a%20b/" in [p["Prefix"] for p in resp["CommonPrefixes"]]
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}
    )
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == backend.keys(bucket)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, EncodingType="url", Prefix="a b/", PaginationConfig={"PageSize": 1}
    )
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == ["a%20b/1", "a%20b/2%2Bplus"]


def test_list_objects_v1_url_encoded(s3, proxy: ProxyProcess, backend: Backend, bucket: str):
    _seed(backend, bucket)
    resp = s3.list_objects(Bucket=bucket)
    assert sorted(o["Key"] for o in resp["Contents"]) == sorted(LIST_KEYS)
    resp = s3.list_objects(Bucket=bucket, EncodingType="url")
    assert sorted(unquote(o["Key"]) for o in resp["Contents"]) == sorted(LIST_KEYS)
    # Paginated: the same pages as straight from the backend. (SeaweedFS 4.48 encodes v1
    # NextMarker wrongly, "a+b/2+plus", so its pages overlap; moto's are exact.)
    paged = [
        [o["Key"] for o in page.get("Contents", [])]
        for page in s3.get_paginator("list_objects").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    ]
    direct = [
        [o["Key"] for o in page.get("Contents", [])]
        for page in backend.direct.get_paginator("list_objects").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    ]
    assert paged == direct
    if backend.name == "moto":
        assert [k for page in paged for k in page] == sorted(LIST_KEYS)
    # The raw XML really is url-encoded: read it without botocore.
    raw = send(proxy.endpoint, "GET", f"/{bucket}?encoding-type=url")
    assert raw.status == 200
    assert b"<Key>a%20b/2%2Bplus</Key>" in raw.body


def test_list_object_versions(s3, backend: Backend) -> None:
    bucket = backend.new_bucket(versioned=True)
    s3.put_object(Bucket=bucket, Key="v", Body=b"one")
    s3.put_object(Bucket=bucket, Key="v", Body=b"two")
    resp = s3.list_object_versions(Bucket=bucket, Prefix="v")
    versions = resp["Versions"]
    assert len(versions) == 2
    direct = backend.direct.list_object_versions(Bucket=bucket, Prefix="v")["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted(v["VersionId"] for v in direct)
    oldest = next(v for v in versions if not v["IsLatest"])
    got = s3.get_object(Bucket=bucket, Key="v", VersionId=oldest["VersionId"])
    assert got["Body"].read() == b"one"


def test_multipart_upload_file(s3, backend: Backend, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(21 * MiB + 17))
    cfg = boto3.s3.transfer.TransferConfig(
        multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    s3.upload_file(str(src), bucket, "multi/big.bin", Config=cfg)
    head = backend.direct.head_object(Bucket=bucket, Key="multi/big.bin")
    assert head["ETag"].strip('"').endswith("-5")  # really multipart: 5 parts
    assert backend.sha256(bucket, "multi/big.bin") == sha256_of_file(src)
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "multi/big.bin", str(dst), Config=cfg)
    assert sha256_of_file(dst) == sha256_of_file(src)


def test_multipart_parts_out_of_order_with_checksums(s3, backend: Backend, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")
    done = []
    for number in (3, 1, 2):  # out of order on purpose
        data = parts[number - 1]
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        r = s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=up["UploadId"],
            PartNumber=number,
            Body=data,
            ChecksumSHA256=digest,
        )
        done.append({"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": digest})
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=up["UploadId"])
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": sorted(done, key=lambda p: p["PartNumber"])},
    )
    assert backend.sha256(bucket, "mp") == sha(b"".join(parts))


def test_abort_multipart(s3, backend: Backend, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="aborted")
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [up["UploadId"]]
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=up["UploadId"])
    assert not backend.exists(bucket, "aborted")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_bucket_operations(s3, backend: Backend) -> None:
    name = f"made-through-proxy-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in backend.direct.list_buckets()["Buckets"]]
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in backend.direct.list_buckets()["Buckets"]]
