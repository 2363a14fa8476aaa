"""The default convention, for content no schema describes.

XML → JSON: an element with neither attributes nor child elements is a string (``""`` when
empty); otherwise an object whose keys are ``@name`` for attributes, the element names for
children (repeated adjacent siblings become an array) and ``#text`` for text next to
attributes. ``xsi:nil="true"`` is ``null``. Names carry the mapping's fixed prefixes
(``ship:city``); the default namespace is unprefixed. Inline options refine this per path:
``arrays`` (always an array), ``types`` (a typed scalar), ``attributes`` (an attribute without
the ``@``). JSON → XML is the inverse. Without those options the JSON side is only as precise
as each document shows: that is the warning ``format-proxy check`` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.translate.failures import Fail
from proxy.translate.lexical import (
    encode_basestring,
    escape_attr,
    escape_text,
    is_ncname,
    key_has_control_char,
)
from proxy.translate.model import Number, Pairs
from proxy.translate.rules import SCALAR, XML_NS, XSI_NIL, AnyRule, PathOptions, ScalarRule

if TYPE_CHECKING:
    from proxy.translate.jsonread import JsonWriter
    from proxy.translate.xmlread import XmlReader

_WS = " \t\r\n"
_TRUE = ("true", "1")
_FALSE = ("false", "0")


def _scalar_rule(opts: PathOptions) -> ScalarRule:
    rule = getattr(opts, "_rule", None)
    if rule is None:
        assert opts.type is not None
        rule = ScalarRule(SCALAR, "/" + "/".join(opts.path), opts.nullable, opts.type)
        opts._rule = rule  # type: ignore[attr-defined]  # cached on the trie node
    return rule


# --- XML → JSON ---------------------------------------------------------------------------------


def any_key(node: Any, clark: str, reader: XmlReader, *, attr: bool) -> str:
    """The JSON key for an element or attribute name, with the mapping's prefix."""

    if clark[0] == "{":
        uri, local = clark[1:].split("}", 1)
        prefix = reader.rt.prefix_of.get(uri)
        if uri == XML_NS:
            prefix = "xml"
        if prefix is None or (attr and prefix == ""):
            raise Fail.at(
                "unknown_namespace",
                node,
                f"namespace {uri!r} has no prefix in mapping.namespaces",
                attr=clark if attr else None,
            )
        return f"{prefix}:{local}" if prefix else local
    if not attr and "" in reader.rt.uri_of:
        raise Fail.at(
            "unknown_namespace",
            node,
            f"element <{clark}> is in no namespace, but unprefixed names mean "
            f"{reader.rt.uri_of['']!r} in this mapping",
        )
    return clark


def any_value(elem: Any, rule: AnyRule, reader: XmlReader, depth: int) -> str:
    return _value(elem, rule.options, reader, depth)


def _value(elem: Any, opts: PathOptions | None, reader: XmlReader, depth: int) -> str:

    rt = reader.rt
    if depth > rt.max_depth:
        raise Fail.at("too_deep", elem, f"nesting deeper than {rt.max_depth} elements")
    names = elem.keys()
    text = elem.text
    if names and XSI_NIL in names:
        nil = elem.get(XSI_NIL)
        if nil in _TRUE:
            if len(names) > 1 or len(elem) or text:
                raise Fail.at(
                    "type_mismatch",
                    elem,
                    'an xsi:nil="true" element must be empty and have no other attributes',
                )
            return "null"
        if nil not in _FALSE:
            raise Fail.at("type_mismatch", elem, f"xsi:nil={nil!r} is not a boolean", attr=XSI_NIL)
        names = [n for n in names if n != XSI_NIL]
    if opts is not None and opts.type is not None:
        if len(elem):
            reader._children_in_leaf(elem, _scalar_rule(opts))
        for n in names:
            raise Fail.at("unknown_attribute", elem, "a typed scalar has no attributes", attr=n)
        return reader.scalar(text or "", _scalar_rule(opts), elem)
    if not names and not len(elem):
        return encode_basestring(text or "")
    parts: list[str] = []
    keys: set[str] = set()
    for name in names:
        key = any_key(elem, name, reader, attr=True)
        copts = opts.child(key) if opts is not None else None
        out_key = key if copts is not None and copts.attribute else rt.attribute_prefix + key
        value = elem.get(name)
        if copts is not None and copts.type is not None:
            frag = reader.scalar(value, _scalar_rule(copts), elem, name)
        else:
            frag = encode_basestring(value)
        keys.add(out_key)
        parts.append(encode_basestring(out_key) + ":" + frag)
    if len(elem):
        if text is not None and text.strip(_WS):
            raise Fail.at("mixed_content", elem, "text next to child elements", text=True)
        group_key: str | None = None
        group: list[Any] = []
        elem_keys: set[str] = set()
        for child in elem:
            tail = child.tail
            if tail is not None and tail.strip(_WS):
                raise Fail.at("mixed_content", child, "text next to child elements", tail=True)
            if not isinstance(child.tag, str):
                reader._not_element(child)
            key = any_key(child, child.tag, reader, attr=False)
            if key == group_key:
                group.append(child)
                continue
            if group_key is not None:
                _emit_group(group_key, group, opts, reader, depth, parts)
            if key in keys:
                if key in elem_keys:
                    raise Fail.at(
                        "interleaved_siblings",
                        child,
                        f"<{key}> siblings are separated by other elements; the convention "
                        "groups adjacent siblings into one array",
                    )
                raise Fail.at(
                    "duplicate_element", child, f"<{key}> has the same key as an attribute"
                )
            elem_keys.add(key)
            keys.add(key)
            group_key, group = key, [child]
        if group_key is not None:
            _emit_group(group_key, group, opts, reader, depth, parts)
    elif text:
        parts.append(encode_basestring(rt.text_key) + ":" + encode_basestring(text))
    return "{" + ",".join(parts) + "}"


