"""The round-trip guarantee, as properties over generated documents, for every corpus schema.

- JSON → XML → JSON: for JSON documents valid against the schema (checked independently with
  ``jsonschema``), the result has the same values and the same number text; the only
  differences are the documented ones (``[]`` of an optional unwrapped array, ``""`` of
  optional text content: absent).
- XML → JSON → XML: for XML documents in the mapping's domain, equal under C14N 2.0 with
  whitespace-only text between elements ignored; the generated-code fast path and the rule
  table walker produce the same JSON.
- Producer variants (foreign prefixes, ``1``/``0``, ``xsi:nil="false"``, CDATA, character
  references, indentation) translate to the same JSON as the canonical spelling.
"""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.translate import CompiledMapping
from proxy.translate.model import parse_exact
from tests.translate.generators import (
    after_round_trip,
    foreign_style,
    json_document,
    mapping_style,
    style_for,
    write_xml,
    xml_document,
)
from tests.translate.helpers import (
    CORPUS,
    DATA,
    both_paths,
    canonical,
    compact,
    json_both_paths,
    load_mapping,
    unordered,
)

PROFILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

MAPPINGS: dict[str, CompiledMapping] = {name: load_mapping(name) for name in CORPUS}


def _validator(name: str) -> Any:
    spec = yaml.safe_load((DATA / name / "mapping.yaml").read_text(encoding="utf-8"))
    if not spec or "schema" not in spec:
        return None
    schema = json.loads((DATA / name / spec["schema"]).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


VALIDATORS = {name: _validator(name) for name in CORPUS}
# orders: the schema lives with the example config; its $refs are local.
VALIDATORS["orders"] = jsonschema.Draft202012Validator(
    json.loads((DATA.parent.parent / "config/examples/schemas/order.schema.json").read_text())
)


@pytest.mark.parametrize("name", CORPUS)
@PROFILE
@given(data=st.data())
def test_json_round_trip(name: str, data: st.DataObject) -> None:
    m = MAPPINGS[name]
    value = data.draw(json_document(m), label="json")
    text = compact(value)
    validator = VALIDATORS[name]
    if validator is not None:
        errors = list(validator.iter_errors(json.loads(text)))
        assert not errors, f"generator produced an invalid document: {errors[0].message}"
    xml = m.json_to_xml(text.encode("utf-8"))
    fast, table = json_both_paths(m, text.encode("utf-8"))
    assert fast == table == xml
    back = m.xml_to_json(xml)
    assert unordered(parse_exact(back.decode("utf-8"))) == unordered(
        after_round_trip(m.root.rule, value)
    )
    if not m.root.tag:
        assert unordered(parse_exact(back.decode("utf-8"))) == unordered(value)


@pytest.mark.parametrize("name", CORPUS)
@PROFILE
@given(
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    cdata=st.booleans(),
    refs=st.booleans(),
    indent=st.booleans(),
)
def test_xml_round_trip(
    name: str, data: st.DataObject, seed: int, cdata: bool, refs: bool, indent: bool
) -> None:
    m = MAPPINGS[name]
    node = data.draw(xml_document(m), label="xml tree")
    style = style_for(
        node, mapping_style(m, random.Random(seed), cdata=cdata, charrefs=refs, indent=indent)
    )
    xml = write_xml(node, style)
    j = m.xml_to_json(xml)
    back = m.json_to_xml(j)
    assert canonical(back) == canonical(xml)
    fast, table = both_paths(m, xml)
    assert fast == table
    assert fast.encode("utf-8") == j


@pytest.mark.parametrize("name", CORPUS)
@PROFILE
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_producer_variants_give_the_same_json(name: str, data: st.DataObject, seed: int) -> None:
    m = MAPPINGS[name]
    node = data.draw(xml_document(m), label="xml tree")
    strict = write_xml(node, style_for(node, mapping_style(m, random.Random(seed))))
    variant = write_xml(
        node,
        style_for(
            node,
            foreign_style(
                m,
                random.Random(seed + 1),
                ones=True,
                nil_false=True,
                cdata=True,
                charrefs=True,
                indent=True,
            ),
        ),
    )
    j = m.xml_to_json(strict)
    assert m.xml_to_json(variant) == j
    assert canonical(m.json_to_xml(j), rewrite_prefixes=True) == canonical(
        strict, rewrite_prefixes=True
    )
