"""What both generated fast paths (:mod:`~proxy.translate.xml_to_json.fast` and
:mod:`~proxy.translate.json_to_xml.fast`) share: which rules get a generated function, their names,
the work list, the constants and the one ``exec`` of the source. Each subclass writes its own
functions in :meth:`Generated._generate`.

Generated source uses only names bound in its own namespace; every value from the schema enters
as a constant object (:meth:`Generated._const`), never as source text. The source is registered
with :mod:`linecache` under a pseudo-filename naming the route and direction, so tracebacks,
``inspect.getsource``, coverage and profilers show it.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

from proxy.translate.rules import ANY, ArrayRule, ObjectRule, Rule

__all__ = ["Emitter", "Generated"]


class Emitter:
    """Source lines at the current indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.indent = 0

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)


class Generated:
    """Generated functions for one mapping, looked up by rule."""

    #: First letter of the generated functions' names.
    prefix = "f"
    #: The translation direction, in the pseudo-filename.
    direction = "fast"

    def __init__(self, root_rule: Rule, ns: dict[str, Any], *, route: str = "") -> None:
        self.ns = ns
        self._names: dict[int, str] = {}
        self._consts: dict[Any, str] = {}
        self._todo: list[Rule] = []
        self._src: list[str] = []
        self.root_fn = self._fn_for(root_rule)
        while self._todo:
            self._generate(self._todo.pop())
        self.source = "\n".join(self._src) + "\n"
        #: The file name tracebacks show for the generated code.
        self.filename = _register(f"{route or 'mapping'}/{self.direction}", self.source)
        exec(compile(self.source, self.filename, "exec"), self.ns)
        self.root: Any = self.ns[self.root_fn] if self.root_fn else None

    def function(self, rule: Rule) -> Any:
        """The generated function of ``rule`` (None: the table walker handles it)."""
        name = self._names.get(id(rule))
        return self.ns[name] if name is not None else None

    def _generate(self, rule: Rule) -> None:
        """Append the source of ``rule``'s function (named ``self._names[id(rule)]``)."""
        raise NotImplementedError

    def _header(self, e: Emitter, rule: Rule) -> None:
        """The comment naming the schema location a function was generated from."""
        source = "".join(c if c.isprintable() else "?" for c in rule.source) or "(root)"
        e(f"# schema: {source}")

    def _const(self, value: Any, prefix: str) -> str:
        """The namespace name bound to ``value`` (strings by value, objects by identity)."""
        key = ("s", value) if isinstance(value, str) else ("o", id(value))
        name = self._consts.get(key)
        if name is None:
            name = f"{prefix}{len(self.ns)}"
            self.ns[name] = value
            self._consts[key] = name
        return name

    def _fn_for(self, rule: Rule) -> str | None:
        """The generated function for an object/array rule, or None (table walker handles it):
        objects without extra properties, cross-property checks or groups, typed arrays."""
        if isinstance(rule, ObjectRule):
            if rule.extra is not None or rule.check is not None or rule.groups:
                return None
        elif not (
            isinstance(rule, ArrayRule) and rule.items is not None and rule.items.kind != ANY
        ):
            return None
        name = self._names.get(id(rule))
        if name is None:
            name = f"{self.prefix}{len(self._names)}"
            self._names[id(rule)] = name
            self._todo.append(rule)
        return name


_serial = itertools.count(1)


def _register(name: str, source: str) -> str:
    """Put ``source`` into :mod:`linecache` as ``<format-proxy fast path NAME>`` (``#n`` added
    when another mapping's code holds that name already); returns the pseudo-filename."""
    filename = f"<format-proxy fast path {name}>"
    held = linecache.getlines(filename)  # [] for a name not registered yet
    if held and "".join(held) != source:
        filename = f"<format-proxy fast path {name}#{next(_serial)}>"
    # mtime None: linecache.checkcache() keeps the entry (there is no file to compare with).
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return filename
