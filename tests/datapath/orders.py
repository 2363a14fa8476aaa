"""Order documents for end-to-end data-path tests, in both formats, built without the engine.

``order(i)`` is the JSON form (a dict valid against ``config/examples/schemas/order.schema.json``);
``json_bytes`` and ``xml_bytes`` serialise it the way a v2 and a v1 app would write it (the XML
shape follows the schema's ``xml`` annotations: root ``order`` in the orders namespace, ids and
currencies as attributes, wrapped ``items``). Comparisons are "as data": :func:`xml_data` turns
XML into a namespace-aware tree that ignores prefixes, attribute order and indentation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "examples" / "schemas" / "order.schema.json"
ORDERS_NS = "urn:example:shop:orders:1"


def orders_route(bucket: str, **overrides: Any) -> dict[str, Any]:
    """The example ``orders`` route (config/examples/orders.yaml) for a test bucket."""
    route: dict[str, Any] = {
        "name": "orders",
        "bucket": bucket,
        "prefix": "orders/",
        "formats": {"v1": "xml", "v2": "json"},
        "store": "xml",
        "mapping": {"schema": str(SCHEMA), "root": "order"},
        "on_error": "fail",
    }
    route.update(overrides)
    return route


def order(i: int, items: int = 3, *, note: str | None = None) -> dict[str, Any]:
    """A realistic order: unicode, escapes, decimals, a one-item-or-more list."""
    doc: dict[str, Any] = {
        "id": f"OR-{i}",
        "status": ("open", "paid", "shipped")[i % 3],
        "placedAt": f"2025-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
        "customer": {"id": 1000 + i, "name": f"Zoë & Ada <{i}>"},
        "items": [
            {
                "sku": f"SKU-{i}-{n}",
                "description": f'Item {n} for order {i}: café "crème" ✓',
                "quantity": 1 + n % 5,
                "unitPrice": {"currency": "EUR", "amount": 10.25 + n},
            }
            for n in range(items)
        ],
        "total": {"currency": "EUR", "amount": 99.5 + i},
    }
    if note is not None:
        doc["note"] = note
    return doc


def json_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1).encode()


def _money(tag: str, m: dict[str, Any]) -> str:
    return f"<{tag} currency={quoteattr(m['currency'])}>{m['amount']!r}</{tag}>"


def xml_bytes(doc: dict[str, Any]) -> bytes:
    """The v1 (XML) form of ``order(...)`` output, written by hand like a legacy app would."""
    c = doc["customer"]
    items = []
    for it in doc["items"]:
        items.append(
            f"\n    <item sku={quoteattr(it['sku'])}>"
            f"<description>{escape(it['description'])}</description>"
            f"<quantity>{it['quantity']}</quantity>{_money('unitPrice', it['unitPrice'])}</item>"
        )
    note = f"\n  <note>{escape(doc['note'])}</note>" if "note" in doc else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<order xmlns="{ORDERS_NS}" id={quoteattr(doc["id"])} status={quoteattr(doc["status"])}>\n'
        f"  <placedAt>{doc['placedAt']}</placedAt>\n"
        f'  <customer id="{c["id"]}"><name>{escape(c["name"])}</name></customer>\n'
        f"  <items>{''.join(items)}\n  </items>{note}\n"
        f"  {_money('total', doc['total'])}\n"
        "</order>\n"
    ).encode()


def big_order(i: int, min_bytes: int) -> dict[str, Any]:
    """An order whose JSON form is at least ``min_bytes`` long (for multipart uploads)."""
    base, hundred = len(json_bytes(order(i, 0))), len(json_bytes(order(i, 100)))
    per_item = (hundred - base) / 100
    n = max(3, int((min_bytes - base) / per_item) + 1)
    doc = order(i, n)
    while len(json_bytes(doc)) < min_bytes:
        n += 100
        doc = order(i, n)
    return doc


def xml_data(data: bytes) -> Any:
    """XML as data: (Clark tag, sorted attributes, stripped text, children), recursively."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(data, parser)

    def walk(el: Any) -> Any:
        return (
            el.tag,
            tuple(sorted(el.attrib.items())),
            (el.text or "").strip(),
            tuple(walk(child) for child in el if isinstance(child.tag, str)),
        )

    return walk(root)


def same_xml(a: bytes, b: bytes) -> bool:
    return xml_data(a) == xml_data(b)
