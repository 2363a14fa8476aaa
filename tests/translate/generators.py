"""Hypothesis strategies that build documents in a mapping's domain, both formats.

Documents are drawn from the compiled rule tables (what the engine promises to accept) and, on
the JSON side, every drawn document is also checked against the *original schema* with the
``jsonschema`` library: that independent check is what makes these "documents valid against
the schema" rather than "documents the engine likes". XML is drawn as a small tree first and
then written out in a *style*: the mapping's prefixes or foreign ones, ``true`` or ``1``,
CDATA sections and character references, random indentation — so the normalisations can be
tested as properties too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from proxy.translate import CompiledMapping
from proxy.translate.checks import uniqueness_key
from proxy.translate.lexical import is_ncname
from proxy.translate.model import Number, Pairs
from proxy.translate.rules import (
    ANY,
    ARRAY,
    ATTRIBUTE,
    GROUP,
    OBJECT,
    SCALAR,
    T_INTEGER,
    T_NULL,
    T_NUMBER,
    T_STRING,
    TEXT,
    XSI,
    AnyRule,
    ArrayRule,
    ObjectRule,
    PathOptions,
    Rule,
    ScalarRule,
)

MAX_DEPTH = 4  # optional recursion stops here (recursive schemas)

# --- scalars ---------------------------------------------------------------------------------

_BAD = [chr(c) for c in range(0x20) if c not in (9, 10, 13)] + ["\ufffe", "\uffff"]
XML_CHAR = st.characters(exclude_categories=["Cs"], exclude_characters=_BAD)
SPECIAL = st.sampled_from(
    [
        "<",
        ">",
        "&",
        "]]>",
        '"',
        "'",
        "\r\n",
        "\r",
        "\t",
        " ",
        "  ",
        "\xa0",
        "🚚",
        "\u2028",
        "é",
        "日",
    ]
)
TEXT_STR = st.lists(st.one_of(XML_CHAR, SPECIAL), max_size=12).map("".join)
NAME_START = st.sampled_from([*"abcdefghijklmnopqrstuvwxyzABCXYZ_", "é", "日"])
NAME_CHAR = st.sampled_from([*"abcxyz0123456789-._", "é"])
NCNAME = st.builds(
    lambda a, b: a + b, NAME_START, st.lists(NAME_CHAR, max_size=6).map("".join)
).filter(lambda n: is_ncname(n) and not n.lower().startswith("xml"))


def render_number(v: Decimal, style: int, zeros: int, shift: int, big_e: bool) -> str:
    """A JSON-grammar spelling of ``v``: fixed (with extra trailing zeros) or exponent."""
    sign, digits, exp = v.as_tuple()
    neg = "-" if sign else ""
    coef = "".join(map(str, digits)).lstrip("0") or "0"
    if coef == "0":
        exp = min(int(exp), 0)
    if style == 0 or coef == "0":
        text = format(abs(v), "f")
        if zeros:
            text += ("" if "." in text else ".") + "0" * zeros
        return neg + text
    # exponent form: d.ddd e N, optionally with the decimal point moved (shift)
    e = int(exp) + len(coef) - 1
    mant = coef[0] + ("." + coef[1:] if len(coef) > 1 else "")
    if shift and len(coef) > 1:
        mant = coef  # all digits before the point
        e = int(exp)
    letter = "E" if big_e else "e"
    esign = "+" if (e >= 0 and style == 2) else ""
    return f"{neg}{mant}{letter}{esign}{e}"


@st.composite
def number_text(draw: Any, rule: ScalarRule) -> str:
    kw = dict(rule.keywords)
    if "enum" in kw or "const" in kw:
        values = kw.get("enum", [kw.get("const")])
        nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        return str(draw(st.sampled_from(nums)))
    lo = kw.get("minimum", kw.get("exclusiveMinimum"))
    hi = kw.get("maximum", kw.get("exclusiveMaximum"))
    integer = rule.type == T_INTEGER
    if integer:
        big = draw(st.booleans())
        bound = 10**40 if big else 10**6
        v = Decimal(
            draw(
                st.integers(
                    min_value=int(lo) if lo is not None else -bound,
                    max_value=int(hi) if hi is not None else bound,
                )
            )
        )
    else:
        places = draw(st.integers(0, 6))
        v = draw(
            st.decimals(
                min_value=Decimal(str(lo)) if lo is not None else Decimal("-1e12"),
                max_value=Decimal(str(hi)) if hi is not None else Decimal("1e12"),
                allow_nan=False,
                allow_infinity=False,
                places=places,
            )
        )
    if "exclusiveMinimum" in kw and v <= Decimal(str(kw["exclusiveMinimum"])):
        v = Decimal(str(kw["exclusiveMinimum"])) + (1 if integer else Decimal("0.001"))
    if "exclusiveMaximum" in kw and v >= Decimal(str(kw["exclusiveMaximum"])):
        v = Decimal(str(kw["exclusiveMaximum"])) - (1 if integer else Decimal("0.001"))
    style = draw(st.integers(0, 2))
    if integer and style and v != v.to_integral_value():  # pragma: no cover - integral anyway
        style = 0
    text = render_number(
        v, style, draw(st.integers(0, 2)), draw(st.integers(0, 1)), draw(st.booleans())
    )
    return text


@st.composite
def string_value(draw: Any, rule: ScalarRule) -> str:
    kw = dict(rule.keywords)
    if "enum" in kw:
        return str(draw(st.sampled_from([v for v in kw["enum"] if isinstance(v, str)])))
    if "const" in kw:
        return str(kw["const"])
    lo = int(kw.get("minLength", 0))
    hi = kw.get("maxLength")
    if "pattern" in kw:
        base = st.from_regex(kw["pattern"]).filter(lambda s: not any(c in s for c in _BAD))
        base = base.filter(
            lambda s: "\x00" not in s and all(not ("\ud800" <= c <= "\udfff") for c in s)
        )
    else:
        base = TEXT_STR
    s = draw(base.filter(lambda s: len(s) >= lo and (hi is None or len(s) <= int(hi))))
    return str(s)


def scalar_text(rule: ScalarRule) -> st.SearchStrategy[tuple[str, str]]:
    """(kind, text) for a non-null scalar: kind in {'str', 'num', 'bool'}."""
    if rule.type == T_STRING:
        return string_value(rule).map(lambda s: ("str", s))
    if rule.type in (T_NUMBER, T_INTEGER):
        return number_text(rule).map(lambda s: ("num", s))
    kw = dict(rule.keywords)
    values = [b for b in kw.get("enum", [True, False]) if isinstance(b, bool)]
    if "const" in kw:
        values = [kw["const"]]
    return st.sampled_from(values).map(lambda b: ("bool", "true" if b else "false"))


def to_json_scalar(kind: str, text: str) -> Any:
    if kind == "num":
        return Number(text)
    if kind == "bool":
        return text == "true"
    return text


# --- JSON documents ----------------------------------------------------------------------------


@st.composite
def json_value(draw: Any, rule: Rule, m: CompiledMapping, depth: int = 1) -> Any:
    if rule.nullable and draw(st.integers(0, 5)) == 0:
        return None
    kind = rule.kind
    if kind == SCALAR:
        assert isinstance(rule, ScalarRule)
        if rule.type == T_NULL:
            return None
        return to_json_scalar(*draw(scalar_text(rule)))
    if kind == OBJECT:
        assert isinstance(rule, ObjectRule)
        pairs = Pairs()
        for p in rule.props:
            if not p.required and (depth >= MAX_DEPTH or not draw(st.booleans())):
                continue
            if p.unwrapped:
                arr = p.rule
                assert isinstance(arr, ArrayRule)
                pairs.append((p.key, draw(json_array(arr, m, depth + 1))))
            elif p.node in (ATTRIBUTE, TEXT):
                pairs.append((p.key, to_json_scalar(*draw(scalar_text(p.rule)))))  # type: ignore[arg-type]
            else:
                pairs.append((p.key, draw(json_value(p.rule, m, depth + 1))))
        if rule.extra is not None and depth < MAX_DEPTH:
            keys = draw(
                st.lists(NCNAME.filter(lambda k: k not in rule.by_key), max_size=3, unique=True)
            )
            for k in keys:
                pairs.append((k, draw(json_value(rule.extra, m, depth + 1))))
        return Pairs(draw(st.permutations(pairs)))
    if kind == ARRAY:
        assert isinstance(rule, ArrayRule)
        return draw(json_array(rule, m, depth))
    assert isinstance(rule, AnyRule)
    return draw(any_json(rule.options, m, depth))


@st.composite
def json_array(draw: Any, rule: ArrayRule, m: CompiledMapping, depth: int) -> list[Any]:
    assert rule.items is not None
    hi = rule.max_items if rule.max_items is not None else 4
    if depth >= MAX_DEPTH:
        hi = min(hi, max(rule.min_items, 1))

    items = draw(
        st.lists(
            json_value(rule.items, m, depth + 1),
            min_size=rule.min_items,
            max_size=max(hi, rule.min_items),
            unique_by=(lambda v: uniqueness_key(v, Number)) if rule.unique else None,
        )
    )
    return list(items)


def _element_keys(m: CompiledMapping, opts: PathOptions | None = None) -> st.SearchStrategy[str]:
    """Names for schemaless content: the option paths' own names often (so that arrays/types/
    attributes options are exercised), otherwise random NCNames with the mapping's prefixes."""
    prefixes = [p for p in m.runtime.uri_of if p not in ("xsi", "")]
    names: st.SearchStrategy[str] = NCNAME
    if prefixes:
        names = st.one_of(
            NCNAME, st.builds(lambda p, n: f"{p}:{n}", st.sampled_from(prefixes), NCNAME)
        )
    if opts is not None and opts.children:
        return st.one_of(st.sampled_from(sorted(opts.children)), names)
    return names


