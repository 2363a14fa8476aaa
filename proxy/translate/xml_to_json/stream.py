"""XML → JSON, streaming: large documents in bounded memory: records translated as they are parsed.

A parsed lxml tree costs about six times the document; a large document is almost always a
long array of records (order lines, listing entries). Here the document is fed to a pull
parser that reports the *end* of every element that can be a record (an item of an array of
objects). Each record, complete at that moment, is translated at once by the same code as
always (the fast path, the tables behind it) into UTF-8 bytes, and its subtree is cleared. The
parent keeps the emptied element (with its tail), so the final walk over the remaining
skeleton checks order, adjacency and mixed content exactly as for a small document, and takes
each record's bytes instead of walking it. Memory: the input, the records' JSON, the skeleton.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from lxml import etree

from proxy.errors import TranslationError
from proxy.translate.failures import Fail, syntax_error
from proxy.translate.output import join, join_releasing
from proxy.translate.rules import ArrayRule, ObjectRule, Rule
from proxy.translate.xml_to_json.fast import FastPath
from proxy.translate.xml_to_json.parse import XmlParsing
from proxy.translate.xml_to_json.records import FRAGS
from proxy.translate.xml_to_json.walker import XmlWalker
from proxy.xmlsafe import hardened_pull_parser

#: Feed size: big enough to keep lxml's per-call overhead negligible, small enough that the
#: pending (not yet translated) part of the tree stays small.
CHUNK = 256 * 1024


class StreamingReader:
    """Translate one mapping's large documents record by record (see the module docstring)."""

    def __init__(
        self,
        walker: XmlWalker,
        parsing: XmlParsing,
        fast: FastPath | None,
        records: tuple[dict[str, None], set[int]],
    ) -> None:
        self.walker = walker
        self.parsing = parsing
        self.fast = fast
        self.tags, self.rules = records
        self._cache: dict[tuple[str, ...], Rule | None] = {}
        self._lock = threading.Lock()

    @property
    def useful(self) -> bool:
        return bool(self.tags)

    def _rule_at(self, tags: tuple[str, ...]) -> Rule | None:
        rule = self._cache.get(tags, _UNSET)
        if rule is not _UNSET:
            return cast("Rule | None", rule)
        root = self.walker.root
        found: Rule | None = root.rule if tags[0] == root.tag else None
        for tag in tags[1:]:
            if isinstance(found, ObjectRule):
                p = found.elems.get(tag)
                found = (
                    None
                    if p is None
                    else (cast(ArrayRule, p.rule).items if p.unwrapped else p.rule)
                )
            elif isinstance(found, ArrayRule) and tag == found.item_tag:
                found = found.items
            else:
                found = None
            if found is None:
                break
        with self._lock:
            if len(self._cache) < 10_000:
                self._cache[tags] = found
        return found

    def to_json(self, data: bytes, blanks: bool) -> bytes:
        rt = self.walker.rt
        parser = hardened_pull_parser(
            events=("end",),
            tag=list(self.tags),
            remove_comments=rt.drop_comments,
            remove_pis=rt.drop_pis,
            remove_blank_text=not blanks,
            collect_ids=False,
            strip_cdata=True,
        )
        frags: dict[Any, bytes] = {}
        last: list[Any] = [None, None, None, None, 0]
        FRAGS.frags = frags
        try:
            try:
                for start in range(0, len(data), CHUNK):
                    parser.feed(data[start : start + CHUNK])
                    for _, el in parser.read_events():
                        self._record(el, frags, last)
                root = parser.close()
            except etree.XMLSyntaxError as exc:
                raise syntax_error(exc) from None
            except Fail as f:
                raise f.xml_error(rt.prefix_of, always_index=self.tags) from None
            self.parsing.check_parsed(root, data)
            try:
                return self._final(root, frags)
            except Fail as f:
                raise f.xml_error(rt.prefix_of, always_index=self.tags) from None
            except RecursionError:
                raise TranslationError(
                    "too_deep", "/", "nesting deeper than the translator can follow"
                ) from None
        finally:
            FRAGS.frags = _EMPTY

    def _record(self, el: Any, frags: dict[Any, bytes], last: list[Any]) -> None:
        """Translate the record ``el`` (just ended) and clear it. ``last`` remembers the previous
        record's parent, tag, function and depth: records come in long runs of siblings."""
        parent = el.getparent()
        tag = el.tag
        if parent is not None and parent is last[0] and tag == last[1]:
            fn, rule, depth = last[2], last[3], last[4]
        else:
            tags = [tag]
            depth = 1
            for anc in el.iterancestors():
                tags.append(anc.tag)
                depth += 1
            tags.reverse()
            rule = self._rule_at(tuple(tags))
            if rule is None or id(rule) not in self.rules:
                return  # not a record here: the final walk judges it in place
            fn = self.fast.function(rule) if self.fast is not None else None
            last[:] = [parent, tag, fn, rule, depth]  # keeps the parent's proxy (its identity)
        out: list[Any] = []
        if fn is not None:
            fn(el, depth, out)
        else:
            out.append(self.walker.object(el, rule, depth))
        frags[el] = join(out)
        el.clear(keep_tail=True)

    def _final(self, root: Any, frags: dict[Any, bytes]) -> bytes:
        fast = self.fast
        if fast is not None and fast.root is not None and root.tag == self.walker.root.tag:
            out: list[Any] = []
            fast.root(root, 1, out)
            frags.clear()  # the records' bytes are referenced by ``out`` alone now
            return join_releasing(out)
        return self.walker.translate_root(root).encode("utf-8")


_UNSET: Any = object()
_EMPTY: dict[Any, bytes] = {}
