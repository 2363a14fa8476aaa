"""The response heads the lean path writes: byte for byte what aiohttp's server would write.

Pure functions (no I/O): the status line and headers of a relayed upstream response, as
aiohttp's ``StreamResponse`` completes them (its default headers, chunked framing when no
length is known, no body framing where HTTP forbids a body), and those of an error document.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE

__all__ = ["Head", "chunk", "decoded", "error_head", "response_head", "text"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}


class Head:
    """A response head, and how its body is framed."""

    __slots__ = ("chunked", "data", "length")

    def __init__(self, data: bytes, length: int | None, chunked: bool) -> None:
        self.data = data
        #: The body's length when it has one (None: no body, or read to its end).
        self.length = length
        self.chunked = chunked


def response_head(
    method: str, status: int, hdrs: list[tuple[str, str]], lowered: list[str], *, close: bool
) -> Head:
    """The head for a relayed response (``lowered``: the header names in lower case; ``close``:
    the connection closes after it)."""
    names = set(lowered)
    length: int | None = None
    chunked = False
    if "content-length" in names:
        length = int(hdrs[lowered.index("content-length")][1])
    empty = must_be_empty_body(method, status)
    if empty:
        if length is not None and should_remove_content_length(method, status):
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-length"]
    else:
        if length is None:
            chunked = True
            hdrs.append(("Transfer-Encoding", "chunked"))
        if length != 0 and "content-type" not in names:
            hdrs.append(("Content-Type", "application/octet-stream"))
    if "date" not in names:
        hdrs.append(("Date", rfc822_formatted_time()))
    if "server" not in names:
        hdrs.append(("Server", SERVER_SOFTWARE))
    if close:
        hdrs.append(("Connection", "close"))
    return Head(_encode(status, hdrs), None if empty else length, chunked)


def error_head(status: int, headers: Mapping[str, str], body: bytes, *, close: bool) -> bytes:
    """The head for an error document ``body`` with its own ``headers``."""
    hdrs = list(headers.items())
    if "Content-Length" not in headers:
        hdrs.append(("Content-Length", str(len(body))))
    if "Content-Type" not in headers and body:
        hdrs.append(("Content-Type", "application/octet-stream"))
    hdrs.append(("Date", rfc822_formatted_time()))
    hdrs.append(("Server", SERVER_SOFTWARE))
    if close:
        hdrs.append(("Connection", "close"))
    return _encode(status, hdrs)


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body (an empty piece is no chunk: it would end the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else data


def text(raw: bytes) -> str:
    """A header name or value as received (UTF-8, else Latin-1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decoded(raw: list[tuple[bytes, bytes]]) -> tuple[list[tuple[str, str]], list[str]]:
    """Received headers as text (each name and value as :func:`text` decodes it), and their
    names in lower case."""
    try:  # the usual case, without a function call per name and value
        items = [(k.decode("utf-8"), v.decode("utf-8")) for k, v in raw]
    except UnicodeDecodeError:
        items = [(text(k), text(v)) for k, v in raw]
    return items, [k.lower() for k, _ in items]


def _encode(status: int, hdrs: list[tuple[str, str]]) -> bytes:
    head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
    if hdrs:
        # One join for all lines, no formatting per header.
        head += "\r\n".join(map(": ".join, hdrs)) + "\r\n"
    return (head + "\r\n").encode("utf-8")