@st.composite
def any_json(draw: Any, opts: PathOptions | None, m: CompiledMapping, depth: int) -> Any:
    """A value the default convention round-trips: strings, null, and non-empty objects whose
    arrays have two or more items (one, if the path is declared an array)."""
    if opts is not None and opts.type is not None:
        if opts.nullable and draw(st.booleans()):
            return None
        return to_json_scalar(*draw(scalar_text(ScalarRule(SCALAR, "", False, opts.type))))
    choice = draw(st.integers(0, 5 if depth < MAX_DEPTH else 1))
    if choice == 0:
        return draw(TEXT_STR)
    if choice == 1:
        return None if draw(st.booleans()) else draw(TEXT_STR)
    rt = m.runtime
    pairs = Pairs()
    names: set[str] = set()
    for name in draw(st.lists(_element_keys(m, opts), max_size=2, unique=True)):
        copts = opts.child(name) if opts is not None else None
        if copts is not None and (copts.type is not None or copts.array):
            continue  # a typed path or an array is an element, not an attribute
        plain = copts is not None and copts.attribute
        names.add(name)
        pairs.append((name if plain else rt.attribute_prefix + name, draw(TEXT_STR)))
    n_attrs = len(pairs)
    for key in draw(
        st.lists(_element_keys(m, opts).filter(lambda k: k not in names), max_size=3, unique=True)
    ):
        copts = opts.child(key) if opts is not None else None
        if copts is not None and copts.attribute:
            continue
        if copts is not None and copts.array:
            n = draw(st.integers(1, 3))
        else:
            n = 1 if draw(st.integers(0, 3)) else draw(st.integers(2, 3))
        values = [draw(any_json(copts, m, depth + 1)) for _ in range(n)]
        declared = copts is not None and copts.array
        pairs.append((key, values if (declared or n > 1) else values[0]))
    if len(pairs) == n_attrs:  # no children
        if not pairs:
            return draw(TEXT_STR)
        if draw(st.booleans()):
            pairs.append((rt.text_key, draw(TEXT_STR.filter(bool))))
    return Pairs(draw(st.permutations(pairs)))


