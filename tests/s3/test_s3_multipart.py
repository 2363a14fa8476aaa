"""proxy.s3.multipart: the CompleteMultipartUpload body parser and the ListParts document."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from proxy.errors import MalformedXML
from proxy.s3.multipart import list_parts_result, parse_complete, s3_time

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def test_complete_parser_is_strict() -> None:
    parts = parse_complete(
        b'<CompleteMultipartUpload><Part><ETag>"a"</ETag><PartNumber>2</PartNumber>'
        b"<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>"
    )
    assert [(p.number, p.etag, p.checksums) for p in parts] == [(2, '"a"', {"crc32": "AAAAAA=="})]
    for bad in (
        b"<!DOCTYPE x [<!ENTITY e 'boom'>]><CompleteMultipartUpload><Part>"
        b"<PartNumber>&e;</PartNumber></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload/>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part>"
        b"</CompleteMultipartUpload>",
        b"not xml",
    ):
        with pytest.raises(MalformedXML):
            parse_complete(bad)


@dataclass(frozen=True)
class _Part:
    number: int
    size: int = 3
    etag: str = '"e"'
    checksums: dict[str, str] = field(default_factory=dict)
    last_modified: datetime = datetime(2025, 1, 31, 12, 34, 56, 789_000, tzinfo=UTC)


def test_list_parts_pages_by_marker_in_part_order() -> None:
    parts = [_Part(3), _Part(1, checksums={"crc32": "AAAAAA=="}), _Part(2)]
    body = list_parts_result(
        "b",
        "k&",
        "id",
        parts,
        marker=1,
        max_parts=1,
        checksum_algorithm="crc32",
        checksum_type="COMPOSITE",
    )
    root = etree.fromstring(body)
    assert [el.findtext(f"{NS}PartNumber") for el in root.iter(f"{NS}Part")] == ["2"]
    assert root.findtext(f"{NS}Key") == "k&"
    assert root.findtext(f"{NS}NextPartNumberMarker") == "2"
    assert root.findtext(f"{NS}IsTruncated") == "true"
    assert root.findtext(f"{NS}ChecksumAlgorithm") == "CRC32"
    assert root.findtext(f"{NS}ChecksumType") == "COMPOSITE"
    everything = etree.fromstring(
        list_parts_result(
            "b",
            "k",
            "id",
            parts,
            marker=0,
            max_parts=10,
            checksum_algorithm=None,
            checksum_type=None,
        )
    )
    first = next(everything.iter(f"{NS}Part"))
    assert first.findtext(f"{NS}ChecksumCRC32") == "AAAAAA=="
    assert first.findtext(f"{NS}LastModified") == "2025-01-31T12:34:56.789Z"
    assert everything.findtext(f"{NS}IsTruncated") == "false"
    assert everything.find(f"{NS}ChecksumAlgorithm") is None


def test_s3_time_is_utc_with_milliseconds() -> None:
    ts = datetime(2025, 1, 31, 13, 34, 56, 789_999, tzinfo=timezone(timedelta(hours=1)))
    assert s3_time(ts) == "2025-01-31T12:34:56.789Z"
