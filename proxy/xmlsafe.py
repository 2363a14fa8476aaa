"""Hardened lxml parser factory: no entities, no network, no DTD loading or validation, no huge
trees. Every XML parse in the proxy goes through here, so the safe settings live in one place."""

from __future__ import annotations

from lxml import etree

__all__ = ["SAFE_PARSER_OPTIONS", "hardened_parser", "hardened_pull_parser"]

#: The settings no caller may loosen: entities stay unresolved (no billion laughs, no XXE), no
#: fetch over the network, no DTD loaded or validated, libxml2's own size caps stay on.
SAFE_PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
}


def hardened_parser(
    *,
    remove_comments: bool = False,
    remove_pis: bool = False,
    remove_blank_text: bool = False,
    collect_ids: bool = True,
    strip_cdata: bool = True,
) -> etree.XMLParser:
    """A new ``XMLParser`` with :data:`SAFE_PARSER_OPTIONS`; the keyword arguments choose only
    what the tree keeps (parsers are not thread-safe: one per thread)."""
    return etree.XMLParser(
        **SAFE_PARSER_OPTIONS,
        remove_comments=remove_comments,
        remove_pis=remove_pis,
        remove_blank_text=remove_blank_text,
        collect_ids=collect_ids,
        strip_cdata=strip_cdata,
    )


def hardened_pull_parser(
    *,
    events: tuple[str, ...],
    tag: list[str],
    remove_comments: bool = False,
    remove_pis: bool = False,
    remove_blank_text: bool = False,
    collect_ids: bool = True,
    strip_cdata: bool = True,
) -> etree.XMLPullParser:
    """A new incremental ``XMLPullParser`` with :data:`SAFE_PARSER_OPTIONS`."""
    return etree.XMLPullParser(
        events=events,
        tag=tag,
        **SAFE_PARSER_OPTIONS,
        remove_comments=remove_comments,
        remove_pis=remove_pis,
        remove_blank_text=remove_blank_text,
        collect_ids=collect_ids,
        strip_cdata=strip_cdata,
    )