def _emit_group(
    key: str,
    group: list[Any],
    opts: PathOptions | None,
    reader: XmlReader,
    depth: int,
    parts: list[str],
) -> None:
    copts = opts.child(key) if opts is not None else None
    values = [_value(c, copts, reader, depth + 1) for c in group]
    if len(values) > 1 or (copts is not None and copts.array):
        frag = "[" + ",".join(values) + "]"
    else:
        frag = values[0]
    parts.append(encode_basestring(key) + ":" + frag)


# --- JSON → XML ---------------------------------------------------------------------------------


def _qname(key: str, writer: JsonWriter, *, attr: bool) -> str:
    """Check a JSON key as an XML name under the mapping's prefix map; returns it."""
    if key_has_control_char(key):
        raise Fail("invalid_character", f"key {key!r} contains a control character")
    prefix, sep, local = key.rpartition(":")
    if not is_ncname(local) or (sep and not is_ncname(prefix)):
        raise Fail("invalid_name", f"key {key!r} is not an XML name")
    if prefix.lower() == "xmlns" or (not sep and local == "xmlns"):
        raise Fail("invalid_name", f"key {key!r} would be a namespace declaration")
    if sep and prefix != "xml" and (prefix not in writer.rt.uri_of or prefix == ""):
        raise Fail("unknown_namespace", f"prefix {prefix!r} is not in mapping.namespaces")
    if sep and prefix == "xsi" and attr:
        raise Fail("invalid_name", f"key {key!r}: xsi attributes are written by the translator")
    return key


def write_any(
    value: Any,
    opts: PathOptions | None,
    qname: str,
    decl: str,
    writer: JsonWriter,
    out: list[str],
    depth: int,
) -> None:
    """Write ``<qname>`` for ``value`` by the convention."""
    if depth > writer.rt.max_depth:
        raise Fail("too_deep", f"nesting deeper than {writer.rt.max_depth} levels")
    if opts is not None and opts.type is not None:
        rule = _scalar_rule(opts)
        if value is None:
            if not rule.nullable:
                raise Fail("type_mismatch", "null is not allowed here (mapping.types)")
            out.append(f'<{qname}{decl} xsi:nil="true"/>')
            return
        text = writer.scalar_text(value, rule)
        out.append(f"<{qname}{decl}>{text}</{qname}>" if text else f"<{qname}{decl}/>")
        return
    tv = type(value)
    if value is None:
        out.append(f'<{qname}{decl} xsi:nil="true"/>')
    elif tv is str:
        text = escape_text(value)
        out.append(f"<{qname}{decl}>{text}</{qname}>" if text else f"<{qname}{decl}/>")
    elif tv is Number:
        out.append(f"<{qname}{decl}>{value}</{qname}>")
    elif value is True or value is False:
        out.append(f"<{qname}{decl}>{'true' if value else 'false'}</{qname}>")
    elif tv is Pairs:
        _write_object(value, opts, qname, decl, writer, out, depth)
    else:
        raise Fail(
            "type_mismatch",
            "an array inside an array has no XML form without a schema (no element names)",
        )


def _write_object(
    pairs: Any,
    opts: PathOptions | None,
    qname: str,
    decl: str,
    writer: JsonWriter,
    out: list[str],
    depth: int,
) -> None:
    rt = writer.rt
    ap = rt.attribute_prefix
    start = ["<", qname, decl]
    text: str | None = None
    children: list[tuple[str, Any]] = []
    for key, v in pairs:
        try:
            copts = None
            if key.startswith(ap):
                name = _qname(key[len(ap) :], writer, attr=True)
                is_attr = True
                copts = opts.child(name) if opts is not None else None
            elif key == rt.text_key:
                if v is None or type(v) in (Pairs, list):
                    raise Fail("type_mismatch", "text content must be a string, number or boolean")
                text = _scalar(v, None)
                continue
            else:
                name = _qname(key, writer, attr=False)
                copts = opts.child(name) if opts is not None else None
                is_attr = copts is not None and copts.attribute
            if is_attr:
                if copts is not None and copts.type is not None:
                    if v is None:
                        raise Fail("type_mismatch", "an attribute cannot be null")
                    sval = writer.scalar_value(v, _scalar_rule(copts))
                else:
                    if v is None or type(v) in (Pairs, list):
                        raise Fail("type_mismatch", "an attribute value must be a scalar")
                    sval = _scalar(v, None)
                start.append(f' {name}="{escape_attr(sval)}"')
            else:
                children.append((name, v))
        except Fail as f:
            f.path.append(key)
            raise
    if text is not None and children:
        raise Fail("mixed_content", f"{rt.text_key!r} next to child elements is mixed content")
    head = "".join(start)
    if text is not None:
        out.append(f"{head}>{escape_text(text)}</{qname}>" if text else head + "/>")
        return
    if not children:
        out.append(head + "/>")
        return
    out.append(head + ">")
    for name, v in children:
        copts = opts.child(name) if opts is not None else None
        try:
            if type(v) is list:
                for i, item in enumerate(v):
                    try:
                        write_any(item, copts, name, "", writer, out, depth + 1)
                    except Fail as f:
                        f.path.append(i)
                        raise
            else:
                write_any(v, copts, name, "", writer, out, depth + 1)
        except Fail as f:
            f.path.append(name)
            raise
    out.append(f"</{qname}>")


def _scalar(v: Any, _: object) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)
