"""What a rewritten object keeps: everything a reader could notice besides the body. Pure.

From a GetObject response: user metadata (with ``format`` set to the new stored format, as the
proxy labels what it writes), Content-Type (the new format's), Content-Encoding / -Disposition /
-Language, Cache-Control, Expires, website redirect, storage class, server-side encryption
settings, object lock settings, the tags, and the stored object's checksum algorithm.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from proxy.datapath.formats import CONTENT_TYPES, META_KEY
from proxy.translate import Format

_COPIED = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "WebsiteRedirectLocation",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BucketKeyEnabled",
    "ObjectLockMode",
    "ObjectLockRetainUntilDate",
    "ObjectLockLegalHoldStatus",
)
_CHECKSUMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


def checksum_algorithm(response: Mapping[str, Any]) -> str | None:
    """The algorithm of the checksum the stored object carries, if any."""
    return next((alg for alg in _CHECKSUMS if response.get(f"Checksum{alg}")), None)


def write_args(
    response: Mapping[str, Any], target: Format, tags: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """PutObject / CreateMultipartUpload arguments that keep the object as it was, but its body."""
    args: dict[str, Any] = {
        "ContentType": CONTENT_TYPES[target],
        "Metadata": {**response.get("Metadata", {}), META_KEY: target},
    }
    for name in _COPIED:
        if response.get(name) is not None:
            args[name] = response[name]
    expires = response.get("Expires") or response.get("ExpiresString")
    if expires:
        args["Expires"] = expires
    storage_class = response.get("StorageClass")
    if storage_class and storage_class != "STANDARD":
        args["StorageClass"] = storage_class
    if tags:
        args["Tagging"] = urlencode([(t["Key"], t["Value"]) for t in tags])
    algorithm = checksum_algorithm(response)
    if algorithm:
        args["ChecksumAlgorithm"] = algorithm
    return args


def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
