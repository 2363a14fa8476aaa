"""A route mapping compiled: the rule tables wired to both translators, and the jsonschema
fallback for the keywords the tables do not evaluate."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from proxy.errors import TranslationError
from proxy.translate.failures import pointer
from proxy.translate.json_to_xml import JsonToXml
from proxy.translate.limits import LimitsLike, TranslateLimits
from proxy.translate.model import Format
from proxy.translate.options import parse_options
from proxy.translate.rules import XML_NS, Root
from proxy.translate.runtime import Runtime
from proxy.translate.schema import SchemaCompiler
from proxy.translate.xml_to_json import XmlToJson

__all__ = ["CompiledMapping", "compile_mapping"]


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
        route: str = "mapping",
    ) -> None:
        self.root = root
        self.runtime = rt
        #: Things a user should know about this mapping (printed by ``format-proxy check``).
        self.warnings = list(warnings)
        #: Schema locations checked by the jsonschema fallback rather than the rule tables.
        self.fallback = list(fallback)
        self._validator = validator
        self._reader = XmlToJson(root, rt, route=route)
        self._writer = JsonToXml(root, rt, route=route)

    def fast_path_source(self) -> dict[str, str]:
        """The generated fast-path source of each direction that has one (for
        ``format-proxy translate --dump-fast-path``)."""
        out: dict[str, str] = {}
        if self._reader.fast is not None:
            out[self._reader.fast.filename] = self._reader.fast.source
        if self._writer.fast is not None:
            out[self._writer.fast.filename] = self._writer.fast.source
        return out

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

    def translate(self, data: bytes, to: Format) -> bytes:
        return self.json_to_xml(data) if to == "xml" else self.xml_to_json(data)

    def _fallback_validate(self, json_bytes: bytes) -> None:
        """jsonschema for the keywords the rule tables don't evaluate (``not``, ``if``, ...)."""
        try:
            instance = json.loads(json_bytes, parse_int=_fallback_int)
        except ValueError as exc:  # pragma: no cover - already parsed exactly once
            raise TranslationError("not_well_formed", "", str(exc)) from None
        assert self._validator is not None
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
    limits: LimitsLike | None = None,
    key_path: str = "mapping",
) -> CompiledMapping:
    """Compile a route's ``mapping:`` (schema path relative to ``base_dir`` + inline options)."""
    if spec is None:
        spec = {}
    opts = parse_options(spec, key_path)
    compiled = SchemaCompiler(opts, base_dir=Path(base_dir), key_path=key_path).compile()
    validator = None
    if compiled.fallback and compiled.schema is not None and compiled.registry is not None:
        import jsonschema  # deferred for start-up cost: only mappings that need the fallback

        validator = jsonschema.Draft202012Validator(compiled.schema, registry=compiled.registry)
        compiled.warnings.append(
            "validated by jsonschema after translation (the rule tables don't evaluate these "
            "keywords; slower): " + ", ".join(compiled.fallback)
        )
    uri_of = dict(compiled.namespaces)
    prefix_of = {uri: p for p, uri in uri_of.items()}
    prefix_of[XML_NS] = "xml"
    bounds = TranslateLimits.of(limits)
    rt = Runtime(
        max_depth=bounds.max_depth,
        max_text_bytes=bounds.max_text_bytes,
        max_bytes=bounds.max_translate_bytes,
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
        route=key_path,
    )
