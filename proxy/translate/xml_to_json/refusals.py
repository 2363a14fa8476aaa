"""XML → JSON, refusals: the precise errors the table walker raises for content outside the
mapping (comments, unknown or misplaced elements, missing required ones, failed object-level
checks), each at its node."""

from __future__ import annotations

from typing import Any, NoReturn

from lxml import etree

from proxy.translate.failures import Fail
from proxy.translate.rules import GROUP, ObjectRule, Prop, Rule, ScalarRule
from proxy.translate.xml_to_json.tables import type_name

__all__ = [
    "children_in_leaf",
    "misplaced",
    "missing",
    "name_of",
    "not_element",
    "object_check",
    "unknown",
    "wrong_item",
]

_COMMENT = etree.Comment
_PI = etree.ProcessingInstruction


def children_in_leaf(elem: Any, rule: Rule) -> None:
    for child in elem:
        not_element(child)
    what = type_name(rule) if isinstance(rule, ScalarRule) else "text"
    raise Fail.at(
        "type_mismatch",
        elem[0],
        f"child element inside {name_of(elem.tag)}, which is a {what}",
    )


def not_element(child: Any) -> None:
    """Raise for a comment / PI child (when they are not dropped at parse time)."""
    tag = child.tag
    if tag is _COMMENT:
        raise Fail.at("comment_forbidden", child, "comments are not accepted (mapping.comments)")
    if tag is _PI:
        raise Fail.at(
            "processing_instruction_forbidden",
            child,
            f"processing instruction <?{child.target}?> is not accepted "
            "(mapping.processing_instructions)",
        )


def unknown(child: Any, rule: ObjectRule, known_ns: frozenset[str]) -> NoReturn:
    not_element(child)
    tag = child.tag
    ns = tag[1:].split("}")[0] if tag[0] == "{" else ""
    if ns and ns not in known_ns:
        raise Fail.at(
            "unknown_namespace",
            child,
            f"namespace {ns!r} is not in the mapping",
        )
    expected = ", ".join(name_of(p.tag) for p in rule.elem_props[:12]) or "no child elements"
    raise Fail.at(
        "unknown_element",
        child,
        f"element {name_of(tag)} is not in the mapping (expected: {expected})",
    )


def misplaced(child: Any, p: Prop, rule: ObjectRule, last: int, elem: Any) -> NoReturn:
    if p.index == last:
        raise Fail.at(
            "duplicate_element",
            child,
            f"{name_of(child.tag)} appears again; the schema has one {p.key!r}, not an array",
        )
    if p.unwrapped:
        raise Fail.at(
            "interleaved_siblings",
            child,
            f"{name_of(child.tag)} items are separated by other elements; an array's items "
            "must be adjacent to round-trip",
        )
    if last >= len(rule.elem_props):
        raise Fail.at(
            "out_of_order",
            child,
            f"{name_of(child.tag)} comes after additional (undeclared) elements; declared "
            "properties come first",
        )
    after = rule.elem_props[last]
    raise Fail.at(
        "out_of_order",
        child,
        f"{name_of(child.tag)} comes after {name_of(after.tag)}; the schema order puts it before",
    )


def missing(elem: Any, rule: ObjectRule, parts: list[str]) -> None:
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
                f"required attribute {name_of(p.tag)} ({p.key!r}) is missing",
            )
        if p.node == 2:
            continue  # required text: handled in object()
        raise Fail.at(
            "missing_element",
            elem,
            f"required element {name_of(p.tag)} ({p.key!r}) is missing",
        )


def object_check(elem: Any, rule: ObjectRule) -> None:
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


def wrong_item(child: Any, elem: Any, tag: str, known_ns: frozenset[str]) -> NoReturn:
    not_element(child)
    ctag = child.tag
    ns = ctag[1:].split("}")[0] if ctag[0] == "{" else ""
    if ns and ns not in known_ns:
        raise Fail.at("unknown_namespace", child, f"namespace {ns!r} is not in the mapping")
    raise Fail.at(
        "unknown_element",
        child,
        f"element {name_of(ctag)} in {name_of(elem.tag)}, which holds only {name_of(tag)} items",
    )


def name_of(clark: object) -> str:
    """``{urn:x}item`` → ``item (urn:x)`` for messages."""
    if not isinstance(clark, str):
        return "node"
    if clark.startswith("{"):
        uri, local = clark[1:].split("}", 1)
        return f"<{local}> ({uri})"
    return f"<{clark}>"
