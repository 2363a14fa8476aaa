"""Every failure reason of the fixed set, produced by a document, with its exact location.

XML-side locations are XPaths in the mapping's prefixes (the default namespace unprefixed,
``Q{uri}local`` for namespaces the mapping lacks); JSON-side locations are JSON Pointers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from proxy.config import Limits
from proxy.errors import TRANSLATION_REASONS, TranslationError
from proxy.translate import compile_mapping, detect_format
from tests.translate.helpers import DATA, load_mapping

ORDERS = load_mapping("orders")
OPEN = (
    '<order xmlns="urn:example:shop:orders:1" xmlns:ship="urn:example:shop:shipping:1" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="SE-1" status="open">'
)
CUSTOMER = '<customer id="7"><name>A</name></customer>'
ITEM = '<item sku="S"><quantity>1</quantity><unitPrice currency="EUR">1.00</unitPrice></item>'
TOTAL = '<total currency="EUR">1.00</total>'


def order(body: str, *, head: str = OPEN, placed: str = "<placedAt>t</placedAt>") -> bytes:
    return f"{head}{placed}{body}</order>".encode()


def std(
    items: str = ITEM,
    *,
    customer: str = CUSTOMER,
    pre: str = "",
    after: str = "",
    total: str = TOTAL,
) -> str:
    return f"{customer}{pre}<items>{items}</items>{after}{total}"


JSON_OK = (
    '{"id":"SE-1","status":"open","placedAt":"t","customer":{"id":7,"name":"A"},'
    '"items":[{"sku":"S","quantity":1,"unitPrice":{"currency":"EUR","amount":1.00}}],'
    '"total":{"currency":"EUR","amount":1.00}}'
)


def jdoc(**replace: str) -> bytes:
    """The valid JSON order with some "key":value pairs swapped for others."""
    text = JSON_OK
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


def reason_of(fn: Callable[[bytes], Any], data: bytes) -> tuple[str, str]:
    with pytest.raises(TranslationError) as info:
        fn(data)
    err = info.value
    assert err.reason in TRANSLATION_REASONS
    assert err.detail  # a human-readable explanation always comes along
    return err.reason, err.location


def small_limits(**kw: Any) -> Limits:
    return Limits(**kw)


def x2j(data: bytes) -> Any:
    return ORDERS.xml_to_json(data)


def j2x(data: bytes) -> Any:
    return ORDERS.json_to_xml(data)


SCHEMALESS = load_mapping("schemaless")
POM = load_mapping("maven-pom")
SAFE = load_mapping("orders", safe_integers=True)
TINY = compile_mapping(
    {"schema": "../../../config/examples/schemas/order.schema.json", "root": "order"},
    base_dir=DATA / "orders",
    limits=Limits(max_translate_bytes=2000, max_depth=3, max_text_bytes=16),
)

# (id, reason, translate function, document, expected location)
CASES: list[tuple[str, str, Callable[[bytes], Any], bytes, str]] = [
    # --- XML side ---------------------------------------------------------------------------
    ("xml-not-well-formed", "not_well_formed", x2j, order("<customer>"), "/"),
    (
        "xml-undefined-entity",
        "not_well_formed",
        x2j,
        order(std(), placed="<placedAt>&x;</placedAt>"),
        "/",
    ),
    ("xml-doctype", "doctype_forbidden", x2j, b"<!DOCTYPE order>" + order(std()), "/"),
    (
        "xml-mixed-text",
        "mixed_content",
        x2j,
        order(std(customer='<customer id="7">hi<name>A</name></customer>')),
        "/order/customer/text()",
    ),
    (
        "xml-mixed-tail",
        "mixed_content",
        x2j,
        order(std(customer='<customer id="7"><name>A</name> tail</customer>')),
        "/order/customer/name/following-sibling::text()[1]",
    ),
    (
        "xml-mixed-in-text-node",
        "mixed_content",
        x2j,
        order(std(total='<total currency="EUR">1<b/></total>')),
        "/order/total/b",
    ),
    (
        "xml-interleaved",
        "interleaved_siblings",
        x2j,
        order(
            std(
                pre="<ship:shipTo><ship:street>a</ship:street><ship:city>c</ship:city>"
                "<ship:street>b</ship:street><ship:country>SE</ship:country></ship:shipTo>"
            )
        ),
        "/order/ship:shipTo/ship:street[2]",
    ),
    (
        "xml-out-of-order",
        "out_of_order",
        x2j,
        order(std(), placed="").replace(b"</customer>", b"</customer><placedAt>t</placedAt>"),
        "/order/placedAt",
    ),
    (
        "xml-duplicate",
        "duplicate_element",
        x2j,
        order(std(), placed="<placedAt>t</placedAt><placedAt>u</placedAt>"),
        "/order/placedAt[2]",
    ),
    ("xml-unknown-element", "unknown_element", x2j, order("<bogus/>" + std()), "/order/bogus"),
    (
        "xml-unknown-item-element",
        "unknown_element",
        x2j,
        order(std(items=ITEM + "<thing/>")),
        "/order/items/thing",
    ),
    (
        "xml-unknown-attribute",
        "unknown_attribute",
        x2j,
        order(std(customer='<customer id="7" x="1"><name>A</name></customer>')),
        "/order/customer/@x",
    ),
    (
        "xml-attribute-on-leaf",
        "unknown_attribute",
        x2j,
        order(std(customer='<customer id="7"><name lang="en">A</name></customer>')),
        "/order/customer/name/@lang",
    ),
    (
        "xml-unknown-namespace",
        "unknown_namespace",
        x2j,
        order('<x:ext xmlns:x="urn:other"/>' + std()),
        "/order/Q{urn:other}ext",
    ),
    (
        "xml-missing-element",
        "missing_element",
        x2j,
        order(std(customer='<customer id="7"></customer>')),
        "/order/customer",
    ),
    (
        "xml-missing-attribute",
        "missing_element",
        x2j,
        order(std(), head=OPEN.replace(' id="SE-1"', "")),
        "/order",
    ),
    (
        "xml-type-number",
        "type_mismatch",
        x2j,
        order(std(items=ITEM + ITEM.replace("<quantity>1<", "<quantity>two<"))),
        "/order/items/item[2]/quantity/text()",
    ),
    (
        "xml-type-leading-zero",
        "type_mismatch",
        x2j,
        order(std(total='<total currency="EUR">01.5</total>')),
        "/order/total/text()",
    ),
    (
        "xml-type-attribute",
        "type_mismatch",
        x2j,
        order(std(customer='<customer id="seven"><name>A</name></customer>')),
        "/order/customer/@id",
    ),
    (
        "xml-type-boolean",
        "type_mismatch",
        x2j,
        order(std(after="<giftWrap>yes</giftWrap>")),
        "/order/giftWrap/text()",
    ),
    (
        "xml-null-not-allowed",
        "type_mismatch",
        x2j,
        order(std(after='<giftWrap xsi:nil="true"/>')),
        "/order/giftWrap/@xsi:nil",
    ),
    (
        "xml-children-in-leaf",
        "type_mismatch",
        x2j,
        order(std(customer='<customer id="7"><name><b>A</b></name></customer>')),
        "/order/customer/name/b",
    ),
    (
        "xml-number-out-of-range",
        "number_out_of_range",
        SAFE.xml_to_json,
        order(std(after="") + "<loyaltyPoints>9007199254740993</loyaltyPoints>"),
        "/order/loyaltyPoints/text()",
    ),
    (
        "xml-invalid-character",
        "invalid_character",
        x2j,
        order(std(), placed="<placedAt>a\x01b</placedAt>"),
        "/",
    ),
    (
        "xml-invalid-utf8",
        "invalid_character",
        x2j,
        order(std(), placed="<placedAt>X</placedAt>").replace(b"X", b"\xff\xfe"),
        "/",
    ),
    (
        "xml-comment",
        "comment_forbidden",
        x2j,
        order(std(customer='<customer id="7"><!-- hi --><name>A</name></customer>')),
        "/order/customer/comment()",
    ),
    (
        "xml-comment-in-leaf",
        "comment_forbidden",
        x2j,
        order(std(customer='<customer id="7"><name>A<!-- hi -->B</name></customer>')),
        "/order/customer/name/comment()",
    ),
    ("xml-comment-prolog", "comment_forbidden", x2j, b"<!-- c -->" + order(std()), "/comment()"),
    (
        "xml-pi",
        "processing_instruction_forbidden",
        x2j,
        order("<?audit by=x?>" + std()),
        "/order/processing-instruction()",
    ),
    (
        "xml-too-deep",
        "too_deep",
        TINY.xml_to_json,
        order(std(items=ITEM.replace("1.00", "1"))),
        "/order/items/item/quantity",  # elements count on the XML side: quantity is the 4th
    ),
    ("xml-too-large", "too_large", TINY.xml_to_json, order(std() + " " * 2000), "/"),
    (
        "xml-text-too-large",
        "too_large",
        TINY.xml_to_json,
        order(std(), placed="<placedAt>" + "t" * 40 + "</placedAt>"),
        "/order/placedAt/text()",
    ),
    (
        "xml-enum",
        "schema_violation",
        x2j,
        order(std(), head=OPEN.replace('status="open"', 'status="lost"')),
        "/order/@status",
    ),
    (
        "xml-minimum",
        "schema_violation",
        x2j,
        order(std(items=ITEM.replace("<quantity>1<", "<quantity>0<"))),
        "/order/items/item/quantity/text()",
    ),
    (
        "xml-pattern",
        "schema_violation",
        x2j,
        order(std(total='<total currency="euro">1</total>')),
        "/order/total/@currency",
    ),
    (
        "xml-max-items",
        "schema_violation",
        x2j,
        order(
            std(
                pre="<ship:shipTo>"
                + "<ship:street>s</ship:street>" * 4
                + "<ship:city>c</ship:city><ship:country>SE</ship:country></ship:shipTo>"
            )
        ),
        "/order/ship:shipTo/ship:street[4]",
    ),
    (
        "xml-wrong-root",
        "wrong_root",
        x2j,
        b'<invoice xmlns="urn:example:shop:orders:1"/>',
        "/invoice",
    ),
    (
        "xml-wrong-root-namespace",
        "wrong_root",
        x2j,
        b'<order xmlns="urn:example:other"/>',
        "/Q{urn:example:other}order",
    ),
    # --- JSON side ------------------------------------------------------------------------------
    ("json-not-well-formed", "not_well_formed", j2x, b'{"id": "SE-1",', ""),
    ("json-nan", "not_well_formed", j2x, jdoc(**{'"amount":1.00}}': '"amount":NaN}}'}), ""),
    ("json-duplicate-key", "duplicate_key", j2x, jdoc(**{'"status":"open"': '"id":"X-2"'}), "/id"),
    (
        "json-unknown-property",
        "schema_violation",
        j2x,
        jdoc(**{'"placedAt":"t"': '"placedAt":"t","bogus":1'}),
        "/bogus",
    ),
    (
        "json-missing-required",
        "schema_violation",
        j2x,
        jdoc(**{',"name":"A"': ""}),
        "/customer",
    ),
    (
        "json-type-string",
        "type_mismatch",
        j2x,
        jdoc(**{'"quantity":1': '"quantity":"1"'}),
        "/items/0/quantity",
    ),
    (
        "json-type-integer",
        "type_mismatch",
        j2x,
        jdoc(**{'"quantity":1': '"quantity":1.5'}),
        "/items/0/quantity",
    ),
    (
        "json-type-object",
        "type_mismatch",
        j2x,
        jdoc(**{'"customer":{"id":7,"name":"A"}': '"customer":[]'}),
        "/customer",
    ),
    ("json-null", "type_mismatch", j2x, jdoc(**{'"placedAt":"t"': '"placedAt":null'}), "/placedAt"),
    (
        "json-attribute-null",
        "type_mismatch",
        j2x,
        jdoc(**{'"status":"open"': '"status":"open","priority":null'}),
        "/priority",
    ),
    (
        "json-number-out-of-range",
        "number_out_of_range",
        SAFE.json_to_xml,
        jdoc(**{'"customer":{"id":7': '"customer":{"id":-9007199254740992'}),
        "/customer/id",
    ),
    (
        "json-invalid-character",
        "invalid_character",
        j2x,
        jdoc(**{'"placedAt":"t"': '"placedAt":"a\\u0001b"'}),
        "/placedAt",
    ),
    (
        "json-lone-surrogate",
        "invalid_character",
        j2x,
        jdoc(**{'"name":"A"': '"name":"\\ud800"'}),
        "/customer/name",
    ),
    (
        "json-control-in-key",
        "invalid_character",
        j2x,
        jdoc(**{'"placedAt":"t"': '"placedAt":"t","a\\u0007b":1'}),
        "/a\u0007b",
    ),
    ("json-invalid-utf8", "invalid_character", j2x, b'{"id":"\xff"}', ""),
    ("json-raw-control", "invalid_character", j2x, b'{"id":"a\x01"}', ""),
    # objects/arrays count on the JSON side: unitPrice is the 4th container
    ("json-too-deep", "too_deep", TINY.json_to_xml, jdoc(), "/items/0/unitPrice"),
    ("json-too-large", "too_large", TINY.json_to_xml, jdoc() + b" " * 2000, ""),
    (
        "json-text-too-large",
        "too_large",
        TINY.json_to_xml,
        jdoc(**{'"placedAt":"t"': '"placedAt":"' + "t" * 40 + '"'}) + b" " * 0,
        "/placedAt",
    ),
    (
        "json-enum",
        "schema_violation",
        j2x,
        jdoc(**{'"status":"open"': '"status":"lost"'}),
        "/status",
    ),
    (
        "json-maximum",
        "schema_violation",
        j2x,
        jdoc(**{'"status":"open"': '"status":"open","priority":10'}),
        "/priority",
    ),
    (
        "json-min-items",
        "schema_violation",
        j2x,
        jdoc(**{'"items"': '"shipTo":{"street":[],"city":"c","country":"SE"},"items"'}),
        "/shipTo/street",
    ),
    (
        "json-invalid-name",
        "invalid_name",
        POM.json_to_xml,
        b'{"modelVersion":"4.0.0","artifactId":"a","properties":{"bad key":"v"}}',
        "/properties/bad key",
    ),
    (
        "json-schemaless-invalid-name",
        "invalid_name",
        SCHEMALESS.json_to_xml,
        b'{"1st":"x"}',
        "/1st",
    ),
    (
        "json-unknown-prefix",
        "unknown_namespace",
        SCHEMALESS.json_to_xml,
        b'{"bin":[{"part":[{"zz:x":"1"}]}]}',
        "/bin/0/part/0/zz:x",
    ),
    (
        "json-mixed",
        "mixed_content",
        SCHEMALESS.json_to_xml,
        b'{"wh:manager":{"#text":"x","child":"y"}}',
        "/wh:manager",
    ),
    (
        "json-schemaless-array-of-arrays",
        "type_mismatch",
        SCHEMALESS.json_to_xml,
        b'{"bin":[[1]]}',
        "/bin/0",
    ),
    (
        "xml-schemaless-interleaved",
        "interleaved_siblings",
        SCHEMALESS.xml_to_json,
        b'<inventory xmlns="urn:example:inventory"><a/><b/><a/></inventory>',
        "/inventory/a[2]",
    ),
    (
        "xml-schemaless-unknown-namespace",
        "unknown_namespace",
        SCHEMALESS.xml_to_json,
        b'<inventory xmlns="urn:example:inventory"><a xmlns="urn:x"/></inventory>',
        "/inventory/Q{urn:x}a",
    ),
    # --- format detection ------------------------------------------------------------------------
    ("undetectable", "undetectable_format", detect_format, b"  hello", "/"),
    ("undetectable-empty", "undetectable_format", detect_format, b" \n ", "/"),
]


@pytest.mark.parametrize(
    ("reason", "fn", "data", "location"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_failure_reason_and_location(
    reason: str, fn: Callable[[bytes], Any], data: bytes, location: str
) -> None:
    assert reason_of(fn, data) == (reason, location)


#: Reasons the data path gives, not the engine (tests/datapath/test_isolation.py covers them).
DATAPATH_REASONS = {"too_slow"}


def test_every_reason_has_a_case() -> None:
    assert {c[1] for c in CASES} == set(TRANSLATION_REASONS) - DATAPATH_REASONS


def test_valid_baselines_translate() -> None:
    """The documents the cases above break are valid before breaking."""
    ORDERS.xml_to_json(order(std()))
    ORDERS.json_to_xml(jdoc())
    SAFE.xml_to_json(order(std() + "<loyaltyPoints>9007199254740991</loyaltyPoints>"))
