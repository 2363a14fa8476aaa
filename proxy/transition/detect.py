"""The stored format of an object on S3, decided by the data path's own detector.

``x-amz-meta-format``, then ``Content-Type`` (from a HEAD), and only when those say nothing a
ranged GET of the first KiB for the sniff (up to 64 KiB, as the data path reads, when the first
KiB is all whitespace). Never a full download. The rules themselves live in
:mod:`proxy.datapath.formats`; this module only fetches what they look at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.datapath.formats import META_KEY, detect_stored_format, needs_sniff, sniff
from proxy.errors import TranslationError
from proxy.translate import Format

SNIFF_BYTES = 1024
#: The most the data path looks at for the sniff.
SNIFF_MAX_BYTES = 64 * 1024
_WHITESPACE = b" \t\r\n\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Detection:
    size: int
    etag: str
    fmt: Format | None = None
    error: TranslationError | None = None


def format_of(metadata: Mapping[str, str], content_type: str | None, head: bytes | None) -> Format:
    """The stored format from a response's user metadata, Content-Type and first bytes."""
    return detect_stored_format(metadata.get(META_KEY), content_type, head)


def undecided(metadata: Mapping[str, str], content_type: str | None) -> bool:
    """True when only the body's first bytes can tell (raises for a bad format label)."""
    return needs_sniff(metadata.get(META_KEY), content_type)


def _first_bytes(client: Any, bucket: str, key: str, etag: str, n: int) -> bytes:
    resp = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{n - 1}", IfMatch=etag)
    with resp["Body"] as body:
        return bytes(body.read())


def detect_object(client: Any, bucket: str, key: str) -> Detection:
    """HEAD the object and, if needed, sniff its first bytes (raises botocore's ClientError)."""
    head = client.head_object(Bucket=bucket, Key=key)
    metadata = head.get("Metadata", {})
    content_type = head.get("ContentType")
    size = int(head.get("ContentLength", 0))
    etag = head.get("ETag", "")
    try:
        if not undecided(metadata, content_type):
            return Detection(size, etag, format_of(metadata, content_type, None))
        first = _first_bytes(client, bucket, key, etag, SNIFF_BYTES) if size else b""
        if sniff(first) is None and size > len(first) and not first.strip(_WHITESPACE):
            first = _first_bytes(client, bucket, key, etag, SNIFF_MAX_BYTES)
        return Detection(size, etag, format_of(metadata, content_type, first))
    except TranslationError as exc:
        return Detection(size, etag, error=exc)
