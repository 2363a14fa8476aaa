"""The per-request access-log line: pre-rendered JSON, without structlog's processor chain.

One line per request is the proxy's most frequent log event, and structlog's bound-logger
dispatch and processor loop cost more than the line's own work. :func:`install` (called by the
log set-up, :func:`proxy.app.logging.configure_logging`) registers the stream, the level and the
two processors whose output the line must match (the timestamper, the JSON renderer); each
request's line is then built from the same fields, redacted by the same function
(:mod:`proxy.relay.redaction`) and rendered by the same renderer, and written in one call.

The fast line applies only while structlog still runs the chain it was installed with: after
any other ``structlog.configure`` (or ``reset_defaults``) the line goes through structlog.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from proxy.relay.redaction import needs_redaction, redact

__all__ = ["debug_enabled", "emit", "install", "render"]

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


_sink: _Sink | None = None


def install(
    stream: TextIO, level: int, *, stamp: _Processor, render: _Processor, chain: object
) -> None:
    """Write access lines to ``stream`` directly while structlog's processors are ``chain``."""
    global _sink
    _sink = _Sink(stream, level, stamp, render, chain)


def render(level: str, fields: dict[str, Any]) -> str | None:
    """The line structlog's chain would write for ``fields`` at ``level`` (None: filtered out,
    or no fast line installed for the current configuration)."""
    sink = _sink
    if sink is None or structlog.get_config()["processors"] is not sink.chain:
        return None
    if _LEVELS[level] < sink.level:
        return ""
    event: dict[str, Any] = {**fields, "event": "request", "level": level}
    sink.stamp(None, level, event)
    if needs_redaction(event):
        redact(None, level, event)
    return str(sink.render(None, level, event))


def emit(level: str, fields: dict[str, Any]) -> None:
    """Log one request: ``level`` is ``"info"`` or ``"warning"``."""
    line = render(level, fields)
    if line is None:
        getattr(_log, level)("request", **fields)
    elif line:
        stream = _sink.stream if _sink is not None else None
        if stream is not None:
            stream.write(line + "\n")
            stream.flush()


def debug_enabled() -> bool:
    """False when debug lines are known to be filtered out (skips building them)."""
    sink = _sink
    if sink is None or structlog.get_config()["processors"] is not sink.chain:
        return True  # unknown configuration: let structlog decide
    return sink.level <= _LEVELS["debug"]
