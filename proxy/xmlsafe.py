"""Hardened lxml parser factory: no entities, no network, no DTD loading or validation, no huge
trees. Every XML parse in the proxy goes through here, so the safe settings live in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from lxml import etree

__all__ = ["hardened_parser", "hardened_pull_parser"]

# The settings no caller may loosen, spelled out in both factories below: entities stay
# unresolved (no billion laughs, no XXE), nothing is fetched over the network, no DTD is loaded
# or validated, libxml2's own size caps stay on (huge_tree=False).

PullEvent = Literal["start", "end", "start-ns", "end-ns", "comment", "pi"]


def hardened_parser(
    *,
    remove_comments: bool = False,
    remove_pis: bool = False,
    remove_blank_text: bool = False,
    collect_ids: bool = True,
    strip_cdata: bool = True,
) -> etree.XMLParser:
    """A new ``XMLParser`` with the safe settings; the keyword arguments choose only what the
    tree keeps (parsers are not thread-safe: one per thread)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=remove_comments,
        remove_pis=remove_pis,
        remove_blank_text=remove_blank_text,
        collect_ids=collect_ids,
        strip_cdata=strip_cdata,
    )


def hardened_pull_parser(
    *,
    events: Iterable[PullEvent],
    tag: list[str],
    remove_comments: bool = False,
    remove_pis: bool = False,
    remove_blank_text: bool = False,
    collect_ids: bool = True,
    strip_cdata: bool = True,
) -> etree.XMLPullParser:
    """A new incremental ``XMLPullParser`` with the safe settings."""
    return etree.XMLPullParser(
        events=events,
        tag=tag,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=remove_comments,
        remove_pis=remove_pis,
        remove_blank_text=remove_blank_text,
        collect_ids=collect_ids,
        strip_cdata=strip_cdata,
    )
