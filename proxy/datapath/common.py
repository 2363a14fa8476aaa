"""What every part of the data path shares: the context, header and address helpers, and the
one place translation failures are logged and counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import structlog

from proxy.config import Limits
from proxy.datapath.budget import ByteBudget
from proxy.datapath.cache import FailureMemo, RepresentationCache
from proxy.datapath.documents import Representation
from proxy.datapath.engine import DocumentWorker
from proxy.datapath.observe import Direction, Operation, TranslationObserver
from proxy.datapath.routes import CompiledRoute
from proxy.errors import TranslationError
from proxy.relay.pipeline import Forwarder, S3Request, UpstreamReply
from proxy.s3.address import S3Address
from proxy.s3.signing import EMPTY_SHA256
from proxy.translate import Format

__all__ = [
    "EMPTY_SHA256",
    "Context",
    "address_without",
    "header_value",
    "report_failure",
    "send_empty",
    "without_headers",
]

_log = structlog.get_logger("format_proxy.datapath")


@dataclass(slots=True)
class Context:
    app_version: str
    limits: Limits
    cache: RepresentationCache[Representation]
    failures: FailureMemo[TranslationError]
    worker: DocumentWorker
    observer: TranslationObserver
    #: Bytes of whole documents held by requests (limits.max_inflight_translate_bytes).
    inflight: ByteBudget

    def version_format(self, route: CompiledRoute) -> Format:
        """The format this pod's version reads and writes on ``route``."""
        return route.config.formats[self.app_version]

    def store_format(self, route: CompiledRoute) -> Format:
        """The format a document written by this pod is stored in."""
        store = route.config.store
        return self.version_format(route) if store == "as-written" else store


def report_failure(
    ctx: Context,
    route: CompiledRoute,
    key: str | None,
    operation: Operation,
    direction: Direction,
    err: TranslationError,
    action: str,
) -> None:
    """Log and count one request whose translation failed. ``action`` says what the client
    got (``refused``, ``served stored bytes``). The key is logged here — unlike access log
    lines — because an operator must find the object to fix it."""
    ctx.observer.failed(route.name, operation, direction, err.reason)
    _log.warning(
        "translation_failed",
        route=route.name,
        key=key,
        operation=operation,
        direction=direction,
        reason=err.reason,
        location=err.location,
        detail=err.detail[:500],
        action=action,
    )


def without_headers(
    headers: Iterable[tuple[str, str]],
    names: Iterable[str] = (),
    prefixes: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    """``headers`` minus the (lower-case) ``names`` and any name starting with ``prefixes``."""
    drop = frozenset(names)
    return [
        (k, v)
        for k, v in headers
        if (lk := k.lower()) not in drop and not (prefixes and lk.startswith(prefixes))
    ]


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


def address_without(address: S3Address, *names: str) -> S3Address:
    """The same address without the query parameters ``names`` (decoded names)."""
    drop = frozenset(names)
    if not (address.params & drop):
        return address
    raw_query = tuple((k, v) for k, v in address.raw_query if unquote(k) not in drop)
    return dataclasses.replace(
        address,
        raw_query=raw_query,
        params=address.params - drop,
        values={k: v for k, v in address.values.items() if k not in drop},
    )


async def send_empty(
    forward: Forwarder,
    request: S3Request,
    method: str,
    address: S3Address,
    headers: list[tuple[str, str]],
) -> UpstreamReply:
    """A request of the proxy's own (a HEAD probe, a GET of stored bytes) with no body and
    exactly ``headers``: none of the client's."""
    return await forward.send(
        request,
        method=method,
        address=address,
        headers=headers,
        body=None,
        payload_hash=EMPTY_SHA256,
    )
