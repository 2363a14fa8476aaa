"""Large XML documents are translated while they are parsed (bounded memory): the result and the
errors must be exactly those of the whole-tree path. The threshold is lowered to 0 here so that
every document, small ones included, takes the streaming path."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import proxy.translate.xml_to_json.translator as xml_to_json
from proxy.errors import TranslationError
from tests.translate.generators import mapping_style, style_for, write_xml, xml_document
from tests.translate.helpers import CORPUS, REPO, corpus_pairs, load_mapping


def _bench_module() -> object:
    """The benchmark's document generator (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "bench_translate", REPO / "bench" / "translate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


orders_xml = _bench_module().orders_xml  # type: ignore[attr-defined]

MAPPINGS = {name: load_mapping(name) for name in CORPUS}
PAIRS = corpus_pairs()


def tree_and_stream(name: str, data: bytes) -> tuple[object, object]:
    """(tree result, stream result), each the JSON bytes or the (reason, location) error."""
    m = MAPPINGS[name]
    out = []
    for threshold in (10**12, 0):
        old = xml_to_json.STREAM_THRESHOLD
        xml_to_json.STREAM_THRESHOLD = threshold
        try:
            out.append(m.xml_to_json(data))
        except TranslationError as exc:
            out.append((exc.reason, exc.location))
        finally:
            xml_to_json.STREAM_THRESHOLD = old
    return out[0], out[1]


@pytest.fixture
def streaming() -> Iterator[None]:
    old = xml_to_json.STREAM_THRESHOLD
    xml_to_json.STREAM_THRESHOLD = 0
    yield
    xml_to_json.STREAM_THRESHOLD = old


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_corpus_same_in_both_paths(name: str, xml: Path) -> None:
    tree, stream = tree_and_stream(name, xml.read_bytes())
    assert isinstance(tree, bytes)
    assert stream == tree


def test_streaming_is_used_and_frees_records(streaming: None) -> None:
    m = MAPPINGS["orders"]
    assert m._reader.stream.useful
    seen: list[int] = []
    original = m._reader.stream._record

    def spy(el: object, frags: dict[object, bytes], last: list[object]) -> None:
        original(el, frags, last)
        seen.append(len(el))  # type: ignore[arg-type]

    m._reader.stream._record = spy  # type: ignore[method-assign]
    try:
        m.xml_to_json(orders_xml(50_000))
    finally:
        del m._reader.stream._record
    assert len(seen) > 50 and set(seen) == {0}  # every record was cleared once translated


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda x: x.replace(b"<quantity>", b"<quantity>x", 1),
            ("type_mismatch", "/order/items/item[1]/quantity/text()"),
        ),
        (
            lambda x: x.replace(b"</item>", b"</item><bogus/>", 1),
            ("unknown_element", "/order/items/bogus"),
        ),
        (
            lambda x: x.replace(b"<coupon>", b"<placedAt>again</placedAt><coupon>", 1),
            ("out_of_order", "/order/placedAt[2]"),
        ),
        (
            lambda x: x.replace(b"</items>", b"</items>stray text", 1),
            ("mixed_content", "/order/items/following-sibling::text()[1]"),
        ),
        (
            lambda x: x[: len(x) // 2],
            ("not_well_formed", "/"),
        ),
    ],
    ids=["in-a-record", "between-records", "in-the-skeleton", "tail-text", "truncated"],
)
def test_errors_are_the_same_in_both_paths(mutate: object, expected: tuple[str, str]) -> None:
    doc = mutate(orders_xml(200_000))  # type: ignore[operator]
    tree, stream = tree_and_stream("orders", doc)
    assert tree == expected
    assert stream == expected


def test_error_deep_in_a_long_array_has_its_index() -> None:
    doc = orders_xml(300_000)
    n = doc.count(b"<item ")
    cut = doc.rfind(b"<quantity>")
    bad = doc[:cut] + b"<quantity>-" + doc[cut + len(b"<quantity>") :]  # last item: minimum 1
    tree, stream = tree_and_stream("orders", bad)
    assert tree == stream == ("schema_violation", f"/order/items/item[{n}]/quantity/text()")


@pytest.mark.parametrize("name", CORPUS)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_generated_documents_same_in_both_paths(name: str, data: st.DataObject, seed: int) -> None:
    m = MAPPINGS[name]
    node = data.draw(xml_document(m), label="xml tree")
    xml = write_xml(
        node, style_for(node, mapping_style(m, random.Random(seed), indent=True, cdata=True))
    )
    tree, stream = tree_and_stream(name, xml)
    assert stream == tree


