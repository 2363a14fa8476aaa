"""Per-mapping settings both translators read: limits, namespace map, convention options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    max_depth: int
    max_text_bytes: int
    max_bytes: int
    safe_integers: bool
    #: The mapping's fixed namespace map, both ways (includes ``xsi`` when used).
    prefix_of: dict[str, str]
    uri_of: dict[str, str]
    text_key: str
    attribute_prefix: str
    drop_comments: bool
    drop_pis: bool
