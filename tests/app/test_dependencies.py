"""Every distribution the proxy imports is declared in pyproject's dependencies."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Imported only when present, each with a fallback or a clear message.
OPTIONAL = {
    "awscrt": "fast CRC64NVME when installed; a table-driven fallback otherwise",
    "moto": "the embedded S3 of `upstream.endpoint: embedded`, from the `local` extra",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_names() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((ROOT / "proxy").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared() -> None:
    declared = {
        _canonical(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0])
        for req in requires("format-proxy") or []
        if "extra ==" not in req
    }
    providers = packages_distributions()
    third_party = {
        name: where
        for name, where in _imported_top_level_names().items()
        if name not in sys.stdlib_module_names and name != "proxy" and name not in OPTIONAL
    }
    assert "aiohttp" in third_party and "yarl" in third_party  # the scan sees real imports
    undeclared = {
        name: where
        for name, where in third_party.items()
        if not any(_canonical(d) in declared for d in providers.get(name, []))
    }
    assert undeclared == {}, f"imported but not in [project].dependencies: {undeclared}"
