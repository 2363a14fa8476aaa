"""Shared helpers for the translation tests: exact JSON comparison, canonical XML, corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from proxy.translate import CompiledMapping, compile_mapping
from proxy.translate.lexical import encode_basestring
from proxy.translate.model import Number, Pairs, parse_exact

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CORPUS = ("orders", "rss", "s3-listing", "maven-pom", "schemaless", "kitchen-sink")
WS = " \t\r\n"


def load_mapping(name: str, **overrides: Any) -> CompiledMapping:
    """Compile ``tests/data/<name>/mapping.yaml`` (its paths relative to that directory)."""
    d = DATA / name
    spec = yaml.safe_load((d / "mapping.yaml").read_text(encoding="utf-8")) or {}
    spec.update(overrides)
    return compile_mapping(spec, base_dir=d, limits=None, key_path=f"{name}.mapping")


def tagged(value: Any) -> Any:
    """A comparable form of an exactly parsed JSON value: numbers by their text, objects as
    ordered pairs, strings distinct from numbers (``"1"`` is not ``1``)."""
    t = type(value)
    if t is Number:
        return ("number", str(value))
    if t is str:
        return ("string", value)
    if t is Pairs:
        return ("object", [(k, tagged(v)) for k, v in value])
    if t is list:
        return ("array", [tagged(v) for v in value])
    return ("literal", value)


def unordered(value: Any) -> Any:
    """Like :func:`tagged` but object key order ignored (JSON objects are unordered)."""
    t = type(value)
    if t is Pairs:
        return ("object", sorted((k, unordered(v)) for k, v in value))
    if t is list:
        return ("array", [unordered(v) for v in value])
    return tagged(value)


def exact(data: bytes | str) -> Any:
    return tagged(parse_exact(data.decode("utf-8") if isinstance(data, bytes) else data))


def same_json(a: bytes | str, b: bytes | str) -> bool:
    """Same values, same number text, key order ignored."""

    def u(d: bytes | str) -> Any:
        return unordered(parse_exact(d.decode("utf-8") if isinstance(d, bytes) else d))

    return bool(u(a) == u(b))


def compact(value: Any) -> str:
    t = type(value)
    if t is Pairs:
        return "{" + ",".join(encode_basestring(k) + ":" + compact(v) for k, v in value) + "}"
    if t is list:
        return "[" + ",".join(compact(v) for v in value) + "]"
    if t is Number:
        return str(value)
    if t is str:
        return encode_basestring(value)
    return json.dumps(value)


def pretty(value: Any, indent: str = "") -> str:
    """Indented JSON that keeps number text (for golden files a reviewer can read)."""
    t = type(value)
    inner = indent + "  "
    if t is Pairs:
        if not value:
            return "{}"
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {pretty(v, inner)}" for k, v in value
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if t is list:
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + pretty(v, inner) for v in value) + "\n" + indent + "]"
    if t is Number:
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def canonical(xml: bytes, *, rewrite_prefixes: bool = False) -> str:
    """C14N 2.0 of ``xml`` with whitespace-only text between elements removed (the
    round-trip guarantee's equality). Text of elements without child elements is kept, even
    whitespace-only: it is a value."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser)
    for el in root.iter():
        if len(el):
            if el.text is not None and not el.text.strip(WS):
                el.text = None
            for child in el:
                if child.tail is not None and not child.tail.strip(WS):
                    child.tail = None
    text = etree.tostring(root, encoding="unicode")
    return str(etree.canonicalize(text, rewrite_prefixes=rewrite_prefixes, strip_text=False))


def both_paths(m: CompiledMapping, xml: bytes) -> tuple[str, str]:
    """(fast path JSON, table walker JSON) for one document: they must agree."""
    reader = m._reader
    root = reader.parse(xml)
    table = reader.walker.value(root, m.root.rule, 1) if m.root.tag else reader.translate_root(root)
    fast = reader.translate_root(root) if reader.fast is not None else table
    return fast, table


def corpus_pairs() -> list[tuple[str, Path]]:
    """(corpus name, xml file) for every XML document that has a golden JSON twin."""
    out = []
    for name in CORPUS:
        for xml in sorted((DATA / name).glob("*.xml")):
            if xml.with_suffix(".json").exists():
                out.append((name, xml))
    return out


def json_both_paths(m: CompiledMapping, data: bytes) -> tuple[bytes, bytes]:
    """(fast path XML, table walker XML) for one JSON document: they must agree."""
    from proxy.translate.json_to_xml.decode import decode_json

    value = decode_json(data, m.runtime)
    return m._writer.translate(value), m._writer.translate(value, fast=False)
