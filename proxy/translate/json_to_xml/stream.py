"""JSON → XML for large documents in bounded memory: records parsed and written one at a time.

The whole-value parse costs about ten times the document in Python objects. A large document
is almost always a long array of records, so here only the objects on the way to such arrays
are tokenised by hand (their members one by one, with the standard library's C scanner for
every key and value); each record of the array is parsed alone (``raw_decode``), written as
XML by the usual code (the fast path, the tables behind it) and dropped. The enclosing objects
are then written by the table walker from their parsed members plus the records' ready XML,
so every check (required, unknown and duplicate keys, array bounds) is the usual one.
"""

from __future__ import annotations

import json
from json.decoder import scanstring  # type: ignore[attr-defined]  # typeshed omits it
from typing import Any

from proxy.translate.failures import Fail, parse_failure
from proxy.translate.json_to_xml.decode import (
    check_string_sizes,
    find_invalid_character,
    forbidden_in_xml,
)
from proxy.translate.json_to_xml.fast import JsonFastPath
from proxy.translate.json_to_xml.walker import XML_DECLARATION, JsonWalker
from proxy.translate.model import Pairs, Streamed, json_decoder, kind_of, parse_exact
from proxy.translate.output import join, join_releasing
from proxy.translate.rules import ELEMENT, ArrayRule, ObjectRule, Rule

_WS = " \t\n\r"


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


class JsonStreamer:
    """Translate one mapping's large documents record by record (see the module docstring)."""

    def __init__(self, walker: JsonWalker, fast: JsonFastPath | None) -> None:
        self.walker = walker
        self.fast = fast
        self.streamable: set[int] = set()
        self._visit(walker.root.rule, {})

    @property
    def useful(self) -> bool:
        return bool(self.walker.root.tag) and id(self.walker.root.rule) in self.streamable

    def _visit(self, rule: Rule, seen: dict[int, bool]) -> bool:
        """Whether a value of ``rule`` holds an array of records somewhere below."""
        if id(rule) in seen:
            return seen[id(rule)]
        seen[id(rule)] = False  # while visiting (cycles)
        found = False
        if isinstance(rule, ObjectRule) and rule.text is None:
            for p in rule.elem_props:
                if self._visit(p.rule, seen):
                    found = True
        elif isinstance(rule, ArrayRule) and rule.items is not None and not rule.unique:
            found = isinstance(rule.items, ObjectRule)
            self._visit(rule.items, seen)
        seen[id(rule)] = found
        if found:
            self.streamable.add(id(rule))
        return found

    # --- entry ----------------------------------------------------------------------------

    def to_xml(self, text: str, check_sizes: bool) -> bytes:
        return _Pass(self, check_sizes).run(text)