def json_document(m: CompiledMapping) -> st.SearchStrategy[Any]:
    root = m.root
    if not root.tag:  # schemaless, root wrapped: {"name": content}
        return st.builds(
            lambda k, v: Pairs([(k, v)]),
            _element_keys(m),
            any_json(root.rule.options if isinstance(root.rule, AnyRule) else None, m, 1),
        )
    return json_value(root.rule, m, 1)


def after_round_trip(rule: Rule, value: Any) -> Any:
    """The JSON → XML → JSON result the documentation promises for ``value``: equal, except
    that ``[]`` for an optional unwrapped array and ``""`` for optional text come back absent."""
    if value is None:
        return None
    if isinstance(rule, ObjectRule) and type(value) is Pairs:
        out = Pairs()
        for k, v in value:
            p = rule.by_key.get(k)
            if p is None:
                assert rule.extra is not None
                out.append((k, after_round_trip(rule.extra, v)))
                continue
            if p.unwrapped and not p.required and v == []:
                continue
            if p.node == TEXT and not p.required and v == "":
                continue
            if p.node == GROUP:
                inner = after_round_trip(p.rule, v)
                if not inner and not p.required:
                    continue  # no member left: no node says the group was there
                out.append((k, inner))
                continue
            if p.unwrapped:
                arr = p.rule
                assert isinstance(arr, ArrayRule) and arr.items is not None
                out.append((k, [after_round_trip(arr.items, x) for x in v]))
            else:
                out.append((k, after_round_trip(p.rule, v)))
        return out
    if isinstance(rule, ArrayRule) and type(value) is list:
        assert rule.items is not None
        return [after_round_trip(rule.items, x) for x in value]
    return value


