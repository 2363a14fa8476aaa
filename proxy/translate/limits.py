"""The resource limits the engine enforces, owned here so the engine needs nothing from config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["LimitsLike", "TranslateLimits"]


class LimitsLike(Protocol):
    """Anything carrying the engine's limits (``proxy.config.Limits`` does)."""

    @property
    def max_depth(self) -> int: ...
    @property
    def max_text_bytes(self) -> int: ...
    @property
    def max_translate_bytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TranslateLimits:
    """Per-document bounds; the defaults apply when no configuration gives any."""

    #: Element / JSON nesting depth.
    max_depth: int = 256
    #: One text node, attribute value, string or key, in UTF-8 bytes.
    max_text_bytes: int = 16 * 1024**2
    #: A whole document, in bytes.
    max_translate_bytes: int = 64 * 1024**2

    @classmethod
    def of(cls, limits: LimitsLike | None) -> TranslateLimits:
        """``limits`` as a TranslateLimits (the defaults for None)."""
        if limits is None:
            return cls()
        if isinstance(limits, TranslateLimits):
            return limits
        return cls(limits.max_depth, limits.max_text_bytes, limits.max_translate_bytes)
