"""Which format a document is, from its first non-whitespace character (BOM-aware). The one
sniffer: the data path, ``format-proxy check`` and ``format-proxy translate`` all use it."""

from __future__ import annotations

import re

from proxy.errors import TranslationError
from proxy.translate.model import Format

__all__ = ["detect_format", "sniff_format"]

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)

_FIRST_NON_WS = re.compile(rb"[^ \t\r\n]")


def _first_char(data: bytes) -> str:
    """The first non-whitespace character ("" if none). A UTF-8 BOM is skipped; UTF-16/32
    byte order marks are decoded (XML may use them)."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = data[len(bom) : len(bom) + 4096].decode(enc, errors="ignore")
            return text.lstrip(" \t\r\n")[:1]
    m = _FIRST_NON_WS.search(data)
    return chr(data[m.start()]) if m is not None else ""


def sniff_format(head: bytes) -> Format | None:
    """``"xml"`` for ``<``, ``"json"`` for ``{``/``[``, None for anything else or nothing."""
    first = _first_char(head)
    if first == "<":
        return "xml"
    if first in ("{", "["):
        return "json"
    return None


def detect_format(data: bytes) -> Format:
    """Like :func:`sniff_format`, but raises ``TranslationError("undetectable_format")``."""
    fmt = sniff_format(data)
    if fmt is not None:
        return fmt
    first = _first_char(data)
    if not first:
        raise TranslationError("undetectable_format", "/", "the document is empty")
    raise TranslationError(
        "undetectable_format",
        "/",
        f"first character {first!r} is neither '<' (XML) nor '{{' / '[' (JSON)",
    )
