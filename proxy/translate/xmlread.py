"""XML → JSON: a hardened lxml parse, then one walk over the tree driven by the rule tables.

The walk builds the JSON text directly (no intermediate dicts): every JSON key fragment and
every expected child name is precomputed in the rules, so the per-node work is a dict lookup,
an order comparison and a scalar conversion. Scalars keep their exact lexical form (numbers
are copied as written after a grammar check). Anything outside the mapping's domain raises
:class:`~proxy.errors.TranslationError` with an XPath.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from lxml import etree

from proxy.errors import TranslationError
from proxy.translate.checks import uniqueness_key
from proxy.translate.failures import Fail, syntax_error, xpath
from proxy.translate.lexical import (
    BOOLEAN_IN,
    SAFE_INTEGER,
    encode_basestring,
    integer_ok,
    is_integral,
    number_ok,
    to_decimal,
)
from proxy.translate.model import Number, parse_exact
from proxy.translate.rules import (
    ARRAY,
    GROUP,
    OBJECT,
    SCALAR,
    T_BOOLEAN,
    T_INTEGER,
    T_NULL,
    T_NUMBER,
    T_STRING,
    TYPE_NAMES,
    XSI_NIL,
    ArrayRule,
    ObjectRule,
    Prop,
    Root,
    Rule,
    ScalarRule,
)
from proxy.translate.runtime import Runtime
from proxy.translate.xmlstream import FRAGS
from proxy.xmlsafe import hardened_parser

#: Documents larger than this are translated as they are parsed (bounded memory), if their
#: mapping has arrays of objects to stream (see proxy.translate.xmlstream).
STREAM_THRESHOLD = 2 * 1024 * 1024

#: libxml2 without XML_PARSE_HUGE refuses any text node or attribute value longer than this
#: (XML_MAX_TEXT_LENGTH) while parsing, as "too_large": a configured limit at or above it
#: needs no check of its own.
_LIBXML2_VALUE_CAP = 10_000_000

_COMMENT = etree.Comment
_PI = etree.ProcessingInstruction
_WS = " \t\r\n"
_NIL_TRUE = ("true", "1")
_NIL_FALSE = ("false", "0")

# A DOCTYPE before the root element, found without parsing (UTF-8/ASCII-compatible input;
# other encodings, and PIs with '>' inside, are caught after parsing via docinfo). The
# possessive loop never backtracks, so the scan stops at the first element.
_DOCTYPE = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:[ \t\r\n]|<\?[^>]*>|<!--(?:[^-]|-(?!->))*-->)*+<!DOCTYPE"
)


def _type_name(rule: ScalarRule) -> str:
    name = TYPE_NAMES[rule.type]
    return f"{name} or null" if rule.nullable and rule.type != T_NULL else name


class _Bad(Exception):
    """A scalar that fails its rule; the caller knows the node and turns it into _Fail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def make_converter(rule: ScalarRule, safe_integers: bool) -> Any:
    """``text -> JSON literal`` for one scalar rule, checks included; raises :class:`_Bad`."""
    cached = rule.__dict__.get("_xml_conv")
    if cached is not None and cached[0] == safe_integers:
        return cached[1]
    t = rule.type
    check = rule.check
    enc = encode_basestring

    def violated(problem: str) -> None:
        raise _Bad("schema_violation", problem)

    if t == T_STRING:
        if check is None:
            conv = enc
        else:

            def conv(text: str) -> str:
                problem = check(text)
                if problem is not None:
                    violated(problem)
                return enc(text)

    elif t in (T_NUMBER, T_INTEGER):
        ok = number_ok if t == T_NUMBER else integer_ok
        what = "a number (JSON number syntax)" if t == T_NUMBER else "an integer"

        def conv(text: str) -> str:
            if not ok(text):
                raise _Bad("type_mismatch", f"{_show(text)} is not {what}")
            if (
                safe_integers
                and len(text) > 15
                and is_integral(text)
                and to_decimal(text).copy_abs() > SAFE_INTEGER
            ):
                raise _Bad(
                    "number_out_of_range",
                    f"{text[:40]} is beyond ±(2**53-1), which not every JSON reader keeps "
                    "exact (mapping.safe_integers)",
                )
            if check is not None:
                problem = check(text)
                if problem is not None:
                    violated(problem)
            return text

    elif t == T_BOOLEAN:
        table = BOOLEAN_IN

        def conv(text: str) -> str:
            b = table.get(text)
            if b is None:
                raise _Bad("type_mismatch", f"{_show(text)} is not a boolean (true, false, 1 or 0)")
            if check is not None:
                problem = check(b)
                if problem is not None:
                    violated(problem)
            return b

    else:

        def conv(text: str) -> str:
            raise _Bad("type_mismatch", 'the schema allows only null here (xsi:nil="true")')

    rule._xml_conv = (safe_integers, conv)  # type: ignore[attr-defined]
    return conv


