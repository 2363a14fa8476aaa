"""XML → JSON, parsing: the hardened lxml parse of one mapping's documents (one parser per
thread), the refusals that need no parse (size, DOCTYPE) and the checks only a parsed document
allows (DOCTYPE in other encodings, comments and PIs around the root, over-long values)."""

from __future__ import annotations

import re
import threading
from typing import Any

from lxml import etree

from proxy.errors import TranslationError
from proxy.translate.failures import syntax_error, xpath
from proxy.translate.runtime import Runtime
from proxy.xmlsafe import hardened_parser

__all__ = ["XmlParsing"]

#: libxml2 without XML_PARSE_HUGE refuses any text node or attribute value longer than this
#: (XML_MAX_TEXT_LENGTH) while parsing, as "too_large": a configured limit at or above it
#: needs no check of its own.
_LIBXML2_VALUE_CAP = 10_000_000


_COMMENT = etree.Comment
_PI = etree.ProcessingInstruction

# A DOCTYPE before the root element, found without parsing (UTF-8/ASCII-compatible input;
# other encodings, and PIs with '>' inside, are caught after parsing via docinfo). The
# possessive loop never backtracks, so the scan stops at the first element.
_DOCTYPE = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:[ \t\r\n]|<\?[^>]*>|<!--(?:[^-]|-(?!->))*-->)*+<!DOCTYPE"
)


class XmlParsing:
    """Parse XML documents for one mapping. Thread-safe (a parser per thread)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._local = threading.local()

    def parser(self, blanks: bool) -> etree.XMLParser:
        """The thread's parser. ``blanks=False`` drops whitespace-only text between elements
        at parse time (libxml2's keepBlanks=0), which makes parsing and walking much cheaper;
        it is used only when it cannot touch a value (see :meth:`blanks_matter`)."""
        name = "parser_keep" if blanks else "parser_fast"
        p = getattr(self._local, name, None)
        if p is None:
            p = hardened_parser(
                remove_comments=self.rt.drop_comments,
                remove_pis=self.rt.drop_pis,
                remove_blank_text=not blanks,
                collect_ids=False,
                strip_cdata=True,
            )
            setattr(self._local, name, p)
        return p

    def blanks_matter(self, data: bytes) -> bool:
        """Whether libxml2's blank removal could shorten a value of this document.

        It drops a whitespace-only run that starts an element's content when the run is
        followed by a CDATA section, a comment, a PI or a carriage return (the parser splits
        runs there): ``<a> <![CDATA[x]]></a>`` would read as ``x``. Whitespace before a child
        element or an end tag is never dropped from a value. Documents containing any of those
        constructs take the exact parser (memchr-speed scans).
        """
        # "<!" finds CDATA and comments (a DOCTYPE was refused already); "<?" after the XML
        # declaration finds PIs. A two-byte search costs ~1 ms/MB ('<' is everywhere), a
        # one-byte one (memchr) ~100x less: look for the rarer byte first.
        if b"\r" in data:
            return True
        if b"!" in data and data.find(b"<!") != -1:
            return True
        start = data.find(b"?>") + 2 if data.startswith((b"<?xml", b"\xef\xbb\xbf<?xml")) else 0
        return data.find(b"?", start) != -1 and data.find(b"<?", start) != -1

    def refuse_early(self, data: bytes) -> None:
        rt = self.rt
        if len(data) > rt.max_bytes:
            raise TranslationError(
                "too_large",
                "/",
                f"document of {len(data)} bytes exceeds the limit of {rt.max_bytes}",
            )
        if _DOCTYPE.match(data):
            raise TranslationError(
                "doctype_forbidden", "/", "a DOCTYPE declaration is not accepted"
            )

    def parse(self, data: bytes) -> Any:
        self.refuse_early(data)
        parser = self.parser(self.blanks_matter(data))
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise syntax_error(exc) from None
        except ValueError as exc:  # e.g. unicode strings with encoding declarations
            raise TranslationError("not_well_formed", "/", str(exc)) from None
        self.check_parsed(root, data)
        return root

    def check_parsed(self, root: Any, data: bytes) -> None:
        """What can only be seen on the parsed document: a DOCTYPE in an encoding the byte scan
        cannot read, comments and PIs around the root, over-long values."""
        rt = self.rt
        tree = root.getroottree()
        if tree.docinfo.doctype:
            raise TranslationError(
                "doctype_forbidden", "/", "a DOCTYPE declaration is not accepted"
            )
        # Comments and PIs outside the root element (dropped by the parser when allowed).
        for sib in (*root.itersiblings(preceding=True), *root.itersiblings()):
            if sib.tag is _COMMENT:
                raise TranslationError(
                    "comment_forbidden",
                    "/comment()",
                    "comments are not accepted (mapping.comments)",
                )
            if sib.tag is _PI:
                raise TranslationError(
                    "processing_instruction_forbidden",
                    "/processing-instruction()",
                    f"processing instruction <?{sib.target}?> is not accepted "
                    "(mapping.processing_instructions)",
                )
        if len(data) > rt.max_text_bytes and rt.max_text_bytes < _LIBXML2_VALUE_CAP:
            self._check_text_sizes(root)

    def _check_text_sizes(self, root: Any) -> None:
        # Two passes in C (a union of both would be sorted in document order: quadratic);
        # exact byte counts only for suspects.
        limit = self.rt.max_text_bytes
        n = max(0, limit // 4)
        for query, is_attr in (
            ("//text()[string-length(.) > $n]", False),
            ("//@*[string-length(.) > $n]", True),
        ):
            for s in root.xpath(query, n=n):
                if len(s) <= limit and len(str(s).encode("utf-8")) <= limit:
                    continue
                node = s.getparent()
                if is_attr:
                    raise TranslationError(
                        "too_large",
                        xpath(node, self.rt.prefix_of, attr=s.attrname),
                        f"attribute value longer than {limit} bytes",
                    )
                raise TranslationError(
                    "too_large",
                    xpath(node, self.rt.prefix_of, text=True),
                    f"text longer than {limit} bytes",
                )

    # --- translation -------


#: lxml looks up each attribute value by name from the start of the element's attribute list,
#: so ``items()``/``get()`` over all attributes is quadratic in their number (60k attributes:
#: ~30 s). The XPath attribute axis walks the list once; it costs more per call, so it is used
#: only past a size where the quadratic cost shows.
_ALL_ATTRIBUTES = etree.XPath("@*")
_MANY_ATTRIBUTES = 256


def attribute_items(elem: Any) -> list[tuple[str, str]]:
    """``elem.items()`` in linear time: (Clark-notation name, value) in document order."""
    if len(elem.attrib) <= _MANY_ATTRIBUTES:
        return elem.items()  # type: ignore[no-any-return]
    return [(a.attrname, str(a)) for a in _ALL_ATTRIBUTES(elem)]
