"""JSON → XML fast path: the rule tables compiled to straight-line Python, once per mapping.

The counterpart of :mod:`proxy.translate.xmlfast`. For every object and wrapped-array rule a
function is generated that looks each property up once, checks and escapes scalars inline and
appends the XML text. At the first thing it does not expect it drops what it appended for its
own element and hands the element's value to the table walker (:class:`JsonWriter`), which is
the authority: it raises the precise error (with its JSON Pointer) or writes the same XML. A
failure below propagates the same way, each level re-walking its subtree with the tables, so
errors carry their full pointer while the valid case never pays for bookkeeping.
"""

from __future__ import annotations

from typing import Any, cast

from proxy.translate.codegen import Emitter, Generated
from proxy.translate.failures import Fail
from proxy.translate.json_to_xml.walker import JsonWalker
from proxy.translate.lexical import escape_attr, escape_text, integer_ok
from proxy.translate.model import Number, Pairs
from proxy.translate.rules import (
    OBJECT,
    SCALAR,
    T_BOOLEAN,
    T_INTEGER,
    T_NUMBER,
    T_STRING,
    ArrayRule,
    ObjectRule,
    Rule,
    ScalarRule,
)

_MISSING: Any = object()


class JsonFastPath(Generated):
    """Generated writers; ``root(value, out, depth, decl)`` appends the root element."""

    direction = "json_to_xml"
    prefix = "g"
    filename = "<format-proxy json fast path>"

    def __init__(
        self, root_rule: Rule, walker: JsonWalker, max_depth: int, *, route: str = ""
    ) -> None:
        self.walker = walker
        ns: dict[str, Any] = {
            "Pairs": Pairs,
            "Number": Number,
            "M": _MISSING,
            "esc": escape_text,
            "esc_attr": escape_attr,
            "INT": integer_ok,
            "Fail": Fail,
            "MAXD": max_depth,
            "SLOW_OBJECT": walker.object,
            "SLOW_ARRAY": walker.array,
            "ELEMENT": walker.element,
        }
        super().__init__(root_rule, ns, route=route)

    # --- generation ------------------------------------------------------------------------------

    def _generate(self, rule: Rule) -> None:
        e = Emitter()
        name = self._names[id(rule)]
        r = self._const(rule, "R")
        # names: the element's start/end/empty/nil strings and qname, passed by the caller
        e(f"def {name}(value, names, out, depth, decl):")
        e.indent += 1
        self._header(e, rule)
        e("mark = len(out)")
        e("try:")
        e.indent += 1
        if isinstance(rule, ObjectRule):
            self._slow = f"SLOW_OBJECT({r}, value, names.qname, decl, out, depth)"
            self._object(e, rule)
        else:
            assert isinstance(rule, ArrayRule)
            self._slow = f"SLOW_ARRAY({r}, value, names, out, depth)"
            self._array(e, rule)
        e.indent -= 1
        e("except Fail:")
        e("    pass  # the tables re-walk this element and raise with the full pointer")
        e("del out[mark:]")
        e(f"{self._slow}")
        self._src.extend(e.lines)
        self._src.append("")

    def _bail(self, e: Emitter) -> None:
        e("raise Fail('type_mismatch', '')")

    def _scalar(self, e: Emitter, rule: ScalarRule, v: str, out: str, *, attr: bool) -> None:
        """Code turning JSON scalar ``v`` (not None) into escaped XML text ``out``, or bail."""
        t = rule.type
        chk = self._const(rule.check, "C") if rule.check is not None else None
        if t == T_STRING:
            e(f"if type({v}) is not str: raise Fail('type_mismatch', '')")
            if chk is not None:
                e(f"if {chk}({v}) is not None: raise Fail('schema_violation', '')")
            if rule.cdata and not attr:
                e("raise Fail('type_mismatch', '')")  # CDATA: the table walker writes it
            elif attr:
                e(f"{out} = esc_attr({v})")
            else:
                special = f'"&" in {v} or "<" in {v} or ">" in {v} or "\\r" in {v}'
                e(f"{out} = esc({v}) if ({special}) else {v}")
            return
        if t in (T_NUMBER, T_INTEGER):
            e(f"if type({v}) is not Number: raise Fail('type_mismatch', '')")
            if t == T_INTEGER:
                e(f"if not INT({v}): raise Fail('type_mismatch', '')")
            if self.walker.rt.safe_integers:
                e(f"if len({v}) > 15: raise Fail('number_out_of_range', '')")
            if chk is not None:
                e(f"if {chk}({v}) is not None: raise Fail('schema_violation', '')")
            e(f"{out} = {v}")
            return
        if t == T_BOOLEAN:
            e(f"if {v} is True: {out} = 'true'")
            e(f"elif {v} is False: {out} = 'false'")
            e("else: raise Fail('type_mismatch', '')")
            if chk is not None:
                e(f"if {chk}({out}) is not None: raise Fail('schema_violation', '')")
            return
        e("raise Fail('type_mismatch', '')")

    def _element(self, e: Emitter, rule: Rule, v: str, names: str) -> None:
        """Append the element ``names`` for JSON value ``v``."""
        e(f"if {v} is None:")
        if rule.nullable:
            e(f"    out.append({names}.nil)")
        else:
            e("    raise Fail('type_mismatch', '')")
        e("else:")
        e.indent += 1
        if rule.kind == SCALAR:
            assert isinstance(rule, ScalarRule)
            self._scalar(e, rule, v, "t", attr=False)
            e(f"out.append({names}.open + t + {names}.close if t else {names}.empty)")
        else:
            fn = self._fn_for(rule)
            if fn is not None:
                e(f"{fn}({v}, {names}, out, depth + 1, '')")
            else:
                r = self._const(rule, "R")
                e(f"ELEMENT({r}, {v}, {names}, out, depth + 1)")
        e.indent -= 1

    def _object(self, e: Emitter, rule: ObjectRule) -> None:
        keys = self._const(frozenset(rule.by_key), "KEYS")
        e("if type(value) is not Pairs or depth > MAXD: raise Fail('type_mismatch', '')")
        e("d = dict(value)")
        e("if len(d) != len(value): raise Fail('duplicate_key', '')")
        e(f"if not d.keys() <= {keys}: raise Fail('schema_violation', '')")
        if rule.required:
            req = self._const(rule.required, "REQ")
            e(f"if not {req} <= d.keys(): raise Fail('schema_violation', '')")
        e("head = '<' + names.qname + decl")
        for p in rule.attr_props:
            k = self._const(p.key, "K")
            e(f"v = d.get({k}, M)")
            e("if v is not M:")
            e.indent += 1
            e("if v is None: raise Fail('type_mismatch', '')")
            self._scalar(e, cast(ScalarRule, p.rule), "v", "t", attr=True)
            a = self._const(" " + p.qname + '="', "A")
            e(f"head += {a} + t + '\"'")
            e.indent -= 1
        tp = rule.text
        if tp is not None:
            k = self._const(tp.key, "K")
            e(f"v = d.get({k}, M)")
            e("if v is M:")
            e("    out.append(head + '/>')")
            e("    return")
            e("if v is None: raise Fail('type_mismatch', '')")
            self._scalar(e, cast(ScalarRule, tp.rule), "v", "t", attr=False)
            e("out.append(head + '>' + t + '</' + names.qname + '>' if t else head + '/>')")
            e("return")
            return
        e("out.append(head + '>')")
        e("start = len(out)")
        for p in rule.elem_props:
            k = self._const(p.key, "K")
            pn = self._const(p, "P")
            e(f"v = d.get({k}, M)")
            e("if v is not M:")
            e.indent += 1
            r = p.rule
            if p.unwrapped:
                assert isinstance(r, ArrayRule) and r.items is not None
                e("if type(v) is not list: raise Fail('type_mismatch', '')")
                self._array_checks(e, r, "v")
                e("for x in v:")
                e.indent += 1
                self._element(e, r.items, "x", pn)
                e.indent -= 1
            else:
                self._element(e, r, "v", pn)
            e.indent -= 1
        e("if len(out) == start:")
        e("    out[start - 1] = head + '/>'")
        e("else:")
        e("    out.append('</' + names.qname + '>')")
        e("return")

    def _array_checks(self, e: Emitter, rule: ArrayRule, v: str) -> None:
        if rule.min_items:
            e(f"if len({v}) < {int(rule.min_items)}: raise Fail('schema_violation', '')")
        if rule.max_items is not None:
            e(f"if len({v}) > {int(rule.max_items)}: raise Fail('schema_violation', '')")
        if rule.unique:
            e(f"if len({v}) > 1: raise Fail('schema_violation', '')")  # the tables decide

    def _array(self, e: Emitter, rule: ArrayRule) -> None:
        assert rule.items is not None
        an = self._const(rule, "P")  # the ArrayRule carries the item element's tags
        e("if type(value) is not list or depth > MAXD: raise Fail('type_mismatch', '')")
        self._array_checks(e, rule, "value")
        e("if not value:")
        e("    out.append(names.empty)")
        e("    return")
        e("out.append(names.open)")
        e("for x in value:")
        e.indent += 1
        self._element(e, rule.items, "x", an)
        e.indent -= 1
        e("out.append(names.close)")
        e("return")


def build(
    root_rule: Rule, walker: JsonWalker, max_depth: int, *, route: str = ""
) -> JsonFastPath | None:
    """The generated fast path of a mapping whose root is an object or array, else None."""
    if root_rule.kind not in (OBJECT,) and not isinstance(root_rule, ArrayRule):
        return None
    fp = JsonFastPath(root_rule, walker, max_depth, route=route)
    return fp if fp.root is not None else None
