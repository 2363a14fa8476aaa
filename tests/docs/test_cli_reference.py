"""The README's commands table names every flag of the everyday commands; the Kubernetes ones
(``inject``, ``webhook``) and the migration ones (``scan``, ``migrate``) point to the document
that names all of theirs."""

from __future__ import annotations

import argparse
import re

import pytest

from proxy.app.cli import COMMANDS, build_parser
from tests.docs.blocks import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
#: commands whose full flag reference is a document of its own
REFERENCES = {
    "inject": "docs/kubernetes.md",
    "webhook": "docs/kubernetes.md",
    "scan": "docs/transition.md",
    "migrate": "docs/transition.md",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _row(command: str) -> str:
    rows = re.findall(rf"^\| `format-proxy {command}\b.*$", README, re.M)
    assert len(rows) == 1, f"README's commands table has {len(rows)} rows for {command}"
    return rows[0]


def _documented(option_strings: list[str], text: str) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text) for o in option_strings)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_is_in_the_reference(command: str) -> None:
    sub = _subparsers()[command]
    row = _row(command)
    text = row
    if command in REFERENCES:
        assert REFERENCES[command] in row, f"the {command} row does not link its reference"
        text = (ROOT / REFERENCES[command]).read_text(encoding="utf-8")
    for action in sub._actions:
        if not action.option_strings or "--help" in action.option_strings:
            continue
        assert _documented(action.option_strings, text), f"{command} {action.option_strings}"
