"""Schema compilation, rule building: the folded views turned into the rule graph of
:mod:`proxy.translate.rules` (objects, properties, arrays, scalars with their checks, the
root), with the inline options applied per path.

Runs once at start-up. Every problem is a :class:`~proxy.errors.MappingError` whose key path
points into the config (``routes[0].mapping.types./x``) or into the schema
(``routes[0].mapping.schema#/properties/items/xml``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from referencing import Registry

from proxy.errors import MappingError
from proxy.translate.checks import (
    ARRAY_KEYWORDS,
    NUMBER_KEYWORDS,
    OBJECT_KEYWORDS,
    STRING_KEYWORDS,
    compile_scalar_checks,
)
from proxy.translate.lexical import is_ncname
from proxy.translate.options import Options
from proxy.translate.rules import (
    ANY,
    ARRAY,
    ATTRIBUTE,
    ELEMENT,
    GROUP,
    OBJECT,
    SCALAR,
    T_NULL,
    T_NUMBER,
    T_STRING,
    TEXT,
    AnyRule,
    ArrayRule,
    ObjectRule,
    PathOptions,
    Prop,
    Root,
    Rule,
    ScalarRule,
)
from proxy.translate.schema.base import (
    ABSENT,
    TYPE_CODES,
    Compiled,
    Loc,
    View,
    check_unused,
    clark,
    json_type,
    local_of,
    ns_of,
    object_check,
    strip,
)
from proxy.translate.schema.loading import SchemaLoader
from proxy.translate.schema.namespaces import NamespaceBinder
from proxy.translate.schema.views import ViewBuilder


class SchemaCompiler:
    """Compile a mapping's schema and inline options into rules (one use per compiler)."""

    def __init__(self, opts: Options, *, base_dir: Path, key_path: str) -> None:
        self.opts = opts
        self.base_dir = base_dir
        self.key_path = key_path
        self.warnings: list[str] = []
        self.fallback: list[str] = []
        self.trie = opts.trie()
        self._memo: dict[tuple[Any, ...], Rule] = {}
        self.loader = SchemaLoader(base_dir=base_dir, key_path=key_path)
        self.views = ViewBuilder(opts, self.loader)
        self.ns = NamespaceBinder(opts, key_path=key_path)

    def compile(self) -> Compiled:
        schema: Any = None
        registry: Registry[Any] | None = None
        if self.opts.schema is not None:
            schema, registry, loc, resolver = self.loader.load_root(self.opts.schema)
            view = self.views.view(schema, loc, resolver)
            root_rule_view: View | None = view
        else:
            root_rule_view = None
        root = self._root(root_rule_view, schema, registry)
        check_unused(self.trie, self.key_path)
        namespaces = self.ns.finalise(root)
        warnings = list(dict.fromkeys(self.warnings))
        return Compiled(root, warnings, namespaces, schema, registry, self.fallback)

    def _kind(self, v: View) -> tuple[int, int | None]:
        """(kind, scalar type) of a view; raises on ambiguous unions."""
        types = v.types
        if types is None:
            if (
                v.properties
                or v.additional is not ABSENT
                or v.required
                or any(k in OBJECT_KEYWORDS for k, _, _ in v.checks)
            ):
                return OBJECT, None
            if v.items is not None or any(k in ARRAY_KEYWORDS for k, _, _ in v.checks):
                return ARRAY, None
            values = [val for k, val, _ in v.checks if k == "enum"]
            values += [[val] for k, val, _ in v.checks if k == "const"]
            if values:
                inferred = {json_type(x) for vals in values for x in vals}
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

    def _note_fallback(self, v: View) -> None:
        for where in v.fallback:
            if where not in self.fallback:
                self.fallback.append(where)
        for kw, _, at in v.checks:
            if (
                kw in ("enum", "const")
                and self._kind_safe(v) in (OBJECT, ARRAY)
                and str(at) not in self.fallback
            ):
                self.fallback.append(str(at))

    def _kind_safe(self, v: View) -> int:
        try:
            return self._kind(v)[0]
        except MappingError:
            return ANY

    def rule(
        self,
        v: View,
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
                self.ns.uses_nil = True
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
                self.ns.uses_nil = True
        elif kind == OBJECT:
            if ov is not None and (ov.array or ov.type is not None):
                self._typed_by_schema(ov)
            rule = ObjectRule(OBJECT, str(v.loc), v.nullable)
            if memo_key is not None:
                self._memo[memo_key] = rule
            self._object(rule, v, path, ns, ov)
            if v.nullable:
                self.ns.uses_nil = True
        elif kind == ARRAY:
            if ov is not None and ov.type is not None:
                self._typed_by_schema(ov)
            rule = ArrayRule(ARRAY, str(v.loc), v.nullable)
            if memo_key is not None:
                self._memo[memo_key] = rule
            self._array(rule, v, path, ns, ov, item_name)
            if v.nullable:
                self.ns.uses_nil = True
        else:
            rule = self._any(v, path, ov)
        if memo_key is not None:
            self._memo[memo_key] = rule
        return rule

    def _any(self, v: View | None, path: tuple[str, ...], ov: PathOptions | None) -> Rule:
        """An unconstrained subtree: the default convention, or a scalar/array from options."""
        self.ns.uses_any = True
        self.ns.uses_nil = True
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
        self, rule: ObjectRule, v: View, path: tuple[str, ...], ns: str, ov: PathOptions | None
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
        if v.additional is not ABSENT and v.additional[0] is not False:
            sub, aloc, ares = v.additional
            aov = ov.wildcard if ov is not None else None
            av = self.views.view(sub, aloc, ares)
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
            self.ns.use_ns(ns, str(aloc), attr=False)
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
                    self.ns.named.append(
                        (clone, ns_of(m.tag), local_of(m.tag), m.node == ATTRIBUTE)
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
        rule.check = object_check(obj_checks) if obj_checks else None
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

    def _prop(
        self,
        key: str,
        sub: Any,
        loc: Loc,
        resolver: Any,
        path: tuple[str, ...],
        parent_ns: str,
        pov: PathOptions | None,
        required: bool,
    ) -> Prop:
        v = self.views.view(sub, loc, resolver)
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
                    self.ns.bind(xml["prefix"], ns, where)
                elif "prefix" in xml:
                    ns = self.ns.elem_ns(xml, "", where)
                self.ns.use_ns(ns, where, attr=True)
                p = Prop(key, ATTRIBUTE, clark(ns, name), name, rule, required)
                self.ns.named.append((p, ns, name, True))
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
                ns = self.ns.elem_ns(xml, parent_ns, where)
                self.ns.use_ns(ns, where, attr=False)
                rule = self.rule(v, sub, path, ns, pov, key)
                p = Prop(key, ELEMENT, clark(ns, name), name, rule, required)
                self.ns.named.append((p, ns, name, False))
                return p
            if v.nullable:
                raise MappingError(
                    where,
                    f"array {key!r} is unwrapped (no element of its own), so it cannot be "
                    "null; make it wrapped: true or not nullable",
                )
            # Unwrapped: the items are siblings; array-level xml.namespace applies to them.
            items_ns = self.ns.elem_ns(xml, parent_ns, where)
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
            self.ns.named.append((p, ns_of(rule.item_tag), local_of(rule.item_tag), False))
            return p
        if node_type == "none":
            # An object without a node of its own: its properties' nodes sit in the parent.
            if kind != OBJECT:
                raise MappingError(where, f"nodeType none on {key!r}: only arrays and objects")
            if v.nullable:
                raise MappingError(
                    where, f"property {key!r} has no element (nodeType none), so it cannot be null"
                )
            ns = self.ns.elem_ns(xml, parent_ns, where)
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
        ns = self.ns.elem_ns(xml, parent_ns, where)
        self.ns.use_ns(ns, where, attr=False)
        rule = self._any(v, path, pov) if kind == ANY else self.rule(v, sub, path, ns, pov, key)
        if isinstance(rule, ScalarRule) and node_type is None and xml.get("x-cdata"):
            rule.cdata = True
        p = Prop(key, ELEMENT, clark(ns, name), name, rule, required)
        self.ns.named.append((p, ns, name, False))
        return p

    def _array(
        self,
        rule: ArrayRule,
        v: View,
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
        iv = self.views.view(sub, iloc, ires) if ires is not None else View(iloc)
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
        item_ns = self.ns.elem_ns(ixml, ns, where)
        self.ns.use_ns(item_ns, where, attr=False)
        ik, _ = self._kind(iv)
        if ik == ARRAY and (ixml.get("wrapped") is False or ixml.get("nodeType") == "none"):
            raise MappingError(
                where, "an array of arrays needs each inner array wrapped in its item element"
            )
        if ik == ANY:
            items: Rule = self._any(iv if v.items is not None else None, path, ov)
        else:
            # Arrays are transparent in option paths: the items' properties are at ``path``.
            items = self.rule(iv, sub, path, item_ns, strip(ov), name)
        rule.items = items
        rule.set_item(clark(item_ns, name), name)
        self.ns.named.append((rule, item_ns, name, False))
        for kw, val, _ in v.checks:
            if kw == "minItems":
                rule.min_items = int(val)
            elif kw == "maxItems":
                rule.max_items = (
                    int(val) if rule.max_items is None else min(rule.max_items, int(val))
                )
            elif kw == "uniqueItems" and val is True:
                rule.unique = True

    def _root(self, v: View | None, schema: Any, registry: Any) -> Root:
        xml = v.xml if v is not None else {}
        where = f"{self.key_path}.root"
        if self.opts.root is not None:
            prefix, _, local = self.opts.root.rpartition(":")
            if prefix:
                if prefix not in self.ns.uri_of:
                    raise MappingError(where, f"prefix {prefix!r} is not in mapping.namespaces")
                ns = self.ns.uri_of[prefix]
            elif "namespace" in xml:
                ns = self.ns.elem_ns(xml, "", where)
            else:
                ns = self.ns.uri_of.get("", "")
        elif "name" in xml:
            local = xml["name"]
            ns = self.ns.elem_ns(xml, self.ns.uri_of.get("", ""), where)
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
            self.ns.use_ns(ns, where, attr=False)
        root = Root(clark(ns, local) if local else "", local, rule)
        if local:
            self.ns.named.append((root, ns, local, False))
        return root
