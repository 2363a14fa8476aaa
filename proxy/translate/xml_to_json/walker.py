"""XML → JSON, the table walker: one walk over a parsed tree driven by the rule tables, the
authority on every document (the fast path hands it whatever it does not certainly accept).

The walk builds the JSON text directly (no intermediate dicts): every JSON key fragment and
every expected child name is precomputed in the rules, so the per-node work is a dict lookup,
an order comparison and a scalar conversion. Scalars keep their exact lexical form (numbers
are copied as written after a grammar check). Anything outside the mapping's domain raises
:class:`~proxy.translate.failures.Fail` at its node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from lxml import etree

from proxy.translate.checks import uniqueness_key
from proxy.translate.failures import Fail
from proxy.translate.lexical import encode_basestring
from proxy.translate.model import Number, parse_exact
from proxy.translate.rules import (
    ARRAY,
    OBJECT,
    SCALAR,
    XSI_NIL,
    AnyRule,
    ArrayRule,
    ObjectRule,
    Prop,
    Root,
    Rule,
    ScalarRule,
)
from proxy.translate.runtime import Runtime
from proxy.translate.xml_to_json.convention import any_key, any_value
from proxy.translate.xml_to_json.parse import attribute_items
from proxy.translate.xml_to_json.records import FRAGS
from proxy.translate.xml_to_json.refusals import (
    children_in_leaf,
    misplaced,
    missing,
    name_of,
    not_element,
    object_check,
    unknown,
    wrong_item,
)
from proxy.translate.xml_to_json.tables import (
    K_ARRAY,
    K_LEAF,
    K_OBJECT,
    K_RUN,
    ObjectTables,
    ScalarError,
    Slot,
    Tables,
)

__all__ = ["RootFn", "XmlWalker"]

#: A generated root function: ``(root element, depth, out)`` appends the JSON text.
RootFn = Callable[[Any, int, list[Any]], None]

_COMMENT = etree.Comment
_PI = etree.ProcessingInstruction
_WS = " \t\r\n"
_NIL_TRUE = ("true", "1")
_NIL_FALSE = ("false", "0")


class XmlWalker:
    """The table walker of one mapping. Thread-safe (its caches only ever gain equal values)."""

    def __init__(self, root: Root, rt: Runtime) -> None:
        self.root = root
        self.rt = rt
        self.known_ns = frozenset(rt.uri_of.values())
        self.tables = Tables(rt.safe_integers)

    def translate_root(self, root: Any, fast_root: RootFn | None = None) -> str:
        """The JSON text of the document ``root``; ``fast_root`` (the generated root function)
        translates the root's content when the root is the mapping's."""
        spec = self.root
        if not spec.tag:  # schemaless without a root name: {"qname": content}
            assert isinstance(spec.rule, AnyRule)
            key = any_key(root, root.tag, self, attr=False)
            return "{" + encode_basestring(key) + ":" + any_value(root, spec.rule, self, 1) + "}"
        if root.tag != spec.tag:
            ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
            raise Fail.at(
                "wrong_root",
                root,
                f"root element is {name_of(root.tag)}, the mapping expects "
                f"{name_of(spec.tag)}"
                + (
                    f" (namespace {ns!r} is not the mapping's)"
                    if ns and ns not in self.known_ns
                    else ""
                ),
            )
        if fast_root is not None:
            out: list[str] = []
            fast_root(root, 1, out)
            return "".join(out)
        return self.value(root, spec.rule, 1)

    def value(self, elem: Any, rule: Rule, depth: int) -> str:
        """The JSON text for the content of ``elem`` under ``rule``."""
        if depth > self.rt.max_depth:
            raise Fail.at("too_deep", elem, f"nesting deeper than {self.rt.max_depth} elements")
        kind = rule.kind
        if kind == OBJECT:
            return self.object(elem, cast(ObjectRule, rule), depth)
        if kind == SCALAR:
            return self.leaf(elem, cast(ScalarRule, rule))
        if kind == ARRAY:
            return self.array(elem, cast(ArrayRule, rule), depth)
        return any_value(elem, cast(AnyRule, rule), self, depth)

    # Scalars ------------------------------------------------------------------------------------

    def scalar(self, text: str, rule: ScalarRule, node: Any, attr: str | None = None) -> str:
        """Lexical check + conversion of one text/attribute value to its JSON literal."""
        try:
            return self.tables.converter(rule)(text)
        except ScalarError as b:
            raise Fail.at(b.reason, node, b.detail, attr=attr, text=attr is None) from None

    def leaf(self, elem: Any, rule: ScalarRule) -> str:
        """A scalar element: text only, no child elements, no attributes but xsi:nil."""
        if len(elem):
            children_in_leaf(elem, rule)
        if elem.keys():
            nil = self._nil(elem, rule)
            if nil is not None:
                return nil
        text = elem.text
        try:
            return self.tables.converter(rule)("" if text is None else text)
        except ScalarError as b:
            raise Fail.at(b.reason, elem, b.detail, text=True) from None

    def _nil(self, elem: Any, rule: Rule) -> str | None:
        """``null`` for an ``xsi:nil="true"`` element, None if not nil; raises on any other
        attribute (scalars and arrays have none)."""
        result = None
        for name, value in attribute_items(elem):
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
                    f"attribute {name_of(name)} is not in the mapping",
                    attr=name,
                )
        return result

    def children_in_leaf(self, elem: Any, rule: Rule) -> None:
        children_in_leaf(elem, rule)

    def not_element(self, child: Any) -> None:
        not_element(child)

    # Objects -------------------------------------------------------------------------------------

    def object(self, elem: Any, rule: ObjectRule, depth: int) -> str:
        frags = FRAGS.frags
        if frags:  # a record already translated while streaming (see xmlstream)
            done = frags.get(elem)
            if done is not None:
                return done.decode("utf-8")
        if depth > self.rt.max_depth:
            raise Fail.at("too_deep", elem, f"nesting deeper than {self.rt.max_depth} elements")
        tables = self.tables.objects.get(id(rule))
        if tables is None:
            tables = self.tables.object(rule)
        parts: list[str] = []
        nreq = 0
        items = attribute_items(elem)
        if items:
            attrs = tables.attrs
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
                            f"attribute {name_of(name)} is not in the mapping",
                            attr=name,
                        )
                    found[a[3]] = a[0] + a[1](value)
                    if a[2]:
                        nreq += 1
            except ScalarError as b:
                raise Fail.at(b.reason, elem, b.detail, attr=name) from None
            parts.extend(f for f in found if f is not None)
        tp = rule.text
        if tp is not None:
            if len(elem):
                for child in elem:
                    not_element(child)
                raise Fail.at(
                    "mixed_content",
                    elem[0],
                    f"child element next to the text content of {name_of(elem.tag)}",
                )
            text = elem.text
            if text or tp.required:
                try:
                    conv = self.tables.converter(tp.rule)
                    parts.append(tp.key_json + conv(text or ""))
                except ScalarError as b:
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
                    f"text content in {name_of(elem.tag)}, which has no text in the mapping",
                    text=True,
                )
            nreq = self._children(elem, rule, tables, depth, parts, nreq)
        if rule.groups:
            nreq += self._gather_groups(elem, rule, parts)
        if nreq != len(rule.required):
            missing(elem, rule, parts)
        if rule.check is not None:
            object_check(elem, rule)
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
        tables: ObjectTables,
        depth: int,
        parts: list[str],
        nreq: int,
    ) -> int:
        get = tables.slots.get
        req_runs = tables.req_runs
        last = -1
        run: list[str] | None = None  # items of the unwrapped array being collected
        run_slot: Slot | None = None
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
                    unknown(child, rule, self.known_ns)
                i, kind, key_json, conv, r, req, p = s
                if i <= last:
                    if i == last and run is not None:
                        if conv is not None:
                            if len(child) or child.keys():
                                run.append(
                                    self.leaf(child, cast(ScalarRule, cast(ArrayRule, r).items))
                                )
                            else:
                                text = child.text
                                run.append(conv("" if text is None else text))
                        else:
                            run.append(
                                self.value(child, cast(Rule, cast(ArrayRule, r).items), depth)
                            )
                        continue
                    misplaced(child, p, rule, last, elem)
                if run is not None:
                    self._close_run(elem, run_slot, run, parts)
                    run = None
                if i > last + 1 and req_runs:
                    nreq += self._fill_runs(elem, req_runs, last, i, parts)
                last = i
                if req:
                    nreq += 1
                if kind == K_LEAF:
                    if len(child) or child.keys():
                        parts.append(key_json + self.leaf(child, cast(ScalarRule, r)))
                    else:
                        text = child.text
                        assert conv is not None
                        parts.append(key_json + conv("" if text is None else text))
                elif kind == K_OBJECT:
                    parts.append(key_json + self.object(child, cast(ObjectRule, r), depth))
                elif kind == K_RUN:
                    run_slot = s
                    if conv is not None:
                        if len(child) or child.keys():
                            run = [self.leaf(child, cast(ScalarRule, cast(ArrayRule, r).items))]
                        else:
                            text = child.text
                            run = [conv("" if text is None else text)]
                    else:
                        run = [self.value(child, cast(Rule, cast(ArrayRule, r).items), depth)]
                elif kind == K_ARRAY:
                    parts.append(key_json + self.array(child, cast(ArrayRule, r), depth))
                else:
                    parts.append(key_json + self.value(child, r, depth))
        except ScalarError as b:
            raise Fail.at(b.reason, child, b.detail, text=True) from None
        if run is not None:
            self._close_run(elem, run_slot, run, parts)
        if req_runs:
            nreq += self._fill_runs(elem, req_runs, last, len(rule.elem_props), parts)
        return nreq

    def _fill_runs(
        self, elem: Any, req_runs: tuple[Prop, ...], last: int, upto: int, parts: list[str]
    ) -> int:
        """``"key":[]`` for required unwrapped arrays with no items between positions ``last``
        and ``upto`` (in schema position, as the fast path writes them)."""
        n = 0
        for p in req_runs:
            if last < p.index < upto:
                assert isinstance(p.rule, ArrayRule)
                self._array_checks(elem, p.rule, [], p.tag)
                parts.append(p.key_json + "[]")
                n += 1
        return n

    def _close_run(self, elem: Any, slot: Slot | None, run: list[str], parts: list[str]) -> None:
        assert slot is not None
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
                f"{n} {name_of(item_tag)} element(s); the schema wants {bound} (minItems/maxItems)",
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
            unknown(child, rule, self.known_ns)
        if local in seen:
            raise Fail.at(
                "duplicate_element",
                child,
                f"{name_of(tag)} appears twice; it is a property name, which is unique",
            )
        seen.add(local)
        parts.append(
            encode_basestring(local) + ":" + self.value(child, cast(Rule, rule.extra), depth)
        )
        return len(rule.elem_props)

    def _gather_groups(self, elem: Any, rule: ObjectRule, parts: list[str]) -> int:
        """Move the members of ``nodeType: none`` groups out of ``parts`` into one object per
        group (present if any member is, or if required); returns the required groups added."""
        members: dict[int, list[str]] = {}
        kept = []
        for part in parts:
            if part.startswith("\x00"):
                _, num, fragment = part.split("\x00", 2)
                members.setdefault(int(num), []).append(fragment)
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
                    f"required {what} {name_of(m.tag)} ({g.key}.{m.key}) is missing",
                )
            parts.append(g.key_json + "{" + ",".join(frags) + "}")
            added += g.required
        return added

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
                f"text in {name_of(elem.tag)}, which wraps array items",
                text=True,
            )
        items = rule.items
        assert items is not None
        tag = rule.item_tag
        out: list[str] = []
        depth += 1
        if depth > self.rt.max_depth and len(elem):
            raise Fail.at("too_deep", elem[0], f"nesting deeper than {self.rt.max_depth} elements")
        conv = self.tables.converter(items) if items.kind == SCALAR else None
        child = None
        try:
            for child in elem:
                tail = child.tail
                if tail is not None and tail.strip(_WS):
                    raise Fail.at("mixed_content", child, "text next to child elements", tail=True)
                if child.tag != tag:
                    wrong_item(child, elem, tag, self.known_ns)
                if conv is None:
                    out.append(self.value(child, items, depth))
                elif len(child) or child.keys():
                    out.append(self.leaf(child, cast(ScalarRule, items)))
                else:
                    text = child.text
                    out.append(conv("" if text is None else text))
        except ScalarError as b:
            raise Fail.at(b.reason, child, b.detail, text=True) from None
        if rule.min_items or rule.max_items is not None or rule.unique:
            self._array_checks(elem, rule, out, tag)
        return "[" + ",".join(out) + "]"
