"""XML → JSON, streaming records: which rules are records (items of arrays of objects) and
the per-thread table of records already translated while a document streams, which the fast
path and the table walker look up instead of walking a record twice."""

from __future__ import annotations

import threading
from typing import Any

from proxy.translate.rules import ArrayRule, ObjectRule, Rule

__all__ = ["FRAGS", "Frags", "record_rules"]


class Frags(threading.local):
    """The current document's translated records, per thread (the generated code and the
    table walker look placeholders up here). Empty (falsy) outside a streaming translation."""

    frags: dict[Any, bytes] = {}  # noqa: RUF012 - never mutated: a per-thread dict replaces it


FRAGS = Frags()


def record_rules(root_rule: Rule) -> tuple[dict[str, None], set[int]]:
    """(record element tags, ids of record rules): items of arrays whose items are objects."""
    tags: dict[str, None] = {}
    rules: set[int] = set()
    seen: set[int] = set()
    stack = [root_rule]
    while stack:
        rule = stack.pop()
        if id(rule) in seen:
            continue
        seen.add(id(rule))
        if isinstance(rule, ObjectRule):
            for p in rule.props:
                stack.append(p.rule)
            if rule.extra is not None:
                stack.append(rule.extra)
        elif isinstance(rule, ArrayRule) and rule.items is not None:
            if isinstance(rule.items, ObjectRule):
                tags[rule.item_tag] = None
                rules.add(id(rule.items))
            stack.append(rule.items)
    return tags, rules
