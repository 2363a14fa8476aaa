"""XML → JSON for one mapping: wires the parse, the table walker, the generated fast path and
the streaming reader together, and picks the streaming reader for large documents."""

from __future__ import annotations

from typing import Any

from proxy.errors import TranslationError
from proxy.translate.failures import Fail
from proxy.translate.rules import Root
from proxy.translate.runtime import Runtime
from proxy.translate.xml_to_json.fast import FastPath, build
from proxy.translate.xml_to_json.parse import XmlParsing
from proxy.translate.xml_to_json.records import record_rules
from proxy.translate.xml_to_json.stream import StreamingReader
from proxy.translate.xml_to_json.walker import XmlWalker

__all__ = ["STREAM_THRESHOLD", "XmlToJson"]

#: Documents larger than this are translated as they are parsed (bounded memory), if their
#: mapping has arrays of objects to stream (see proxy.translate.xml_to_json.stream).
STREAM_THRESHOLD = 2 * 1024 * 1024


class XmlToJson:
    """Translate XML documents of one mapping to JSON. Thread-safe (a parser per thread)."""

    def __init__(self, root: Root, rt: Runtime, *, route: str = "") -> None:
        self.root = root
        self.rt = rt
        self.parsing = XmlParsing(rt)
        self.walker = XmlWalker(root, rt)
        records = record_rules(root.rule)
        #: Generated straight-line code for the valid case (None: tables only).
        self.fast: FastPath | None = build(
            root.rule, self.walker, rt.safe_integers, rt.max_depth, records[1], route=route
        )
        self.stream = StreamingReader(self.walker, self.parsing, self.fast, records)

    def parse(self, data: bytes) -> Any:
        """The parsed document (all parse-time refusals applied)."""
        return self.parsing.parse(data)

    def to_json(self, data: bytes) -> bytes:
        if len(data) > STREAM_THRESHOLD and self.stream.useful:
            self.parsing.refuse_early(data)
            return self.stream.to_json(data, self.parsing.blanks_matter(data))
        root = self.parsing.parse(data)
        try:
            return self.translate_root(root).encode("utf-8")
        except Fail as f:
            raise f.xml_error(self.rt.prefix_of) from None
        except RecursionError:
            raise TranslationError(
                "too_deep", "/", "nesting deeper than the translator can follow"
            ) from None

    def translate_root(self, root: Any) -> str:
        """The JSON text of a parsed document; raises :class:`Fail`."""
        fast = self.fast
        return self.walker.translate_root(root, fast.root if fast is not None else None)
