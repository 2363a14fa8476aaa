"""XML → JSON, the fast path: the rule tables compiled to straight-line Python, once per mapping.

For every object and wrapped-array rule a function is generated that matches the children
against the schema's property sequence with plain comparisons, converts scalars inline and
builds the JSON text. It handles only what is certainly valid: at the first thing it does not
expect (an unknown or misplaced element, an attribute it has no slot for, a value failing a
check) it hands the *whole element* to the table walker (:class:`XmlWalker`), which is the
authority: it either raises the precise error or returns the same JSON. So the fast path can
only ever be slower than needed, never wrong in a different way; the property tests check
both paths agree on every generated document.

Generated source uses only names bound in its own namespace (tags, key fragments, converters);
every value from the schema enters as a constant object, never as source text
(:mod:`proxy.translate.codegen`).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any, cast

from proxy.translate.codegen import Emitter, Generated
from proxy.translate.lexical import BOOLEAN_IN, encode_basestring, integer_ok, number_ok
from proxy.translate.rules import (
    ARRAY,
    OBJECT,
    SCALAR,
    T_BOOLEAN,
    T_INTEGER,
    T_NUMBER,
    T_STRING,
    XSI_NIL,
    ArrayRule,
    ObjectRule,
    Rule,
    ScalarRule,
)
from proxy.translate.xml_to_json.parse import attribute_items
from proxy.translate.xml_to_json.records import FRAGS
from proxy.translate.xml_to_json.walker import XmlWalker

_WS = " \t\r\n"


def _nil(c: Any) -> str | None:
    """``null`` for exactly ``<x xsi:nil="true"/>`` (nothing else on it), else None."""
    if c.text is None and not len(c):
        items = attribute_items(c)
        if len(items) == 1 and items[0][0] == XSI_NIL and items[0][1] in ("true", "1"):
            return "null"
    return None


def _bail(out: list[str], mark: int, slow: Any, elem: Any, rule: Rule, depth: int) -> None:
    """Drop what the fast path appended for ``elem`` and let the table walker do it."""
    del out[mark:]
    out.append(slow(elem, rule, depth))


class FastPath(Generated):
    """Generated functions for one mapping; ``root(elem, depth, out)`` appends the JSON text
    of the root's content to ``out`` (one flat list: no intermediate strings per object, one
    join at the end)."""

    direction = "xml_to_json"

    def __init__(
        self,
        root_rule: Rule,
        walker: XmlWalker,
        safe_integers: bool,
        max_depth: int,
        records: AbstractSet[int] = frozenset(),
        *,
        route: str = "",
    ) -> None:
        self.records = records
        self.walker = walker
        self.safe = safe_integers
        self.max_depth = max_depth
        ns: dict[str, Any] = {
            "enc": encode_basestring,
            "NUM": number_ok,
            "INT": integer_ok,
            "BOOL": BOOLEAN_IN,
            "NIL": _nil,
            "ATTRS": attribute_items,
            "WS": _WS,
            "XSI_NIL": XSI_NIL,
            "MAXD": max_depth,
            "BAIL": _bail,
            "SLOW_OBJECT": walker.object,
            "SLOW_ARRAY": walker.array,
            "VALUE": walker.value,
            "FRAGS": FRAGS,
        }
        super().__init__(root_rule, ns, route=route)

    # --- generation ----------------------------------------------------------------------

    def _generate(self, rule: Rule) -> None:
        e = Emitter()
        name = self._names[id(rule)]
        r = self._const(rule, "R")
        e(f"def {name}(elem, depth, out):")
        e.indent += 1
        self._header(e, rule)
        if id(rule) in self.records:
            # A record translated while streaming (proxy.translate.xml_to_json.stream): its bytes.
            e("fr = FRAGS.frags")
            e("if fr:")
            e("    b = fr.get(elem)")
            e("    if b is not None:")
            e("        out.append(b)")
            e("        return")
        slow = "SLOW_OBJECT" if isinstance(rule, ObjectRule) else "SLOW_ARRAY"
        self._slow = f"return BAIL(out, mark, {slow}, elem, {r}, depth)"
        e("mark = len(out)")
        # At the depth limit the table walker decides (precisely) whether children exceed it.
        e(f"if depth >= MAXD: {self._slow}")
        if isinstance(rule, ObjectRule):
            self._object(e, rule)
        else:
            assert isinstance(rule, ArrayRule)
            self._array(e, rule)
        self._src.extend(e.lines)
        self._src.append("")

    def _scalar(self, e: Emitter, rule: ScalarRule, src: str, out: str) -> None:
        """Code converting text ``src`` (may be None) into JSON literal ``out``, or slow."""
        t = rule.type
        chk = self._const(rule.check, "C") if rule.check is not None else None
        if t == T_STRING:
            if chk is None:
                e(f"{out} = enc({src}) if {src} is not None else '\"\"'")
                return
            e(f"if {src} is None: {src} = ''")
            e(f"if {chk}({src}) is not None: {self._slow}")
            e(f"{out} = enc({src})")
            return
        if t in (T_NUMBER, T_INTEGER):
            # The common spellings (12, -3, 0.10) checked inline; the full grammar (1e3, -0.0,
            # integers written 2.0) by the function.
            e(f"if {src} is None: {self._slow}")
            e(f"s = {src}[1:] if {src}[:1] == '-' else {src}")
            if t == T_NUMBER:
                e("i, dot, f = s.partition('.')")
                e(
                    "if not (s.isascii() and i.isdecimal() and (i[0] != '0' or len(i) == 1) "
                    f"and (not dot or f.isdecimal())) and not NUM({src}): {self._slow}"
                )
            else:
                e(
                    "if not (s.isascii() and s.isdecimal() and (s[0] != '0' or len(s) == 1)) "
                    f"and not INT({src}): {self._slow}"
                )
            if self.safe:
                e(f"if len({src}) > 15: {self._slow}")
            if chk is not None:
                e(f"if {chk}({src}) is not None: {self._slow}")
            e(f"{out} = {src}")
            return
        if t == T_BOOLEAN:
            e(f"{out} = BOOL.get({src})")
            e(f"if {out} is None: {self._slow}")
            if chk is not None:
                e(f"if {chk}({out}) is not None: {self._slow}")
            return
        e(self._slow)  # null-only: only the nil branch is valid

    def _leaf(self, e: Emitter, rule: ScalarRule, c: str, out: str) -> None:
        """``c`` is a leaf element for ``rule``; sets ``out`` (a JSON literal) or goes slow."""
        e(f"if len({c}) or {c}.keys():")
        e.indent += 1
        if rule.nullable:
            e(f"{out} = NIL({c})")
            e(f"if {out} is None: {self._slow}")
        else:
            e(self._slow)
        e.indent -= 1
        e("else:")
        e.indent += 1
        e(f"t = {c}.text")
        self._scalar(e, rule, "t", out)
        e.indent -= 1

    def _emit_value(self, e: Emitter, rule: Rule, c: str, prefix: str | None) -> None:
        """Append ``prefix`` (a constant's name, e.g. the key) then child ``c``'s JSON."""
        if rule.kind == SCALAR:
            assert isinstance(rule, ScalarRule)
            self._leaf(e, rule, c, "v")
            e(f"out.append({prefix} + v)" if prefix else "out.append(v)")
            return
        if prefix:
            e(f"out.append({prefix})")
        fn = self._fn_for(rule)
        if fn is not None:
            e(f"{fn}({c}, depth + 1, out)")
            return
        r = self._const(rule, "R")
        e(f"out.append(VALUE({c}, {r}, depth + 1))")

    def _advance(self, e: Emitter) -> None:
        e("c = next(it, None)")
        e("if c is None:")
        e("    tg = None")
        e("else:")
        e("    tg = c.tag")
        e("    tl = c.tail")
        e(f"    if tl is not None and tl.strip(WS): {self._slow}")

    def _attributes(self, e: Emitter, rule: ObjectRule) -> None:
        """Attributes: one pass over what is there, slots in schema order (a0, a1, ...)."""
        attrs = rule.attr_props
        e("items = ATTRS(elem)")
        for i in range(len(attrs)):
            e(f"a{i} = None")
        if attrs or rule.nullable:
            e("if items:")
            e.indent += 1
            e("for name, value in items:")
            e.indent += 1
            kw = "if"
            for i, p in enumerate(attrs):
                e(f"{kw} name == {self._const(p.tag, 'T')}:")
                e.indent += 1
                self._scalar(e, cast(ScalarRule, p.rule), "value", f"a{i}")
                e.indent -= 1
                kw = "elif"
            e(f"else: {self._slow}" if kw == "elif" else self._slow)
            e.indent -= 2
        else:
            e(f"if items: {self._slow}")
        for i, p in enumerate(attrs):
            if p.required:
                e(f"if a{i} is None: {self._slow}")

    def _object(self, e: Emitter, rule: ObjectRule) -> None:
        self._attributes(e, rule)
        attrs = rule.attr_props
        tp = rule.text
        if tp is not None:
            # A small object (attributes and text): one string.
            e(f"if len(elem): {self._slow}")
            e("t = elem.text")
            pieces = []
            for i, p in enumerate(attrs):
                k = self._const("," + p.key_json, "K")
                pieces.append(
                    f"{k} + a{i}" if p.required else f"({k} + a{i} if a{i} is not None else '')"
                )
            k = self._const("," + tp.key_json, "K")
            if tp.required:
                e("if t is None: t = ''")
                self._scalar(e, cast(ScalarRule, tp.rule), "t", "v")
                pieces.append(f"{k} + v")
            else:
                e("if t:")
                e.indent += 1
                self._scalar(e, cast(ScalarRule, tp.rule), "t", "v")
                e.indent -= 1
                e("else:")
                e("    v = None")
                pieces.append(f"({k} + v if v is not None else '')")
            e(f"out.append('{{' + ({' + '.join(pieces)})[1:] + '}}')")
            return
        e("t = elem.text")
        e(f"if t is not None and t.strip(WS): {self._slow}")
        # Every key fragment carries a leading comma; the first one's is cut at the end.
        e("out.append('{')")
        e("n0 = len(out)")
        for i, p in enumerate(attrs):
            k = self._const("," + p.key_json, "K")
            if p.required:
                e(f"out.append({k} + a{i})")
            else:
                e(f"if a{i} is not None: out.append({k} + a{i})")
        if rule.elem_props:
            e("it = iter(elem)")
            self._advance(e)
        else:
            e(f"if len(elem): {self._slow}")
        for p in rule.elem_props:
            tag = self._const(p.tag, "T")
            k = self._const("," + p.key_json, "K")
            r = p.rule
            if p.unwrapped:
                assert isinstance(r, ArrayRule) and r.items is not None
                e(f"if tg == {tag}:")
                e.indent += 1
                e(f"out.append({k} + '[')")
                e("n1 = len(out)")
                e("k = 0")
                e(f"while tg == {tag}:")
                e.indent += 1
                self._emit_value(e, r.items, "c", "','")
                e("k += 1")
                self._advance(e)
                e.indent -= 1
                e("out[n1] = out[n1][1:]")  # the first item's comma
                self._array_checks(e, r, "k")
                e("out.append(']')")
                e.indent -= 1
                if p.required:
                    e("else:")
                    e.indent += 1
                    e(self._slow if r.min_items > 0 else f"out.append({k} + '[]')")
                    e.indent -= 1
                continue
            e(f"if tg == {tag}:")
            e.indent += 1
            self._emit_value(e, r, "c", k)
            self._advance(e)
            e.indent -= 1
            if p.required:
                e(f"else: {self._slow}")
        if rule.elem_props:
            e(f"if c is not None: {self._slow}")
        e("if len(out) > n0: out[n0] = out[n0][1:]")
        e("out.append('}')")

    def _array_checks(self, e: Emitter, rule: ArrayRule, n: str) -> None:
        if rule.min_items:
            e(f"if {n} < {int(rule.min_items)}: {self._slow}")
        if rule.max_items is not None:
            e(f"if {n} > {int(rule.max_items)}: {self._slow}")
        if rule.unique:
            e(f"if {n} > 1: {self._slow}")  # uniqueness: the table walker decides

    def _array(self, e: Emitter, rule: ArrayRule) -> None:
        assert rule.items is not None
        e(f"if elem.keys(): {self._slow}")
        e("t = elem.text")
        e(f"if t is not None and t.strip(WS): {self._slow}")
        tag = self._const(rule.item_tag, "T")
        e("out.append('[')")
        e("n1 = len(out)")
        e("k = 0")
        e("for c in elem:")
        e.indent += 1
        e(f"if c.tag != {tag}: {self._slow}")
        e("tl = c.tail")
        e(f"if tl is not None and tl.strip(WS): {self._slow}")
        self._emit_value(e, rule.items, "c", "','")
        e("k += 1")
        e.indent -= 1
        e("if k: out[n1] = out[n1][1:]")
        self._array_checks(e, rule, "k")
        e("out.append(']')")


def build(
    root_rule: Rule,
    walker: XmlWalker,
    safe_integers: bool,
    max_depth: int,
    records: AbstractSet[int] = frozenset(),
    *,
    route: str = "",
) -> FastPath | None:
    """The generated fast path of a mapping whose root is an object or array, else None."""
    if root_rule.kind not in (OBJECT, ARRAY):
        return None
    fp = FastPath(root_rule, walker, safe_integers, max_depth, records, route=route)
    return fp if fp.root is not None else None
