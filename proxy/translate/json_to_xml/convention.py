"""JSON → XML by the default convention, for content no schema describes: the inverse of
:mod:`proxy.translate.xml_to_json.convention` (``@name`` keys are attributes, ``#text`` is
text, arrays are repeated siblings, ``null`` is ``xsi:nil="true"``). Without the inline
options the JSON side is only as precise as each document shows: that is the warning
``format-proxy check`` prints.
"""

from __future__ import annotations

from typing import Any, Protocol

from proxy.translate.failures import Fail
from proxy.translate.lexical import escape_attr, escape_text, is_ncname, key_has_control_char
from proxy.translate.model import Number, Pairs
from proxy.translate.rules import PathOptions, ScalarRule
from proxy.translate.runtime import Runtime

__all__ = ["ScalarWriter", "checked_name", "write_any"]


class ScalarWriter(Protocol):
    """What the convention needs from the table walker (typed scalars)."""

    rt: Runtime

    def scalar_text(self, value: Any, rule: ScalarRule) -> str: ...
    def scalar_value(self, value: Any, rule: ScalarRule) -> str: ...


def checked_name(key: str, writer: ScalarWriter, *, attr: bool) -> str:
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
    writer: ScalarWriter,
    out: list[str],
    depth: int,
) -> None:
    """Write ``<qname>`` for ``value`` by the convention."""
    if depth > writer.rt.max_depth:
        raise Fail("too_deep", f"nesting deeper than {writer.rt.max_depth} levels")
    if opts is not None and opts.type is not None:
        rule = opts.scalar_rule()
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
    writer: ScalarWriter,
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
                name = checked_name(key[len(ap) :], writer, attr=True)
                is_attr = True
                copts = opts.child(name) if opts is not None else None
            elif key == rt.text_key:
                if v is None or type(v) in (Pairs, list):
                    raise Fail("type_mismatch", "text content must be a string, number or boolean")
                text = _scalar(v, None)
                continue
            else:
                name = checked_name(key, writer, attr=False)
                copts = opts.child(name) if opts is not None else None
                is_attr = copts is not None and copts.attribute
            if is_attr:
                if copts is not None and copts.type is not None:
                    if v is None:
                        raise Fail("type_mismatch", "an attribute cannot be null")
                    sval = writer.scalar_value(v, copts.scalar_rule())
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
