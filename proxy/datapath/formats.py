"""Which format a stored object is in, and how the proxy labels the formats it writes.

Detection order (docs/architecture.md, "The model"): the proxy's own metadata, then
``Content-Type``, then a sniff of the first non-whitespace byte. Never a silent guess: an
undetectable object raises ``TranslationError("undetectable_format")`` saying what was looked
at. Pure.
"""

from __future__ import annotations

from proxy.errors import TranslationError
from proxy.translate import Format, sniff_format

#: User-metadata key (``x-amz-meta-format``) the proxy writes on every object it stores on a route.
META_KEY = "format"
META_HEADER = "x-amz-meta-" + META_KEY

CONTENT_TYPES: dict[Format, str] = {"xml": "application/xml", "json": "application/json"}

# Content types that say nothing about the document inside (SDK and CLI defaults).
_UNINFORMATIVE = frozenset(
    {
        "",
        "binary/octet-stream",
        "application/octet-stream",
        "text/plain",
        "application/x-www-form-urlencoded",
    }
)


def format_from_metadata(value: str | None) -> Format | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("xml", "json"):
        return v  # type: ignore[return-value]
    raise TranslationError(
        "undetectable_format", "/", f"object metadata {META_HEADER}={value!r} is not xml or json"
    )


def format_from_content_type(value: str | None) -> Format | None:
    """``application/xml``, ``text/xml``, ``*+xml`` → xml; ``*/json``, ``*+json`` → json."""
    if value is None:
        return None
    media = value.split(";", 1)[0].strip().lower()
    if media in _UNINFORMATIVE:
        return None
    _, _, subtype = media.partition("/")
    if subtype == "xml" or subtype.endswith("+xml"):
        return "xml"
    if subtype == "json" or subtype.endswith("+json"):
        return "json"
    return None


def sniff(head: bytes) -> Format | None:
    """The format the first non-whitespace character announces (BOM-aware, UTF-16/32 too):
    the engine's own sniffer, so the data path, ``check`` and ``translate`` agree."""
    return sniff_format(head)


def needs_sniff(meta_value: str | None, content_type: str | None) -> bool:
    return (
        format_from_metadata(meta_value) is None and format_from_content_type(content_type) is None
    )


def detect_stored_format(
    meta_value: str | None, content_type: str | None, head: bytes | None
) -> Format:
    """Decide the stored format; ``head`` is the object's first bytes (may be None if unread)."""
    fmt = format_from_metadata(meta_value) or format_from_content_type(content_type)
    if fmt is not None:
        return fmt
    if head is not None:
        fmt = sniff(head)
        if fmt is not None:
            return fmt
    shown = (head or b"")[:16]
    raise TranslationError(
        "undetectable_format",
        "/",
        f"no {META_HEADER} metadata, Content-Type {content_type!r} names no format, and the body "
        f"starts with {shown!r} (neither '<' nor '{{' / '[')",
    )
