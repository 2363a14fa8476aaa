"""Byte ranges over a representation the proxy produced itself (a translated document).

Pure: S3's rules for ``Range`` and ``partNumber`` applied to bytes the proxy holds. Passthrough
requests never come here; the upstream answers their ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.errors import InvalidArgument, InvalidPartNumber, InvalidRange

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``start..end`` of a representation ``size`` bytes long."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"

    def slice(self, body: bytes | memoryview) -> memoryview:
        return memoryview(body)[self.start : self.end + 1]


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Resolve a ``Range`` header against ``size`` bytes the way S3 does.

    Returns ``None`` when the whole representation is to be served (no header, or a header S3
    ignores: malformed syntax or several ranges). Raises :class:`InvalidRange` (416) when the
    range is syntactically valid but cannot be satisfied.
    """
    if header is None or "," in header:
        return None
    m = _RANGE_RE.match(header)
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    unsatisfiable = InvalidRange(
        f"The requested range is not satisfiable (object is {size} bytes): {header.strip()}"
    )
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise unsatisfiable
        return ByteRange(max(0, size - n), size - 1, size)
    start = int(first)
    if start >= size:
        raise unsatisfiable
    end = size - 1 if not last else min(int(last), size - 1)
    if end < start:
        return None  # "bytes=5-3" is invalid syntax per RFC 9110: S3 serves the whole object
    return ByteRange(start, end, size)


def part_range(part_number: str, size: int) -> ByteRange:
    """``partNumber`` on a representation that is one part: part 1 is everything."""
    try:
        n = int(part_number)
    except ValueError:
        raise InvalidArgument(f"partNumber must be an integer, got {part_number!r}") from None
    if not 1 <= n <= 10000:
        raise InvalidArgument(f"partNumber must be between 1 and 10000, got {n}")
    if n != 1:
        raise InvalidPartNumber(
            f"The requested partNumber is not satisfiable: {n} (the object has 1 part)"
        )
    if size == 0:
        return ByteRange(0, -1, 0)
    return ByteRange(0, size - 1, size)
