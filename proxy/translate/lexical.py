"""Lexical forms shared by both directions: numbers, booleans, names, escaping.

Numbers never pass through ``float``: a number is carried as its JSON text (``0.10``,
``123456789012345678901234567890``) from one side to the other, and only turned into a
:class:`~decimal.Decimal` where a value comparison is unavoidable (integer-ness of ``1.0``,
``minimum``, ``multipleOf``). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring  # the C implementation when available

__all__ = [
    "BOOLEAN_IN",
    "SAFE_INTEGER",
    "encode_basestring",
    "escape_attr",
    "escape_text",
    "find_invalid_xml_char",
    "is_integral",
    "is_json_integer",
    "is_json_number",
    "is_ncname",
    "key_has_control_char",
    "to_decimal",
]

#: The JSON number grammar (RFC 8259), anchored. Used for XML text that must become a number.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
#: Plain integer literal: the fast path for ``integer`` (``1.0`` and ``1e3`` take the slow one).
_JSON_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")

is_json_number = _JSON_NUMBER.match
is_plain_integer = _JSON_INTEGER.match

#: XML text → JSON boolean literal. ``1``/``0`` are xsd:boolean spellings, read and normalised.
BOOLEAN_IN: dict[str, str] = {"true": "true", "false": "false", "1": "true", "0": "false"}

#: Largest integer every JSON implementation reads exactly (IEEE-754 double): ±(2**53 - 1).
SAFE_INTEGER = 2**53 - 1

# XML 1.0 ``Char`` excludes C0 controls other than TAB/LF/CR, lone surrogates, U+FFFE and U+FFFF.
_INVALID_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
find_invalid_xml_char = _INVALID_XML_CHAR.search


def key_has_control_char(key: str) -> bool:
    """A JSON key no XML name can carry: a character XML forbids, or any C0 control
    (TAB/LF/CR are XML characters, but not name characters)."""
    return find_invalid_xml_char(key) is not None or any(ord(c) < 0x20 for c in key)


# NCName (Namespaces in XML 1.0, 5th edition name characters minus ':').
_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
_NCNAME = re.compile(f"[{_NAME_START}][{_NAME_CHAR}]*\\Z")


def is_ncname(name: str) -> bool:
    """True for a valid XML NCName (an element or attribute name without a prefix)."""
    return _NCNAME.match(name) is not None


def to_decimal(text: str) -> Decimal:
    """The exact value of a JSON number literal (never rounded)."""
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - callers pass grammar-checked text
        raise ValueError(f"not a number: {text!r}") from None


def is_integral(text: str) -> bool:
    """True if the JSON number literal ``text`` has no fractional part (``2``, ``2.0``, ``1e3``).

    JSON Schema's ``integer`` is a value test, not a lexical one; the literal is kept as written.
    """
    if _JSON_INTEGER.match(text):
        return True
    d = to_decimal(text)
    # Huge positive exponents are integral without expanding them; as_integer_ratio would.
    return d == d.to_integral_value()


def is_json_integer(text: str) -> bool:
    """JSON number literal whose value is an integer."""
    return _JSON_NUMBER.match(text) is not None and is_integral(text)


def escape_text(s: str) -> str:
    """Escape character data. ``\\r`` becomes ``&#13;`` because parsers normalise a literal CR."""
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    if "\r" in s:
        s = s.replace("\r", "&#13;")
    return s


_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_ATTR_SPECIAL = re.compile('[&<>"\t\n\r]')


def escape_attr(s: str) -> str:
    """Escape an attribute value for ``"``-quoting; TAB/LF/CR as character references so that
    attribute-value normalisation gives the same string back."""
    if _ATTR_SPECIAL.search(s) is None:
        return s
    return s.translate(_ATTR_ESCAPES)


_CDATA_SPLIT = re.compile(r"\]\]>|\r")


def cdata(s: str) -> str:
    """Write ``s`` as CDATA. ``]]>`` is split across two sections; CR (which a parser would
    normalise inside CDATA) is written as a character reference between sections."""
    if _CDATA_SPLIT.search(s) is None:
        return "<![CDATA[" + s + "]]>"
    out = []
    for piece in re.split(r"(\r)", s.replace("]]>", "]]]]><![CDATA[>")):
        if piece == "\r":
            out.append("&#13;")
        elif piece:
            out.append("<![CDATA[" + piece + "]]>")
    return "".join(out)


def number_ok(text: str) -> bool:
    """True for JSON number text. The usual spellings (12, -3, 0.10) are decided without the
    regex, which settles the rest (1e3, 01); XML→JSON calls this for every numeric leaf."""
    s = text[1:] if text[:1] == "-" else text
    i, dot, f = s.partition(".")
    if (
        s.isascii()
        and i.isdecimal()
        and (i[0] != "0" or len(i) == 1)
        and (not dot or f.isdecimal())
    ):
        return True
    return is_json_number(text) is not None


def integer_ok(text: str) -> bool:
    """True for JSON number text with an integral value (``2``, ``-7``, also ``2.0``/``1e3``)."""
    s = text[1:] if text[:1] == "-" else text
    if s.isascii() and s.isdecimal() and (s[0] != "0" or len(s) == 1):
        return True
    return is_json_number(text) is not None and is_integral(text)
