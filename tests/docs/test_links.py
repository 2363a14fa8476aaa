"""README.md and docs/*.md: every relative link (anchors included) and every path in backticks
resolves, and the text speaks of the product, not of how it was made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.blocks import ROOT, documents

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(path: Path) -> str:
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens."""
    return {
        re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        for heading in _HEADING.findall(_prose(path))
    }


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    for target in _LINK.findall(_prose(doc)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        assert dest.exists(), f"{doc.name}: link to missing {target}"
        if anchor:
            assert anchor in anchors(dest), f"{doc.name}: no heading #{anchor} in {dest.name}"


def test_anchor_rule() -> None:
    page = ROOT / "docs" / "translation.md"
    assert "the-round-trip-guarantee" in anchors(page)


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_mentioned_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for path in set(re.findall(r"`((?:k8s|config|tests|docs|proxy|bench)/[\w./*-]+)`", text)):
        path = path.rstrip(".")
        found = list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
        assert found, f"{doc.name} mentions {path}, which does not exist"


_WORK_TALK = re.compile(
    r"\(issue \d+\)|\bissue[ -]\d+\b|\bthis stop\b|where the issue|\(for the README\)|the brief",
    re.IGNORECASE,
)


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_speak_of_the_product(doc: Path) -> None:
    found = _WORK_TALK.findall(doc.read_text(encoding="utf-8"))
    assert not found, f"{doc.name}: {found}"
