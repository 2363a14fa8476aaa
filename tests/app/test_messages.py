"""What people read: error messages name locations one way, and help text is plain text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.app.cli import COMMANDS
from proxy.errors import InvalidDocument, TranslationError, UntranslatableObject

FORMAT_PROXY = Path(sys.executable).with_name("format-proxy")


@pytest.mark.parametrize("root", ["", "/"])  # JSON Pointer and XPath spellings of the root
def test_the_document_root_reads_the_same_in_every_message(root: str) -> None:
    err = TranslationError("not_well_formed", root, "unexpected end")
    assert str(err) == "not_well_formed at / (the document root): unexpected end"
    put = InvalidDocument(err, expected="json", route="orders")
    assert "not_well_formed at / (the document root): unexpected end" in put.message
    get = UntranslatableObject(err, source="xml", target="json", route="orders")
    assert "not_well_formed at / (the document root): unexpected end" in get.message


def test_other_locations_are_shown_as_they_are() -> None:
    err = TranslationError("type_mismatch", "/order/customer/@id", "'one' is not an integer")
    assert str(err) == "type_mismatch at /order/customer/@id: 'one' is not an integer"


def test_an_undetectable_stored_object_is_said_to_have_an_unknown_format() -> None:
    detail = "no x-amz-meta-format metadata, Content-Type 'text/plain' names no format"
    err = TranslationError("undetectable_format", "/", detail)
    msg = UntranslatableObject(err, source="xml", target="json", route="orders").message
    assert "format is unknown" in msg and detail in msg
    assert "translated from xml" not in msg


@pytest.mark.parametrize("command", COMMANDS)
def test_help_text_has_no_restructuredtext_markup(command: str) -> None:
    out = subprocess.run(
        [str(FORMAT_PROXY), command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "``" not in out
