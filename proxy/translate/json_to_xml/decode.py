"""JSON → XML, decoding: bytes to the exact value tree (:mod:`proxy.translate.model`) under the
size limits, and the scans for characters XML 1.0 cannot carry."""

from __future__ import annotations

from typing import Any

from proxy.errors import TranslationError
from proxy.translate.failures import Fail, parse_failure
from proxy.translate.lexical import find_invalid_xml_char
from proxy.translate.model import Number, Pairs, parse_exact
from proxy.translate.runtime import Runtime

__all__ = [
    "check_string_sizes",
    "decode_json",
    "decode_text",
    "find_invalid_character",
    "forbidden_in_xml",
    "unique_members",
]

_FORBIDDEN_BYTES = bytes(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))


def unique_members(pairs: Pairs) -> dict[str, Any]:
    """An object's members by key; a key given twice is refused (no member silently lost)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                f = Fail("duplicate_key", f"key {k!r} appears more than once")
                f.path.append(k)
                raise f
            seen.add(k)
    return d


#: JSON documents larger than this are parsed record by record (bounded memory), if their


def decode_json(data: bytes, rt: Runtime) -> Any:
    """Bytes → exact value tree, with the size limit and precise error reasons."""
    text = decode_text(data, rt)
    try:
        value = parse_exact(text)
    except (ValueError, RecursionError) as exc:
        raise parse_failure(exc) from None
    if len(data) > rt.max_text_bytes:
        check_string_sizes(value, rt.max_text_bytes)
    return value


def decode_text(data: bytes, rt: Runtime) -> str:
    """The document as text: size limit, optional UTF-8 BOM, strict UTF-8."""
    if len(data) > rt.max_bytes:
        raise TranslationError(
            "too_large", "", f"document of {len(data)} bytes exceeds the limit of {rt.max_bytes}"
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TranslationError(
            "invalid_character", "", f"not UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None


def forbidden_in_xml(data: bytes) -> bool:
    """Whether UTF-8 ``data`` holds a character XML 1.0 cannot carry: a C0 control other than
    TAB, LF, CR, or U+FFFE/U+FFFF. One pass over the bytes (deleting the forbidden bytes
    changes the length iff there is one) is cheaper than checking every string."""
    if b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data:
        return True
    step = 1 << 20  # translate() copies: chunk it, so a large output is not held twice
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        if len(chunk.translate(None, _FORBIDDEN_BYTES)) != len(chunk):
            return True
    return False


def _longer_than(s: str, limit: int) -> bool:
    """UTF-8 length of ``s`` > ``limit``, encoding only when the character count can't tell
    (1 to 4 bytes per character)."""
    n = len(s)
    if n > limit:
        return True
    return n * 4 > limit and len(s.encode("utf-8", "surrogatepass")) > limit


def check_string_sizes(value: Any, limit: int) -> None:
    def walk(v: Any, path: list[str | int]) -> None:
        t = type(v)
        if t is str or t is Number:
            if _longer_than(v, limit):
                raise Fail("too_large", f"string longer than {limit} bytes")
        elif t is Pairs:
            for k, x in v:
                try:
                    if _longer_than(k, limit):
                        raise Fail("too_large", f"key longer than {limit} bytes")
                    walk(x, path)
                except Fail as f:
                    f.path.append(k)
                    raise
        elif t is list:
            for i, x in enumerate(v):
                try:
                    walk(x, path)
                except Fail as f:
                    f.path.append(i)
                    raise

    try:
        walk(value, [])
    except Fail as f:
        raise f.json_error() from None


def find_invalid_character(value: Any) -> None:
    """Raise (with its JSON Pointer) for the first string or key XML 1.0 cannot carry."""

    def walk(v: Any) -> None:
        t = type(v)
        if t is str:
            m = find_invalid_xml_char(v)
            if m is not None:
                raise Fail(
                    "invalid_character",
                    f"U+{ord(m.group()):04X} cannot be written in XML 1.0",
                )
        elif t is Pairs:
            for k, x in v:
                try:
                    m = find_invalid_xml_char(k)
                    if m is not None:
                        raise Fail(
                            "invalid_character",
                            f"key contains U+{ord(m.group()):04X}, which XML 1.0 cannot carry",
                        )
                    walk(x)
                except Fail as f:
                    f.path.append(k)
                    raise
        elif t is list:
            for i, x in enumerate(v):
                try:
                    walk(x)
                except Fail as f:
                    f.path.append(i)
                    raise

    try:
        walk(value)
    except Fail as f:
        raise f.json_error() from None
