"""JSON → XML, the table walker: one walk over the exact JSON value driven by the rule tables,
the authority on every document (the fast path hands it whatever it does not certainly accept).

The value comes from the standard library's C scanner with hooks
(:mod:`proxy.translate.model`): numbers stay their literal text, objects their key/value
pairs, so duplicate keys are seen instead of silently collapsed. The walk writes XML text
directly into a list of pieces, children in schema order. Anything outside the mapping's
domain raises :class:`~proxy.translate.failures.Fail`, located by a JSON Pointer on the way
up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from proxy.translate.checks import uniqueness_key
from proxy.translate.failures import Fail
from proxy.translate.json_to_xml.convention import checked_name, write_any
from proxy.translate.json_to_xml.decode import unique_members
from proxy.translate.lexical import (
    SAFE_INTEGER,
    cdata,
    escape_attr,
    escape_text,
    is_integral,
    is_ncname,
    is_plain_integer,
    key_has_control_char,
    to_decimal,
)
from proxy.translate.model import Number, Pairs, Streamed, kind_of
from proxy.translate.rules import (
    ANY,
    ARRAY,
    OBJECT,
    SCALAR,
    T_BOOLEAN,
    T_INTEGER,
    T_NUMBER,
    T_STRING,
    TYPE_NAMES,
    AnyRule,
    ArrayRule,
    ObjectRule,
    Root,
    Rule,
    ScalarRule,
)
from proxy.translate.runtime import Runtime

__all__ = ["XML_DECLARATION", "JsonWalker", "RootFn", "RootNames"]

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

#: A generated root function: ``(value, root names, out, depth, declarations)``.
RootFn = Callable[[Any, "RootNames", list[Any], int, str], None]


class RootNames:
    """Start/end tags of the root element, with the namespace declarations."""

    def __init__(self, qname: str, decl: str) -> None:
        self.qname = qname
        self.open = f"<{qname}{decl}>"
        self.close = f"</{qname}>"
        self.empty = f"<{qname}{decl}/>"
        self.nil = f'<{qname}{decl} xsi:nil="true"/>'


class JsonWalker:
    """The table walker of one mapping. Thread-safe (no shared mutable state)."""

    def __init__(self, root: Root, rt: Runtime) -> None:
        self.root = root
        self.rt = rt
        self.root_names = RootNames(root.qname, root.declarations)

    def write_root(self, value: Any, out: list[str], fast_root: RootFn | None = None) -> None:
        """Append the document's root element; ``fast_root`` (the generated root function)
        writes it when there is one and the value is not null."""
        spec = self.root
        if not spec.tag:  # schemaless, no root name: {"qname": content}
            if type(value) is not Pairs or len(value) != 1:
                raise Fail(
                    "type_mismatch",
                    "without mapping.root the document is an object with one key: the root "
                    "element's name",
                )
            key, content = value[0]
            try:
                qname = checked_name(key, self, attr=False)
                opts = spec.rule.options if isinstance(spec.rule, AnyRule) else None
                write_any(content, opts, qname, spec.declarations, self, out, 1)
            except Fail as f:
                f.path.append(key)
                raise
            return
        if fast_root is not None and value is not None:
            fast_root(value, self.root_names, out, 1, spec.declarations)
            return
        self.element(spec.rule, value, self.root_names, out, 1, spec.declarations)

    # --- values -------

    def element(
        self, rule: Rule, value: Any, names: Any, out: list[str], depth: int, decl: str = ""
    ) -> None:
        """Write the element ``names`` (a Prop / ArrayRule / root names) holding ``value``."""
        if value is None:
            if not rule.nullable:
                raise Fail("type_mismatch", f"null is not allowed here ({_expects(rule)})")
            out.append(names.nil)
            return
        kind = rule.kind
        if kind == SCALAR:
            text = self.scalar_text(value, cast(ScalarRule, rule))
            out.append(names.open + text + names.close if text else names.empty)
        elif kind == OBJECT:
            self.object(cast(ObjectRule, rule), value, names.qname, decl, out, depth)
        elif kind == ARRAY:
            self.array(cast(ArrayRule, rule), value, names, out, depth)
        else:
            assert isinstance(rule, AnyRule)
            write_any(value, rule.options, names.qname, decl, self, out, depth)

    def scalar_value(self, value: Any, rule: ScalarRule) -> str:
        """Check a JSON scalar against ``rule``; return its XML text, unescaped."""
        t = rule.type
        if t == T_STRING:
            if type(value) is not str:
                raise Fail("type_mismatch", f"expected a string, got {kind_of(value)}")
            s = value
        elif t in (T_NUMBER, T_INTEGER):
            if type(value) is not Number:
                raise Fail(
                    "type_mismatch",
                    f"expected {'an integer' if t == T_INTEGER else 'a number'}, "
                    f"got {kind_of(value)}",
                )
            if t == T_INTEGER and is_plain_integer(value) is None and not is_integral(value):
                raise Fail("type_mismatch", f"expected an integer, got {value}")
            if (
                self.rt.safe_integers
                and len(value) > 15
                and is_integral(value)
                and to_decimal(value).copy_abs() > SAFE_INTEGER
            ):
                raise Fail(
                    "number_out_of_range",
                    f"{value[:40]} is beyond ±(2**53-1) (mapping.safe_integers)",
                )
            s = value
        elif t == T_BOOLEAN:
            if value is True:
                s = "true"
            elif value is False:
                s = "false"
            else:
                raise Fail("type_mismatch", f"expected a boolean, got {kind_of(value)}")
        else:
            raise Fail("type_mismatch", f"expected null, got {kind_of(value)}")
        if rule.check is not None:
            problem = rule.check(s)
            if problem is not None:
                raise Fail("schema_violation", problem)
        return s

    def scalar_text(self, value: Any, rule: ScalarRule) -> str:
        """Check a JSON scalar; return it as escaped element content."""
        if rule.type == T_STRING and rule.check is None and type(value) is str and not rule.cdata:
            return escape_text(value)  # the common case, inlined
        s = self.scalar_value(value, rule)
        if rule.type != T_STRING:
            return s  # number and boolean literals need no escaping
        return cdata(s) if rule.cdata and s else escape_text(s)

    def object(
        self, rule: ObjectRule, value: Any, qname: str, decl: str, out: list[str], depth: int
    ) -> None:
        if type(value) is not Pairs:
            raise Fail("type_mismatch", f"expected an object, got {kind_of(value)}")
        if depth > self.rt.max_depth:
            raise Fail("too_deep", f"nesting deeper than {self.rt.max_depth} levels")
        d = unique_members(value)
        by_key = rule.by_key
        keys = d.keys()
        extras: list[str] = []
        if not keys <= by_key.keys():
            extras = [k for k in d if k not in by_key]
            if rule.extra is None:
                self._unknown_key(extras[0])
        if not rule.required <= keys:
            missing = sorted(rule.required - keys)
            raise Fail(
                "schema_violation", f"required property {missing[0]!r} is missing (required)"
            )
        if rule.check is not None:
            problem = rule.check(keys)
            if problem is not None:
                raise Fail("schema_violation", problem)
        groups = self._groups(rule, d) if rule.groups else _NO_GROUPS
        head = "<" + qname + decl
        for p in rule.attr_props:
            src = d if p.group is None else groups.get(p.group.key, _EMPTY)
            v = src.get(p.key, _MISSING)
            if v is _MISSING:
                continue
            try:
                if v is None:
                    raise Fail("type_mismatch", "an attribute cannot be null")
                head += (
                    " "
                    + p.qname
                    + '="'
                    + escape_attr(self.scalar_value(v, cast(ScalarRule, p.rule)))
                    + '"'
                )
            except Fail as f:
                f.path.append(p.key)
                if p.group is not None:
                    f.path.append(p.group.key)
                raise
        tp = rule.text
        if tp is not None:
            v = d.get(tp.key, _MISSING)
            if v is _MISSING:
                out.append(head + "/>")
                return
            try:
                if v is None:
                    raise Fail("type_mismatch", "text content cannot be null")
                text = self.scalar_text(v, cast(ScalarRule, tp.rule))
            except Fail as f:
                f.path.append(tp.key)
                raise
            out.append(head + ">" + text + "</" + qname + ">" if text else head + "/>")
            return
        out.append(head + ">")
        start = len(out)
        depth += 1
        for p in rule.elem_props:
            if p.group is not None:
                self._group_member(p, groups.get(p.group.key, _EMPTY), out, depth)
                continue
            v = d.get(p.key, _MISSING)
            if v is _MISSING:
                continue
            if type(v) is Streamed:  # written already, record by record (jsonstream)
                out.extend(v.data)
                v.data = []  # ``out`` holds the pieces alone (released as they are joined)
                continue
            try:
                if p.unwrapped:
                    arr = cast(ArrayRule, p.rule)
                    if type(v) is not list:
                        raise Fail("type_mismatch", f"expected an array, got {kind_of(v)}")
                    self.array_checks(arr, v)
                    items = cast(Rule, arr.items)
                    for i, item in enumerate(v):
                        try:
                            self.element(items, item, arr, out, depth)
                        except Fail as f:
                            f.path.append(i)
                            raise
                else:
                    r = p.rule
                    if r.kind == SCALAR and v is not None:
                        text = self.scalar_text(v, cast(ScalarRule, r))
                        out.append(p.open + text + p.close if text else p.empty)
                    else:
                        self.element(r, v, p, out, depth)
            except Fail as f:
                f.path.append(p.key)
                raise
        if extras:
            self._extras(rule, d, extras, out, depth)
        if len(out) == start:
            out[start - 1] = head + "/>"
        else:
            out.append("</" + qname + ">")

    def _groups(self, rule: ObjectRule, d: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The members of each ``nodeType: none`` group present in ``d``, checked like an
        object's (the group has no element: its members are the parent's nodes)."""
        out: dict[str, dict[str, Any]] = {}
        for g in rule.groups:
            gv = d.get(g.key, _MISSING)
            if gv is _MISSING:
                continue
            grule = g.rule
            assert isinstance(grule, ObjectRule)
            try:
                if type(gv) is not Pairs:
                    raise Fail("type_mismatch", f"expected an object, got {kind_of(gv)}")
                members = unique_members(gv)
                for k in members:
                    if k not in grule.by_key:
                        self._unknown_key(k)
                if not grule.required <= members.keys():
                    missing = sorted(grule.required - members.keys())
                    raise Fail(
                        "schema_violation",
                        f"required property {missing[0]!r} is missing (required)",
                    )
            except Fail as f:
                f.path.append(g.key)
                raise
            out[g.key] = members
        return out

    def _group_member(self, p: Any, members: dict[str, Any], out: list[str], depth: int) -> None:
        v = members.get(p.key, _MISSING)
        if v is _MISSING:
            return
        try:
            if p.unwrapped:
                arr = p.rule
                if type(v) is not list:
                    raise Fail("type_mismatch", f"expected an array, got {kind_of(v)}")
                self.array_checks(arr, v)
                for i, item in enumerate(v):
                    try:
                        self.element(arr.items, item, arr, out, depth)
                    except Fail as f:
                        f.path.append(i)
                        raise
            else:
                self.element(p.rule, v, p, out, depth)
        except Fail as f:
            f.path.append(p.key)
            f.path.append(p.group.key)
            raise

    def _unknown_key(self, key: str) -> None:
        if key_has_control_char(key):
            f = Fail("invalid_character", f"key {key!r} contains a control character")
        else:
            f = Fail(
                "schema_violation",
                f"property {key!r} is not in the schema (additionalProperties)",
            )
        f.path.append(key)
        raise f

    def _extras(
        self, rule: ObjectRule, d: dict[str, Any], extras: list[str], out: list[str], depth: int
    ) -> None:
        assert rule.extra is not None
        for k in extras:
            try:
                if key_has_control_char(k):
                    raise Fail("invalid_character", f"key {k!r} contains a control character")
                if not is_ncname(k) or k.lower().startswith("xml"):
                    raise Fail(
                        "invalid_name",
                        f"key {k!r} is not an XML element name (additionalProperties)",
                    )
                qname = f"{rule.extra_prefix}:{k}" if rule.extra_prefix else k
                self.element(rule.extra, d[k], RootNames(qname, ""), out, depth)
            except Fail as f:
                f.path.append(k)
                raise

    def array_checks(self, arr: ArrayRule, items: Sequence[Any]) -> None:
        n = len(items)
        if n < arr.min_items:
            raise Fail(
                "schema_violation",
                f"{n} items; the schema wants at least {arr.min_items} (minItems)",
            )
        if arr.max_items is not None and n > arr.max_items:
            raise Fail(
                "schema_violation",
                f"{n} items; the schema wants at most {arr.max_items} (maxItems)",
            )
        if arr.unique and n > 1:
            seen: dict[Any, int] = {}
            for i, item in enumerate(items):
                key = uniqueness_key(item, Number)
                if key in seen:
                    f = Fail("schema_violation", f"item {i} equals item {seen[key]} (uniqueItems)")
                    f.path.append(i)
                    raise f
                seen[key] = i

    def array(self, rule: ArrayRule, value: Any, names: Any, out: list[str], depth: int) -> None:
        """A wrapped array: the element ``names`` wraps one element per item."""
        if type(value) is not list:
            raise Fail("type_mismatch", f"expected an array, got {kind_of(value)}")
        self.array_checks(rule, value)
        if not value:
            out.append(names.empty)
            return
        if depth > self.rt.max_depth:
            raise Fail("too_deep", f"nesting deeper than {self.rt.max_depth} levels")
        out.append(names.open)
        items = rule.items
        assert items is not None
        depth += 1
        if items.kind == SCALAR:
            open_, close, empty = rule.open, rule.close, rule.empty
            for i, item in enumerate(value):
                try:
                    if item is None:
                        self.element(items, item, rule, out, depth)
                        continue
                    text = self.scalar_text(item, cast(ScalarRule, items))
                    out.append(open_ + text + close if text else empty)
                except Fail as f:
                    f.path.append(i)
                    raise
        else:
            for i, item in enumerate(value):
                try:
                    self.element(items, item, rule, out, depth)
                except Fail as f:
                    f.path.append(i)
                    raise
        out.append(names.close)


_MISSING: Any = object()
_EMPTY: dict[str, Any] = {}
_NO_GROUPS: dict[str, dict[str, Any]] = {}  # only read for group members: never then


def _expects(rule: Rule) -> str:
    if isinstance(rule, ScalarRule):
        return f"the schema says {TYPE_NAMES[rule.type]}"
    return {OBJECT: "the schema says object", ARRAY: "the schema says array", ANY: "no schema"}.get(
        rule.kind, ""
    )
