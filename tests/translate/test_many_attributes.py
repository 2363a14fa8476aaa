"""Elements with very many attributes cost linear time, in every XML → JSON path.

lxml looks attribute values up by name from the start of the list, so reading them one by one
is quadratic: 60,000 attributes took half a minute. These documents are far below the size
limits, so nothing but the translation's own cost bounds them.
"""

from __future__ import annotations

import time

import pytest

from proxy.errors import TranslationError
from tests.translate.helpers import load_mapping

N = 60_000
BOUND = 5.0  # seconds; quadratic reading takes ~30 s here, linear well under one


def _attributes() -> bytes:
    return b" ".join(b'x%d="v%d"' % (i, i) for i in range(N))


def _timed(fn, data: bytes) -> tuple[float, object]:
    start = time.perf_counter()
    try:
        result: object = fn(data)
    except TranslationError as exc:
        result = exc
    return time.perf_counter() - start, result


def test_schemaless_convention_translates_many_attributes_in_linear_time() -> None:
    m = load_mapping("schemaless")
    doc = b'<inventory xmlns="urn:example:inventory" ' + _attributes() + b"/>"
    elapsed, result = _timed(m.xml_to_json, doc)
    assert elapsed < BOUND
    assert isinstance(result, bytes)
    assert b'"@x59999": "v59999"' in result or b'"@x59999":"v59999"' in result


@pytest.mark.parametrize("where", ["root", "leaf"])
def test_mapped_route_refuses_many_attributes_in_linear_time(where: str) -> None:
    m = load_mapping("orders")
    attrs = _attributes()
    if where == "root":
        doc = b'<order xmlns="urn:example:shop:orders:1" id="DK-1" ' + attrs + b"/>"
    else:
        doc = (
            b'<order xmlns="urn:example:shop:orders:1" id="DK-1" status="open">'
            b"<placedAt " + attrs + b">2024-01-01T00:00:00Z</placedAt></order>"
        )
    elapsed, result = _timed(m.xml_to_json, doc)
    assert elapsed < BOUND
    assert isinstance(result, TranslationError)
    assert result.reason == "unknown_attribute"
