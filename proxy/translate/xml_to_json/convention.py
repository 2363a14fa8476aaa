"""XML → JSON by the default convention, for content no schema describes (see
:mod:`proxy.translate.json_to_xml.convention` for the inverse).

An element with neither attributes nor child elements is a string (``""`` when empty);
otherwise an object whose keys are ``@name`` for attributes, the element names for children
(repeated adjacent siblings become an array) and ``#text`` for text next to attributes.
``xsi:nil="true"`` is ``null``. Names carry the mapping's fixed prefixes (``ship:city``); the
default namespace is unprefixed. Inline options refine this per path: ``arrays`` (always an
array), ``types`` (a typed scalar), ``attributes`` (an attribute without the ``@``).
"""

from __future__ import annotations

from typing import Any, Protocol

from proxy.translate.failures import Fail
from proxy.translate.lexical import encode_basestring
from proxy.translate.rules import XML_NS, XSI_NIL, AnyRule, PathOptions, Rule, ScalarRule
from proxy.translate.runtime import Runtime
from proxy.translate.xml_to_json.parse import attribute_items

__all__ = ["ScalarReader", "any_key", "any_value"]

_WS = " \t\r\n"
_TRUE = ("true", "1")
_FALSE = ("false", "0")


class ScalarReader(Protocol):
    """What the convention needs from the table walker (typed scalars, precise refusals)."""

    rt: Runtime

    def scalar(self, text: str, rule: ScalarRule, node: Any, attr: str | None = None) -> str: ...
    def children_in_leaf(self, elem: Any, rule: Rule) -> None: ...
    def not_element(self, child: Any) -> None: ...


def any_key(node: Any, clark: str, reader: ScalarReader, *, attr: bool) -> str:
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


def any_value(elem: Any, rule: AnyRule, reader: ScalarReader, depth: int) -> str:
    return _value(elem, rule.options, reader, depth)


def _value(elem: Any, opts: PathOptions | None, reader: ScalarReader, depth: int) -> str:

    rt = reader.rt
    if depth > rt.max_depth:
        raise Fail.at("too_deep", elem, f"nesting deeper than {rt.max_depth} elements")
    attrs = dict(attribute_items(elem))
    names = list(attrs)
    text = elem.text
    if names and XSI_NIL in names:
        nil = attrs.get(XSI_NIL)
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
            reader.children_in_leaf(elem, opts.scalar_rule())
        for n in names:
            raise Fail.at("unknown_attribute", elem, "a typed scalar has no attributes", attr=n)
        return reader.scalar(text or "", opts.scalar_rule(), elem)
    if not names and not len(elem):
        return encode_basestring(text or "")
    parts: list[str] = []
    keys: set[str] = set()
    for name in names:
        key = any_key(elem, name, reader, attr=True)
        copts = opts.child(key) if opts is not None else None
        out_key = key if copts is not None and copts.attribute else rt.attribute_prefix + key
        value = attrs[name]
        if copts is not None and copts.type is not None:
            frag = reader.scalar(value, copts.scalar_rule(), elem, name)
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
                reader.not_element(child)
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
    reader: ScalarReader,
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
