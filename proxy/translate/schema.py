"""Compile a route mapping — JSON Schema 2020-12 with OpenAPI ``xml`` objects, plus inline
options — into the rule graph of :mod:`proxy.translate.rules`.

Runs once at start-up. Every problem is a :class:`~proxy.errors.MappingError` whose key path
points into the config (``routes[0].mapping.types./x``) or into the schema
(``routes[0].mapping.schema#/properties/items/xml``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import referencing.exceptions
import referencing.jsonschema
import yaml
from referencing import Registry, Resource

from proxy.errors import MappingError
from proxy.translate.checks import (
    ARRAY_KEYWORDS,
    NUMBER_KEYWORDS,
    OBJECT_KEYWORDS,
    STRING_KEYWORDS,
    compile_scalar_checks,
)
from proxy.translate.lexical import is_ncname
from proxy.translate.options import Options, _closest, check_xml_object
from proxy.translate.rules import (
    ANY,
    ARRAY,
    ATTRIBUTE,
    ELEMENT,
    GROUP,
    OBJECT,
    SCALAR,
    T_BOOLEAN,
    T_INTEGER,
    T_NULL,
    T_NUMBER,
    T_STRING,
    TEXT,
    XML_NS,
    XSI,
    AnyRule,
    ArrayRule,
    ObjectRule,
    PathOptions,
    Prop,
    Root,
    Rule,
    ScalarRule,
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


class _Loc(NamedTuple):
    """A position in a schema document, for messages: ``<doc>#<pointer>``."""

    doc: str
    pointer: str
    base: str  # the URI relative references resolve against

    def child(self, *segs: object) -> _Loc:
        p = self.pointer
        for s in segs:
            p += "/" + str(s).replace("~", "~0").replace("/", "~1")
        return _Loc(self.doc, p, self.base)

    def __str__(self) -> str:
        return f"{self.doc}#{self.pointer}"


_ABSENT: Any = object()


@dataclass
class _View:
    """A schema position with ``$ref``/``allOf``/nullable unions folded in."""

    loc: _Loc
    types: set[str] | None = None
    add_null: bool = False
    properties: dict[str, tuple[Any, _Loc, Any]] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    additional: Any = _ABSENT  # _ABSENT | (schema, loc, resolver)
    closed: list[tuple[frozenset[str], _Loc]] = field(default_factory=list)
    items: tuple[Any, _Loc, Any] | None = None
    checks: list[tuple[str, Any, _Loc]] = field(default_factory=list)
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


