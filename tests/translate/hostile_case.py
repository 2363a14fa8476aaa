"""Run one hostile-input case in a fresh process and report how it ended.

``python -m tests.translate.hostile_case CASE [PORT] [SECRET_FILE]`` prints one JSON line:
``{"reason", "location", "output", "seconds", "rss_mb", "base_rss_mb"}``. A fresh process per
case, and the peak-RSS watermark (``VmHWM``) reset once the document has been built, so the
figure is what translating it cost.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from proxy.config import Limits
from proxy.errors import TranslationError
from proxy.translate import compile_mapping
from tests.support.peakrss import reset_peak, status_kib

REPO = Path(__file__).resolve().parents[2]
ORDERS = {"schema": str(REPO / "config/examples/schemas/order.schema.json"), "root": "order"}


def _rss_mb() -> float:
    return status_kib("VmHWM") / 1024


def build(case: str, port: int, secret: str) -> tuple[dict[str, Any], Limits, str, bytes]:
    """(mapping spec, limits, direction, document)."""
    schemaless = {"root": "r"}
    limits = Limits()
    if case == "xxe-file":
        doc = f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode()
        return schemaless, limits, "xml", doc
    if case == "xxe-file-utf16":  # no byte-level DOCTYPE scan possible: docinfo must catch it
        doc = f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'
        return schemaless, limits, "xml", doc.encode("utf-16")
    if case == "xxe-network":
        doc = f'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]><r>&x;</r>'.encode()
        return schemaless, limits, "xml", doc
    if case == "external-dtd":
        doc = f'<!DOCTYPE r SYSTEM "http://127.0.0.1:{port}/r.dtd"><r/>'.encode()
        return schemaless, limits, "xml", doc
    if case == "external-dtd-file":
        doc = f'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "file://{secret}"><r/>'.encode()
        return schemaless, limits, "xml", doc
    if case == "parameter-entity":
        doc = (
            f'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]><r/>'
        ).encode()
        return schemaless, limits, "xml", doc
    if case == "xinclude":
        doc = (
            '<r xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<xi:include href="file://{secret}" parse="text"/></r>'
        ).encode()
        return (
            {"root": "r", "namespaces": {"xi": "http://www.w3.org/2001/XInclude"}},
            limits,
            "xml",
            doc,
        )
    if case == "billion-laughs":
        ents = ['<!ENTITY lol "lol">']
        for i in range(1, 10):
            ents.append(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">')
        doc = ("<!DOCTYPE r [" + "".join(ents) + "]><r>&lol9;</r>").encode()
        return schemaless, limits, "xml", doc
    if case == "quadratic":
        blob = "x" * 50_000
        doc = f'<!DOCTYPE r [<!ENTITY a "{blob}">]><r>' + "&a;" * 50_000 + "</r>"
        return schemaless, limits, "xml", doc.encode()
    if case == "deep-xml":
        return schemaless, limits, "xml", b"<r>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</r>"
    if case == "deep-xml-raised-limit":
        return (
            schemaless,
            Limits(max_depth=100_000),
            "xml",
            b"<r>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</r>",
        )
    if case == "deep-json":
        return {"root": "r"}, limits, "json", b'{"a":' * 10_000 + b'"x"' + b"}" * 10_000
    if case == "deep-json-arrays":
        return ORDERS, limits, "json", b"[" * 10_000 + b"]" * 10_000
    if case == "deep-json-raised-limit":
        return (
            {"root": "r"},
            Limits(max_depth=100_000),
            "json",
            b'{"a":' * 10_000 + b'"x"' + b"}" * 10_000,
        )
    if case == "huge-text-default-limits":
        return schemaless, limits, "xml", b"<r>" + b"x" * 100_000_000 + b"</r>"
    if case == "huge-text-raised-size":
        big = Limits(max_translate_bytes=200 * 1024**2, max_inflight_translate_bytes=200 * 1024**2)
        return schemaless, big, "xml", b"<r>" + b"x" * 100_000_000 + b"</r>"
    if case == "huge-text-json":
        big = Limits(max_translate_bytes=200 * 1024**2, max_inflight_translate_bytes=200 * 1024**2)
        return schemaless, big, "json", b'"' + b"x" * 100_000_000 + b'"'
    if case == "invalid-utf8-xml":
        return schemaless, limits, "xml", b"<r>caf\xc3</r>"
    if case == "invalid-utf8-json":
        return schemaless, limits, "json", b'"caf\xc3"'
    if case == "control-key-json":
        return ORDERS, limits, "json", b'{"id":"SE-1","a\\u0001b":1}'
    if case == "control-key-json-schemaless":
        return schemaless, limits, "json", b'{"a\\u0001b":"x"}'
    if case == "huge-number-json":
        return ORDERS, limits, "json", b'{"loyaltyPoints":1' + b"0" * 1_000_000 + b"}"
    raise SystemExit(f"unknown case {case!r}")


def main() -> None:
    case = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    secret = sys.argv[3] if len(sys.argv) > 3 else "/nonexistent"
    spec, limits, direction, doc = build(case, port, secret)
    m = compile_mapping(spec, base_dir=REPO, limits=limits)
    reset_peak()
    base = _rss_mb()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"reason": None, "location": None, "output": None}
    try:
        out = m.xml_to_json(doc) if direction == "xml" else m.json_to_xml(doc)
        result["output"] = out[:2000].decode("utf-8", "replace")
        result["output_len"] = len(out)
    except TranslationError as exc:
        result.update(reason=exc.reason, location=exc.location, detail=exc.detail[:500])
    result["seconds"] = time.perf_counter() - t0
    result["rss_mb"] = _rss_mb()
    result["base_rss_mb"] = base
    result["doc_mb"] = len(doc) / 1e6
    print(json.dumps(result))


if __name__ == "__main__":
    main()
