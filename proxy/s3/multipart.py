"""S3's multipart-upload wire format (pure): the CompleteMultipartUpload request body and the
XML documents S3 answers the multipart operations with, plus S3's part-size and part-count rules.

No I/O: the proxy's record of uploads in progress and their spooled parts is
:mod:`proxy.datapath.spool`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from xml.sax.saxutils import escape

from lxml import etree

from proxy.errors import MalformedXML
from proxy.s3.checksums import ALGORITHMS
from proxy.xmlsafe import hardened_parser

__all__ = [
    "MAX_PARTS",
    "MIN_PART_BYTES",
    "CompletedPart",
    "ListedPart",
    "complete_result",
    "copy_part_result",
    "initiate_result",
    "list_parts_result",
    "parse_complete",
    "s3_time",
]

#: Every part but the last must be at least this large.
MIN_PART_BYTES = 5 * 1024 * 1024
#: Part numbers run from 1 to this.
MAX_PARTS = 10_000
_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def s3_time(ts: datetime) -> str:
    """``2025-01-31T12:34:56.789Z``, S3's timestamp form in XML."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


# --- CompleteMultipartUpload -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompletedPart:
    number: int
    etag: str | None
    checksums: dict[str, str]


_PARSER = hardened_parser(remove_pis=True)
_MALFORMED = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_complete(body: bytes) -> list[CompletedPart]:
    """The part list of a CompleteMultipartUpload request body."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedXML(f"{_MALFORMED}: {exc}") from None
    if root.getroottree().docinfo.doctype or _local(root.tag) != "CompleteMultipartUpload":
        raise MalformedXML(_MALFORMED)
    parts: list[CompletedPart] = []
    for el in root:
        if _local(el.tag) != "Part":
            continue
        fields = {_local(c.tag): (c.text or "").strip() for c in el}
        number = fields.get("PartNumber", "")
        if not number.isdigit():
            raise MalformedXML(f"{_MALFORMED}: PartNumber {number!r}")
        checksums = {
            name[len("Checksum") :].lower(): value
            for name, value in fields.items()
            if name.startswith("Checksum") and name[len("Checksum") :].lower() in ALGORITHMS
        }
        parts.append(CompletedPart(int(number), fields.get("ETag"), checksums))
    if not parts:
        raise MalformedXML(f"{_MALFORMED}: no Part elements")
    return parts


# --- XML answers ------------------------------------------------------------------------------


class ListedPart(Protocol):
    """An uploaded part as ListParts shows it."""

    @property
    def number(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def etag(self) -> str: ...

    @property
    def checksums(self) -> dict[str, str]: ...

    @property
    def last_modified(self) -> datetime: ...


def _doc(root: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{_S3_NS}">{inner}</{root}>'
    ).encode()


def _text(value: str) -> str:
    return escape(value)


def initiate_result(bucket: str, key: str, upload_id: str) -> bytes:
    return _doc(
        "InitiateMultipartUploadResult",
        f"<Bucket>{_text(bucket)}</Bucket><Key>{_text(key)}</Key>"
        f"<UploadId>{_text(upload_id)}</UploadId>",
    )


def list_parts_result(
    bucket: str,
    key: str,
    upload_id: str,
    parts: Iterable[ListedPart],
    *,
    marker: int,
    max_parts: int,
    checksum_algorithm: str | None,
    checksum_type: str | None,
) -> bytes:
    """One page of ListParts: the parts numbered above ``marker``, at most ``max_parts``."""
    parts = sorted((p for p in parts if p.number > marker), key=lambda p: p.number)
    shown, truncated = parts[:max_parts], len(parts) > max_parts
    items = []
    for p in shown:
        sums = "".join(
            f"<Checksum{alg.upper()}>{v}</Checksum{alg.upper()}>" for alg, v in p.checksums.items()
        )
        items.append(
            f"<Part><PartNumber>{p.number}</PartNumber>"
            f"<LastModified>{s3_time(p.last_modified)}</LastModified>"
            f"<ETag>{_text(p.etag)}</ETag><Size>{p.size}</Size>{sums}</Part>"
        )
    alg = (
        f"<ChecksumAlgorithm>{checksum_algorithm.upper()}</ChecksumAlgorithm>"
        if checksum_algorithm
        else ""
    )
    ctype = f"<ChecksumType>{_text(checksum_type)}</ChecksumType>" if checksum_type else ""
    next_marker = shown[-1].number if shown else marker
    return _doc(
        "ListPartsResult",
        f"<Bucket>{_text(bucket)}</Bucket><Key>{_text(key)}</Key>"
        f"<UploadId>{_text(upload_id)}</UploadId>"
        f"<PartNumberMarker>{marker}</PartNumberMarker>"
        f"<NextPartNumberMarker>{next_marker}</NextPartNumberMarker>"
        f"<MaxParts>{max_parts}</MaxParts><IsTruncated>{str(truncated).lower()}</IsTruncated>"
        f"{''.join(items)}<StorageClass>STANDARD</StorageClass>{alg}{ctype}",
    )


def copy_part_result(etag: str, last_modified: datetime, checksums: dict[str, str]) -> bytes:
    """UploadPartCopy's answer: the part's ETag and time, and its checksums as S3 names them."""
    sums = "".join(f"<Checksum{a.upper()}>{v}</Checksum{a.upper()}>" for a, v in checksums.items())
    return _doc(
        "CopyPartResult",
        f"<LastModified>{s3_time(last_modified)}</LastModified><ETag>{_text(etag)}</ETag>{sums}",
    )


def complete_result(location: str, bucket: str, key: str, etag: str) -> bytes:
    return _doc(
        "CompleteMultipartUploadResult",
        f"<Location>{_text(location)}</Location><Bucket>{_text(bucket)}</Bucket>"
        f"<Key>{_text(key)}</Key><ETag>{_text(etag)}</ETag>",
    )
