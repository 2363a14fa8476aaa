"""S3 operation names from method, address and headers (pure).

The names are the S3 API's own (``GetObject``, ``ListObjectsV2``, ``UploadPart``, ...). They are
metric label values, so the set is bounded: anything unrecognised is ``Unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping

from proxy.s3.address import S3Address

__all__ = ["detect_operation"]

# Bucket/object subresources and the operation-name stem they select (checked in this order).
_BUCKET_SUBRESOURCES: tuple[tuple[str, str], ...] = (
    ("versioning", "BucketVersioning"),
    ("tagging", "BucketTagging"),
    ("acl", "BucketAcl"),
    ("policy", "BucketPolicy"),
    ("policyStatus", "BucketPolicyStatus"),
    ("cors", "BucketCors"),
    ("lifecycle", "BucketLifecycleConfiguration"),
    ("website", "BucketWebsite"),
    ("encryption", "BucketEncryption"),
    ("notification", "BucketNotificationConfiguration"),
    ("logging", "BucketLogging"),
    ("replication", "BucketReplication"),
    ("object-lock", "ObjectLockConfiguration"),
    ("ownershipControls", "BucketOwnershipControls"),
    ("publicAccessBlock", "PublicAccessBlock"),
    ("accelerate", "BucketAccelerateConfiguration"),
    ("requestPayment", "BucketRequestPayment"),
    ("analytics", "BucketAnalyticsConfiguration"),
    ("metrics", "BucketMetricsConfiguration"),
    ("inventory", "BucketInventoryConfiguration"),
    ("intelligent-tiering", "BucketIntelligentTieringConfiguration"),
)
_OBJECT_SUBRESOURCES: tuple[tuple[str, str], ...] = (
    ("tagging", "ObjectTagging"),
    ("acl", "ObjectAcl"),
    ("retention", "ObjectRetention"),
    ("legal-hold", "ObjectLegalHold"),
)
_VERB = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}


def _sub(params: frozenset[str], table: tuple[tuple[str, str], ...], method: str) -> str | None:
    verb = _VERB.get(method)
    if verb is None:
        return None
    for param, stem in table:
        if param in params:
            return verb + stem
    return None


def detect_operation(method: str, address: S3Address, headers: Mapping[str, str]) -> str:
    """The S3 operation a request performs. ``headers`` must be case-insensitive."""
    method = method.upper()
    params = address.params
    if method == "OPTIONS":
        return "PreflightRequest"
    if address.bucket is None:
        return "ListBuckets" if method == "GET" else "Unknown"

    if address.key is None:  # bucket level
        if method == "GET":
            if "list-type" in params and address.values.get("list-type") == "2":
                return "ListObjectsV2"
            if "versions" in params:
                return "ListObjectVersions"
            if "uploads" in params:
                return "ListMultipartUploads"
            if "location" in params:
                return "GetBucketLocation"
            return _sub(params, _BUCKET_SUBRESOURCES, method) or "ListObjects"
        if method == "HEAD":
            return "HeadBucket"
        if method == "PUT":
            return _sub(params, _BUCKET_SUBRESOURCES, method) or "CreateBucket"
        if method == "DELETE":
            return _sub(params, _BUCKET_SUBRESOURCES, method) or "DeleteBucket"
        if method == "POST":
            return "DeleteObjects" if "delete" in params else "PostObject"
        return "Unknown"

    # object level
    if method == "GET":
        if "uploadId" in params:
            return "ListParts"
        if "attributes" in params:
            return "GetObjectAttributes"
        if "torrent" in params:
            return "GetObjectTorrent"
        return _sub(params, _OBJECT_SUBRESOURCES, method) or "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        copy = "x-amz-copy-source" in headers
        if "uploadId" in params:
            return "UploadPartCopy" if copy else "UploadPart"
        sub = _sub(params, _OBJECT_SUBRESOURCES, method)
        if sub:
            return sub
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        if "restore" in params:
            return "RestoreObject"
        if "select" in params:
            return "SelectObjectContent"
        return "Unknown"
    if method == "DELETE":
        if "uploadId" in params:
            return "AbortMultipartUpload"
        return _sub(params, _OBJECT_SUBRESOURCES, method) or "DeleteObject"
    return "Unknown"
