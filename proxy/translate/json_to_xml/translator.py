"""JSON → XML for one mapping: wires the decode, the table walker, the generated fast path and
the streaming writer together, and picks the streaming writer for large documents."""

from __future__ import annotations

from typing import Any

from proxy.errors import TranslationError
from proxy.translate.failures import Fail
from proxy.translate.json_to_xml.decode import (
    decode_json,
    decode_text,
    find_invalid_character,
    forbidden_in_xml,
)
from proxy.translate.json_to_xml.fast import JsonFastPath, build
from proxy.translate.json_to_xml.stream import JsonStreamer
from proxy.translate.json_to_xml.walker import XML_DECLARATION, JsonWalker
from proxy.translate.rules import Root
from proxy.translate.runtime import Runtime

__all__ = ["STREAM_THRESHOLD", "JsonToXml"]

#: JSON documents larger than this are parsed record by record (bounded memory), if their
#: mapping has arrays of objects to stream (see proxy.translate.json_to_xml.stream).
STREAM_THRESHOLD = 2 * 1024 * 1024


class JsonToXml:
    """Translate JSON documents of one mapping to XML. Thread-safe (no shared mutable state)."""

    def __init__(self, root: Root, rt: Runtime, *, route: str = "") -> None:
        self.root = root
        self.rt = rt
        self.walker = JsonWalker(root, rt)
        #: Generated straight-line code for the valid case (None: tables only).
        self.fast: JsonFastPath | None = (
            build(root.rule, self.walker, rt.max_depth, route=route) if root.tag else None
        )
        self.stream = JsonStreamer(self.walker, self.fast)

    def to_xml(self, data: bytes) -> bytes:
        if len(data) > STREAM_THRESHOLD and self.stream.useful:
            text = decode_text(data, self.rt)
            return self.stream.to_xml(text, check_sizes=len(data) > self.rt.max_text_bytes)
        value = decode_json(data, self.rt)
        return self.translate(value)

    def translate(self, value: Any, *, fast: bool = True) -> bytes:
        """XML bytes for the parsed JSON ``value``. ``fast=False`` uses the rule tables only
        (the tests compare both paths)."""
        out: list[str] = [XML_DECLARATION]
        fast_root = self.fast.root if fast and self.fast is not None else None
        try:
            self.walker.write_root(value, out, fast_root)
        except Fail as f:
            raise f.json_error() from None
        except RecursionError:
            raise TranslationError(
                "too_deep", "", "nesting deeper than the translator can follow"
            ) from None
        try:
            data = "".join(out).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            find_invalid_character(value)
            raise
        if forbidden_in_xml(data):
            find_invalid_character(value)  # the slow walk names the place
        return data