class SchemaCompiler:
    def __init__(self, opts: Options, *, base_dir: Path, key_path: str) -> None:
        self.opts = opts
        self.base_dir = base_dir
        self.key_path = key_path
        self.warnings: list[str] = []
        self.fallback: list[str] = []
        self.trie = opts.trie()
        self._memo: dict[tuple[Any, ...], Rule] = {}
        self._docs: dict[str, str] = {}  # doc URI -> display name
        self._doc_files: dict[str, Path] = {}
        self._main_dir: Path = base_dir
        self._main_base: str | None = None
        # namespaces
        self.prefix_of: dict[str, str] = {uri: p for p, uri in opts.namespaces.items()}
        self.uri_of: dict[str, str] = dict(opts.namespaces)
        self._used_ns: dict[str, str] = {}  # uri -> where first used (for messages)
        self._attr_ns: dict[str, str] = {}
        self._named: list[tuple[Any, str, str, bool]] = []  # (obj, ns, local, is_attr)
        self.uses_nil = False
        self.uses_any = False
        self._no_ns_elements: str | None = None

    # --- entry -------

    def compile(self) -> Compiled:
        schema: Any = None
        registry: Registry[Any] | None = None
        if self.opts.schema is not None:
            schema, registry, loc, resolver = self._load_root(self.opts.schema)
            view = self.view(schema, loc, resolver)
            root_rule_view: _View | None = view
        else:
            root_rule_view = None
        root = self._root(root_rule_view, schema, registry)
        self._check_unused()
        namespaces = self._finalise(root)
        warnings = list(dict.fromkeys(self.warnings))
        return Compiled(root, warnings, namespaces, schema, registry, self.fallback)

    # --- loading and references -------

    def _load_file(self, path: Path, where: str) -> Any:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingError(
                where, f"cannot read schema '{path}': {exc.strerror or exc}"
            ) from None
        try:
            if path.suffix in (".yaml", ".yml"):
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise MappingError(where, f"'{path}' is not valid JSON/YAML: {exc}") from None

    def _load_root(self, rel: str) -> tuple[Any, Registry[Any], _Loc, Any]:
        where = f"{self.key_path}.schema"
        path = (self.base_dir / rel).resolve()
        contents = self._load_file(path, where)
        if not isinstance(contents, dict | bool):
            raise MappingError(where, "the schema must be a JSON object")
        if isinstance(contents, dict):
            dialect = contents.get("$schema")
            if dialect is not None and dialect not in DIALECTS:
                raise MappingError(
                    f"{where}#/$schema",
                    f"unsupported dialect {dialect!r}: JSON Schema draft 2020-12 only",
                )
        file_uri = path.as_uri()
        uri = file_uri
        if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
            uri = urljoin(file_uri, contents["$id"])
        uri = urldefrag(uri)[0]
        self._main_base = uri
        self._main_dir = path.parent
        self._docs[uri] = where
        self._docs[file_uri] = where
        self._doc_files[uri] = path
        resource = Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012
        )
        registry: Registry[Any] = Registry(retrieve=self._retrieve).with_resource(uri, resource)
        if file_uri != uri:
            registry = registry.with_resource(file_uri, resource)
        registry = registry.crawl()
        return contents, registry, _Loc(where, "", uri), registry.resolver(base_uri=uri)

    def _retrieve(self, uri: str) -> Resource[Any]:
        """Local files only: ``file:`` URIs, or URIs under the main schema's ``$id`` mapped to
        the main schema's directory. Never the network."""
        path: Path | None = None
        parts = urlsplit(uri)
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
        elif self._main_base and uri.startswith(self._main_base.rsplit("/", 1)[0] + "/"):
            rel = uri[len(self._main_base.rsplit("/", 1)[0]) + 1 :]
            path = (self._main_dir / unquote(rel)).resolve()
        if path is None or not path.is_file():
            raise referencing.exceptions.NoSuchResource(ref=uri)
        contents = self._load_file(path, f"{self.key_path}.schema")
        try:
            name = str(path.relative_to(self.base_dir))
        except ValueError:
            name = str(path)
        self._docs.setdefault(uri, name)
        return Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012
        )

    def _lookup(self, ref: object, loc: _Loc, resolver: Any) -> tuple[Any, _Loc, Any]:
        where = str(loc.child("$ref"))
        if not isinstance(ref, str):
            raise MappingError(where, f"$ref must be a string, got {ref!r}")
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            detail = (
                str(exc) if not isinstance(exc, referencing.exceptions.PointerToNowhere) else ""
            )
            raise MappingError(
                where, f"$ref {ref!r} does not resolve" + (f": {detail}" if detail else "")
            ) from None
        target = urljoin(loc.base, ref)
        doc, frag = urldefrag(target)
        display = self._docs.get(doc, doc)
        pointer = unquote(frag) if frag.startswith("/") or frag == "" else f"(anchor {frag})"
        return resolved.contents, _Loc(display, pointer, doc), resolved.resolver

    # --- views -------

    def _check_keywords(self, schema: Mapping[str, Any], loc: _Loc) -> None:
        for k in schema:
            if not isinstance(k, str):
                raise MappingError(str(loc), f"keyword {k!r} is not a string")
            if k.startswith("x-") or k in self.opts.extra_keywords:
                continue
            if k in UNSUPPORTED:
                raise MappingError(str(loc.child(k)), f"unsupported construct: {UNSUPPORTED[k]}")
            if k not in KNOWN:
                hint = _closest(k, KNOWN)
                raise MappingError(
                    str(loc),
                    f"unknown keyword {k!r}"
                    + (f" (did you mean {hint!r}?)" if hint else "")
                    + "; list vendor keywords in mapping.extra_keywords",
                )

    def view(self, schema: Any, loc: _Loc, resolver: Any, _stack: tuple[int, ...] = ()) -> _View:
        if schema is True:
            return _View(loc)
        if schema is False:
            raise MappingError(str(loc), "the schema is 'false': no value can be translated here")
        if not isinstance(schema, Mapping):
            raise MappingError(str(loc), "a schema must be an object or a boolean")
        if id(schema) in _stack:
            raise MappingError(str(loc), "$ref cycle that never reaches a schema with content")
        stack = (*_stack, id(schema))
        self._check_keywords(schema, loc)
        if "$id" in schema and loc.pointer:
            sub = Resource.from_contents(
                schema, default_specification=referencing.jsonschema.DRAFT202012
            )
            resolver = resolver.in_subresource(sub)
            loc = _Loc(loc.doc, loc.pointer, urljoin(loc.base, str(schema["$id"])))
        v = _View(loc, origin=id(schema))
        self._local(v, schema, loc, resolver)
        if "$ref" in schema:
            target, tloc, tres = self._lookup(schema["$ref"], loc, resolver)
            w = self.view(target, tloc, tres, stack)
            bare = not v.structural and not any(k in schema for k in ("allOf", "anyOf", "oneOf"))
            self._merge(v, w, loc)
            if bare:
                v.origin = w.origin
        if "allOf" in schema:
            branches = schema["allOf"]
            if not isinstance(branches, list) or not branches:
                raise MappingError(str(loc.child("allOf")), "must be a non-empty array")
            for i, sub in enumerate(branches):
                self._merge(v, self.view(sub, loc.child("allOf", i), resolver, stack), loc)
        for kw in ("anyOf", "oneOf"):
            if kw in schema:
                self._merge(v, self._union(schema[kw], kw, loc, resolver, stack), loc)
        for kw in schema:
            if kw in FALLBACK:
                v.fallback.append(str(loc.child(kw)))
        return v

    def _local(self, v: _View, schema: Mapping[str, Any], loc: _Loc, resolver: Any) -> None:
        if "type" in schema:
            t = schema["type"]
            names = t if isinstance(t, list) else [t]
            if not names or not all(isinstance(n, str) and n in JSON_TYPES for n in names):
                raise MappingError(str(loc.child("type")), f"not a JSON Schema type: {t!r}")
            v.types = set(names)
            v.structural = True
        if schema.get("nullable") is True:
            v.add_null = True
        if "properties" in schema:
            props = schema["properties"]
            if not isinstance(props, Mapping):
                raise MappingError(str(loc.child("properties")), "must be an object")
            for k, sub in props.items():
                v.properties[k] = (sub, loc.child("properties", k), resolver)
            v.structural = True
        if "required" in schema:
            req = schema["required"]
            if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
                raise MappingError(str(loc.child("required")), "must be an array of names")
            v.required.extend(r for r in req if r not in v.required)
            v.structural = True
        if "additionalProperties" in schema:
            v.additional = (
                schema["additionalProperties"],
                loc.child("additionalProperties"),
                resolver,
            )
            if schema["additionalProperties"] is False:
                v.closed.append((frozenset(schema.get("properties", {})), loc))
            v.structural = True
        if "items" in schema:
            if isinstance(schema["items"], list):
                raise MappingError(
                    str(loc.child("items")),
                    "unsupported construct: items as an array (tuple validation)",
                )
            v.items = (schema["items"], loc.child("items"), resolver)
            v.structural = True
        for kw in VALIDATION:
            if kw in schema:
                v.checks.append((kw, schema[kw], loc.child(kw)))
                v.structural = True
        if "xml" in schema:
            v.xml = check_xml_object(schema["xml"], str(loc.child("xml")))

    def _merge(self, v: _View, w: _View, loc: _Loc) -> None:
        """Fold ``w`` (a $ref target / allOf branch) into ``v``: both apply (intersection)."""
        if w.types is not None:
            if v.types is None:
                v.types = set(w.types)
            else:
                both = v.types & w.types
                if "integer" in v.types and "number" in w.types:
                    both.add("integer")
                if "integer" in w.types and "number" in v.types:
                    both.add("integer")
                if not both:
                    raise MappingError(
                        str(loc),
                        f"types {sorted(v.types)} and {sorted(w.types)} exclude each other",
                    )
                v.types = both
        v.add_null = v.add_null or w.add_null
        for k, p in w.properties.items():
            if k in v.properties:
                raise MappingError(
                    str(p[1]),
                    f"property {k!r} is also defined at {v.properties[k][1]}; "
                    "one definition per property",
                )
            v.properties[k] = p
        v.required.extend(r for r in w.required if r not in v.required)
        if w.additional is not _ABSENT:
            if v.additional is not _ABSENT and not (
                v.additional[0] is False and w.additional[0] is False
            ):
                raise MappingError(str(w.additional[1]), "additionalProperties defined twice")
            if v.additional is _ABSENT:
                v.additional = w.additional
        v.closed.extend(w.closed)
        if w.items is not None:
            if v.items is not None:
                raise MappingError(str(w.items[1]), f"items also defined at {v.items[1]}")
            v.items = w.items
        v.checks.extend(w.checks)
        v.xml = {**w.xml, **v.xml}  # the referring schema's xml object wins
        v.fallback.extend(w.fallback)
        v.structural = v.structural or w.structural

    def _union(
        self, branches: Any, kw: str, loc: _Loc, resolver: Any, stack: tuple[int, ...]
    ) -> _View:
        where = loc.child(kw)
        if not isinstance(branches, list) or not branches:
            raise MappingError(str(where), "must be a non-empty array")
        views = [self.view(b, where.child(i), resolver, stack) for i, b in enumerate(branches)]
        nulls = [w for w in views if _is_null_only(w)]
        others = [w for w in views if not _is_null_only(w)]
        if len(others) == 1:
            out = others[0]
            if nulls:
                out.add_null = True
            return out
        kinds = {_single_scalar(w) for w in others}
        if len(kinds) == 1 and None not in kinds:
            # Same scalar type in every branch: the type is known; which branch matches is a
            # validation question the jsonschema fallback answers.
            out = _View(loc, types={kinds.pop()}, add_null=bool(nulls), structural=True)
            out.fallback.append(str(where))
            return out
        raise MappingError(
            str(where),
            f"unsupported construct: {kw} with {len(others)} alternatives of different shapes "
            "(an XML text or element cannot say which one it is); only 'X or null' unions "
            "and alternatives of one scalar type can be mapped",
        )

    # --- rules -------

    def _kind(self, v: _View) -> tuple[int, int | None]:
        """(kind, scalar type) of a view; raises on ambiguous unions."""
        types = v.types
        if types is None:
            if (
                v.properties
                or v.additional is not _ABSENT
                or v.required
                or any(k in OBJECT_KEYWORDS for k, _, _ in v.checks)
            ):
                return OBJECT, None
            if v.items is not None or any(k in ARRAY_KEYWORDS for k, _, _ in v.checks):
                return ARRAY, None
            values = [val for k, val, _ in v.checks if k == "enum"]
            values += [[val] for k, val, _ in v.checks if k == "const"]
            if values:
                inferred = {_json_type(x) for vals in values for x in vals}
                if inferred == {"null"}:
                    return SCALAR, T_NULL
                inferred.discard("null")
                if inferred <= {"integer", "number"}:
                    inferred = {"number"} if "number" in inferred else {"integer"}
                if len(inferred) == 1 and next(iter(inferred)) in TYPE_CODES:
                    return SCALAR, TYPE_CODES[next(iter(inferred))]
                raise MappingError(
                    str(v.loc), f"enum/const mixes types {sorted(inferred)}; add a single 'type'"
                )
            if any(k in STRING_KEYWORDS for k, _, _ in v.checks):
                return SCALAR, T_STRING
            if any(k in NUMBER_KEYWORDS for k, _, _ in v.checks):
                return SCALAR, T_NUMBER
            return ANY, None
        rest = set(types) - {"null"}
        if {"integer", "number"} <= rest:
            rest.discard("integer")
        if not rest:
            return SCALAR, T_NULL
        if len(rest) > 1:
            raise MappingError(
                str(v.loc.child("type")),
                f"ambiguous type union {sorted(types)}: XML text cannot tell "
                f"{' from '.join(sorted(rest))}; use one type (plus null)",
            )
        t = rest.pop()
        if t == "object":
            return OBJECT, None
        if t == "array":
            return ARRAY, None
        return SCALAR, TYPE_CODES[t]

    def _note_fallback(self, v: _View) -> None:
        for where in v.fallback:
            if where not in self.fallback:
                self.fallback.append(where)
        for kw, _, where in v.checks:
            if (
                kw in ("enum", "const")
                and self._kind_safe(v) in (OBJECT, ARRAY)
                and str(where) not in self.fallback
            ):
                self.fallback.append(str(where))

    def _kind_safe(self, v: _View) -> int:
        try:
            return self._kind(v)[0]
        except MappingError:
            return ANY

    def rule(
        self,
        v: _View,
        node: Any,
        path: tuple[str, ...],
        ns: str,
        ov: PathOptions | None,
        item_name: str,
    ) -> Rule:
        """The content rule of an element (its attributes, text and children)."""
        self._note_fallback(v)
        kind, t = self._kind(v)
        if ov is not None and not any(n.has_settings for n in ov.walk()):
            ov = None  # nothing set below this path: the rule can be shared (and memoised)
        # The default item name only shapes arrays; objects and scalars share across uses.
        named = item_name if kind == ARRAY else ""
        memo_key = (v.origin or id(node), ns, named) if ov is None else None
        if memo_key is not None and memo_key in self._memo:
            return self._memo[memo_key]
        if kind == SCALAR:
            assert t is not None
            if ov is not None and (ov.array or ov.type is not None):
                self._typed_by_schema(ov)
            if t == T_NULL:
                self.uses_nil = True
                return ScalarRule(SCALAR, str(v.loc), True, T_NULL)
            checks = [(k, val) for k, val, _ in v.checks]
            rule: Rule = ScalarRule(
                SCALAR,
                str(v.loc),
                v.nullable,
                t,
                compile_scalar_checks(t, checks),
                keywords=tuple(checks),
            )
            if v.nullable:
                self.uses_nil = True
        elif kind == OBJECT:
            if ov is not None and (ov.array or ov.type is not None):
                self._typed_by_schema(ov)
            rule = ObjectRule(OBJECT, str(v.loc), v.nullable)
            if memo_key is not None:
                self._memo[memo_key] = rule
            self._object(rule, v, path, ns, ov)
            if v.nullable:
                self.uses_nil = True
        elif kind == ARRAY:
            if ov is not None and ov.type is not None:
                self._typed_by_schema(ov)
            rule = ArrayRule(ARRAY, str(v.loc), v.nullable)
            if memo_key is not None:
                self._memo[memo_key] = rule
            self._array(rule, v, path, ns, ov, item_name)
            if v.nullable:
                self.uses_nil = True
        else:
            rule = self._any(v, path, ov)
        if memo_key is not None:
            self._memo[memo_key] = rule
        return rule

    def _any(self, v: _View | None, path: tuple[str, ...], ov: PathOptions | None) -> Rule:
        """An unconstrained subtree: the default convention, or a scalar/array from options."""
        self.uses_any = True
        self.uses_nil = True
        if ov is not None:
            for n in ov.walk():
                if n.xml is not None:
                    raise MappingError(
                        f"{self.key_path}.xml./{'/'.join(n.path)}",
                        "xml overrides apply where the schema types a property; this path is "
                        "schemaless (use attributes/arrays/types here)",
                    )
                n.used = True
        where = f" ({v.loc})" if v is not None else ""
        shown = "/" + "/".join(path)
        if ov is not None and ov.type is not None:
            return ScalarRule(SCALAR, where, ov.nullable, ov.type)
        if v is not None:
            self.warnings.append(
                f"{shown}: the schema{where} does not constrain this value; it is translated by "
                "the default convention (@attributes, #text), so arrays and scalar types are "
                "only as good as each document shows"
            )
        return AnyRule(ANY, where, True, ov)

    def _typed_by_schema(self, ov: PathOptions) -> None:
        name = "arrays" if ov.array else "types"
        raise MappingError(
            f"{self.key_path}.{name}./{'/'.join(ov.path)}",
            "the schema already types this property (arrays/types are for schemaless paths; "
            "change the schema instead)",
        )

    def _object(
        self, rule: ObjectRule, v: _View, path: tuple[str, ...], ns: str, ov: PathOptions | None
    ) -> None:
        props: list[Prop] = []
        required = set(v.required)
        for key, (sub, sloc, sres) in v.properties.items():
            if sub is False:
                continue  # the property is forbidden: unknown to the tables, hence refused
            pov = ov.child(key) if ov is not None else None
            props.append(self._prop(key, sub, sloc, sres, (*path, key), ns, pov, key in required))
        declared = {p.key for p in props}
        for keys, where in v.closed:
            for k in declared - keys:
                raise MappingError(
                    str(v.properties[k][1]),
                    f"property {k!r} is forbidden by additionalProperties: false at {where}",
                )
        extra: Rule | None = None
        if v.additional is not _ABSENT and v.additional[0] is not False:
            sub, aloc, ares = v.additional
            aov = ov.wildcard if ov is not None else None
            av = self.view(sub, aloc, ares)
            ak, _ = self._kind(av)
            if ak == ARRAY:
                raise MappingError(
                    str(aloc), "additionalProperties of array type have no XML shape; wrap them"
                )
            extra = (
                self._any(av, (*path, "*"), aov)
                if ak == ANY
                else self.rule(av, sub, (*path, "*"), ns, aov, "item")
            )
            rule.extra_ns = ns
            self._use_ns(ns, str(aloc), attr=False)
            rule.extra_prefix = ns  # resolved to a prefix in _finalise
        for r in required:
            if r not in declared and extra is None:
                raise MappingError(
                    str(v.loc.child("required")),
                    f"required property {r!r} is not declared in properties",
                )
        attrs: dict[str, Prop] = {}
        elems: dict[str, Prop] = {}
        text: Prop | None = None
        index = 0
        flat: list[Prop] = []
        for p in props:
            if p.node != GROUP:
                flat.append(p)
                continue
            # The group's members, as the parent's own nodes (clones that know their group).
            assert isinstance(p.rule, ObjectRule)
            for m in p.rule.props:
                clone = dataclasses.replace(m, group=p, index=-1)
                flat.append(clone)
                if m.node != TEXT:
                    self._named.append(
                        (clone, _ns_of(m.tag), _local_of(m.tag), m.node == ATTRIBUTE)
                    )
        for p in flat:
            if p.node == ATTRIBUTE:
                if p.tag in attrs:
                    raise MappingError(
                        str(v.loc),
                        f"properties {attrs[p.tag].key!r} and {p.key!r} are both "
                        f"attribute {p.tag!r}",
                    )
                attrs[p.tag] = p
            elif p.node == TEXT:
                if text is not None:
                    raise MappingError(
                        str(v.loc),
                        f"properties {text.key!r} and {p.key!r} are both the text content",
                    )
                text = p
            else:
                if p.tag in elems:
                    raise MappingError(
                        str(v.loc),
                        f"properties {elems[p.tag].key!r} and {p.key!r} are both element {p.tag!r}",
                    )
                p.index = index
                index += 1
                elems[p.tag] = p
        if text is not None and (elems or extra is not None or any(p.node == GROUP for p in props)):
            raise MappingError(
                str(v.loc),
                f"property {text.key!r} is the text content (nodeType text) next to child "
                "elements: that is mixed content, which has no lossless JSON form",
            )
        rule.props = tuple(props)
        rule.by_key = {p.key: p for p in props}
        rule.attrs = attrs
        rule.elems = elems
        rule.attr_props = tuple(p for p in flat if p.node == ATTRIBUTE)
        rule.elem_props = tuple(p for p in flat if p.node == ELEMENT)
        rule.groups = tuple(p for p in props if p.node == GROUP)
        rule.text = text
        rule.required = frozenset(required)
        rule.extra = extra
        obj_checks = [(k, val) for k, val, _ in v.checks if k in OBJECT_KEYWORDS]
        rule.check = _object_check(obj_checks) if obj_checks else None
        for p in props:
            if (
                p.node == TEXT
                and not p.required
                and isinstance(p.rule, ScalarRule)
                and p.rule.type == T_STRING
            ):
                self.warnings.append(
                    f'/{"/".join((*path, p.key))}: optional text content; "" and an absent '
                    "property both mean no text, and XML → JSON gives it absent"
                )

    def _elem_ns(self, xml: Mapping[str, Any], inherited: str, where: str) -> str:
        if "namespace" in xml:
            uri = xml["namespace"]
            if "prefix" in xml:
                self._bind(xml["prefix"], uri, where)
            return str(uri)
        if "prefix" in xml:
            prefix = xml["prefix"]
            if prefix not in self.uri_of:
                raise MappingError(
                    where,
                    f"prefix {prefix!r} has no namespace (add xml.namespace or list it "
                    "in mapping.namespaces)",
                )
            return self.uri_of[prefix]
        return inherited

    def _bind(self, prefix: str, uri: str, where: str) -> None:
        if uri in self.prefix_of:
            if (
                self.prefix_of[uri] != prefix
                and self.opts.namespaces.get(self.prefix_of[uri]) != uri
            ):
                raise MappingError(
                    where, f"namespace {uri!r} already has prefix {self.prefix_of[uri]!r}"
                )
            return
        if prefix in self.uri_of and self.uri_of[prefix] != uri:
            raise MappingError(
                where, f"prefix {prefix!r} is already bound to {self.uri_of[prefix]!r}"
            )
        self.prefix_of[uri] = prefix
        self.uri_of[prefix] = uri

    def _use_ns(self, ns: str, where: str, *, attr: bool) -> None:
        if ns:
            self._used_ns.setdefault(ns, where)
            if attr:
                self._attr_ns.setdefault(ns, where)
        elif not attr:
            self._no_ns_elements = self._no_ns_elements or where

    def _prop(
        self,
        key: str,
        sub: Any,
        loc: _Loc,
        resolver: Any,
        path: tuple[str, ...],
        parent_ns: str,
        pov: PathOptions | None,
        required: bool,
    ) -> Prop:
        v = self.view(sub, loc, resolver)
        xml = dict(v.xml)
        if pov is not None:
            if pov.xml is not None:
                xml.update(pov.xml)
                pov.used = True
            if pov.attribute:
                xml["attribute"] = True
                pov.used = True
        where = str(loc.child("xml")) if isinstance(sub, Mapping) and "xml" in sub else str(loc)
        node_type = xml.get("nodeType") or ("attribute" if xml.get("attribute") else None)
        kind, t = self._kind(v)
        if kind == ANY and pov is not None and pov.type is not None:
            kind, t = SCALAR, pov.type
        name = xml.get("name", key)
        if node_type in ("attribute", "text", "cdata"):
            what = "an attribute" if node_type == "attribute" else "text content"
            if kind != SCALAR or t == T_NULL:
                raise MappingError(where, f"property {key!r} is {what} but not a scalar schema")
            if v.nullable or (pov is not None and pov.nullable):
                raise MappingError(
                    where, f"property {key!r} is {what}, which cannot be null (no xsi:nil there)"
                )
            rule = self.rule(v, sub, path, parent_ns, pov, key)
            if not is_ncname(name):
                raise MappingError(where, f"not an XML name: {name!r}")
            if node_type == "attribute":
                ns = str(xml["namespace"]) if "namespace" in xml else ""
                if "namespace" in xml and "prefix" in xml:
                    self._bind(xml["prefix"], ns, where)
                elif "prefix" in xml:
                    ns = self._elem_ns(xml, "", where)
                self._use_ns(ns, where, attr=True)
                p = Prop(key, ATTRIBUTE, _clark(ns, name), name, rule, required)
                self._named.append((p, ns, name, True))
                return p
            assert isinstance(rule, ScalarRule)
            rule.cdata = node_type == "cdata"
            return Prop(key, TEXT, "", "", rule, required)
        if not is_ncname(name):
            raise MappingError(where, f"not an XML name: {name!r}")
        if kind == ARRAY:
            wrapped = bool(xml.get("wrapped")) or node_type == "element"
            if node_type == "none":
                wrapped = False
            if wrapped:
                ns = self._elem_ns(xml, parent_ns, where)
                self._use_ns(ns, where, attr=False)
                rule = self.rule(v, sub, path, ns, pov, key)
                p = Prop(key, ELEMENT, _clark(ns, name), name, rule, required)
                self._named.append((p, ns, name, False))
                return p
            if v.nullable:
                raise MappingError(
                    where,
                    f"array {key!r} is unwrapped (no element of its own), so it cannot be "
                    "null; make it wrapped: true or not nullable",
                )
            # Unwrapped: the items are siblings; array-level xml.namespace applies to them.
            items_ns = self._elem_ns(xml, parent_ns, where)
            rule = self.rule(v, sub, path, items_ns, pov, key)
            assert isinstance(rule, ArrayRule)
            if isinstance(rule.items, ArrayRule) and not rule.item_tag:
                raise MappingError(where, "internal: unnamed item element")
            min_items = rule.min_items
            if not required and min_items == 0:
                self.warnings.append(
                    f"/{'/'.join(path)}: optional unwrapped array; [] and an absent property "
                    "both mean no elements, and XML → JSON gives it absent"
                )
            p = Prop(key, ELEMENT, rule.item_tag, "", rule, required, unwrapped=True)
            self._named.append((p, _ns_of(rule.item_tag), _local_of(rule.item_tag), False))
            return p
        if node_type == "none":
            # An object without a node of its own: its properties' nodes sit in the parent.
            if kind != OBJECT:
                raise MappingError(where, f"nodeType none on {key!r}: only arrays and objects")
            if v.nullable:
                raise MappingError(
                    where, f"property {key!r} has no element (nodeType none), so it cannot be null"
                )
            ns = self._elem_ns(xml, parent_ns, where)
            rule = self.rule(v, sub, path, ns, pov, key)
            assert isinstance(rule, ObjectRule)
            if rule.text is not None or rule.extra is not None or rule.groups:
                raise MappingError(
                    where,
                    f"nodeType none on {key!r}: its properties must be plain elements and "
                    "attributes (no text content, additionalProperties or nested nodeType none)",
                )
            if rule.check is not None:
                raise MappingError(
                    where,
                    f"nodeType none on {key!r}: minProperties/maxProperties/"
                    "dependentRequired are not supported on it",
                )
            if not required:
                self.warnings.append(
                    f"/{'/'.join(path)}: optional object without an element (nodeType none); "
                    "{} and an absent property both mean no nodes, and XML → JSON gives it absent"
                )
            return Prop(key, GROUP, "", "", rule, required)
        ns = self._elem_ns(xml, parent_ns, where)
        self._use_ns(ns, where, attr=False)
        rule = self._any(v, path, pov) if kind == ANY else self.rule(v, sub, path, ns, pov, key)
        if isinstance(rule, ScalarRule) and node_type is None and xml.get("x-cdata"):
            rule.cdata = True
        p = Prop(key, ELEMENT, _clark(ns, name), name, rule, required)
        self._named.append((p, ns, name, False))
        return p

    def _array(
        self,
        rule: ArrayRule,
        v: _View,
        path: tuple[str, ...],
        ns: str,
        ov: PathOptions | None,
        default_item: str,
    ) -> None:
        """``ns`` is the namespace item elements default to (the wrapper's, or the parent's
        for an unwrapped array)."""
        if v.items is not None:
            sub, iloc, ires = v.items
        else:
            sub, iloc, ires = True, v.loc.child("items"), None
        iv = self.view(sub, iloc, ires) if ires is not None else _View(iloc)
        iov = ov.items if ov is not None else None
        ixml = dict(iv.xml)
        if iov is not None and iov.xml is not None:
            ixml.update(iov.xml)
            iov.used = True
        where = str(iloc.child("xml")) if isinstance(sub, Mapping) and "xml" in sub else str(iloc)
        if ixml.get("attribute") or ixml.get("nodeType") in ("attribute", "text", "cdata"):
            raise MappingError(where, "array items must be elements")
        name = ixml.get("name", default_item)
        if not is_ncname(name):
            raise MappingError(where, f"not an XML name: {name!r}")
        item_ns = self._elem_ns(ixml, ns, where)
        self._use_ns(item_ns, where, attr=False)
        ik, _ = self._kind(iv)
        if ik == ARRAY and (ixml.get("wrapped") is False or ixml.get("nodeType") == "none"):
            raise MappingError(
                where, "an array of arrays needs each inner array wrapped in its item element"
            )
        if ik == ANY:
            items: Rule = self._any(iv if v.items is not None else None, path, ov)
        else:
            # Arrays are transparent in option paths: the items' properties are at ``path``.
            items = self.rule(iv, sub, path, item_ns, _strip(ov), name)
        rule.items = items
        rule.set_item(_clark(item_ns, name), name)
        self._named.append((rule, item_ns, name, False))
        for kw, val, _ in v.checks:
            if kw == "minItems":
                rule.min_items = int(val)
            elif kw == "maxItems":
                rule.max_items = (
                    int(val) if rule.max_items is None else min(rule.max_items, int(val))
                )
            elif kw == "uniqueItems" and val is True:
                rule.unique = True

    def _root(self, v: _View | None, schema: Any, registry: Any) -> Root:
        xml = v.xml if v is not None else {}
        where = f"{self.key_path}.root"
        if self.opts.root is not None:
            prefix, _, local = self.opts.root.rpartition(":")
            if prefix:
                if prefix not in self.uri_of:
                    raise MappingError(where, f"prefix {prefix!r} is not in mapping.namespaces")
                ns = self.uri_of[prefix]
            elif "namespace" in xml:
                ns = self._elem_ns(xml, "", where)
            else:
                ns = self.uri_of.get("", "")
        elif "name" in xml:
            local = xml["name"]
            ns = self._elem_ns(xml, self.uri_of.get("", ""), where)
        elif v is None:
            local, ns = "", ""
        else:
            raise MappingError(
                where, "no root element name: set mapping.root or xml.name at the schema's top"
            )
        if v is None:
            rule: Rule = self._any(None, (), self.trie)
            self.warnings.insert(
                0,
                "no schema: arrays and scalar types are only as good as each document shows "
                "(a one-item list becomes a single value, numbers stay strings) unless they "
                "are listed in mapping.arrays / mapping.types",
            )
        else:
            if xml.get("attribute") or xml.get("nodeType") in (
                "attribute",
                "text",
                "cdata",
                "none",
            ):
                raise MappingError(f"{where}", "the root must be an element")
            kind, _ = self._kind(v)
            rule = (
                self._any(v, (), self.trie)
                if kind == ANY
                else self.rule(v, schema, (), ns, self.trie, local)
            )
        if local:
            self._use_ns(ns, where, attr=False)
        root = Root(_clark(ns, local) if local else "", local, rule)
        if local:
            self._named.append((root, ns, local, False))
        return root

    def _check_unused(self) -> None:
        for n in self.trie.walk():
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
                    f"{self.key_path}.{name}./{'/'.join(n.path)}",
                    "no such property in the schema",
                )

    def _finalise(self, root: Root) -> dict[str, str]:
        """Give every namespace its fixed prefix and write every name."""
        if self.uses_nil:
            self._bind("xsi", XSI, f"{self.key_path}.namespaces.xsi")
        if (
            "" not in self.uri_of
            and root.tag
            and _ns_of(root.tag)
            and _ns_of(root.tag) not in self.prefix_of
        ):
            self._bind("", _ns_of(root.tag), f"{self.key_path}.root")
        for uri, where in self._used_ns.items():
            if uri == XML_NS:
                self.prefix_of[uri] = "xml"
                continue
            if uri not in self.prefix_of:
                raise MappingError(
                    where,
                    f"namespace {uri!r} has no prefix: set xml.prefix or list it in "
                    "mapping.namespaces",
                )
        for uri, where in self._attr_ns.items():
            if self.prefix_of.get(uri) == "":
                raise MappingError(
                    where,
                    f"an attribute in namespace {uri!r} needs a prefix (the default "
                    "namespace does not apply to attributes); add one in mapping.namespaces",
                )
        if "" in self.uri_of and self._no_ns_elements is not None:
            raise MappingError(
                self._no_ns_elements,
                f"element in no namespace while {self.uri_of['']!r} is the default namespace; "
                "give that namespace a prefix",
            )
        for obj, ns, local, _is_attr in self._named:
            prefix = self.prefix_of.get(ns, "") if ns else ""
            qname = f"{prefix}:{local}" if prefix else local
            if isinstance(obj, Prop):
                obj.qname = qname
                from proxy.translate.rules import set_tags

                set_tags(obj, qname)
            elif isinstance(obj, ArrayRule):
                obj.set_item(obj.item_tag, qname)
            else:
                obj.qname = qname
        # Object rules with additionalProperties store the namespace; turn it into a prefix.
        seen: set[int] = set()
        self._fix_extra(root.rule, seen)
        declared = []
        used = set(self._used_ns)
        if self.uses_nil:
            used.add(XSI)
        if self.uses_any:
            used.update(self.uri_of.values())
        for prefix, uri in sorted(self.uri_of.items(), key=lambda pu: (pu[0] != "", pu[0])):
            if uri in used and uri != XML_NS:
                declared.append(f' xmlns="{uri}"' if prefix == "" else f' xmlns:{prefix}="{uri}"')
        root.declarations = "".join(declared)
        return {p: u for p, u in self.uri_of.items() if u in used}

    def _fix_extra(self, rule: Rule, seen: set[int]) -> None:
        if id(rule) in seen:
            return
        seen.add(id(rule))
        if isinstance(rule, ObjectRule):
            if rule.extra is not None:
                ns = rule.extra_ns
                rule.extra_prefix = self.prefix_of.get(ns, "") if ns else ""
                self._fix_extra(rule.extra, seen)
            for p in rule.props:
                self._fix_extra(p.rule, seen)
        elif isinstance(rule, ArrayRule) and rule.items is not None:
            self._fix_extra(rule.items, seen)


