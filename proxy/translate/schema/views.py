"""Schema compilation, merging: a schema position folded into one :class:`View` — its own
keywords, ``$ref`` targets and ``allOf`` members merged, nullable ``anyOf``/``oneOf`` unions
unwrapped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import referencing.jsonschema
from referencing import Resource

from proxy.errors import MappingError
from proxy.translate.options import Options, check_xml_object, closest
from proxy.translate.schema.base import (
    ABSENT,
    FALLBACK,
    JSON_TYPES,
    KNOWN,
    UNSUPPORTED,
    VALIDATION,
    Loc,
    View,
    is_null_only,
    single_scalar,
)
from proxy.translate.schema.loading import SchemaLoader


class ViewBuilder:
    """Fold schema positions into views (keywords checked, references followed)."""

    def __init__(self, opts: Options, loader: SchemaLoader) -> None:
        self.opts = opts
        self.loader = loader

    def _check_keywords(self, schema: Mapping[str, Any], loc: Loc) -> None:
        for k in schema:
            if not isinstance(k, str):
                raise MappingError(str(loc), f"keyword {k!r} is not a string")
            if k.startswith("x-") or k in self.opts.extra_keywords:
                continue
            if k in UNSUPPORTED:
                raise MappingError(str(loc.child(k)), f"unsupported construct: {UNSUPPORTED[k]}")
            if k not in KNOWN:
                hint = closest(k, KNOWN)
                raise MappingError(
                    str(loc),
                    f"unknown keyword {k!r}"
                    + (f" (did you mean {hint!r}?)" if hint else "")
                    + "; list vendor keywords in mapping.extra_keywords",
                )

    def view(self, schema: Any, loc: Loc, resolver: Any, _stack: tuple[int, ...] = ()) -> View:
        if schema is True:
            return View(loc)
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
            loc = Loc(loc.doc, loc.pointer, urljoin(loc.base, str(schema["$id"])))
        v = View(loc, origin=id(schema))
        self._local(v, schema, loc, resolver)
        if "$ref" in schema:
            target, tloc, tres = self.loader.lookup(schema["$ref"], loc, resolver)
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

    def _local(self, v: View, schema: Mapping[str, Any], loc: Loc, resolver: Any) -> None:
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

    def _merge(self, v: View, w: View, loc: Loc) -> None:
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
        if w.additional is not ABSENT:
            if v.additional is not ABSENT and not (
                v.additional[0] is False and w.additional[0] is False
            ):
                raise MappingError(str(w.additional[1]), "additionalProperties defined twice")
            if v.additional is ABSENT:
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
        self, branches: Any, kw: str, loc: Loc, resolver: Any, stack: tuple[int, ...]
    ) -> View:
        where = loc.child(kw)
        if not isinstance(branches, list) or not branches:
            raise MappingError(str(where), "must be a non-empty array")
        views = [self.view(b, where.child(i), resolver, stack) for i, b in enumerate(branches)]
        nulls = [w for w in views if is_null_only(w)]
        others = [w for w in views if not is_null_only(w)]
        if len(others) == 1:
            out = others[0]
            if nulls:
                out.add_null = True
            return out
        kinds = {single_scalar(w) for w in others}
        if len(kinds) == 1 and None not in kinds:
            # Same scalar type in every branch: the type is known; which branch matches is a
            # validation question the jsonschema fallback answers.
            kind = kinds.pop()
            assert kind is not None
            out = View(loc, types={kind}, add_null=bool(nulls), structural=True)
            out.fallback.append(str(where))
            return out
        raise MappingError(
            str(where),
            f"unsupported construct: {kw} with {len(others)} alternatives of different shapes "
            "(an XML text or element cannot say which one it is); only 'X or null' unions "
            "and alternatives of one scalar type can be mapped",
        )
