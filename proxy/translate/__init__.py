"""Pure XML ⇄ JSON translation: bytes in, bytes out. No aiohttp and no I/O beyond reading the
mapping's schema files at compile time (start-up).

Public interface (other modules rely on exactly these names):

- ``compile_mapping(spec, *, base_dir, limits, key_path) -> CompiledMapping``; raises
  ``proxy.errors.MappingError`` naming the key path.
- ``CompiledMapping.xml_to_json(data) -> bytes`` / ``.json_to_xml(data) -> bytes``, and
  ``.validate_xml(data)`` / ``.validate_json(data)`` (validate without keeping a result);
  all raise ``proxy.errors.TranslationError(reason, location, detail)``. Thread-safe.
- ``detect_format(data) -> Format`` (sniff of the first non-whitespace character,
  BOM-aware); raises ``TranslationError("undetectable_format", "/", ...)``;
  ``sniff_format(head) -> Format | None`` is the same sniff without the error.
- ``TranslateLimits`` (the engine's bounds; ``compile_mapping`` takes it, or any object with
  the same attributes such as ``proxy.config.Limits``), ``Format``.

See ``docs/translation.md`` for the mapping language, the conventions and the guarantees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.translate.limits import LimitsLike, TranslateLimits
from proxy.translate.model import Format
from proxy.translate.sniff import detect_format, sniff_format

if TYPE_CHECKING:
    from proxy.translate.mapping import CompiledMapping, compile_mapping

__all__ = [
    "CompiledMapping",
    "Format",
    "LimitsLike",
    "TranslateLimits",
    "compile_mapping",
    "detect_format",
    "sniff_format",
]


def __getattr__(name: str) -> Any:
    # Deferred for start-up cost: the compiler and translators (lxml, referencing) load only
    # when a mapping is compiled, so importing Format / sniff_format stays cheap.
    if name in ("CompiledMapping", "compile_mapping"):
        from proxy.translate import mapping

        return getattr(mapping, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