# Slot kinds of element properties.
K_LEAF, K_OBJECT, K_ARRAY, K_RUN, K_OTHER = range(5)


def _key(rule: ObjectRule, p: Prop) -> str:
    """The key fragment a property's value is emitted with. A member of a ``nodeType: none``
    group gets a marker naming its group (``\\x00<n>\\x00"key":``): the object's parts are then
    sorted into the groups' own objects (see XmlReader._gather_groups)."""
    if p.group is None:
        return p.key_json
    return f"\x00{rule.groups.index(p.group)}\x00{p.key_json}"


def _slots(rule: ObjectRule, safe: bool) -> dict[str, tuple[Any, ...]]:
    """Clark tag → (index, kind, key fragment, converter, rule, required, prop), cached."""
    cached = rule.__dict__.get("_xml_slots")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    slots: dict[str, tuple[Any, ...]] = {}
    for p in rule.elem_props:
        r = p.rule
        conv = None
        if p.unwrapped:
            kind = K_RUN
            items = r.items  # type: ignore[attr-defined]
            if items.kind == SCALAR:
                conv = make_converter(items, safe)
        elif r.kind == SCALAR:
            kind = K_LEAF
            conv = make_converter(r, safe)  # type: ignore[arg-type]
        elif r.kind == OBJECT:
            kind = K_OBJECT
        elif r.kind == ARRAY:
            kind = K_ARRAY
        else:
            kind = K_OTHER
        slots[p.tag] = (p.index, kind, _key(rule, p), conv, r, p.required and not p.group, p)
    attrs: dict[str, tuple[Any, ...]] = {}
    for i, p in enumerate(rule.attr_props):
        conv = make_converter(p.rule, safe)  # type: ignore[arg-type]
        attrs[p.tag] = (_key(rule, p), conv, p.required and not p.group, i)
    rule._xml_attrs = attrs  # type: ignore[attr-defined]
    rule._xml_req_runs = tuple(  # type: ignore[attr-defined]
        p for p in rule.elem_props if p.unwrapped and p.required and p.group is None
    )
    rule._xml_slots = slots  # type: ignore[attr-defined]
    return slots


