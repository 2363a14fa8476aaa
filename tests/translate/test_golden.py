"""Golden pairs: every corpus XML document translates to its reviewed JSON twin, byte for byte
in value and number text, and both round trips hold (XML under C14N 2.0, JSON exactly)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.translate.model import parse_exact
from tests.translate.helpers import (
    DATA,
    both_paths,
    canonical,
    compact,
    corpus_pairs,
    exact,
    json_both_paths,
    load_mapping,
    same_json,
)

PAIRS = corpus_pairs()


def test_corpus_is_complete() -> None:
    names = {name for name, _ in PAIRS}
    assert names == {"orders", "rss", "s3-listing", "maven-pom", "schemaless", "kitchen-sink"}
    assert len(PAIRS) >= 9


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_xml_to_json_matches_golden(name: str, xml: Path) -> None:
    m = load_mapping(name)
    out = m.xml_to_json(xml.read_bytes())
    golden = xml.with_suffix(".json").read_text(encoding="utf-8")
    assert exact(out) == exact(golden)  # same keys in the same order, same number text
    # The output is compact UTF-8: exactly the canonical compact form of its own value.
    assert out.decode("utf-8") == compact(parse_exact(out.decode("utf-8")))


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_json_to_xml_matches_source(name: str, xml: Path) -> None:
    m = load_mapping(name)
    golden = xml.with_suffix(".json").read_bytes()
    out = m.json_to_xml(golden)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert canonical(out) == canonical(xml.read_bytes())


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_round_trips(name: str, xml: Path) -> None:
    m = load_mapping(name)
    source = xml.read_bytes()
    j = m.xml_to_json(source)
    x = m.json_to_xml(j)
    assert canonical(x) == canonical(source)
    assert same_json(m.xml_to_json(x), j)
    golden = xml.with_suffix(".json").read_bytes()
    assert same_json(m.xml_to_json(m.json_to_xml(golden)), golden)


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_fast_path_agrees_with_table_walker(name: str, xml: Path) -> None:
    fast, table = both_paths(load_mapping(name), xml.read_bytes())
    assert fast == table


def test_producer_variants_translate_to_the_same_json() -> None:
    """Other prefixes, 1/0 booleans, xsi:nil="1"/"false", CDATA, character references,
    attribute order and CRLF line ends: the documented normalisations, same JSON."""
    m = load_mapping("orders")
    variant = (DATA / "orders" / "variants" / "full.xml").read_bytes()
    assert b"\r\n" in variant and b"<o:order" in variant
    out = m.xml_to_json(variant)
    assert exact(out) == exact((DATA / "orders" / "full.json").read_bytes())
    # Back to XML it is the canonical form (mapping prefixes, true/false); equal to the
    # variant once prefixes are rewritten the same way on both sides, except the normalised
    # booleans, which is why the strict comparison is against full.xml.
    assert canonical(m.json_to_xml(out)) == canonical((DATA / "orders" / "full.xml").read_bytes())


def test_output_conventions() -> None:
    m = load_mapping("orders")
    source = (DATA / "orders" / "full.xml").read_bytes()
    j = m.xml_to_json(source)
    assert b"\n" not in j and b": " not in j  # compact
    assert "Zoë".encode() in j  # UTF-8, not \\u escapes
    assert b'"amount":19.90' in j and b'"discount":0.10' in j and b'"amount":1E+3' in j
    assert b'"loyaltyPoints":123456789012345678901234567890' in j
    assert b'"quantity":100000000000000000000000000001' in j
    x = m.json_to_xml(j)
    assert x.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<order xmlns="urn:example:shop')
    assert b'<unitPrice currency="EUR">19.90</unitPrice>' in x
    assert b"<ship:shipTo>" in x and b'<ship:billTo xsi:nil="true"/>' in x
    # prefixes are the mapping's: the producer's never leak into JSON keys
    variant = m.xml_to_json((DATA / "orders" / "variants" / "full.xml").read_bytes())
    assert b"o:" not in variant.replace(b"c/o", b"") and b"s:" not in variant


@pytest.mark.parametrize(("name", "xml"), PAIRS, ids=[f"{n}/{p.name}" for n, p in PAIRS])
def test_json_fast_path_agrees_with_table_walker(name: str, xml: Path) -> None:
    fast, table = json_both_paths(load_mapping(name), xml.with_suffix(".json").read_bytes())
    assert fast == table
