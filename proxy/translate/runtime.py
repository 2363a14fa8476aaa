"""Per-mapping settings both translators read, and the location formats of their errors.

Locations are computed only when something fails, never per node: an XPath from the failing
lxml element up to the root (XML side), a JSON Pointer collected while the failure propagates
(JSON side).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from proxy.errors import TranslationError


@dataclass(frozen=True)
class Runtime:
    max_depth: int
    max_text_bytes: int
    max_bytes: int
    safe_integers: bool
    #: The mapping's fixed namespace map, both ways (includes ``xsi`` when used).
    prefix_of: dict[str, str]
    uri_of: dict[str, str]
    text_key: str
    attribute_prefix: str
    drop_comments: bool
    drop_pis: bool


def _step(node: Any, prefix_of: dict[str, str], always_index: Any = frozenset()) -> str:
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
    always_index: Any = frozenset(),
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


class JsonFail(Exception):
    """A JSON-side failure on its way up; each level adds its key, innermost first."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.path: list[str | int] = []

    def error(self) -> TranslationError:
        return TranslationError(self.reason, pointer(reversed(self.path)), self.detail)