class _Pass:
    """One document's streaming translation (per-call state: the streamer is shared by
    threads)."""

    def __init__(self, streamer: JsonStreamer, check_sizes: bool) -> None:
        self.streamable = streamer.streamable
        self.walker = streamer.walker
        self.fast = streamer.fast
        self.decoder = json_decoder()
        self.check_sizes = check_sizes

    def run(self, text: str) -> bytes:
        walker = self.walker
        spec = walker.root
        out: list[Any] = [XML_DECLARATION]
        try:
            try:
                i = _skip(text, 0)
                if isinstance(spec.rule, ObjectRule):
                    end = self._object(
                        text, i, spec.rule, walker.root_names, spec.declarations, 1, out
                    )
                else:  # an array root: the usual path (what _object does for a non-object)
                    value, end = self._value(text, i)
                    walker.element(spec.rule, value, walker.root_names, out, 1, spec.declarations)
                if _skip(text, end) != len(text):
                    raise json.JSONDecodeError("Extra data", text, _skip(text, end))
            except Fail as f:
                raise f.json_error() from None
        except (ValueError, RecursionError) as exc:
            raise parse_failure(exc) from None
        try:
            data = join_releasing(out)
        except UnicodeEncodeError:
            find_invalid_character(parse_exact(text))
            raise
        if forbidden_in_xml(data):
            find_invalid_character(parse_exact(text))  # the slow walk names the place
        return data

    # --- containers --------------------------------------------------------------------------

    def _value(self, s: str, i: int) -> tuple[Any, int]:
        value, end = self.decoder.raw_decode(s, i)
        if self.check_sizes:
            check_string_sizes(value, self.walker.rt.max_text_bytes)
        return value, end

    def _object(
        self, s: str, i: int, rule: ObjectRule, names: Any, decl: str, depth: int, out: list[Any]
    ) -> int:
        if i >= len(s) or s[i] != "{":  # not an object: the usual path says what it is
            value, end = self._value(s, i)
            self.walker.element(rule, value, names, out, depth, decl)
            return end
        pairs = Pairs()
        i = _skip(s, i + 1)
        if i < len(s) and s[i] == "}":
            i += 1
        else:
            while True:
                if i >= len(s) or s[i] != '"':
                    raise json.JSONDecodeError(
                        "Expecting property name enclosed in double quotes", s, i
                    )
                key, i = scanstring(s, i + 1, True)
                i = _skip(s, i)
                if i >= len(s) or s[i] != ":":
                    raise json.JSONDecodeError("Expecting ':' delimiter", s, i)
                i = _skip(s, i + 1)
                p = rule.by_key.get(key)
                if (
                    p is not None
                    and p.node == ELEMENT
                    and id(p.rule) in self.streamable
                    and i < len(s)
                    and s[i] in "[{"
                ):
                    buf: list[Any] = []
                    try:
                        if isinstance(p.rule, ObjectRule):
                            i = self._object(s, i, p.rule, p, "", depth + 1, buf)
                        else:
                            assert isinstance(p.rule, ArrayRule)
                            i = self._array(
                                s, i, p.rule, p, depth + 1, buf, wrapped=not p.unwrapped
                            )
                    except Fail as f:
                        f.path.append(key)
                        raise
                    pairs.append((key, Streamed(buf)))
                else:
                    try:
                        value, i = self._value(s, i)
                    except Fail as f:
                        f.path.append(key)
                        raise
                    pairs.append((key, value))
                i = _skip(s, i)
                if i < len(s) and s[i] == ",":
                    i = _skip(s, i + 1)
                    continue
                if i < len(s) and s[i] == "}":
                    i += 1
                    break
                raise json.JSONDecodeError("Expecting ',' delimiter", s, i)
        # The table walker writes the element with every usual check; streamed members arrive
        # ready (see JsonWriter.object).
        self.walker.object(rule, pairs, names.qname, decl, out, depth)
        return i

    def _array(
        self,
        s: str,
        i: int,
        rule: ArrayRule,
        names: Any,
        depth: int,
        out: list[Any],
        *,
        wrapped: bool,
    ) -> int:
        """A record array: the wrapper element (if ``wrapped``) holding one element per item,
        each item parsed and written on its own. ``depth`` is the array's own."""
        walker = self.walker
        items = rule.items
        assert isinstance(items, ObjectRule)
        if s[i] != "[":
            value, end = self._value(s, i)
            if wrapped:
                walker.element(rule, value, names, out, depth)
            else:
                raise Fail("type_mismatch", f"expected an array, got {_kind(value)}")
            return end
        fn = self.fast.function(items) if self.fast is not None else None
        head = len(out)
        if wrapped:
            out.append(names.open)
        count = 0
        i = _skip(s, i + 1)
        if i < len(s) and s[i] == "]":
            i += 1
        else:
            if depth > walker.rt.max_depth:
                raise Fail("too_deep", f"nesting deeper than {walker.rt.max_depth} levels")
            while True:
                rec: list[Any] = []
                try:
                    value, i = self._value(s, i)
                    if fn is not None and value is not None:
                        fn(value, rule, rec, depth + 1, "")
                    else:
                        walker.element(items, value, rule, rec, depth + 1)
                except Fail as f:
                    f.path.append(count)
                    raise
                out.append(join(rec))
                count += 1
                i = _skip(s, i)
                if i < len(s) and s[i] == ",":
                    i = _skip(s, i + 1)
                    continue
                if i < len(s) and s[i] == "]":
                    i += 1
                    break
                raise json.JSONDecodeError("Expecting ',' delimiter", s, i)
        walker.array_checks(rule, range(count))
        if wrapped:
            if count:
                out.append(names.close)
            else:
                out[head] = names.empty
        return i


def _kind(value: Any) -> str:
    return kind_of(value)
