"""Failures: the one exception type both directions raise deep in a walk, the locations it is
reported at (an XPath on the XML side, a JSON Pointer on the JSON side), and the mapping of
parser errors (libxml2, the json scanner) to the engine's reasons.

Locations are computed only when something fails, never per node: an XPath from the failing
lxml element up to the root (XML side), a JSON Pointer collected while the failure propagates
(JSON side).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from lxml import etree

from proxy.errors import TranslationError

__all__ = ["Fail", "parse_failure", "pointer", "syntax_error", "xpath"]


def _step(node: Any, prefix_of: dict[str, str], always_index: Collection[str] = frozenset()) -> str:
    tag = node.tag
    if tag is etree.Comment:
        name, same = "comment()", etree.Comment
    elif tag is etree.ProcessingInstruction:
        name, same = "processing-instruction()", etree.ProcessingInstruction
    elif isinstance(tag, str):
        if tag[0] == "{":
            uri, local = tag[1:].split("}", 1)
            prefix = prefix_of.get(uri)
            if prefix is None:
                name = f"Q{{{uri}}}{local}"  # XPath 3.0 EQName: no prefix of ours to show
            else:
                name = f"{prefix}:{local}" if prefix else local
        else:
            name = tag
        same = tag
    else:  # pragma: no cover - entity references are refused at parse time
        return "node()"
    parent = node.getparent()
    if parent is None:
        return name
    index = 0
    count = 0
    for sib in parent:
        if sib.tag is same or sib.tag == same:
            count += 1
            if sib is node:
                index = count
    # While streaming, later siblings are not parsed yet: records always carry their index.
    return f"{name}[{index}]" if count > 1 or tag in always_index else name


def xpath(
    node: Any,
    prefix_of: dict[str, str],
    *,
    attr: str | None = None,
    text: bool = False,
    tail: bool = False,
    always_index: Collection[str] = frozenset(),
) -> str:
    """``/order/items/item[3]/quantity`` for ``node``; names use the mapping's prefixes (the
    default namespace unprefixed), or ``Q{uri}local`` for namespaces the mapping lacks."""
    steps = []
    n = node
    while n is not None:
        steps.append(_step(n, prefix_of, always_index))
        n = n.getparent()
    path = "/" + "/".join(reversed(steps))
    if attr is not None:
        if attr.startswith("{"):
            uri, local = attr[1:].split("}", 1)
            prefix = prefix_of.get(uri)
            attr = f"{prefix}:{local}" if prefix else f"Q{{{uri}}}{local}"
        path += f"/@{attr}"
    elif text:
        path += "/text()"
    elif tail:
        path += "/following-sibling::text()[1]"  # the text right after the element
    return path


def pointer(segments: Iterable[str | int]) -> str:
    """RFC 6901 JSON Pointer ("" is the whole document)."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in segments)


class Fail(Exception):
    """A failure on its way up from deep in a walk. On the XML side it carries the node (see
    :meth:`at`), so the XPath is computed once, at the top; on the JSON side each level adds its
    key to :attr:`path`, innermost first."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        node: Any = None,
        attr: str | None = None,
        text: bool = False,
        tail: bool = False,
    ) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.node = node
        self.attr = attr
        self.text = text
        self.tail = tail
        self.path: list[str | int] = []

    @classmethod
    def at(
        cls,
        reason: str,
        node: Any,
        detail: str,
        *,
        attr: str | None = None,
        text: bool = False,
        tail: bool = False,
    ) -> Fail:
        """An XML-side failure at ``node`` (its attribute ``attr``, its text, its tail)."""
        return cls(reason, detail, node=node, attr=attr, text=text, tail=tail)

    def json_error(self) -> TranslationError:
        """The error, located by the JSON Pointer collected on the way up."""
        return TranslationError(self.reason, pointer(reversed(self.path)), self.detail)

    def xml_error(
        self, prefix_of: dict[str, str], always_index: Collection[str] = frozenset()
    ) -> TranslationError:
        """The error, located by the XPath of the node it carries."""
        where = xpath(
            self.node,
            prefix_of,
            attr=self.attr,
            text=self.text,
            tail=self.tail,
            always_index=always_index,
        )
        return TranslationError(self.reason, where, self.detail)


# libxml2 error codes (xmlerror.h) that mean something more specific than "not well-formed".
_ERR_INVALID_CHAR = 9
_ERR_INVALID_ENCODING = 81
_ERR_RESOURCE_LIMIT = 114


def syntax_error(exc: etree.XMLSyntaxError) -> TranslationError:
    """The engine's error for what libxml2 raised."""
    msg = str(exc.msg or exc)
    low = msg.lower()
    code = getattr(exc, "code", 0)
    if code == _ERR_RESOURCE_LIMIT or "resource limit" in low or "excessive depth" in low:
        if "depth" in low:
            return TranslationError("too_deep", "/", msg)
        return TranslationError("too_large", "/", msg)
    if (
        code in (_ERR_INVALID_CHAR, _ERR_INVALID_ENCODING)
        or "invalid char" in low
        or ("character encoding" in low)
    ):
        return TranslationError("invalid_character", "/", msg)
    if "doctype" in low:
        return TranslationError("doctype_forbidden", "/", msg)
    return TranslationError("not_well_formed", "/", msg)


def parse_failure(exc: ValueError | RecursionError) -> TranslationError:
    """The engine's error for what the stdlib scanner raised."""
    if isinstance(exc, json.JSONDecodeError):
        reason = "invalid_character" if "control character" in exc.msg else "not_well_formed"
        return TranslationError(reason, "", f"line {exc.lineno}, column {exc.colno}: {exc.msg}")
    if isinstance(exc, RecursionError):
        return TranslationError("too_deep", "", "nesting deeper than the parser can follow")
    return TranslationError("not_well_formed", "", str(exc))  # NaN / Infinity