# --- XML documents -------------------------------------------------------------------------------


@dataclass
class Node:
    ns: str
    local: str
    attrs: list[tuple[str, str, str, str]] = field(default_factory=list)  # ns, local, kind, text
    #: None = xsi:nil; ("str"|"num"|"bool", text) = a leaf; a list = child elements
    content: Any = ("str", "")


def _split(clark: str) -> tuple[str, str]:
    if clark.startswith("{"):
        ns, local = clark[1:].split("}", 1)
        return ns, local
    return "", clark


@st.composite
def xml_node(draw: Any, rule: Rule, clark: str, m: CompiledMapping, depth: int = 1) -> Node:
    ns, local = _split(clark)
    node = Node(ns, local)
    if rule.nullable and draw(st.integers(0, 5)) == 0:
        node.content = None
        return node
    if rule.kind == SCALAR:
        assert isinstance(rule, ScalarRule)
        node.content = None if rule.type == T_NULL else draw(scalar_text(rule))
        return node
    if rule.kind == OBJECT:
        assert isinstance(rule, ObjectRule)
        children: list[Node] = []
        props: list[Any] = []
        for p in rule.props:
            if not p.required and (depth >= MAX_DEPTH or not draw(st.booleans())):
                continue
            if p.node == GROUP:  # nodeType none: the group's members are this node's own
                assert isinstance(p.rule, ObjectRule)
                props.extend(
                    g
                    for g in p.rule.props
                    if g.required or (depth < MAX_DEPTH and draw(st.booleans()))
                )
            else:
                props.append(p)
        for p in props:
            if p.node == ATTRIBUTE:
                ans, alocal = _split(p.tag)
                kind, text = draw(scalar_text(p.rule))  # type: ignore[arg-type]
                node.attrs.append((ans, alocal, kind, text))
            elif p.node == TEXT:
                node.content = draw(scalar_text(p.rule))  # type: ignore[arg-type]
            elif p.unwrapped:
                arr = p.rule
                assert isinstance(arr, ArrayRule) and arr.items is not None
                hi = arr.max_items if arr.max_items is not None else 3
                lo = max(arr.min_items, 0 if p.required else 1)
                n = draw(st.integers(lo, max(lo, min(hi, 3 if depth < MAX_DEPTH else lo))))
                items = [draw(xml_node(arr.items, p.tag, m, depth + 1)) for _ in range(n)]
                children.extend(_unique(items) if arr.unique else items)
            else:
                children.append(draw(xml_node(p.rule, p.tag, m, depth + 1)))
        if rule.extra is not None and depth < MAX_DEPTH:
            for k in draw(
                st.lists(NCNAME.filter(lambda k: k not in rule.by_key), max_size=2, unique=True)
            ):
                tag = "{" + rule.extra_ns + "}" + k if rule.extra_ns else k
                children.append(draw(xml_node(rule.extra, tag, m, depth + 1)))
        if rule.text is None:
            node.content = children
        draw(st.randoms()).shuffle(node.attrs)  # attribute order carries no meaning
        return node
    if rule.kind == ARRAY:
        assert isinstance(rule, ArrayRule) and rule.items is not None
        hi = rule.max_items if rule.max_items is not None else 3
        n = draw(
            st.integers(rule.min_items, max(rule.min_items, min(hi, 3 if depth < MAX_DEPTH else 0)))
        )
        items = [draw(xml_node(rule.items, rule.item_tag, m, depth + 1)) for _ in range(n)]
        node.content = _unique(items) if rule.unique else items
        return node
    assert rule.kind == ANY and isinstance(rule, AnyRule)
    return draw(any_node(rule.options, clark, m, depth))


