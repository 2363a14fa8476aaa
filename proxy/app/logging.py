"""Structured logs: one JSON line per request, ISO-8601 UTC timestamps, secrets never written.

Redaction is defence in depth: the pipeline never passes credentials or signatures to the
logger, and this module still masks any field whose *name* says it is a secret and any value
that looks like a signed query string or an Authorization header, in case one slips through
(an upstream error message quoting a URL, a header dump at debug level).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from proxy.relay import accesslog
from proxy.relay.redaction import REDACTED, redact

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog (and stdlib logging, for libraries) to write JSON lines."""
    lvl = _LEVELS[level]
    out = stream if stream is not None else sys.stdout
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")
    render = structlog.processors.JSONRenderer(sort_keys=False)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp,
        structlog.processors.format_exc_info,
        redact,
        render,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Library warnings (aiohttp, botocore) at WARNING and above, same stream, same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                redact,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                # Render tracebacks to text before redaction, so it applies to them too.
                structlog.processors.format_exc_info,
            ],
        )
    )
    # The per-request line skips the chain above but runs its timestamper, redaction and
    # renderer (nothing binds context variables; exceptions are never part of it).
    accesslog.install(
        out, lvl, stamp=stamp, render=render, chain=structlog.get_config()["processors"]
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(lvl, logging.WARNING))


def get_logger(name: str = "format_proxy") -> Any:
    return structlog.get_logger(name)
