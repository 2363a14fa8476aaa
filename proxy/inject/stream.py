"""Inject a multi-document YAML stream, leaving every untouched document byte-for-byte.

Untouched documents are never round-tripped through a YAML dumper: the stream is split at its
document markers and each document's original text is re-emitted verbatim. Only a document that
gains a sidecar is serialised again (its comments are lost, as with ``istioctl kube-inject``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from proxy.errors import InjectionError
from proxy.inject.options import InjectOptions
from proxy.inject.workloads import inject_object

# A document start marker: "---" at the start of a line, then whitespace or the end of the line.
# YAML forbids this inside any scalar, so a line-based split is exact.
_START = re.compile(r"^---(?:[ \t]|\r?$)")
_END = re.compile(r"^\.\.\.(?:[ \t]|\r?$)")


@dataclass(frozen=True)
class Document:
    text: str
    #: 1-based line of ``text``'s first line in the stream (for error messages).
    first_line: int


@dataclass(frozen=True)
class StreamResult:
    text: str
    injected: int
    warnings: tuple[str, ...]


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def split_documents(text: str) -> list[Document]:
    """Split ``text`` into documents whose concatenation is ``text`` exactly."""
    lines = _lines(text)
    docs: list[Document] = []
    start = 0
    for i, line in enumerate(lines):
        cut: int | None = None
        if _START.match(line):
            cut = i
            # Directives ("%YAML ...") belong to the document that follows them.
            while cut > start and lines[cut - 1].startswith("%"):
                cut -= 1
        elif i > 0 and _END.match(lines[i - 1]):
            cut = i
        if cut is not None and cut > start:
            docs.append(Document("".join(lines[start:cut]), start + 1))
            start = cut
    if start < len(lines):
        docs.append(Document("".join(lines[start:]), start + 1))
    return docs


class _Dumper(yaml.SafeDumper):
    """Kubernetes-style YAML: key order kept, multi-line strings as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(obj: Any, *, width: int = 4096) -> str:
    """Kubernetes-style YAML; ``width`` folds long strings (read back unchanged)."""
    return yaml.dump(
        obj,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=width,
    )


def _load(doc: Document, number: int) -> Any:
    try:
        return yaml.safe_load(doc.text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            f"line {doc.first_line + mark.line}" if mark is not None else f"line {doc.first_line}"
        )
        problem = getattr(exc, "problem", None) or str(exc)
        raise InjectionError(f"document {number} ({where}): not valid YAML: {problem}") from None


def _emit(doc: Document, obj: Any, number: int) -> str:
    lines = _lines(doc.text)
    has_marker = any(_START.match(line) for line in lines)
    content = "".join(
        line
        for line in lines
        if not (_START.match(line) or line.startswith("%") or line.lstrip().startswith("#"))
    ).lstrip()
    # A document after the first always needs its "---" (it may have followed a "...").
    header = "---\n" if has_marker or number > 1 else ""
    if content.startswith("{"):  # the document was JSON: keep it JSON
        return header + json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    return header + dump_yaml(obj)


def inject_stream(text: str, options: InjectOptions) -> StreamResult:
    """Inject every opted-in pod template in ``text``; everything else stays as it was.

    Raises :class:`InjectionError` naming the document for input that is not YAML or an opted-in
    template that cannot be injected; nothing is produced in that case.
    """
    out: list[str] = []
    warnings: list[str] = []
    injected = 0
    for number, doc in enumerate(split_documents(text), start=1):
        obj = _load(doc, number)
        result = inject_object(obj, options, where=f"document {number}")
        warnings += result.warnings
        if result.injected is None:
            out.append(doc.text)
            continue
        injected += result.count
        emitted = _emit(doc, result.injected, number)
        # Keep the separation the next document relies on ("---" must start a line).
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(emitted)
    return StreamResult("".join(out), injected, tuple(warnings))
