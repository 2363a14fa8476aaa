"""Schema compilation, shared vocabulary: the keyword sets, schema locations (:class:`Loc`),
the folded schema view (:class:`View`), the result (:class:`Compiled`) and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from referencing import Registry

from proxy.errors import MappingError
from proxy.translate.checks import (
    ARRAY_KEYWORDS,
    NUMBER_KEYWORDS,
    OBJECT_KEYWORDS,
    STRING_KEYWORDS,
)
from proxy.translate.rules import (
    T_BOOLEAN,
    T_INTEGER,
    T_NUMBER,
    T_STRING,
    PathOptions,
    Root,
)

DIALECTS = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2020-12/schema#",
        "https://spec.openapis.org/oas/3.1/dialect/base",
        "https://spec.openapis.org/oas/3.2/dialect/base",
    }
)

ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "$vocabulary", "$defs",
        "definitions", "title", "description", "default", "examples", "example", "deprecated",
        "readOnly", "writeOnly", "format", "contentMediaType", "contentEncoding",
        "contentSchema", "externalDocs", "discriminator",
    }
)  # fmt: skip
STRUCTURAL = frozenset({"type", "properties", "items", "additionalProperties", "required"})
VALIDATION = (
    STRING_KEYWORDS | NUMBER_KEYWORDS | ARRAY_KEYWORDS | OBJECT_KEYWORDS | {"enum", "const"}
)
#: Pure validation keywords the rule tables don't evaluate: checked by jsonschema afterwards.
FALLBACK = frozenset(
    {
        "not", "if", "then", "else", "contains", "minContains", "maxContains",
        "dependentSchemas", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
    }
)  # fmt: skip
COMBINATORS = frozenset({"$ref", "allOf", "anyOf", "oneOf"})
UNSUPPORTED = {
    "prefixItems": "tuple arrays (prefixItems) have no XML shape here; use items",
    "patternProperties": "patternProperties cannot name XML elements; use additionalProperties",
    "$dynamicRef": "$dynamicRef is not supported; use $ref",
    "$recursiveRef": "$recursiveRef is not supported; use $ref",
    "$recursiveAnchor": "$recursiveAnchor is not supported",
    "dependencies": "'dependencies' is draft-07; use dependentRequired",
}
KNOWN = ANNOTATIONS | STRUCTURAL | VALIDATION | FALLBACK | COMBINATORS | {"xml", "nullable"}

TYPE_CODES = {"string": T_STRING, "number": T_NUMBER, "integer": T_INTEGER, "boolean": T_BOOLEAN}
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})


class Loc(NamedTuple):
    """A position in a schema document, for messages: ``<doc>#<pointer>``."""

    doc: str
    pointer: str
    base: str  # the URI relative references resolve against

    def child(self, *segs: object) -> Loc:
        p = self.pointer
        for s in segs:
            p += "/" + str(s).replace("~", "~0").replace("/", "~1")
        return Loc(self.doc, p, self.base)

    def __str__(self) -> str:
        return f"{self.doc}#{self.pointer}"


ABSENT: Any = object()


@dataclass
class View:
    """A schema position with ``$ref``/``allOf``/nullable unions folded in."""

    loc: Loc
    types: set[str] | None = None
    add_null: bool = False
    properties: dict[str, tuple[Any, Loc, Any]] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    additional: Any = ABSENT  # ABSENT | (schema, loc, resolver)
    closed: list[tuple[frozenset[str], Loc]] = field(default_factory=list)
    items: tuple[Any, Loc, Any] | None = None
    checks: list[tuple[str, Any, Loc]] = field(default_factory=list)
    xml: dict[str, Any] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)
    structural: bool = False  # anything besides annotations
    #: Identity of the schema that gives this view its content: a bare ``$ref`` (plus xml or
    #: annotations) shares its target's, so every reference to a definition shares one rule.
    origin: int = 0

    @property
    def nullable(self) -> bool:
        if self.add_null or (self.types is not None and "null" in self.types):
            return True
        # Untyped with an enum that lists null (``enum: [a, b, null]``).
        return self.types is None and any(
            kw == "enum" and isinstance(val, list) and None in val for kw, val, _ in self.checks
        )


@dataclass
class Compiled:
    root: Root
    warnings: list[str]
    namespaces: dict[str, str]  # prefix -> uri (the fixed map, including xsi when used)
    schema: Any | None  # the loaded root schema (for the jsonschema fallback)
    registry: Registry[Any] | None
    fallback: list[str]


def strip(ov: PathOptions | None) -> PathOptions | None:
    """The options node passed on to array items: same path (arrays are transparent), but the
    array's own settings are not the items' settings."""
    if ov is None:
        return None
    if not ov.children and ov.wildcard is None:
        return None
    return PathOptions(path=ov.path, children=ov.children, wildcard=ov.wildcard, used=True)


def clark(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}" if ns else local


def ns_of(clark: str) -> str:
    return clark[1:].split("}", 1)[0] if clark.startswith("{") else ""


def local_of(clark: str) -> str:
    return clark.rsplit("}", 1)[-1]


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def is_null_only(v: View) -> bool:
    if v.types == {"null"}:
        return True
    for kw, val, _ in v.checks:
        if kw == "const" and val is None:
            return True
        if kw == "enum" and isinstance(val, list) and val and all(x is None for x in val):
            return True
    return False


def single_scalar(v: View) -> str | None:
    if v.properties or v.items is not None or v.additional is not ABSENT:
        return None
    if v.types is None:
        return None
    rest = set(v.types) - {"null"}
    if {"integer", "number"} <= rest:
        rest.discard("integer")
    if len(rest) == 1 and next(iter(rest)) in TYPE_CODES:
        return next(iter(rest))
    return None


def object_check(checks: list[tuple[str, Any]]) -> Any:
    def check(keys: Any) -> str | None:
        n = len(keys)
        for kw, val in checks:
            if kw == "minProperties" and n < val:
                return f"has {n} properties, fewer than {val} (minProperties)"
            if kw == "maxProperties" and n > val:
                return f"has {n} properties, more than {val} (maxProperties)"
            if kw == "dependentRequired":
                for k, deps in val.items():
                    if k in keys:
                        for d in deps:
                            if d not in keys:
                                return f"{k!r} requires {d!r} (dependentRequired)"
        return None

    return check


def check_unused(trie: PathOptions, key_path: str) -> None:
    """Refuse inline options for paths the schema does not have (all applied ones are marked)."""
    for n in trie.walk():
        if n.has_settings and not n.used:
            name = (
                "xml"
                if n.xml is not None
                else "attributes"
                if n.attribute
                else "arrays"
                if n.array
                else "types"
            )
            raise MappingError(
                f"{key_path}.{name}./{'/'.join(n.path)}",
                "no such property in the schema",
            )
