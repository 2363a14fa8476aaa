"""The fenced code blocks of README.md and docs/*.md, with their runnable markers.

Convention (tests/support/README.md): a shell block (```sh, ```console) is preceded by
``<!-- runnable -->`` or ``<!-- not runnable: REASON -->``. ``sh`` blocks are scripts;
``console`` blocks are transcripts whose ``$ `` lines are commands and whose other lines are
output the commands must print (``…`` stands for anything).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "shell", "bash", "console"})
# a fence, also indented (a block inside a list item); the closing fence has the same indent
_BLOCK = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*(runnable|not runnable:\s*(.*?))\s*-->\s*$", re.S)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str
    marker: str | None  # "runnable", "not runnable", or None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        kind = None
        reason = ""
        if marker is not None:
            kind = "runnable" if marker.group(1) == "runnable" else "not runnable"
            reason = (marker.group(2) or "").strip()
        line = text.count("\n", 0, m.start()) + 1
        body = textwrap.dedent(m.group(3))
        found.append(Block(path, line, m.group(2), body, kind, reason))
    return found


def all_blocks() -> list[Block]:
    return [b for path in documents() for b in blocks(path)]


def transcript(text: str) -> list[tuple[str, list[str]]]:
    """``console`` text as (command, expected output lines)."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line.rstrip())
    return steps


def line_matches(expected: str, actual_lines: list[str]) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return any(re.fullmatch(pattern, a.rstrip()) for a in actual_lines)