class XmlReader:
    """Translate XML documents of one mapping to JSON. Thread-safe (a parser per thread)."""

    def __init__(self, root: Root, rt: Runtime) -> None:
        self.root = root
        self.rt = rt
        self._local = threading.local()
        self.known_ns = frozenset(rt.uri_of.values())
        from proxy.translate.xmlfast import build
        from proxy.translate.xmlstream import StreamingReader

        self.stream = StreamingReader(self)
        #: Generated straight-line code for the valid case (None: tables only).
        self.fast = build(root.rule, self, rt.safe_integers, rt.max_depth, self.stream.rules)

    # --- parsing -------

    def _parser(self, blanks: bool) -> etree.XMLParser:
        """The thread's parser. ``blanks=False`` drops whitespace-only text between elements
        at parse time (libxml2's keepBlanks=0), which makes parsing and walking much cheaper;
        it is used only when it cannot touch a value (see :func:`_blanks_matter`)."""
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

    def _blanks_matter(self, data: bytes) -> bool:
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

    def _refuse_early(self, data: bytes) -> None:
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
        self._refuse_early(data)
        parser = self._parser(self._blanks_matter(data))
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

    def to_json(self, data: bytes) -> bytes:
        if len(data) > STREAM_THRESHOLD and self.stream.useful:
            self._refuse_early(data)
            return self.stream.to_json(data, self._blanks_matter(data))
        root = self.parse(data)
        try:
            return self.translate_root(root).encode("utf-8")
        except Fail as f:
            raise f.xml_error(self.rt.prefix_of) from None
        except RecursionError:
            raise TranslationError(
                "too_deep", "/", "nesting deeper than the translator can follow"
            ) from None

    def translate_root(self, root: Any) -> str:
        spec = self.root
        if not spec.tag:  # schemaless without a root name: {"qname": content}
            from proxy.translate.convention import any_key, any_value

            key = any_key(root, root.tag, self, attr=False)
            return "{" + encode_basestring(key) + ":" + any_value(root, spec.rule, self, 1) + "}"
        if root.tag != spec.tag:
            ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
            raise Fail.at(
                "wrong_root",
                root,
                f"root element is {_name(root.tag)}, the mapping expects {_name(spec.tag)}"
                + (
                    f" (namespace {ns!r} is not the mapping's)"
                    if ns and ns not in self.known_ns
                    else ""
                ),
            )
        if self.fast is not None:
            out: list[str] = []
            self.fast.root(root, 1, out)
            return "".join(out)
        return self.value(root, spec.rule, 1)

    def value(self, elem: Any, rule: Rule, depth: int) -> str:
        """The JSON text for the content of ``elem`` under ``rule``."""
        if depth > self.rt.max_depth:
            raise Fail.at("too_deep", elem, f"nesting deeper than {self.rt.max_depth} elements")
        kind = rule.kind
        if kind == OBJECT:
            return self.object(elem, rule, depth)  # type: ignore[arg-type]
        if kind == SCALAR:
            return self.leaf(elem, rule)  # type: ignore[arg-type]
        if kind == ARRAY:
            return self.array(elem, rule, depth)  # type: ignore[arg-type]
        from proxy.translate.convention import any_value

        return any_value(elem, rule, self, depth)  # type: ignore[arg-type]

    # Scalars ------------------------------------------------------------------------------------

    def scalar(self, text: str, rule: ScalarRule, node: Any, attr: str | None = None) -> str:
        """Lexical check + conversion of one text/attribute value to its JSON literal."""
        try:
            return make_converter(rule, self.rt.safe_integers)(text)  # type: ignore[no-any-return]
        except _Bad as b:
            raise Fail.at(b.reason, node, b.detail, attr=attr, text=attr is None) from None

    def leaf(self, elem: Any, rule: ScalarRule) -> str:
        """A scalar element: text only, no child elements, no attributes but xsi:nil."""
        if len(elem):
            self._children_in_leaf(elem, rule)
        if elem.keys():
            nil = self._nil(elem, rule)
            if nil is not None:
                return nil
        text = elem.text
        try:
            return make_converter(rule, self.rt.safe_integers)("" if text is None else text)  # type: ignore[no-any-return]
        except _Bad as b:
            raise Fail.at(b.reason, elem, b.detail, text=True) from None

    def _nil(self, elem: Any, rule: Rule) -> str | None:
        """``null`` for an ``xsi:nil="true"`` element, None if not nil; raises on any other
        attribute (scalars and arrays have none)."""
        result = None
        for name, value in elem.items():
            if name == XSI_NIL:
                if value in _NIL_TRUE:
                    if not rule.nullable:
                        raise Fail.at("type_mismatch", elem, "null is not allowed here", attr=name)
                    if len(elem) or elem.text:
                        raise Fail.at(
                            "type_mismatch",
                            elem,
                            'an xsi:nil="true" element must be empty',
                        )
                    result = "null"
                elif value not in _NIL_FALSE:
                    raise Fail.at(
                        "type_mismatch", elem, f"xsi:nil={value!r} is not a boolean", attr=name
                    )
            else:
                raise Fail.at(
                    "unknown_attribute",
                    elem,
                    f"attribute {_name(name)} is not in the mapping",
                    attr=name,
                )
        return result

    def _children_in_leaf(self, elem: Any, rule: Rule) -> None:
        for child in elem:
            self._not_element(child)
        what = _type_name(rule) if isinstance(rule, ScalarRule) else "text"
        raise Fail.at(
            "type_mismatch", elem[0], f"child element inside {_name(elem.tag)}, which is a {what}"
        )

    def _not_element(self, child: Any) -> None:
        """Raise for a comment / PI child (when they are not dropped at parse time)."""
        tag = child.tag
        if tag is _COMMENT:
            raise Fail.at(
                "comment_forbidden", child, "comments are not accepted (mapping.comments)"
            )
        if tag is _PI:
            raise Fail.at(
                "processing_instruction_forbidden",
                child,
                f"processing instruction <?{child.target}?> is not accepted "
                "(mapping.processing_instructions)",
            )

    # Objects -------------------------------------------------------------------------------------

    def object(self, elem: Any, rule: ObjectRule, depth: int) -> str:
        frags = FRAGS.frags
        if frags:  # a record already translated while streaming (see xmlstream)
            done = frags.get(elem)
            if done is not None:
                return done.decode("utf-8")
        if depth > self.rt.max_depth:
            raise Fail.at("too_deep", elem, f"nesting deeper than {self.rt.max_depth} elements")
        slots = rule.__dict__.get("_xml_slots")
        if slots is None:
            slots = _slots(rule, self.rt.safe_integers)
        parts: list[str] = []
        nreq = 0
        items = elem.items()
        if items:
            attrs = rule._xml_attrs  # type: ignore[attr-defined]
            # JSON key order is the schema's (attributes first), whatever the document's
            # attribute order: both translators produce the same bytes for the same document.
            found: list[str | None] = [None] * len(rule.attr_props)
            name = None
            try:
                for name, value in items:
                    a = attrs.get(name)
                    if a is None:
                        if name == XSI_NIL:
                            nil = self._object_nil(elem, rule, items)
                            if nil is not None:
                                return nil
                            continue  # xsi:nil="false": not nil, nothing to keep
                        raise Fail.at(
                            "unknown_attribute",
                            elem,
                            f"attribute {_name(name)} is not in the mapping",
                            attr=name,
                        )
                    found[a[3]] = a[0] + a[1](value)
                    if a[2]:
                        nreq += 1
            except _Bad as b:
                raise Fail.at(b.reason, elem, b.detail, attr=name) from None
            parts.extend(f for f in found if f is not None)
        tp = rule.text
        if tp is not None:
            if len(elem):
                for child in elem:
                    self._not_element(child)
                raise Fail.at(
                    "mixed_content",
                    elem[0],
                    f"child element next to the text content of {_name(elem.tag)}",
                )
            text = elem.text
            if text or tp.required:
                try:
                    conv = make_converter(tp.rule, self.rt.safe_integers)  # type: ignore[arg-type]
                    parts.append(tp.key_json + conv(text or ""))
                except _Bad as b:
                    raise Fail.at(b.reason, elem, b.detail, text=True) from None
                if tp.required:
                    nreq += 1
        else:
            text = elem.text
            if text is not None and text.strip(_WS):
                if len(elem):
                    raise Fail.at("mixed_content", elem, "text next to child elements", text=True)
                raise Fail.at(
                    "type_mismatch",
                    elem,
                    f"text content in {_name(elem.tag)}, which has no text in the mapping",
                    text=True,
                )
            nreq = self._children(elem, rule, slots, depth, parts, nreq)
        if rule.groups:
            nreq += self._gather_groups(elem, rule, parts)
        if nreq != len(rule.required):
            self._missing(elem, rule, parts)
        if rule.check is not None:
            self._object_check(elem, rule)
        return "{" + ",".join(parts) + "}"

    def _object_nil(self, elem: Any, rule: ObjectRule, names: list[Any]) -> str | None:
        value = elem.get(XSI_NIL)
        if value in _NIL_TRUE:
            if not rule.nullable:
                raise Fail.at("type_mismatch", elem, "null is not allowed here", attr=XSI_NIL)
            if len(names) > 1 or len(elem) or elem.text:
                raise Fail.at(
                    "type_mismatch",
                    elem,
                    'an xsi:nil="true" element must be empty and have no other attributes',
                )
            return "null"
        if value not in _NIL_FALSE:
            raise Fail.at(
                "type_mismatch", elem, f"xsi:nil={value!r} is not a boolean", attr=XSI_NIL
            )
        return None

    def _children(
        self,
        elem: Any,
        rule: ObjectRule,
        slots: dict[str, tuple[Any, ...]],
        depth: int,
        parts: list[str],
        nreq: int,
    ) -> int:
        get = slots.get
        last = -1
        run: list[str] | None = None  # items of the unwrapped array being collected
        run_slot: tuple[Any, ...] = ()
        depth += 1
        if depth > self.rt.max_depth and len(elem):
            raise Fail.at("too_deep", elem[0], f"nesting deeper than {self.rt.max_depth} elements")
        extra_seen: set[str] | None = None
        child = None
        try:
            for child in elem:
                tail = child.tail
                if tail is not None and tail.strip(_WS):
                    raise Fail.at("mixed_content", child, "text next to child elements", tail=True)
                s = get(child.tag)
                if s is None:
                    if rule.extra is not None and isinstance(child.tag, str):
                        if run is not None:
                            self._close_run(elem, run_slot, run, parts)
                            run = None
                        if extra_seen is None:
                            extra_seen = set()
                        last = self._extra(child, rule, depth, parts, extra_seen)
                        continue
                    self._unknown(child, rule)
                i, kind, key_json, conv, r, req, p = s  # type: ignore[misc]
                if i <= last:
                    if i == last and run is not None:
                        if conv is not None:
                            if len(child) or child.keys():
                                run.append(self.leaf(child, r.items))
                            else:
                                text = child.text
                                run.append(conv("" if text is None else text))
                        else:
                            run.append(self.value(child, r.items, depth))
                        continue
                    self._misplaced(child, p, rule, last, elem)
                if run is not None:
                    self._close_run(elem, run_slot, run, parts)
                    run = None
                if i > last + 1 and rule._xml_req_runs:  # type: ignore[attr-defined]
                    nreq += self._fill_runs(elem, rule, last, i, parts)
                last = i
                if req:
                    nreq += 1
                if kind == K_LEAF:
                    if len(child) or child.keys():
                        parts.append(key_json + self.leaf(child, r))
                    else:
                        text = child.text
                        parts.append(key_json + conv("" if text is None else text))
                elif kind == K_OBJECT:
                    parts.append(key_json + self.object(child, r, depth))
                elif kind == K_RUN:
                    run_slot = s
                    if conv is not None:
                        if len(child) or child.keys():
                            run = [self.leaf(child, r.items)]
                        else:
                            text = child.text
                            run = [conv("" if text is None else text)]
                    else:
                        run = [self.value(child, r.items, depth)]
                elif kind == K_ARRAY:
                    parts.append(key_json + self.array(child, r, depth))
                else:
                    parts.append(key_json + self.value(child, r, depth))
        except _Bad as b:
            raise Fail.at(b.reason, child, b.detail, text=True) from None
        if run is not None:
            self._close_run(elem, run_slot, run, parts)
        if rule._xml_req_runs:  # type: ignore[attr-defined]
            nreq += self._fill_runs(elem, rule, last, len(rule.elem_props), parts)
        return nreq

    def _fill_runs(
        self, elem: Any, rule: ObjectRule, last: int, upto: int, parts: list[str]
    ) -> int:
        """``"key":[]`` for required unwrapped arrays with no items between positions ``last``
        and ``upto`` (in schema position, as the fast path writes them)."""
        n = 0
        for p in rule._xml_req_runs:  # type: ignore[attr-defined]
            if last < p.index < upto:
                assert isinstance(p.rule, ArrayRule)
                self._array_checks(elem, p.rule, [], p.tag)
                parts.append(p.key_json + "[]")
                n += 1
        return n

    def _close_run(
        self, elem: Any, slot: tuple[Any, ...], run: list[str], parts: list[str]
    ) -> None:
        p = slot[6]
        arr = p.rule
        assert isinstance(arr, ArrayRule)
        self._array_checks(elem, arr, run, p.tag)
        parts.append(slot[2] + "[" + ",".join(run) + "]")  # slot[2]: the key, group-marked

    def _array_checks(self, elem: Any, arr: ArrayRule, items: list[str], item_tag: str) -> None:
        n = len(items)
        if n < arr.min_items or (arr.max_items is not None and n > arr.max_items):
            node = elem
            if arr.max_items is not None and n > arr.max_items:
                node = [c for c in elem if c.tag == item_tag][arr.max_items]
            bound = f"at least {arr.min_items}" if n < arr.min_items else f"at most {arr.max_items}"
            raise Fail.at(
                "schema_violation",
                node,
                f"{n} {_name(item_tag)} element(s); the schema wants {bound} (minItems/maxItems)",
            )
        if arr.unique and n > 1:
            seen: dict[Any, int] = {}
            for i, frag in enumerate(items):
                key = uniqueness_key(parse_exact(frag), Number)
                if key in seen:
                    node = [c for c in elem if c.tag == item_tag][i]
                    raise Fail.at(
                        "schema_violation",
                        node,
                        f"item {i + 1} equals item {seen[key] + 1} (uniqueItems)",
                    )
                seen[key] = i

    def _extra(
        self, child: Any, rule: ObjectRule, depth: int, parts: list[str], seen: set[str]
    ) -> int:
        """An element for ``additionalProperties``: named by its key, after the declared ones,
        each name once (it is an object key). Returns the order index past all declared."""
        tag = child.tag
        ns, local = tag[1:].split("}", 1) if tag[0] == "{" else ("", tag)
        if ns != rule.extra_ns or local in rule.by_key:
            self._unknown(child, rule)
        if local in seen:
            raise Fail.at(
                "duplicate_element",
                child,
                f"{_name(tag)} appears twice; it is a property name, which is unique",
            )
        seen.add(local)
        parts.append(encode_basestring(local) + ":" + self.value(child, rule.extra, depth))  # type: ignore[arg-type]
        return len(rule.elem_props)

    def _unknown(self, child: Any, rule: ObjectRule) -> None:
        self._not_element(child)
        tag = child.tag
        ns = tag[1:].split("}")[0] if tag[0] == "{" else ""
        if ns and ns not in self.known_ns:
            raise Fail.at(
                "unknown_namespace",
                child,
                f"namespace {ns!r} is not in the mapping",
            )
        expected = ", ".join(_name(p.tag) for p in rule.elem_props[:12]) or "no child elements"
        raise Fail.at(
            "unknown_element",
            child,
            f"element {_name(tag)} is not in the mapping (expected: {expected})",
        )

    def _misplaced(self, child: Any, p: Prop, rule: ObjectRule, last: int, elem: Any) -> None:
        if p.index == last:
            raise Fail.at(
                "duplicate_element",
                child,
                f"{_name(child.tag)} appears again; the schema has one {p.key!r}, not an array",
            )
        if p.unwrapped:
            raise Fail.at(
                "interleaved_siblings",
                child,
                f"{_name(child.tag)} items are separated by other elements; an array's items "
                "must be adjacent to round-trip",
            )
        if last >= len(rule.elem_props):
            raise Fail.at(
                "out_of_order",
                child,
                f"{_name(child.tag)} comes after additional (undeclared) elements; declared "
                "properties come first",
            )
        after = rule.elem_props[last]
        raise Fail.at(
            "out_of_order",
            child,
            f"{_name(child.tag)} comes after {_name(after.tag)}; the schema order puts it before",
        )

    def _gather_groups(self, elem: Any, rule: ObjectRule, parts: list[str]) -> int:
        """Move the members of ``nodeType: none`` groups out of ``parts`` into one object per
        group (present if any member is, or if required); returns the required groups added."""
        members: dict[int, list[str]] = {}
        kept = []
        for part in parts:
            if part.startswith("\x00"):
                _, n, fragment = part.split("\x00", 2)
                members.setdefault(int(n), []).append(fragment)
            else:
                kept.append(part)
        parts[:] = kept
        added = 0
        for n, g in enumerate(rule.groups):
            frags = members.get(n)
            grule = g.rule
            assert isinstance(grule, ObjectRule)
            if frags is None and not g.required:
                continue
            frags = frags or []
            present = {m.key for m in grule.props if any(f.startswith(m.key_json) for f in frags)}
            for m in grule.props:
                if m.key in present or not m.required:
                    continue
                if m.unwrapped:
                    assert isinstance(m.rule, ArrayRule)
                    self._array_checks(elem, m.rule, [], m.tag)
                    frags.append(m.key_json + "[]")
                    continue
                what = "attribute" if m.node == 1 else "element"
                raise Fail.at(
                    "missing_element",
                    elem,
                    f"required {what} {_name(m.tag)} ({g.key}.{m.key}) is missing",
                )
            parts.append(g.key_json + "{" + ",".join(frags) + "}")
            added += g.required
        return added

    def _missing(self, elem: Any, rule: ObjectRule, parts: list[str]) -> None:
        present = set()
        for name in elem.attrib:
            p = rule.attrs.get(name)
            if p is not None:
                present.add(p.key)
        for child in elem:
            p = rule.elems.get(child.tag)
            if p is not None:
                present.add(p.key)
        if rule.text is not None and elem.text:
            present.add(rule.text.key)
        for p in rule.props:
            if not p.required or p.key in present:
                continue
            if p.unwrapped or p.node == GROUP:
                continue  # present as [] (see _fill_runs) / as {} (see _gather_groups)
            if p.node == 1:
                raise Fail.at(
                    "missing_element",
                    elem,
                    f"required attribute {_name(p.tag)} ({p.key!r}) is missing",
                )
            if p.node == 2:
                continue  # required text: handled in object()
            raise Fail.at(
                "missing_element",
                elem,
                f"required element {_name(p.tag)} ({p.key!r}) is missing",
            )

    def _object_check(self, elem: Any, rule: ObjectRule) -> None:
        keys = set()
        for name in elem.attrib:
            p = rule.attrs.get(name)
            if p is not None:
                keys.add((p.group or p).key)
        for child in elem:
            p = rule.elems.get(child.tag)
            if p is not None:
                keys.add((p.group or p).key)
            elif isinstance(child.tag, str):
                keys.add(child.tag.rsplit("}", 1)[-1])
        if rule.text is not None and (elem.text or rule.text.required):
            keys.add(rule.text.key)
        for p in rule.props:
            if p.unwrapped and p.required:
                keys.add(p.key)
        assert rule.check is not None
        problem = rule.check(keys)
        if problem is not None:
            raise Fail.at("schema_violation", elem, problem)

    # Arrays ---------------------------------------------------------------------------------------

    def array(self, elem: Any, rule: ArrayRule, depth: int) -> str:
        """A wrapped array: ``elem`` is the wrapper, its children the items."""
        if depth > self.rt.max_depth:
            raise Fail.at("too_deep", elem, f"nesting deeper than {self.rt.max_depth} elements")
        if elem.keys():
            nil = self._nil(elem, rule)
            if nil is not None:
                return nil
        text = elem.text
        if text is not None and text.strip(_WS):
            raise Fail.at(
                "mixed_content" if len(elem) else "type_mismatch",
                elem,
                f"text in {_name(elem.tag)}, which wraps array items",
                text=True,
            )
        items = rule.items
        assert items is not None
        tag = rule.item_tag
        out: list[str] = []
        depth += 1
        if depth > self.rt.max_depth and len(elem):
            raise Fail.at("too_deep", elem[0], f"nesting deeper than {self.rt.max_depth} elements")
        conv = make_converter(items, self.rt.safe_integers) if items.kind == SCALAR else None  # type: ignore[arg-type]
        child = None
        try:
            for child in elem:
                tail = child.tail
                if tail is not None and tail.strip(_WS):
                    raise Fail.at("mixed_content", child, "text next to child elements", tail=True)
                if child.tag != tag:
                    self._wrong_item(child, elem, tag)
                if conv is None:
                    out.append(self.value(child, items, depth))
                elif len(child) or child.keys():
                    out.append(self.leaf(child, items))  # type: ignore[arg-type]
                else:
                    text = child.text
                    out.append(conv("" if text is None else text))
        except _Bad as b:
            raise Fail.at(b.reason, child, b.detail, text=True) from None
        if rule.min_items or rule.max_items is not None or rule.unique:
            self._array_checks(elem, rule, out, tag)
        return "[" + ",".join(out) + "]"

    def _wrong_item(self, child: Any, elem: Any, tag: str) -> None:
        self._not_element(child)
        ctag = child.tag
        ns = ctag[1:].split("}")[0] if ctag[0] == "{" else ""
        if ns and ns not in self.known_ns:
            raise Fail.at("unknown_namespace", child, f"namespace {ns!r} is not in the mapping")
        raise Fail.at(
            "unknown_element",
            child,
            f"element {_name(ctag)} in {_name(elem.tag)}, which holds only {_name(tag)} items",
        )


def _name(clark: object) -> str:
    """``{urn:x}item`` → ``item (urn:x)`` for messages."""
    if not isinstance(clark, str):
        return "node"
    if clark.startswith("{"):
        uri, local = clark[1:].split("}", 1)
        return f"<{local}> ({uri})"
    return f"<{clark}>"


def _show(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")
