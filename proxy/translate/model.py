"""The value model both directions share: the two formats, and the exact JSON values
(numbers as their literal text, objects as their key/value pairs) the engine parses into."""

from __future__ import annotations

import json
import threading
from typing import Any, Literal

__all__ = ["Format", "Number", "Pairs", "Streamed", "json_decoder", "kind_of", "parse_exact"]

#: A document format: the two sides of every translation.
Format = Literal["xml", "json"]


class Number(str):
    """A JSON number, carried as its literal text."""

    __slots__ = ()


class Streamed:
    """A member written already as XML pieces (str / bytes) while streaming."""

    __slots__ = ("data",)

    def __init__(self, data: list[Any]) -> None:
        self.data = data


class Pairs(list):  # type: ignore[type-arg]  # list of (key, value); typed where it is read
    """A JSON object: its (key, value) pairs in document order."""

    __slots__ = ()
    is_object = True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_decoder() -> json.JSONDecoder:
    """A new exact decoder: :class:`Number` for numbers, :class:`Pairs` for objects, no NaN."""
    return json.JSONDecoder(
        parse_float=Number,
        parse_int=Number,
        parse_constant=_reject_constant,
        object_pairs_hook=Pairs,
        strict=True,
    )


_tls = threading.local()


def parse_exact(text: str) -> Any:
    """Parse JSON text into str / :class:`Number` / bool / None / list / :class:`Pairs`."""
    dec = getattr(_tls, "decoder", None)
    if dec is None:
        dec = _tls.decoder = json_decoder()
    return dec.decode(text)


def kind_of(value: object) -> str:
    """``"a number"``, ``"an object"``, ... for messages."""
    t = type(value)
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    if t is Number:
        return "a number"
    if t is str:
        return "a string"
    if t is Pairs:
        return "an object"
    return "an array"
