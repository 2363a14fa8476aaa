"""docs/architecture.md's module table names every module under proxy/, and only those."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*`(proxy/[\w/]+\.py)`\s*\|\s*(.+?)\s*\|\s*$")


def _documented() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} is listed twice"
            rows[m.group(1)] = m.group(2)
    return rows


def _modules() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "proxy").rglob("*.py")
        if p.name not in {"__init__.py", "__main__.py"}
    }


def test_every_module_has_one_row_and_every_row_a_module() -> None:
    documented = _documented()
    modules = _modules()
    assert sorted(modules - documented.keys()) == [], "modules missing from docs/architecture.md"
    assert sorted(documented.keys() - modules) == [], "rows for modules that do not exist"
    assert all(role and role != "…" for role in documented.values())


def test_every_module_says_its_job_in_its_docstring() -> None:
    for rel in sorted(_modules()):
        doc = ast.get_docstring(ast.parse((ROOT / rel).read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{rel} has no docstring"


def test_no_module_is_much_over_600_lines() -> None:
    long = {
        rel: n
        for rel in _modules()
        if (n := len((ROOT / rel).read_text(encoding="utf-8").splitlines())) > 620
    }
    assert long == {}
