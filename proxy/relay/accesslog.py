"""The per-request access-log line: pre-rendered JSON, without structlog's processor chain.

One line per request is the proxy's most frequent log event, and structlog's bound-logger
dispatch and processor loop cost more than the line's own work. :func:`install` (called by the
log set-up, :func:`proxy.app.logging.configure_logging`) registers the stream, the level and the
two processors whose output the line must match (the timestamper, the JSON renderer); each
request's line is then built from the same fields, redacted by the same function
(:mod:`proxy.relay.redaction`) and rendered by the same renderer, and written in one call.

The fast line applies only while structlog still runs the chain it was installed with: after
any other ``structlog.configure`` (or ``reset_defaults``) the line goes through structlog.

Two more shortcuts, each enabled only when it is shown at install time to give the same text as
the processor it replaces: an ISO-8601 UTC timestamp formatted once per second (the
microseconds appended), and JSON written directly for flat lines of strings, numbers, booleans
and nulls (anything else goes through the renderer).
"""

from __future__ import annotations

import asyncio
import atexit
import math
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TextIO

import structlog

from proxy.relay.redaction import needs_redaction, redact

__all__ = ["debug_enabled", "emit", "flush", "install", "render"]

_log = structlog.get_logger("format_proxy.access")

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_Processor = Callable[[Any, str, MutableMapping[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class _Sink:
    stream: TextIO
    level: int
    stamp: _Processor
    render: _Processor
    #: The processor list structlog ran when this sink was installed (identity-compared).
    chain: object
    #: The timestamp's key when ``stamp`` is an ISO-8601 UTC stamper :func:`_iso_now` matches.
    iso_key: str | None
    #: ``render`` writes what :func:`_flat_json` writes for flat lines.
    flat_json: bool


_sink: _Sink | None = None


def install(
    stream: TextIO, level: int, *, stamp: _Processor, render: _Processor, chain: object
) -> None:
    """Write access lines to ``stream`` directly while structlog's processors are ``chain``."""
    global _sink
    flush()  # lines already rendered go where they were meant to
    iso_key = getattr(stamp, "key", None)
    if not (
        isinstance(stamp, structlog.processors.TimeStamper)
        and getattr(stamp, "fmt", None) == "iso"
        and getattr(stamp, "utc", False)
        and isinstance(iso_key, str)
        and _same_stamp_format(stamp, iso_key)
    ):
        iso_key = None
    _sink = _Sink(stream, level, stamp, render, chain, iso_key, _same_json(render))


_PROBE: dict[str, Any] = {
    "s": 'plain "quoted" \\ \n\t \x01 é ☃ 𝄞',
    "i": 4096,
    "neg": -7,
    "f": 0.1 + 0.2,
    "small": 1e-7,
    "big": 1.5e300,
    "t": True,
    "n": None,
    "ü": "key",
}


def _same_json(render: _Processor) -> bool:
    try:
        return str(render(None, "info", dict(_PROBE))) == _flat_json(_PROBE)
    except Exception:
        return False


def _same_stamp_format(stamp: _Processor, key: str) -> bool:
    """The stamper's text has the shape :func:`_iso_now` writes (its clock is its own)."""
    theirs = str(stamp(None, "info", {})[key])
    ours = _iso_now()
    return len(theirs) in (20, 27) and theirs[10] == ours[10] == "T" and theirs[-1:] == "Z"


_second: tuple[int, str] = (-1, "")


def _iso_now() -> str:
    """Now as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (what ``datetime.isoformat`` writes in UTC),
    the part up to the second formatted once per second."""
    global _second
    now = time.time()
    sec = int(now)
    if _second[0] != sec:
        _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    micro = int((now - sec) * 1_000_000)
    return f"{_second[1]}.{micro:06d}Z" if micro else f"{_second[1]}Z"


#: Each field name as JSON, with its separator: lines repeat the same few names.
_keys: dict[str, str] = {}


def _flat_json(event: MutableMapping[str, Any]) -> str | None:
    """``json.dumps(event)`` for a flat event of str, int, float, bool and None; else None."""
    parts = []
    for key, value in event.items():
        if type(key) is not str:
            return None
        prefix = _keys.get(key)
        if prefix is None:
            if len(_keys) >= 1024:
                _keys.clear()
            prefix = _keys[key] = _quote(key) + ": "
        kind = type(value)
        if kind is str:
            parts.append(prefix + _quote(value))
        elif kind is int or (kind is float and math.isfinite(value)):
            parts.append(f"{prefix}{value!r}")
        elif kind is bool:
            parts.append(prefix + ("true" if value else "false"))
        elif value is None:
            parts.append(prefix + "null")
        else:
            return None
    return "{" + ", ".join(parts) + "}"


def render(level: str, fields: dict[str, Any]) -> str | None:
    """The line structlog's chain would write for ``fields`` at ``level`` (None: filtered out,
    or no fast line installed for the current configuration)."""
    sink = _sink
    if sink is None or structlog.get_config()["processors"] is not sink.chain:
        return None
    if _LEVELS[level] < sink.level:
        return ""
    event: dict[str, Any] = {**fields, "event": "request", "level": level}
    if sink.iso_key is not None:
        event[sink.iso_key] = _iso_now()
    else:
        sink.stamp(None, level, event)
    if needs_redaction(event):
        redact(None, level, event)
    line = _flat_json(event) if sink.flat_json else None
    return line if line is not None else str(sink.render(None, level, event))


#: Lines rendered during the current event-loop iteration, written together at its end.
_batch: list[str] = []
#: The loop a flush of ``_batch`` is scheduled on.
_flush_loop: asyncio.AbstractEventLoop | None = None


def emit(
    level: str, fields: dict[str, Any], *, loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Log one request: ``level`` is ``"info"`` or ``"warning"``.

    Given the running ``loop`` (the caller expects more requests to end soon: others are in
    flight), the line is written at the end of the loop's current iteration with the other
    lines of that iteration, in one system call; else at once (with any lines waiting), which
    spares an idle loop the extra iteration.
    """
    global _flush_loop
    line = render(level, fields)
    if line is None:
        getattr(_log, level)("request", **fields)
    elif line:
        _batch.append(line)
        if loop is None or loop.is_closed():
            flush()
        elif _flush_loop is not loop:
            # No flush waits on this loop (none yet, or one lost with a loop that stopped).
            _flush_loop = loop
            loop.call_soon(flush)


def flush() -> None:
    """Write the lines waiting for the end of the loop iteration."""
    global _batch, _flush_loop
    _flush_loop = None
    if _batch:
        lines, _batch = _batch, []  # a line added meanwhile lands in the next batch
        _write("\n".join(lines) + "\n")


def _write(text: str) -> None:
    stream = _sink.stream if _sink is not None else None
    if stream is not None and not stream.closed:
        stream.write(text)
        stream.flush()


atexit.register(flush)  # lines of the last loop iteration, were the loop stopped before it ran


def debug_enabled() -> bool:
    """False when debug lines are known to be filtered out (skips building them)."""
    sink = _sink
    if sink is None or structlog.get_config()["processors"] is not sink.chain:
        return True  # unknown configuration: let structlog decide
    return sink.level <= _LEVELS["debug"]