def _strip(ov: PathOptions | None) -> PathOptions | None:
    """The options node passed on to array items: same path (arrays are transparent), but the
    array's own settings are not the items' settings."""
    if ov is None:
        return None
    if not ov.children and ov.wildcard is None:
        return None
    return PathOptions(path=ov.path, children=ov.children, wildcard=ov.wildcard, used=True)


def _clark(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}" if ns else local


def _ns_of(clark: str) -> str:
    return clark[1:].split("}", 1)[0] if clark.startswith("{") else ""


def _local_of(clark: str) -> str:
    return clark.rsplit("}", 1)[-1]


def _json_type(value: object) -> str:
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


def _is_null_only(v: _View) -> bool:
    if v.types == {"null"}:
        return True
    for kw, val, _ in v.checks:
        if kw == "const" and val is None:
            return True
        if kw == "enum" and isinstance(val, list) and val and all(x is None for x in val):
            return True
    return False


def _single_scalar(v: _View) -> str | None:
    if v.properties or v.items is not None or v.additional is not _ABSENT:
        return None
    if v.types is None:
        return None
    rest = set(v.types) - {"null"}
    if {"integer", "number"} <= rest:
        rest.discard("integer")
    if len(rest) == 1 and next(iter(rest)) in TYPE_CODES:
        return next(iter(rest))
    return None


def _object_check(checks: list[tuple[str, Any]]) -> Any:
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
