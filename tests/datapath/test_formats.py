import pytest

from proxy.datapath.formats import detect_stored_format, format_from_content_type, sniff
from proxy.errors import TranslationError


@pytest.mark.parametrize(
    ("ct", "fmt"),
    [
        ("application/xml", "xml"),
        ("text/xml; charset=utf-8", "xml"),
        ("application/atom+xml", "xml"),
        ("application/json", "json"),
        ("application/vnd.api+json", "json"),
        ("binary/octet-stream", None),
        ("application/octet-stream", None),
        ("text/plain", None),
        ("image/png", None),
        (None, None),
    ],
)
def test_content_type(ct, fmt):
    assert format_from_content_type(ct) == fmt


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"<?xml version='1.0'?><a/>", "xml"),
        (b"\xef\xbb\xbf  \n<a/>", "xml"),
        (b'\r\n\t {"a": 1}', "json"),
        (b"[1]", "json"),
        (b"   ", None),
        (b"hello", None),
    ],
)
def test_sniff(head, fmt):
    assert sniff(head) == fmt


def test_metadata_beats_content_type_beats_sniff():
    assert detect_stored_format("json", "application/xml", b"<a/>") == "json"
    assert detect_stored_format(None, "application/xml", b"{}") == "xml"
    assert detect_stored_format(None, "binary/octet-stream", b"{}") == "json"


def test_undetectable_says_why():
    with pytest.raises(TranslationError) as exc:
        detect_stored_format(None, "binary/octet-stream", b"GIF89a")
    assert exc.value.reason == "undetectable_format"
    assert "GIF89a" in exc.value.detail and "binary/octet-stream" in exc.value.detail
    with pytest.raises(TranslationError) as exc:
        detect_stored_format("yaml", None, b"<a/>")
    assert exc.value.reason == "undetectable_format" and "yaml" in exc.value.detail
