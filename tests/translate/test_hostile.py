"""Untrusted documents: each hostile case is refused with its reason, within a time and memory
bound, without reading local files or opening connections.

Every case runs in a fresh interpreter (``tests/translate/hostile_case.py``) so that its peak
RSS is its own. Bounds are generous sanity limits (a shared 2-core machine), not benchmarks.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.translate import compile_mapping
from tests.translate.helpers import REPO

SECRET = "s3cr3t-6f1d2b9c-do-not-leak"
TIME_BOUND = 10.0  # seconds, per case


class Listener:
    """A TCP listener on loopback that counts every connection attempt (it must see none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("hostile") / "secret.txt"
    p.write_text(SECRET, encoding="utf-8")
    return p


def run_case(case: str, listener: Listener, secret_file: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.translate.hostile_case",
            case,
            str(listener.port),
            str(secret_file),
        ],
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    blob = json.dumps(result)
    assert SECRET not in blob, f"the secret leaked: {blob[:300]}"
    assert result["seconds"] < TIME_BOUND, result
    return result


# case, reason, location, extra RSS allowed (MB) beyond the process before translating
CASES = [
    ("xxe-file", "doctype_forbidden", "/", 30),
    ("xxe-file-utf16", "doctype_forbidden", "/", 30),
    ("xxe-network", "doctype_forbidden", "/", 30),
    ("external-dtd", "doctype_forbidden", "/", 30),
    ("external-dtd-file", "doctype_forbidden", "/", 30),
    ("parameter-entity", "doctype_forbidden", "/", 30),
    ("billion-laughs", "doctype_forbidden", "/", 30),
    ("quadratic", "doctype_forbidden", "/", 30),
    ("deep-xml", "too_deep", "/", 30),
    ("deep-xml-raised-limit", "too_deep", "/", 30),  # libxml2's own cap (no huge_tree) holds
    ("deep-json", "too_deep", "", 60),
    ("deep-json-arrays", "too_deep", "", 60),
    ("deep-json-raised-limit", "too_deep", "", 60),
    ("huge-text-default-limits", "too_large", "/", 30),  # refused on size, before parsing
    ("huge-text-raised-size", "too_large", "/", 60),  # libxml2's 10 MB text cap
    ("huge-text-json", "too_large", "", 250),  # decoded and parsed before its length is known
    ("invalid-utf8-xml", "invalid_character", "/", 30),
    ("invalid-utf8-json", "invalid_character", "", 30),
    ("control-key-json", "invalid_character", "/a\u0001b", 30),
    ("control-key-json-schemaless", "invalid_character", "/a\u0001b", 30),
]


@pytest.mark.parametrize(("case", "reason", "location", "rss_mb"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_refused(
    case: str, reason: str, location: str, rss_mb: int, listener: Listener, secret_file: Path
) -> None:
    before = listener.connections
    result = run_case(case, listener, secret_file)
    assert (result["reason"], result["location"]) == (reason, location), result
    assert result["rss_mb"] - result["base_rss_mb"] < rss_mb, result
    assert listener.connections == before, "the parser opened a connection"


def test_xinclude_is_never_processed(listener: Listener, secret_file: Path) -> None:
    result = run_case("xinclude", listener, secret_file)
    assert result["reason"] is None
    out = json.loads(result["output"])
    assert out == {"xi:include": {"@href": f"file://{secret_file}", "@parse": "text"}}


def test_huge_numbers_stay_cheap(listener: Listener, secret_file: Path) -> None:
    result = run_case("huge-number-json", listener, secret_file)
    # refused for the missing required properties; the million-digit number itself is no work
    assert result["reason"] == "schema_violation"
    assert result["rss_mb"] - result["base_rss_mb"] < 60


def test_parser_alone_resolves_nothing(secret_file: Path, listener: Listener) -> None:
    """Defence in depth: even the parser the engine configures (before its DOCTYPE refusal)
    substitutes no entity, loads no DTD and opens no connection."""
    from lxml import etree

    m = compile_mapping({"root": "r"}, base_dir=REPO)
    before = listener.connections
    for blanks in (True, False):
        parser = m._reader.parsing.parser(blanks)
        doc = (
            f'<!DOCTYPE r SYSTEM "http://127.0.0.1:{listener.port}/d.dtd" '
            f'[<!ENTITY f SYSTEM "file://{secret_file}">'
            f'<!ENTITY n SYSTEM "http://127.0.0.1:{listener.port}/n">]><r>&f;&n;</r>'
        ).encode()
        local = f'<!DOCTYPE r [<!ENTITY f SYSTEM "file://{secret_file}">]><r>&f;</r>'.encode()
        root = etree.fromstring(local, parser)  # entity left unresolved: a reference node
        assert SECRET not in etree.tostring(root, encoding="unicode")
        try:
            root = etree.fromstring(doc, parser)
        except etree.XMLSyntaxError as exc:  # libxml2 refuses the network DTD outright
            assert "network" in str(exc) and SECRET not in str(exc)
            continue
        assert SECRET not in etree.tostring(root, encoding="unicode")  # pragma: no cover
    assert listener.connections == before
