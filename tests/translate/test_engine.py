"""Interface details the proxy relies on: format detection, validation entry points, thread
safety, encodings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from proxy.errors import TranslationError
from proxy.translate import detect_format
from tests.translate.helpers import DATA, exact, load_mapping

ORDERS = load_mapping("orders")
FULL_XML = (DATA / "orders" / "full.xml").read_bytes()
FULL_JSON = (DATA / "orders" / "full.json").read_bytes()


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"<a/>", "xml"),
        (b"  \r\n\t<?xml version='1.0'?><a/>", "xml"),
        (b"\xef\xbb\xbf<a/>", "xml"),
        ("<a/>".encode("utf-16"), "xml"),  # BOM + UTF-16
        (b"\xfe\xff" + "\n<a/>".encode("utf-16-be"), "xml"),
        (b"{}", "json"),
        (b"\n [1]", "json"),
        (b'\xef\xbb\xbf {"a":1}', "json"),
        (b" " * 10_000 + b"{}", "json"),
    ],
)
def test_detect_format(data: bytes, fmt: str) -> None:
    assert detect_format(data) == fmt


@pytest.mark.parametrize("data", [b"", b"   ", b"hello", b'"string"', b"42", b"\xff\xfe"])
def test_detect_format_refuses(data: bytes) -> None:
    with pytest.raises(TranslationError) as info:
        detect_format(data)
    assert info.value.reason == "undetectable_format"


def test_validate_entry_points() -> None:
    ORDERS.validate_xml(FULL_XML)
    ORDERS.validate_json(FULL_JSON)
    with pytest.raises(TranslationError):
        ORDERS.validate_xml(FULL_XML.replace(b'status="paid"', b'status="lost"'))
    with pytest.raises(TranslationError):
        ORDERS.validate_json(FULL_JSON.replace(b'"paid"', b'"lost"'))
    assert ORDERS.translate(FULL_XML, "json") == ORDERS.xml_to_json(FULL_XML)
    assert ORDERS.translate(FULL_JSON, "xml") == ORDERS.json_to_xml(FULL_JSON)


def test_thread_safe_under_concurrency() -> None:
    """The proxy runs translations in a thread pool: results must not interfere."""
    docs = [
        FULL_XML,
        (DATA / "orders" / "minimal.xml").read_bytes(),
        (DATA / "orders" / "coupons.xml").read_bytes(),
    ]
    expected = [ORDERS.xml_to_json(d) for d in docs]
    expected_xml = [ORDERS.json_to_xml(j) for j in expected]

    def work(i: int) -> tuple[bytes, bytes]:
        d = docs[i % 3]
        j = ORDERS.xml_to_json(d)
        return j, ORDERS.json_to_xml(j)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(300)))
    for i, (j, x) in enumerate(results):
        assert j == expected[i % 3]
        assert x == expected_xml[i % 3]


def test_other_xml_encodings_are_read_and_utf8_is_written() -> None:
    utf16 = FULL_XML.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    latin = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?>'
        b'<order xmlns="urn:example:shop:orders:1" id="DK-1" status="open">'
        b'<placedAt>t</placedAt><customer id="1"><name>K\xf8benhavn</name></customer>'
        b'<items/><total currency="DKK">0</total></order>'
    )
    assert ORDERS.xml_to_json(utf16) == ORDERS.xml_to_json(FULL_XML)
    j = ORDERS.xml_to_json(latin)
    assert "København".encode() in j
    assert ORDERS.json_to_xml(j).startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_json_with_bom_and_whitespace() -> None:
    assert exact(
        ORDERS.xml_to_json(ORDERS.json_to_xml(b"\xef\xbb\xbf \n" + FULL_JSON + b"\n"))
    ) == exact(FULL_JSON)


def test_json_must_be_utf8() -> None:
    with pytest.raises(TranslationError) as info:
        ORDERS.json_to_xml(FULL_JSON.decode().encode("utf-16"))
    assert info.value.reason == "invalid_character"


def test_root_value_of_the_wrong_type() -> None:
    for doc in (b"[]", b'"x"', b"1", b"null"):
        with pytest.raises(TranslationError) as info:
            ORDERS.json_to_xml(doc)
        assert (info.value.reason, info.value.location) == ("type_mismatch", "")


def test_nothing_but_whitespace_between_elements_is_dropped() -> None:
    # Whitespace-only values are values: kept exactly; whitespace between elements is not.
    doc = FULL_XML.replace(b"<note>   </note>", b"<note>\r\n\t </note>")
    out = ORDERS.xml_to_json(doc)
    assert b'"note":"\\n\\t "' in out  # CR LF is one LF after any XML parser's normalisation


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_one_sniffer_for_data_path_and_engine(encoding: str) -> None:
    """A UTF-16/32 document with its byte order mark is XML to the engine and the data path."""
    from proxy.datapath.formats import sniff
    from proxy.translate import sniff_format

    bom = {"utf-16-be": "\ufeff"}.get(encoding, "")
    data = (bom + '  <?xml version="1.0"?><a/>').encode(encoding)
    assert detect_format(data) == "xml"
    assert sniff_format(data) == "xml"
    assert sniff(data) == "xml"
    assert sniff(b"\xef\xbb\xbf [1]") == sniff_format(b"\xef\xbb\xbf [1]") == "json"
    assert sniff(b"  ") is None


def test_compile_mapping_takes_translate_limits_or_any_object_like_them() -> None:
    """The engine owns its limits (TranslateLimits); config's Limits still fits the Protocol."""
    import yaml

    from proxy.config import Limits
    from proxy.translate import TranslateLimits, compile_mapping
    from tests.translate.helpers import DATA

    d = DATA / "orders"
    spec = yaml.safe_load((d / "mapping.yaml").read_text(encoding="utf-8"))
    doc = next(d.glob("*.xml")).read_bytes()
    for limits in (
        TranslateLimits(max_translate_bytes=len(doc) - 1),
        Limits(max_translate_bytes=len(doc) - 1),
    ):
        m = compile_mapping(spec, base_dir=d, limits=limits)
        with pytest.raises(TranslationError) as exc:
            m.xml_to_json(doc)
        assert exc.value.reason == "too_large"
    assert TranslateLimits.of(None) == TranslateLimits()
    assert TranslateLimits.of(Limits()) == TranslateLimits(
        Limits().max_depth, Limits().max_text_bytes, Limits().max_translate_bytes
    )
