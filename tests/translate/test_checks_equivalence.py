"""The rule tables' validation keywords agree with the ``jsonschema`` library.

Validation runs inside the translation walk (no second pass over the document), so these tests
prove that walk says "schema_violation" exactly when jsonschema says "invalid", in both
directions, over generated values that sit on and around every bound. jsonschema sees numbers
as Decimal (exact), with a type checker for which ``2.0`` is an integer, as the spec says.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import TranslationError
from proxy.translate import compile_mapping
from proxy.translate.checks import is_multiple

SCHEMA: dict[str, Any] = {
    "type": "object",
    "xml": {"name": "c"},
    "additionalProperties": False,
    "dependentRequired": {"s4": ["s1"]},
    "maxProperties": 12,
    "properties": {
        "s1": {"type": "string", "minLength": 2, "maxLength": 4},
        "s2": {"type": "string", "pattern": "^[a-c]+x?$"},
        "s3": {"enum": ["a", "b", "ab"]},
        "s4": {"const": "zz", "xml": {"attribute": True}},
        "n1": {"type": "number", "minimum": 0.1, "maximum": 10},
        "n2": {"type": "number", "exclusiveMinimum": -1.5, "exclusiveMaximum": 2},
        "n3": {"type": "number", "multipleOf": 0.25},
        "n4": {"type": "integer", "multipleOf": 3, "minimum": -9, "xml": {"attribute": True}},
        "n5": {"enum": [1, 2.5, 100]},
        "i1": {"type": "integer", "maximum": 9007199254740993},
        "b1": {"enum": [True]},
        "a1": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer"}},
        "a2": {
            "type": "array",
            "uniqueItems": True,
            "xml": {"wrapped": True},
            "items": {"type": ["number", "null"]},
        },
        "o1": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 2,
            "dependentRequired": {"p": ["q"]},
            "properties": {
                "p": {"type": "string"},
                "q": {"type": "string"},
                "r": {"type": "string"},
            },
        },
    },
}
VALIDATION_KEYWORDS = {
    "minLength", "maxLength", "pattern", "enum", "const", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties", "dependentRequired",
}  # fmt: skip


def _strip(schema: Any) -> Any:
    """The same schema without validation keywords (types inferred from enums kept)."""
    if isinstance(schema, dict):
        out = {k: _strip(v) for k, v in schema.items() if k not in VALIDATION_KEYWORDS}
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            out["type"] = (
                "boolean"
                if isinstance(values[0], bool)
                else "string"
                if isinstance(values[0], str)
                else "number"
            )
        return out
    return schema


@pytest.fixture(scope="module")
def mappings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    d: Path = tmp_path_factory.mktemp("eq")
    (d / "strict.json").write_text(json.dumps(SCHEMA))
    (d / "loose.json").write_text(json.dumps(_strip(SCHEMA)))
    return (
        compile_mapping({"schema": "strict.json"}, base_dir=d),
        compile_mapping({"schema": "loose.json"}, base_dir=d),
    )


def _is_number(_checker: Any, v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _is_integer(_checker: Any, v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, Decimal | float) and v == int(v)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_number, "integer": _is_integer}
    ),
)
VALIDATOR = _Validator(json.loads(json.dumps(SCHEMA), parse_float=Decimal))


def jsonschema_valid(text: str | bytes) -> bool:
    return bool(VALIDATOR.is_valid(json.loads(text, parse_float=Decimal)))


# Values on and around each property's bounds, spelled in several ways, plus random ones.
RANDOM = st.decimals(min_value=-20, max_value=20, places=3, allow_nan=False).map(str)


def around(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values) | RANDOM


N1 = around("0.1", "0.10", "1e-1", "0.09999999999999999999", "0.10000000000000000001", "10",
            "10.0", "1e1", "10.000000000000000001", "9.99")  # fmt: skip
N2 = around("-1.5", "-1.50", "-1.4999999999999999999", "-15e-1", "2", "2.0", "1.99999999999999")
N3 = around("0.25", "0.5", "0.75", "1E+2", "0.3", "-0", "0.2500000000000000001", "25e-2")
N5 = around("1", "1.0", "2.5", "2.50", "25e-1", "100", "1E+2", "3", "2.5000000000000000001")
INTEGERS = st.sampled_from(
    ["-9", "-12", "0", "3", "4", "6.0", "9e0", "-10", "9007199254740993", "9007199254740994",
     "9.007199254740993e15", "9007199254740993.0"]
)  # fmt: skip
STRINGS = st.text(alphabet="abcxz", max_size=6)


@st.composite
def documents(draw: Any) -> str:
    parts: dict[str, str] = {}

    def maybe(key: str, strategy: st.SearchStrategy[str]) -> None:
        if draw(st.booleans()):
            parts[key] = draw(strategy)

    q = json.dumps
    maybe("s1", STRINGS.map(q))
    maybe("s2", STRINGS.map(q))
    maybe("s3", st.sampled_from(["a", "b", "ab", "c", ""]).map(q))
    maybe("s4", st.sampled_from(["zz", "z"]).map(q))
    maybe("n1", N1)
    maybe("n2", N2)
    maybe("n3", N3)
    maybe("n4", INTEGERS)
    maybe("n5", N5)
    maybe("i1", INTEGERS)
    maybe("b1", st.sampled_from(["true", "false"]))
    maybe(
        "a1",
        st.lists(
            INTEGERS.filter(lambda s: "." not in s and "e" not in s), min_size=1, max_size=4
        ).map(lambda xs: "[" + ",".join(xs) + "]"),
    )
    maybe(
        "a2",
        st.lists(N5 | st.just("null"), max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    )
    maybe(
        "o1",
        st.dictionaries(st.sampled_from("pqr"), STRINGS, max_size=3).map(q),
    )
    return "{" + ",".join(f"{q(k)}:{v}" for k, v in parts.items()) + "}"


PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(doc=documents())
def test_json_side_agrees_with_jsonschema(mappings: tuple[Any, Any], doc: str) -> None:
    strict, _ = mappings
    expected = jsonschema_valid(doc)
    try:
        strict.json_to_xml(doc.encode())
        accepted = True
    except TranslationError as exc:
        assert exc.reason == "schema_violation", exc
        accepted = False
    assert accepted == expected, doc


@PROFILE
@given(doc=documents())
def test_xml_side_agrees_with_jsonschema(mappings: tuple[Any, Any], doc: str) -> None:
    strict, loose = mappings
    xml = loose.json_to_xml(doc.encode())  # the same values as XML, unvalidated
    meaning = loose.xml_to_json(xml)  # what the XML denotes ([] of a1 is no elements)
    expected = jsonschema_valid(meaning)
    try:
        strict.xml_to_json(xml)
        accepted = True
    except TranslationError as exc:
        assert exc.reason == "schema_violation", exc
        accepted = False
    assert accepted == expected, xml


def test_the_generator_reaches_both_verdicts(mappings: tuple[Any, Any]) -> None:
    strict, _ = mappings
    strict.json_to_xml(
        b'{"s1":"ab","n1":0.10,"n3":0.75,"n4":-9,"i1":9007199254740993,"a2":[1,1.5,null]}'
    )
    for bad in (
        b'{"n1":0.09999999999999999999}',
        b'{"n2":2}',
        b'{"n3":0.3}',
        b'{"i1":9007199254740994}',
        b'{"a2":[1,1.0]}',
        b'{"o1":{"p":"x"}}',
        b'{"s4":"zz"}',
    ):
        assert not jsonschema_valid(bad)
        with pytest.raises(TranslationError):
            strict.json_to_xml(bad)


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        ("0.75", "0.25", True),
        ("0.3", "0.25", False),
        ("1e100", "0.01", True),
        ("1e-100", "0.01", False),
        ("-0", "7", True),
        ("12", "1.5", True),
        ("12.5", "2.5", True),
        ("7", "3", False),
        ("1e999999999", "5", True),
        ("3e999999999", "7", False),
    ],
)
def test_is_multiple_exact(value: str, divisor: str, expected: bool) -> None:
    assert is_multiple(Decimal(value), Decimal(divisor)) is expected


def test_schema_is_not_mutated() -> None:
    assert copy.deepcopy(SCHEMA) == SCHEMA
