"""S3 operation names (metric labels) from method + address + headers."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from proxy.s3.address import parse_request
from proxy.s3.operations import detect_operation


@pytest.mark.parametrize(
    ("method", "target", "headers", "operation"),
    [
        ("GET", "/", {}, "ListBuckets"),
        ("GET", "/b", {}, "ListObjects"),
        ("GET", "/b?list-type=2&prefix=x", {}, "ListObjectsV2"),
        ("GET", "/b?versions", {}, "ListObjectVersions"),
        ("GET", "/b?uploads", {}, "ListMultipartUploads"),
        ("GET", "/b?location", {}, "GetBucketLocation"),
        ("GET", "/b?versioning", {}, "GetBucketVersioning"),
        ("PUT", "/b?versioning", {}, "PutBucketVersioning"),
        ("GET", "/b?tagging", {}, "GetBucketTagging"),
        ("PUT", "/b", {}, "CreateBucket"),
        ("DELETE", "/b", {}, "DeleteBucket"),
        ("HEAD", "/b", {}, "HeadBucket"),
        ("POST", "/b?delete", {}, "DeleteObjects"),
        ("GET", "/b/k", {}, "GetObject"),
        ("HEAD", "/b/k", {}, "HeadObject"),
        ("PUT", "/b/k", {}, "PutObject"),
        ("PUT", "/b/k", {"x-amz-copy-source": "/b/o"}, "CopyObject"),
        ("DELETE", "/b/k", {}, "DeleteObject"),
        ("POST", "/b/k?uploads", {}, "CreateMultipartUpload"),
        ("PUT", "/b/k?partNumber=1&uploadId=u", {}, "UploadPart"),
        ("PUT", "/b/k?partNumber=1&uploadId=u", {"X-Amz-Copy-Source": "b/o"}, "UploadPartCopy"),
        ("POST", "/b/k?uploadId=u", {}, "CompleteMultipartUpload"),
        ("DELETE", "/b/k?uploadId=u", {}, "AbortMultipartUpload"),
        ("GET", "/b/k?uploadId=u", {}, "ListParts"),
        ("GET", "/b/k?tagging", {}, "GetObjectTagging"),
        ("PUT", "/b/k?tagging", {}, "PutObjectTagging"),
        ("DELETE", "/b/k?tagging", {}, "DeleteObjectTagging"),
        ("GET", "/b/k?acl", {}, "GetObjectAcl"),
        ("GET", "/b/k?attributes", {}, "GetObjectAttributes"),
        ("POST", "/b/k?restore", {}, "RestoreObject"),
        ("OPTIONS", "/b/k", {}, "PreflightRequest"),
        ("PATCH", "/b/k", {}, "Unknown"),
        ("POST", "/", {}, "Unknown"),
    ],
)
def test_operation_names(method: str, target: str, headers: dict, operation: str) -> None:
    addr = parse_request(target, "127.0.0.1", ("localhost",))
    assert detect_operation(method, addr, CIMultiDict(headers)) == operation


def test_virtual_hosted_operations() -> None:
    addr = parse_request("/?list-type=2", "b.localhost", ("localhost",))
    assert detect_operation("GET", addr, CIMultiDict()) == "ListObjectsV2"
    addr = parse_request("/k", "b.localhost", ("localhost",))
    assert detect_operation("GET", addr, CIMultiDict()) == "GetObject"
