"""The compiled mapping: per-path rule tables both translation directions run on.

A mapping compiles once (``proxy.translate.schema``) into a graph of rules, one per schema
position and XML context. Everything a translator would otherwise work out per node is
precomputed here: Clark names to look children up by, the JSON key fragments to emit, the
XML start/end tags to write, property order. Rules may be cyclic (recursive schemas).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.translate.lexical import encode_basestring

# Rule kinds.
SCALAR = 0
OBJECT = 1
ARRAY = 2
ANY = 3  # no schema for this subtree: the default convention (``@attr``, ``#text``)

# Scalar base types.
T_STRING = 0
T_NUMBER = 1
T_INTEGER = 2
T_BOOLEAN = 3
T_NULL = 4  # ``type: "null"`` alone: the element must be nil

TYPE_NAMES = {
    T_STRING: "string",
    T_NUMBER: "number",
    T_INTEGER: "integer",
    T_BOOLEAN: "boolean",
    T_NULL: "null",
}

# Property node kinds.
ELEMENT = 0
ATTRIBUTE = 1
TEXT = 2
#: ``nodeType: none`` on an object: no node of its own; its properties' nodes are the parent's.
GROUP = 3

XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_NIL = "{" + XSI + "}nil"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: A value check compiled from validation keywords: returns a problem description or None.
Check = Callable[[Any], "str | None"]


@dataclass(eq=False)
class Rule:
    kind: int
    #: Where the rule came from, for messages (``order.schema.json#/$defs/item``).
    source: str = ""
    nullable: bool = False


@dataclass(eq=False)
class ScalarRule(Rule):
    type: int = T_STRING
    #: Validation keywords (enum, pattern, minimum, ...) or None when there are none.
    check: Check | None = None
    #: Write string content as CDATA (``nodeType: cdata``).
    cdata: bool = False
    #: The validation keywords ``check`` was compiled from (for ``describe`` and tests).
    keywords: tuple[tuple[str, Any], ...] = ()


@dataclass(eq=False)
class Prop:
    """One JSON property and the XML node it corresponds to."""

    key: str
    node: int
    #: Clark name (``{uri}local``) of the element, attribute, or, for an unwrapped array, of
    #: each item element.
    tag: str
    #: The prefixed name written (``ship:city``).
    qname: str
    rule: Rule
    required: bool = False
    #: Position among the element properties (document order = schema order).
    index: int = -1
    #: An array whose items are siblings in the parent (no wrapper element).
    unwrapped: bool = False
    #: For a property of a ``nodeType: none`` object, flattened into the parent's tables: the
    #: group property it belongs to (its value is ``group.key``'s object member ``key``).
    group: Prop | None = None
    key_json: str = ""
    open: str = ""
    close: str = ""
    empty: str = ""
    nil: str = ""

    def __post_init__(self) -> None:
        self.key_json = encode_basestring(self.key) + ":"
        set_tags(self, self.qname)


def set_tags(obj: Any, qname: str) -> None:
    obj.open = "<" + qname + ">"
    obj.close = "</" + qname + ">"
    obj.empty = "<" + qname + "/>"
    obj.nil = "<" + qname + ' xsi:nil="true"/>'


@dataclass(eq=False)
class ObjectRule(Rule):
    props: tuple[Prop, ...] = ()
    by_key: dict[str, Prop] = field(default_factory=dict)
    #: Element children by Clark name (unwrapped arrays by their item element name).
    elems: dict[str, Prop] = field(default_factory=dict)
    attrs: dict[str, Prop] = field(default_factory=dict)
    attr_props: tuple[Prop, ...] = ()
    elem_props: tuple[Prop, ...] = ()
    text: Prop | None = None
    #: ``nodeType: none`` object properties; their members are in attrs/elems/*_props.
    groups: tuple[Prop, ...] = ()
    required: frozenset[str] = frozenset()
    #: ``additionalProperties`` with a schema: extra keys are elements named by the key, in
    #: ``extra_ns``. None = extra keys/elements are refused.
    extra: Rule | None = None
    extra_ns: str = ""
    extra_prefix: str = ""
    #: Object-level validation keywords (minProperties, dependentRequired, ...).
    check: Check | None = None


@dataclass(eq=False)
class ArrayRule(Rule):
    items: Rule | None = None
    item_tag: str = ""
    item_qname: str = ""
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False
    open: str = ""
    close: str = ""
    empty: str = ""
    nil: str = ""

    @property
    def qname(self) -> str:
        return self.item_qname

    def set_item(self, tag: str, qname: str) -> None:
        self.item_tag = tag
        self.item_qname = qname
        set_tags(self, qname)


@dataclass(eq=False)
class PathOptions:
    """Inline options at one JSON path (a trie node): arrays, types and attributes for
    schemaless subtrees; ``xml`` overrides (and attributes) where a schema types the path."""

    path: tuple[str, ...] = ()
    array: bool = False
    type: int | None = None
    nullable: bool = False
    attribute: bool = False
    xml: dict[str, Any] | None = None
    children: dict[str, PathOptions] = field(default_factory=dict)
    wildcard: PathOptions | None = None
    #: ``[]``: the items schema of the array at this path (``xml:`` overrides only).
    items: PathOptions | None = None
    #: Set when compilation applied this node; unused option paths are mapping errors.
    used: bool = False
    #: The scalar rule of ``type`` (built on first use by :meth:`scalar_rule`).
    _scalar: ScalarRule | None = field(default=None, repr=False, compare=False)

    def scalar_rule(self) -> ScalarRule:
        """The rule a ``types`` option gives this path's scalar (``type`` must be set)."""
        rule = self._scalar
        if rule is None:
            assert self.type is not None
            rule = ScalarRule(SCALAR, "/" + "/".join(self.path), self.nullable, self.type)
            self._scalar = rule
        return rule

    def child(self, key: str) -> PathOptions | None:
        node = self.children.get(key)
        return node if node is not None else self.wildcard

    @property
    def has_settings(self) -> bool:
        return self.array or self.type is not None or self.attribute or self.xml is not None

    def walk(self) -> list[PathOptions]:
        out = [self]
        for c in self.children.values():
            out.extend(c.walk())
        for sub in (self.wildcard, self.items):
            if sub is not None:
                out.extend(sub.walk())
        return out


@dataclass(eq=False)
class AnyRule(Rule):
    """No schema here: the default convention, refined by inline options at paths."""

    options: PathOptions | None = None


@dataclass(eq=False)
class Root:
    tag: str
    qname: str
    rule: Rule
    #: Namespace declarations written on the root element (`` xmlns="..." xmlns:p="..."``).
    declarations: str = ""
