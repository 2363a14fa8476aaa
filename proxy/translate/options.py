"""Inline mapping options: parsed and checked once, with the config key path in every error.

A route's ``mapping:`` holds ``schema:`` (optional) plus these options::

    root: order                       # root element: NAME or PREFIX:NAME
    namespaces: {"": urn:a, s: urn:b} # the fixed prefix map ("" = default namespace)
    xml: {/items: {wrapped: true}}    # OpenAPI xml objects by path (schema mode)
    attributes: [/id]                 # these properties are XML attributes
    arrays: [/items/item]             # schemaless: always an array (even with one item)
    types: {/items/item/qty: integer} # schemaless: scalar type (string|number|integer|boolean,
                                      #   or a list with "null")
    text_key: "#text"                 # schemaless: key of text next to attributes
    attribute_prefix: "@"             # schemaless: key prefix of attributes
    comments: reject | drop
    processing_instructions: reject | drop
    safe_integers: false              # refuse integers beyond ±(2**53-1) instead of keeping them
    extra_keywords: [javaType]        # schema keywords to ignore instead of refusing

Paths are JSON Pointers over property names, from the document (root content); arrays are
transparent (``/items/item/qty`` is ``qty`` in every ``item``). ``*`` matches any one name;
``[]`` (schema mode, ``xml:`` only) addresses an array's items schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.errors import MappingError
from proxy.translate.lexical import is_ncname
from proxy.translate.rules import T_BOOLEAN, T_INTEGER, T_NULL, T_NUMBER, T_STRING, PathOptions

KNOWN_KEYS = frozenset(
    {
        "schema",
        "root",
        "namespaces",
        "xml",
        "attributes",
        "arrays",
        "types",
        "text_key",
        "attribute_prefix",
        "comments",
        "processing_instructions",
        "safe_integers",
        "extra_keywords",
    }
)

TYPE_BY_NAME = {
    "string": T_STRING,
    "number": T_NUMBER,
    "integer": T_INTEGER,
    "boolean": T_BOOLEAN,
    "null": T_NULL,
}

XML_OBJECT_KEYS = frozenset({"name", "namespace", "prefix", "attribute", "wrapped", "nodeType"})
NODE_TYPES = frozenset({"element", "attribute", "text", "cdata", "none"})


@dataclass
class Options:
    schema: str | None = None
    root: str | None = None
    namespaces: dict[str, str] = field(default_factory=dict)
    xml: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    attributes: list[tuple[str, ...]] = field(default_factory=list)
    arrays: list[tuple[str, ...]] = field(default_factory=list)
    types: dict[tuple[str, ...], tuple[int, bool]] = field(default_factory=dict)
    text_key: str = "#text"
    attribute_prefix: str = "@"
    drop_comments: bool = False
    drop_pis: bool = False
    safe_integers: bool = False
    extra_keywords: frozenset[str] = frozenset()

    def trie(self) -> PathOptions:
        """All path options as one trie (built fresh: compilation marks nodes used)."""
        root = PathOptions()
        for path in self.arrays:
            _trie_node(root, path).array = True
        for path, (t, nullable) in self.types.items():
            node = _trie_node(root, path)
            node.type, node.nullable = t, nullable
        for path in self.attributes:
            _trie_node(root, path).attribute = True
        for path, xml in self.xml.items():
            _trie_node(root, path).xml = xml
        return root


def _trie_node(root: PathOptions, path: tuple[str, ...]) -> PathOptions:
    node = root
    for i, seg in enumerate(path):
        if seg == "*":
            if node.wildcard is None:
                node.wildcard = PathOptions(path=path[: i + 1])
            node = node.wildcard
        elif seg == "[]":
            if node.items is None:
                node.items = PathOptions(path=path[: i + 1])
            node = node.items
        else:
            node = node.children.setdefault(seg, PathOptions(path=path[: i + 1]))
    return node


def parse_path(text: object, key_path: str, *, allow_items: bool = False) -> tuple[str, ...]:
    """``/a/b~1c`` → ``("a", "b/c")``. ``*`` = any name; ``[]`` = array items (if allowed)."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise MappingError(
            key_path, f"not a path (expected a JSON Pointer like /items/sku): {text!r}"
        )
    segs = []
    for raw in text[1:].split("/"):
        seg = raw.replace("~1", "/").replace("~0", "~")
        if seg == "":
            raise MappingError(key_path, f"empty segment in path {text!r}")
        if seg == "[]" and not allow_items:
            raise MappingError(
                key_path, f"'[]' (array items) is only valid in xml: paths: {text!r}"
            )
        segs.append(seg)
    return tuple(segs)


