"""Round-trip a document through a mapping and say whether it comes back (``format-proxy
check``). Pure: bytes in, a verdict out.

- XML → JSON → XML is compared under C14N 2.0 with whitespace-only text between elements
  ignored. Equal with the document's own prefixes: ``exact``. Equal only after rewriting
  prefixes, or different in spelling while the JSON of both is the same (``1`` for ``true``,
  ``xsi:nil="false"``): ``normalised`` — no data changed, but the XML bytes would.
- JSON → XML → JSON is compared as values with number text (key order ignored). A difference
  the mapping documents (``[]`` for an optional unwrapped array comes back absent): ``normalised``.
Anything else is a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lxml import etree

from proxy.errors import TranslationError
from proxy.translate.model import Format, Number, Pairs, parse_exact
from proxy.xmlsafe import hardened_parser

if TYPE_CHECKING:
    from proxy.translate.mapping import CompiledMapping

_WS = " \t\r\n"

Outcome = Literal["exact", "normalised", "failed"]


@dataclass(frozen=True)
class RoundTrip:
    format: Format
    outcome: Outcome
    #: For ``normalised`` / ``failed``: what differs or why it failed.
    detail: str = ""
    error: TranslationError | None = None
    #: For a document that does not come back: where the first difference is (an XPath).
    location: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


def canonical_xml(data: bytes, *, rewrite_prefixes: bool = False) -> str:
    """C14N 2.0 with whitespace-only text in elements that have child elements removed."""
    parser = hardened_parser()
    root = etree.fromstring(data, parser)
    for el in root.iter():
        if len(el):
            if el.text is not None and not el.text.strip(_WS):
                el.text = None
            for child in el:
                if child.tail is not None and not child.tail.strip(_WS):
                    child.tail = None
    text = etree.tostring(root, encoding="unicode")
    return str(etree.canonicalize(text, rewrite_prefixes=rewrite_prefixes))


def _first_difference(a: str, b: str) -> str:
    i = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, i - 30)
    return f"…{a[start : i + 30]}… became …{b[start : i + 30]}…"


def difference_location(before: str, after: str) -> str:
    """The XPath of the first element (or ``@attribute``) where two canonical documents
    differ: a place to look at, without quoting the document."""
    parser = hardened_parser()
    a = etree.fromstring(before.encode(), parser)
    b = etree.fromstring(after.encode(), parser)
    if a.tag != b.tag:
        return "/"
    return _element_difference(a, b, "/" + _name(a)) or "/"


def _name(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else "node()"


def _element_difference(a: etree._Element, b: etree._Element, path: str) -> str:
    if dict(a.attrib) != dict(b.attrib):
        for name in sorted(set(a.attrib) | set(b.attrib)):
            if a.get(name) != b.get(name):
                return f"{path}/@{etree.QName(name).localname}"
    if (a.text or "") != (b.text or "") or len(a) != len(b):
        return path
    seen: dict[object, int] = {}
    for x, y in zip(a, b, strict=True):
        seen[x.tag] = seen.get(x.tag, 0) + 1
        here = f"{path}/{_name(x)}[{seen[x.tag]}]"
        if x.tag != y.tag or (x.tail or "") != (y.tail or ""):
            return here
        found = _element_difference(x, y, here)
        if found:
            return found
    return ""


def _json_value(data: bytes) -> Any:
    def norm(v: Any) -> Any:
        t = type(v)
        if t is Pairs:
            return ("object", tuple(sorted((k, norm(x)) for k, x in v)))
        if t is list:
            return ("array", tuple(norm(x) for x in v))
        if t is Number:
            return ("number", str(v))
        if t is str:
            return ("string", v)
        return ("literal", v)

    return norm(parse_exact(data.decode("utf-8")))


def _json_difference(a: Any, b: Any, path: str = "") -> str:
    if a == b:
        return ""
    if a[0] == b[0] == "object":
        da, db = dict(a[1]), dict(b[1])
        for k in sorted(set(da) | set(db)):
            p = f"{path}/{k.replace('~', '~0').replace('/', '~1')}"
            if k not in db:
                return f"{p} is absent after the round trip"
            if k not in da:
                return f"{p} appears after the round trip"
            d = _json_difference(da[k], db[k], p)
            if d:
                return d
    if a[0] == b[0] == "array" and len(a[1]) == len(b[1]):
        for i, (x, y) in enumerate(zip(a[1], b[1], strict=True)):
            d = _json_difference(x, y, f"{path}/{i}")
            if d:
                return d
    return f"{path or '(document)'}: {_show(a)} became {_show(b)}"


def _show(v: Any) -> str:
    kind, val = v[0], v[1]
    if kind in ("object", "array"):
        return f"an {kind}" if kind == "object" else f"an array of {len(val)}"
    return repr(val)


def round_trip(mapping: CompiledMapping, data: bytes, fmt: Format) -> RoundTrip:
    try:
        if fmt == "xml":
            j = mapping.xml_to_json(data)
            x = mapping.json_to_xml(j)
            before, after = canonical_xml(data), canonical_xml(x)
            if before == after:
                return RoundTrip("xml", "exact")
            if canonical_xml(data, rewrite_prefixes=True) == canonical_xml(
                x, rewrite_prefixes=True
            ):
                return RoundTrip(
                    "xml", "normalised", "namespace prefixes are rewritten to the mapping's"
                )
            if _json_value(mapping.xml_to_json(x)) == _json_value(j):
                a = canonical_xml(data, rewrite_prefixes=True)
                b = canonical_xml(x, rewrite_prefixes=True)
                return RoundTrip(
                    "xml",
                    "normalised",
                    "same data, spelled differently: " + _first_difference(a, b),
                )
            return RoundTrip(
                "xml",
                "failed",
                "the XML does not come back: " + _first_difference(before, after),
                location=difference_location(before, after),
            )
        x = mapping.json_to_xml(data)
        j = mapping.xml_to_json(x)
        a, b = _json_value(data), _json_value(j)
        if a == b:
            return RoundTrip("json", "exact")
        return RoundTrip("json", "normalised", _json_difference(a, b))
    except TranslationError as exc:
        return RoundTrip(fmt, "failed", str(exc), exc)