def _value_key(node: Node) -> Any:
    """JSON-value identity of a drawn element (for uniqueItems): 1 and 1.0 are equal."""
    c = node.content
    if c is None:
        return ("null",)
    if isinstance(c, list):
        return ("list", tuple(_value_key(x) for x in c), tuple(sorted(map(repr, node.attrs))))
    kind, text = c
    return (
        ("num", Decimal(text))
        if kind == "num"
        else (kind, text, tuple(sorted(map(repr, node.attrs))))
    )


def _unique(items: list[Node]) -> list[Node]:
    seen: set[Any] = set()
    out = []
    for it in items:
        k = _value_key(it)
        if k not in seen:
            seen.add(k)
            out.append(it)
    return out


@st.composite
def any_node(
    draw: Any, opts: PathOptions | None, clark: str, m: CompiledMapping, depth: int
) -> Node:
    ns, local = _split(clark)
    node = Node(ns, local)
    if opts is not None and opts.type is not None:
        if opts.nullable and draw(st.booleans()):
            node.content = None
        else:
            node.content = draw(scalar_text(ScalarRule(SCALAR, "", False, opts.type)))
        return node
    shape = draw(st.integers(0, 4 if depth < MAX_DEPTH else 1))
    if shape == 0:
        node.content = ("str", draw(TEXT_STR))
        return node
    if shape == 1:
        node.content = None
        return node
    uri_of = m.runtime.uri_of
    names = draw(st.lists(_element_keys(m, opts), max_size=2, unique=True))
    plain: set[str] = set()
    for name in names:
        prefix, _, loc = name.rpartition(":")
        copts = opts.child(name) if opts is not None else None
        if copts is not None and copts.type is not None:
            continue
        if copts is not None and copts.attribute:
            plain.add(name)
        node.attrs.append((uri_of[prefix] if prefix else "", loc, "str", draw(TEXT_STR)))
    keys = draw(
        st.lists(_element_keys(m, opts).filter(lambda k: k not in plain), max_size=3, unique=True)
    )
    children: list[Node] = []
    for key in keys:
        prefix, _, loc = key.rpartition(":")
        cns = uri_of[prefix] if prefix else uri_of.get("", "")
        copts = opts.child(key) if opts is not None else None
        if copts is not None and copts.attribute:
            continue
        n = draw(st.integers(1, 3))
        tag = "{" + cns + "}" + loc if cns else loc
        children.extend(draw(any_node(copts, tag, m, depth + 1)) for _ in range(n))
    if children:
        node.content = children
    elif node.attrs and draw(st.booleans()):
        node.content = ("str", draw(TEXT_STR))
    else:
        node.content = ("str", "") if node.attrs else ("str", draw(TEXT_STR))
    return node


def xml_document(m: CompiledMapping) -> st.SearchStrategy[Node]:
    root = m.root
    if not root.tag:
        return _element_keys(m).flatmap(
            lambda key: any_node(
                root.rule.options if isinstance(root.rule, AnyRule) else None,
                _clark_of_key(key, m),
                m,
                1,
            )
        )
    return xml_node(root.rule, root.tag, m, 1)


def _clark_of_key(key: str, m: CompiledMapping) -> str:
    prefix, _, local = key.rpartition(":")
    ns = m.runtime.uri_of[prefix] if prefix else m.runtime.uri_of.get("", "")
    return "{" + ns + "}" + local if ns else local


@dataclass
class Style:
    """How a producer spells a tree. The strict style is the mapping's own."""

    prefixes: dict[str, str]  # uri -> prefix ("" = default namespace)
    ones: bool = False  # booleans as 1/0
    cdata: bool = False
    charrefs: bool = False
    indent: bool = False
    nil_false: bool = False  # xsi:nil="false" on some non-nil leaves
    rng: random.Random = field(default_factory=lambda: random.Random(0))


def mapping_style(m: CompiledMapping, rng: random.Random, **kw: Any) -> Style:
    prefixes = {uri: p for p, uri in m.runtime.uri_of.items()}
    return Style(prefixes, rng=rng, **kw)


def foreign_style(m: CompiledMapping, rng: random.Random, **kw: Any) -> Style:
    prefixes = {}
    for i, uri in enumerate(sorted(set(m.runtime.uri_of.values()))):
        prefixes[uri] = "xsi" if uri == XSI else f"p{i}x"
    return Style(prefixes, rng=rng, **kw)


