"""Pure XML ⇄ JSON translation: bytes in, bytes out. No aiohttp, no I/O beyond reading the
mapping's schema file at compile time (start-up).

Public interface (other modules rely on exactly these names):

- ``compile_mapping(spec, *, base_dir, limits, key_path) -> CompiledMapping``; raises
  ``proxy.errors.MappingError`` naming the key path.
- ``CompiledMapping.xml_to_json(data: bytes) -> bytes`` and ``.json_to_xml(data: bytes) -> bytes``;
  raise ``proxy.errors.TranslationError(reason, location, detail)``.
- ``detect_format(data: bytes) -> "xml" | "json"`` (sniff of the first non-whitespace byte);
  raises ``TranslationError("undetectable_format", "/", ...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from proxy.errors import MappingError, TranslationError

__all__ = ["CompiledMapping", "compile_mapping", "detect_format"]


class CompiledMapping:  # placeholder until the engine lands
    def xml_to_json(self, data: bytes) -> bytes:
        raise NotImplementedError

    def json_to_xml(self, data: bytes) -> bytes:
        raise NotImplementedError


def compile_mapping(
    spec: Mapping[str, Any], *, base_dir: Path, limits: Any = None, key_path: str = "mapping"
) -> CompiledMapping:
    if not isinstance(spec, Mapping):
        raise MappingError(key_path, "must be a mapping")
    return CompiledMapping()


def detect_format(data: bytes) -> Literal["xml", "json"]:
    head = data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        return "json"
    raise TranslationError("undetectable_format", "/", "first byte is neither '<' nor '{'")