# --- JSON → XML --------------------------------------------------------------------------------


def json_tree_and_stream(name: str, data: bytes) -> tuple[object, object]:
    """(whole-value result, streaming result) for a JSON document."""
    import proxy.translate.json_to_xml.translator as json_to_xml

    m = MAPPINGS[name]
    out = []
    for threshold in (10**12, 0):
        old = json_to_xml.STREAM_THRESHOLD
        json_to_xml.STREAM_THRESHOLD = threshold
        try:
            out.append(m.json_to_xml(data))
        except TranslationError as exc:
            out.append((exc.reason, exc.location))
        finally:
            json_to_xml.STREAM_THRESHOLD = old
    return out[0], out[1]


def test_json_streaming_is_used() -> None:
    for name in ("orders", "rss", "s3-listing", "maven-pom", "kitchen-sink"):
        assert MAPPINGS[name]._writer.stream.useful, name
    assert not MAPPINGS["schemaless"]._writer.stream.useful


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_json_corpus_same_in_both_paths(name: str, xml: Path) -> None:
    tree, stream = json_tree_and_stream(name, xml.with_suffix(".json").read_bytes())
    assert isinstance(tree, bytes)
    assert stream == tree


ORDER_JSON = MAPPINGS["orders"].xml_to_json(orders_xml(200_000))


def _quantity_as_string(j: bytes) -> bytes:
    return j.replace(b'"quantity":', b'"quantity":"', 1).replace(
        b',"unitPrice"', b'","unitPrice"', 1
    )


JSON_MUTATIONS = {
    "in-a-record": (_quantity_as_string, ("type_mismatch", "/items/0/quantity")),
    "unknown-key-in-record": (
        lambda j: j.replace(b'"sku":', b'"bogus":1,"sku":', 1),
        ("schema_violation", "/items/0/bogus"),
    ),
    "duplicate-root-key": (
        lambda j: j.replace(b'{"id"', b'{"id":"X","id"', 1),
        ("duplicate_key", "/id"),
    ),
    "array-is-object": (
        lambda j: j.replace(b'"items":[', b'"items":{', 1),
        ("not_well_formed", ""),
    ),
    "unknown-root-key": (
        lambda j: j.replace(b'"items":[', b'"items":7,"x":[', 1),
        ("schema_violation", "/x"),
    ),
    "duplicate-streamed-key": (
        lambda j: j.replace(b'"placedAt":', b'"items":[],"placedAt":', 1),
        ("duplicate_key", "/items"),
    ),
    "truncated": (lambda j: j[: len(j) // 2], ("not_well_formed", "")),
    "trailing-data": (lambda j: j + b" x", ("not_well_formed", "")),
    "control-character": (
        lambda j: j.replace(b'"description":"', b'"description":"\\u0001', 1),
        ("invalid_character", "/items/0/description"),
    ),
    "null-object": (
        lambda j: j.replace(b'"customer":', b'"customer":null,"c2":', 1),
        ("schema_violation", "/c2"),
    ),
}


@pytest.mark.parametrize(("mutate", "expected"), JSON_MUTATIONS.values(), ids=JSON_MUTATIONS.keys())
def test_json_errors_are_the_same_in_both_paths(mutate: object, expected: tuple[str, str]) -> None:
    doc = mutate(ORDER_JSON)  # type: ignore[operator]
    tree, stream = json_tree_and_stream("orders", doc)
    assert tree == stream, (tree, stream)
    assert tree == expected


def test_json_root_key_order_does_not_matter() -> None:
    """Records first, scalars after: the XML still comes out in schema order."""
    from proxy.translate.model import parse_exact
    from tests.translate.helpers import compact

    value = parse_exact(ORDER_JSON.decode())
    value.sort(key=lambda kv: kv[0] != "items")  # "items" first
    tree, stream = json_tree_and_stream("orders", compact(value).encode())
    assert isinstance(tree, bytes) and stream == tree


@pytest.mark.parametrize("name", CORPUS)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_json_same_in_both_paths(name: str, data: st.DataObject) -> None:
    from tests.translate.generators import json_document
    from tests.translate.helpers import compact

    m = MAPPINGS[name]
    doc = compact(data.draw(json_document(m), label="json")).encode()
    tree, stream = json_tree_and_stream(name, doc)
    assert stream == tree
