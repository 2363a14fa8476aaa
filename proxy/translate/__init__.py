"""Pure XML ⇄ JSON translation: bytes in, bytes out. No aiohttp and no I/O beyond reading the
mapping's schema files at compile time (start-up).

Public interface (other modules rely on exactly these names):

- ``compile_mapping(spec, *, base_dir, limits, key_path) -> CompiledMapping``; raises
  ``proxy.errors.MappingError`` naming the key path.
- ``CompiledMapping.xml_to_json(data) -> bytes`` / ``.json_to_xml(data) -> bytes``, and
  ``.validate_xml(data)`` / ``.validate_json(data)`` (validate without keeping a result);
  all raise ``proxy.errors.TranslationError(reason, location, detail)``. Thread-safe.
- ``detect_format(data) -> "xml" | "json"`` (sniff of the first non-whitespace character,
  BOM-aware); raises ``TranslationError("undetectable_format", "/", ...)``.

See ``docs/translation.md`` for the mapping language, the conventions and the guarantees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from proxy.errors import TranslationError
from proxy.translate.jsonread import JsonWriter
from proxy.translate.options import parse_options
from proxy.translate.rules import XML_NS, Root
from proxy.translate.runtime import Runtime, pointer
from proxy.translate.schema import SchemaCompiler
from proxy.translate.xmlread import XmlReader

if TYPE_CHECKING:
    from proxy.config import Limits

__all__ = ["CompiledMapping", "compile_mapping", "detect_format"]

# Defaults when no proxy.config.Limits is given (the CLI and tests may pass None).
_DEFAULT_MAX_BYTES = 64 * 1024**2
_DEFAULT_MAX_DEPTH = 256
_DEFAULT_MAX_TEXT = 16 * 1024**2


class CompiledMapping:
    """A route mapping compiled into rule tables; translates whole documents both ways."""

    def __init__(
        self,
        root: Root,
        rt: Runtime,
        *,
        warnings: list[str],
        fallback: list[str],
        validator: Any | None,
    ) -> None:
        self.root = root
        self.runtime = rt
        #: Things a user should know about this mapping (printed by ``format-proxy check``).
        self.warnings = list(warnings)
        #: Schema locations checked by the jsonschema fallback rather than the rule tables.
        self.fallback = list(fallback)
        self._validator = validator
        self._reader = XmlReader(root, rt)
        self._writer = JsonWriter(root, rt)

    @property
    def root_name(self) -> str:
        return self.root.qname

    def xml_to_json(self, data: bytes) -> bytes:
        """Translate an XML document to compact UTF-8 JSON."""
        out = self._reader.to_json(data)
        if self._validator is not None:
            self._fallback_validate(out)
        return out

    def json_to_xml(self, data: bytes) -> bytes:
        """Translate a JSON document to UTF-8 XML with an XML declaration."""
        out = self._writer.to_xml(data)
        if self._validator is not None:
            self._fallback_validate(data)
        return out

    def validate_xml(self, data: bytes) -> None:
        """Raise TranslationError unless ``data`` is an XML document in the mapping's domain."""
        self.xml_to_json(data)

    def validate_json(self, data: bytes) -> None:
        """Raise TranslationError unless ``data`` is a JSON document in the mapping's domain."""
        self.json_to_xml(data)

    def translate(self, data: bytes, to: Literal["xml", "json"]) -> bytes:
        return self.json_to_xml(data) if to == "xml" else self.xml_to_json(data)

    def _fallback_validate(self, json_bytes: bytes) -> None:
        """jsonschema for the keywords the rule tables don't evaluate (``not``, ``if``, ...)."""
        try:
            instance = json.loads(json_bytes, parse_int=_fallback_int)
        except ValueError as exc:  # pragma: no cover - already parsed exactly once
            raise TranslationError("not_well_formed", "", str(exc)) from None
        error = next(iter(self._validator.iter_errors(instance)), None)
        if error is not None:
            raise TranslationError(
                "schema_violation",
                pointer(error.absolute_path),
                f"{error.message} ({error.validator})",
            )


def _fallback_int(text: str) -> int | float:
    return int(text) if len(text) < 4000 else float(text)


def compile_mapping(
    spec: Mapping[str, Any],
    *,
    base_dir: Path,
    limits: Limits | None = None,
    key_path: str = "mapping",
) -> CompiledMapping:
    """Compile a route's ``mapping:`` (schema path relative to ``base_dir`` + inline options)."""
    if spec is None:
        spec = {}
    opts = parse_options(spec, key_path)
    compiled = SchemaCompiler(opts, base_dir=Path(base_dir), key_path=key_path).compile()
    validator = None
    if compiled.fallback and compiled.schema is not None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(compiled.schema, registry=compiled.registry)
        compiled.warnings.append(
            "validated by jsonschema after translation (the rule tables don't evaluate these "
            "keywords; slower): " + ", ".join(compiled.fallback)
        )
    uri_of = dict(compiled.namespaces)
    prefix_of = {uri: p for p, uri in uri_of.items()}
    prefix_of[XML_NS] = "xml"
    rt = Runtime(
        max_depth=limits.max_depth if limits is not None else _DEFAULT_MAX_DEPTH,
        max_text_bytes=limits.max_text_bytes if limits is not None else _DEFAULT_MAX_TEXT,
        max_bytes=limits.max_translate_bytes if limits is not None else _DEFAULT_MAX_BYTES,
        safe_integers=opts.safe_integers,
        prefix_of=prefix_of,
        uri_of=uri_of,
        text_key=opts.text_key,
        attribute_prefix=opts.attribute_prefix,
        drop_comments=opts.drop_comments,
        drop_pis=opts.drop_pis,
    )
    return CompiledMapping(
        compiled.root,
        rt,
        warnings=compiled.warnings,
        fallback=compiled.fallback,
        validator=validator,
    )


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)


_FIRST_NON_WS = re.compile(rb"[^ \t\r\n]")


def detect_format(data: bytes) -> Literal["xml", "json"]:
    """``"xml"`` if the first non-whitespace character is ``<``, ``"json"`` for ``{``/``[``.

    A UTF-8 BOM is skipped; UTF-16/32 byte order marks are decoded (XML may use them).
    """
    first = ""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = data[len(bom) : len(bom) + 4096].decode(enc, errors="ignore")
            first = text.lstrip(" \t\r\n")[:1]
            break
    else:
        m = _FIRST_NON_WS.search(data)
        first = chr(data[m.start()]) if m is not None else ""
    if first == "<":
        return "xml"
    if first in ("{", "["):
        return "json"
    if not first:
        raise TranslationError("undetectable_format", "/", "the document is empty")
    raise TranslationError(
        "undetectable_format",
        "/",
        f"first character {first!r} is neither '<' (XML) nor '{{' / '[' (JSON)",
    )