def parse_type(value: object, key_path: str) -> tuple[int, bool]:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n in TYPE_BY_NAME for n in names):
        raise MappingError(
            key_path,
            f"not a scalar type: {value!r} (use string, number, integer, boolean, "
            "or a list of one of them and null)",
        )
    nullable = "null" in names
    rest = [str(n) for n in names if n != "null"]  # all str (checked above)
    if len(rest) > 1:
        raise MappingError(key_path, f"ambiguous type {value!r}: one scalar type (plus null) only")
    return (TYPE_BY_NAME[rest[0]] if rest else T_NULL), nullable


def check_xml_object(xml: object, key_path: str) -> dict[str, Any]:
    """Validate an OpenAPI ``xml`` object (fixed fields plus ``x-`` extensions)."""
    if not isinstance(xml, Mapping):
        raise MappingError(key_path, "the xml object must be a mapping")
    for k, v in xml.items():
        if isinstance(k, str) and k.startswith("x-"):
            continue
        if k not in XML_OBJECT_KEYS:
            hint = closest(str(k), XML_OBJECT_KEYS)
            raise MappingError(
                key_path, f"unknown keyword {k!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            )
        if k in ("attribute", "wrapped") and not isinstance(v, bool):
            raise MappingError(f"{key_path}/{k}", f"must be true or false, got {v!r}")
        if k == "name" and not (isinstance(v, str) and is_ncname(v)):
            raise MappingError(f"{key_path}/{k}", f"not an XML name: {v!r}")
        if k == "prefix" and not (isinstance(v, str) and (v == "" or is_ncname(v))):
            raise MappingError(f"{key_path}/{k}", f"not a namespace prefix: {v!r}")
        if k == "prefix" and isinstance(v, str) and v.lower().startswith("xml") and v != "xml":
            raise MappingError(
                f"{key_path}/{k}", f"prefixes starting with 'xml' are reserved: {v!r}"
            )
        if k == "namespace" and not isinstance(v, str):
            raise MappingError(f"{key_path}/{k}", f"must be a namespace URI string, got {v!r}")
        if k == "nodeType" and v not in NODE_TYPES:
            raise MappingError(
                f"{key_path}/{k}", f"must be one of {', '.join(sorted(NODE_TYPES))}, got {v!r}"
            )
    if xml.get("attribute") and xml.get("nodeType") not in (None, "attribute"):
        raise MappingError(
            key_path, "attribute: true contradicts nodeType " + repr(xml["nodeType"])
        )
    return dict(xml)


def _is_qname(name: str) -> bool:
    prefix, _, local = name.rpartition(":")
    return is_ncname(local) and (not prefix or is_ncname(prefix))


def closest(word: str, choices: frozenset[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.7)
    return found[0] if found else None


def parse_options(spec: Mapping[str, Any], key_path: str) -> Options:
    if not isinstance(spec, Mapping):
        raise MappingError(key_path, "must be a mapping")
    for k in spec:
        if k not in KNOWN_KEYS:
            hint = closest(str(k), KNOWN_KEYS)
            raise MappingError(
                f"{key_path}.{k}", "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
            )
    opts = Options()
    if "schema" in spec and spec["schema"] is not None:
        if not isinstance(spec["schema"], str) or not spec["schema"]:
            raise MappingError(f"{key_path}.schema", "must be a file path")
        opts.schema = spec["schema"]
    if spec.get("root") is not None:
        root = spec["root"]
        prefix, _, local = root.rpartition(":") if isinstance(root, str) else ("", "", "")
        if not isinstance(root, str) or not is_ncname(local) or (prefix and not is_ncname(prefix)):
            raise MappingError(f"{key_path}.root", f"not an element name: {root!r}")
        opts.root = root
    ns = spec.get("namespaces") or {}
    if not isinstance(ns, Mapping):
        raise MappingError(f"{key_path}.namespaces", "must map prefixes to namespace URIs")
    seen: dict[str, str] = {}
    for prefix, uri in ns.items():
        kp = f"{key_path}.namespaces.{prefix}"
        if not isinstance(prefix, str) or (prefix and not is_ncname(prefix)):
            raise MappingError(kp, f"not a namespace prefix: {prefix!r}")
        if prefix.lower().startswith("xml"):
            raise MappingError(kp, "prefixes starting with 'xml' are reserved")
        if not isinstance(uri, str) or not uri:
            raise MappingError(kp, "must be a non-empty namespace URI")
        if uri in seen:
            raise MappingError(kp, f"namespace {uri!r} already has prefix {seen[uri]!r}")
        seen[uri] = prefix
        opts.namespaces[prefix] = uri
    xml = spec.get("xml") or {}
    if not isinstance(xml, Mapping):
        raise MappingError(f"{key_path}.xml", "must map paths to OpenAPI xml objects")
    for path, obj in xml.items():
        kp = f"{key_path}.xml.{path}"
        opts.xml[parse_path(path, kp, allow_items=True)] = check_xml_object(obj, kp)
    for name in ("attributes", "arrays"):
        items = spec.get(name) or []
        if not isinstance(items, list):
            raise MappingError(f"{key_path}.{name}", "must be a list of paths")
        getattr(opts, name).extend(
            parse_path(p, f"{key_path}.{name}[{i}]") for i, p in enumerate(items)
        )
    types = spec.get("types") or {}
    if not isinstance(types, Mapping):
        raise MappingError(f"{key_path}.types", "must map paths to scalar types")
    for path, t in types.items():
        kp = f"{key_path}.types.{path}"
        opts.types[parse_path(path, kp)] = parse_type(t, kp)
    for name in ("text_key", "attribute_prefix"):
        if name in spec:
            v = spec[name]
            if not isinstance(v, str) or not v:
                raise MappingError(f"{key_path}.{name}", "must be a non-empty string")
            setattr(opts, name, v)
    if _is_qname(opts.text_key):
        raise MappingError(f"{key_path}.text_key", "must not be a possible element name")
    if _is_qname(opts.attribute_prefix + "a"):
        raise MappingError(
            f"{key_path}.attribute_prefix", "must not start like an element name (e.g. '@')"
        )
    if opts.text_key.startswith(opts.attribute_prefix):
        raise MappingError(f"{key_path}.text_key", "must not start with the attribute prefix")
    for name, attr in (("comments", "drop_comments"), ("processing_instructions", "drop_pis")):
        v = spec.get(name, "reject")
        if v not in ("reject", "drop"):
            raise MappingError(f"{key_path}.{name}", f"must be 'reject' or 'drop', got {v!r}")
        setattr(opts, attr, v == "drop")
    si = spec.get("safe_integers", False)
    if not isinstance(si, bool):
        raise MappingError(f"{key_path}.safe_integers", "must be true or false")
    opts.safe_integers = si
    extra = spec.get("extra_keywords") or []
    if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
        raise MappingError(f"{key_path}.extra_keywords", "must be a list of keyword names")
    opts.extra_keywords = frozenset(extra)
    return opts
