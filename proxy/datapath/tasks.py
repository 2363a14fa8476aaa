"""What document worker processes run (:mod:`proxy.datapath.workers`).

A worker compiles the routes' mappings once, when it starts (compiled mappings hold generated
code and do not travel between processes); each task then names its route by index and
carries only bytes and small values. The same functions run in a thread when the handler does
not isolate document work (in-process tests with fake mappings).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxy.config import Limits
from proxy.datapath.documents import (
    ClientDigests,
    Representation,
    ShadowVerdict,
    StoredDocument,
    prepare_write,
    render,
    shadow_verdict,
    verify_digests,
)
from proxy.datapath.spool import Part, write_part_file
from proxy.translate import Format

__all__ = ["compile_routes", "prepare_route", "render_route", "shadow_route", "spool_part"]

#: This worker's compiled mappings, in the order of the configuration's routes.
_COMPILED: tuple[Any, ...] = ()


def compile_routes(mappings: Sequence[dict[str, Any]], base_dir: Path, limits: Limits) -> None:
    """The worker's initializer: compile every route's mapping as ``load_config`` does."""
    global _COMPILED
    from proxy.translate import compile_mapping  # the engine: heavy, only where it runs

    _COMPILED = tuple(
        compile_mapping(m, base_dir=base_dir, limits=limits, key_path=f"routes[{i}].mapping")
        for i, m in enumerate(mappings)
    )


def render_route(index: int, data: bytes, source: Format, target: Format) -> Representation:
    return render(_COMPILED[index], data, source, target)


def prepare_route(
    index: int, data: bytes, writer: Format, store: Format, digests: ClientDigests
) -> StoredDocument:
    return prepare_write(_COMPILED[index], data, writer=writer, store=store, digests=digests)


def shadow_route(index: int, data: bytes, fmt: Format) -> ShadowVerdict:
    return shadow_verdict(_COMPILED[index], data, fmt)


def spool_part(
    digests: ClientDigests, directory: Path, number: int, data: bytes, algorithms: tuple[str, ...]
) -> Part:
    """Verify an uploaded part against the client's digests, then write it to the spool."""
    verify_digests(digests, data)
    return write_part_file(directory, number, data, algorithms)
