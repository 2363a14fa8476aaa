"""Joining translated output: lists of str pieces and already-encoded record fragments."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["join", "join_releasing"]


def join_releasing(out: list[Any]) -> bytes:
    """Like :func:`join` for a large output whose pieces nothing else references: each piece
    is released as soon as it is copied, so the pieces and the result never coexist whole."""
    buf = io.BytesIO()
    write = buf.write
    for i, p in enumerate(out):
        write(p if type(p) is bytes else p.encode("utf-8"))
        out[i] = None
    return buf.getvalue()  # no copy: BytesIO hands over its buffer


def join(out: list[Any]) -> bytes:
    """UTF-8 bytes of a list of str pieces and (already encoded) record fragments."""
    try:
        return "".join(out).encode("utf-8")  # no nested record in it: the common case
    except TypeError:
        return b"".join(p if type(p) is bytes else p.encode("utf-8") for p in out)
