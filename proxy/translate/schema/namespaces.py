"""Schema compilation, namespace binding: element/attribute namespaces checked and bound to
the mapping's prefixes as rules are built, and the fixed namespace map finalised."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.errors import MappingError
from proxy.translate.options import Options
from proxy.translate.rules import (
    XML_NS,
    XSI,
    ArrayRule,
    ObjectRule,
    Prop,
    Root,
    Rule,
    set_tags,
)
from proxy.translate.schema.base import (
    ns_of,
)


class NamespaceBinder:
    """The mapping's prefix ⇄ URI map, built while rules are compiled."""

    def __init__(self, opts: Options, *, key_path: str) -> None:
        self.opts = opts
        self.key_path = key_path
        self.prefix_of: dict[str, str] = {uri: p for p, uri in opts.namespaces.items()}
        self.uri_of: dict[str, str] = dict(opts.namespaces)
        self._used_ns: dict[str, str] = {}  # uri -> where first used (for messages)
        self._attr_ns: dict[str, str] = {}
        #: (rule or prop, ns, local, is_attr): names to give their final prefixes.
        self.named: list[tuple[Any, str, str, bool]] = []
        self.uses_nil = False
        self.uses_any = False
        self._no_ns_elements: str | None = None

    def elem_ns(self, xml: Mapping[str, Any], inherited: str, where: str) -> str:
        if "namespace" in xml:
            uri = xml["namespace"]
            if "prefix" in xml:
                self.bind(xml["prefix"], uri, where)
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

    def bind(self, prefix: str, uri: str, where: str) -> None:
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

    def use_ns(self, ns: str, where: str, *, attr: bool) -> None:
        if ns:
            self._used_ns.setdefault(ns, where)
            if attr:
                self._attr_ns.setdefault(ns, where)
        elif not attr:
            self._no_ns_elements = self._no_ns_elements or where

    def finalise(self, root: Root) -> dict[str, str]:
        """Give every namespace its fixed prefix and write every name."""
        if self.uses_nil:
            self.bind("xsi", XSI, f"{self.key_path}.namespaces.xsi")
        if (
            "" not in self.uri_of
            and root.tag
            and ns_of(root.tag)
            and ns_of(root.tag) not in self.prefix_of
        ):
            self.bind("", ns_of(root.tag), f"{self.key_path}.root")
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
        for obj, ns, local, _is_attr in self.named:
            prefix = self.prefix_of.get(ns, "") if ns else ""
            qname = f"{prefix}:{local}" if prefix else local
            if isinstance(obj, Prop):
                obj.qname = qname

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