def _esc_text(s: str, style: Style) -> str:
    out = []
    for ch in s:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "\r":
            out.append("&#13;")
        elif style.charrefs and ord(ch) > 127 and style.rng.random() < 0.5:
            out.append(f"&#x{ord(ch):X};")
        else:
            out.append(ch)
    text = "".join(out)
    if style.cdata and s and "\r" not in s and "]]>" not in s and style.rng.random() < 0.5:
        cut = style.rng.randrange(len(s) + 1)
        return _esc_text(s[:cut], _plain(style)) + "<![CDATA[" + s[cut:] + "]]>"
    return text


def _plain(style: Style) -> Style:
    return Style(style.prefixes, rng=style.rng)


def _esc_attr(s: str) -> str:
    return (
        s.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    )  # fmt: skip


def _q(ns: str, local: str, style: Style, *, attr: bool) -> str:
    if not ns:
        return local
    prefix = style.prefixes[ns]
    if attr and prefix == "":
        raise AssertionError("attribute in the default namespace")
    return f"{prefix}:{local}" if prefix else local


def write_xml(node: Node, style: Style) -> bytes:
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    decl = "".join(
        f' xmlns="{uri}"' if p == "" else f' xmlns:{p}="{uri}"'
        for uri, p in sorted(style.prefixes.items())
    )
    _write(node, style, out, decl, 0)
    return "".join(out).encode("utf-8")


def _bool(text: str, style: Style) -> str:
    if style.ones and style.rng.random() < 0.7:
        return "1" if text == "true" else "0"
    return text


def _attr_text(kind: str, text: str, style: Style) -> str:
    return _bool(text, style) if kind == "bool" else text


def _write(node: Node, style: Style, out: list[str], decl: str, level: int) -> None:
    q = _q(node.ns, node.local, style, attr=False)
    attrs = "".join(
        f' {_q(ns, local, style, attr=True)}="{_esc_attr(_attr_text(kind, text, style))}"'
        for ns, local, kind, text in node.attrs
    )
    pad = ("\n" + "  " * (level + 1)) if style.indent else ""
    end_pad = ("\n" + "  " * level) if style.indent else ""
    xsi = style.prefixes.get(XSI, "xsi")
    if node.content is None:
        out.append(f'<{q}{decl}{attrs} {xsi}:nil="{"1" if style.ones else "true"}"/>')
        return
    if isinstance(node.content, list):
        if not node.content:
            out.append(
                f"<{q}{decl}{attrs}/>" if style.rng.random() < 0.5 else f"<{q}{decl}{attrs}></{q}>"
            )
            return
        out.append(f"<{q}{decl}{attrs}>")
        for child in node.content:
            out.append(pad)
            _write(child, style, out, "", level + 1)
        out.append(end_pad + f"</{q}>")
        return
    kind, text = node.content
    if kind == "bool":
        text = _bool(text, style)
    if style.nil_false and not node.attrs and style.rng.random() < 0.2:
        attrs += f' {xsi}:nil="false"'
    if text == "":
        out.append(
            f"<{q}{decl}{attrs}/>" if style.rng.random() < 0.5 else f"<{q}{decl}{attrs}></{q}>"
        )
        return
    body = _esc_text(text, style) if kind == "str" else text
    out.append(f"<{q}{decl}{attrs}>{body}</{q}>")


def uses_nil(node: Node) -> bool:
    if node.content is None:
        return True
    return isinstance(node.content, list) and any(uses_nil(c) for c in node.content)


def namespaces_used(node: Node, acc: set[str] | None = None) -> set[str]:
    acc = set() if acc is None else acc
    if node.ns:
        acc.add(node.ns)
    for ns, _, _, _ in node.attrs:
        if ns:
            acc.add(ns)
    if isinstance(node.content, list):
        for c in node.content:
            namespaces_used(c, acc)
    return acc


def style_for(node: Node, base: Style) -> Style:
    """Declare only what the document uses (plus xsi when it has a nil)."""
    used = namespaces_used(node)
    if uses_nil(node) or base.nil_false:
        used.add(XSI)
    prefixes = {u: p for u, p in base.prefixes.items() if u in used}
    if XSI in used and XSI not in prefixes:
        prefixes[XSI] = "xsi"
    return Style(
        prefixes, base.ones, base.cdata, base.charrefs, base.indent, base.nil_false, base.rng
    )
