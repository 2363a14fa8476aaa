"""XML → JSON, per-rule tables: a scalar rule's converter (text → JSON literal, checks
included) and an object rule's slots (child/attribute name → position, kind, key fragment,
converter), built on first use and cached per translator in typed dicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.translate.lexical import (
    BOOLEAN_IN,
    SAFE_INTEGER,
    encode_basestring,
    integer_ok,
    is_integral,
    number_ok,
    to_decimal,
)
from proxy.translate.rules import (
    ARRAY,
    OBJECT,
    SCALAR,
    T_BOOLEAN,
    T_INTEGER,
    T_NULL,
    T_NUMBER,
    T_STRING,
    TYPE_NAMES,
    ArrayRule,
    ObjectRule,
    Prop,
    Rule,
    ScalarRule,
)

__all__ = [
    "K_ARRAY",
    "K_LEAF",
    "K_OBJECT",
    "K_OTHER",
    "K_RUN",
    "AttrSlot",
    "Converter",
    "ObjectTables",
    "ScalarError",
    "Slot",
    "Tables",
    "make_converter",
    "show",
    "type_name",
]

#: ``text -> JSON literal`` for one scalar rule; raises :class:`ScalarError`.
Converter = Callable[[str], str]


def type_name(rule: ScalarRule) -> str:
    name = TYPE_NAMES[rule.type]
    return f"{name} or null" if rule.nullable and rule.type != T_NULL else name


class ScalarError(Exception):
    """A scalar that fails its rule; the caller knows the node and turns it into a Fail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def make_converter(rule: ScalarRule, safe_integers: bool) -> Converter:
    """``text -> JSON literal`` for one scalar rule, checks included; raises
    :class:`ScalarError`."""
    t = rule.type
    check = rule.check
    enc = encode_basestring

    def violated(problem: str) -> None:
        raise ScalarError("schema_violation", problem)

    if t == T_STRING:
        if check is None:
            conv = enc
        else:

            def conv(text: str) -> str:
                problem = check(text)
                if problem is not None:
                    violated(problem)
                return enc(text)

    elif t in (T_NUMBER, T_INTEGER):
        ok = number_ok if t == T_NUMBER else integer_ok
        what = "a number (JSON number syntax)" if t == T_NUMBER else "an integer"

        def conv(text: str) -> str:
            if not ok(text):
                raise ScalarError("type_mismatch", f"{show(text)} is not {what}")
            if (
                safe_integers
                and len(text) > 15
                and is_integral(text)
                and to_decimal(text).copy_abs() > SAFE_INTEGER
            ):
                raise ScalarError(
                    "number_out_of_range",
                    f"{text[:40]} is beyond ±(2**53-1), which not every JSON reader keeps "
                    "exact (mapping.safe_integers)",
                )
            if check is not None:
                problem = check(text)
                if problem is not None:
                    violated(problem)
            return text

    elif t == T_BOOLEAN:
        table = BOOLEAN_IN

        def conv(text: str) -> str:
            b = table.get(text)
            if b is None:
                raise ScalarError(
                    "type_mismatch", f"{show(text)} is not a boolean (true, false, 1 or 0)"
                )
            if check is not None:
                problem = check(b)
                if problem is not None:
                    violated(problem)
            return b

    else:

        def conv(text: str) -> str:
            raise ScalarError("type_mismatch", 'the schema allows only null here (xsi:nil="true")')

    return conv


def show(text: str) -> str:
    """A value quoted for a message, cut at 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


# Slot kinds of element properties.
K_LEAF, K_OBJECT, K_ARRAY, K_RUN, K_OTHER = range(5)

#: An element property's slot: (index, kind, key fragment, converter, rule, required, prop).
Slot = tuple[int, int, str, Converter | None, Rule, bool, Prop]
#: An attribute's slot: (key fragment, converter, required, position among the attributes).
AttrSlot = tuple[str, Converter, bool, int]


@dataclass(frozen=True, slots=True)
class ObjectTables:
    """An object rule's lookup tables, by Clark name."""

    slots: dict[str, Slot]
    attrs: dict[str, AttrSlot]
    #: Required unwrapped arrays outside groups: written as ``[]`` when no item is present.
    req_runs: tuple[Prop, ...]


def _key(rule: ObjectRule, p: Prop) -> str:
    """The key fragment a property's value is emitted with. A member of a ``nodeType: none``
    group gets a marker naming its group (``\\x00<n>\\x00"key":``): the object's parts are then
    sorted into the groups' own objects (see XmlWalker.gather_groups)."""
    if p.group is None:
        return p.key_json
    return f"\x00{rule.groups.index(p.group)}\x00{p.key_json}"


class Tables:
    """The converters and object tables of one translator, built on first use (rules live as
    long as the mapping, so their ids are stable keys). A race between threads builds the
    same value twice, harmlessly."""

    def __init__(self, safe_integers: bool) -> None:
        self.safe_integers = safe_integers
        self._converters: dict[int, Converter] = {}
        #: Read directly by the walker's hot loop (one dict lookup per element).
        self.objects: dict[int, ObjectTables] = {}

    def converter(self, rule: Rule) -> Converter:
        conv = self._converters.get(id(rule))
        if conv is None:
            assert isinstance(rule, ScalarRule)
            conv = make_converter(rule, self.safe_integers)
            self._converters[id(rule)] = conv
        return conv

    def object(self, rule: ObjectRule) -> ObjectTables:
        tables = self.objects.get(id(rule))
        if tables is not None:
            return tables
        slots: dict[str, Slot] = {}
        for p in rule.elem_props:
            r = p.rule
            conv: Converter | None = None
            if p.unwrapped:
                kind = K_RUN
                assert isinstance(r, ArrayRule) and r.items is not None
                if r.items.kind == SCALAR:
                    conv = self.converter(r.items)
            elif r.kind == SCALAR:
                kind = K_LEAF
                conv = self.converter(r)
            elif r.kind == OBJECT:
                kind = K_OBJECT
            elif r.kind == ARRAY:
                kind = K_ARRAY
            else:
                kind = K_OTHER
            slots[p.tag] = (p.index, kind, _key(rule, p), conv, r, p.required and not p.group, p)
        attrs: dict[str, AttrSlot] = {}
        for i, p in enumerate(rule.attr_props):
            attrs[p.tag] = (_key(rule, p), self.converter(p.rule), p.required and not p.group, i)
        req_runs = tuple(
            p for p in rule.elem_props if p.unwrapped and p.required and p.group is None
        )
        tables = ObjectTables(slots, attrs, req_runs)
        self.objects[id(rule)] = tables
        return tables
