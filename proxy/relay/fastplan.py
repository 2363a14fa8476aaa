"""Which requests the lean path serves, resolved to what it sends.

:class:`FastPath` holds what every lean connection of a listener shares, and decides whether a
parsed request is the lean path's: a small body of plain framing, the pipeline's own address
parse and route decision (a routed request only if its handler passes it through), and an
upstream URL aiohttp's client would send unchanged. :class:`Plan` is such a request, resolved.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from multidict import CIMultiDict
from yarl import URL

from proxy.config import RouteConfig
from proxy.errors import ProxyError
from proxy.relay.pipeline import Exchange, Pipeline
from proxy.relay.pool import UpstreamPool
from proxy.s3.address import S3Address, UpstreamTarget
from proxy.s3.awschunked import framing_for

if TYPE_CHECKING:
    from proxy.relay.server import DataServer

__all__ = ["FastPath", "Plan"]

#: A path and query yarl sends exactly as given (``encoded=True`` leaves these alone).
_PLAIN_REST = re.compile(r'/[!"$-~]*')  # printable ASCII but "#"
#: Origins checked against yarl (see :meth:`FastPath._sent_as_built`), at most this many.
_MAX_ORIGINS = 1024


@dataclass(slots=True)
class Plan:
    """An eligible request, resolved: what the fast path will send."""

    address: S3Address
    ex: Exchange
    headers: CIMultiDict[str]
    method: str
    raw_target: str
    target: UpstreamTarget
    #: The route of a routed request its handler only passes through (shadow mode).
    route: RouteConfig | None = None


class FastPath:
    """What every fast connection of one listener shares."""

    def __init__(
        self,
        *,
        server: DataServer,
        pipeline: Pipeline,
        pool: UpstreamPool,
        zero_copy_min_bytes: int,
        body_idle_timeout: float,
        new_request_id: Callable[[], str],
        error_parts: Callable[[ProxyError, str, str, str], tuple[dict[str, str], bytes]],
        is_loopback: Callable[[object], bool],
        small_body_bytes: int = 64 * 1024,
    ) -> None:
        self.new_request_id = new_request_id
        self.error_parts = error_parts
        self.is_loopback = is_loopback
        self.server = server
        self.pipeline = pipeline
        self.pool = pool
        self.zero_copy_min = zero_copy_min_bytes
        self.body_idle_timeout = body_idle_timeout
        self.small_body = small_body_bytes
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every call.
        self.loop = asyncio.get_running_loop()
        self._origins: dict[str, bool] = {}
        #: The route handler, when it tells which routed requests it only passes through.
        self.through = pipeline.passing_through

    def plan(self, method: str, raw_target: str, headers: CIMultiDict[str]) -> Plan | None:
        """The resolved request, or None if the general path must serve it."""
        if method == "PUT":
            length = headers.get("Content-Length")
            if length is None or not length.isdigit() or int(length) > self.small_body:
                return None
            if framing_for(headers.get("x-amz-content-sha256"), headers.get("Content-Encoding")):
                return None
        elif headers.get("Content-Length", "0") != "0":
            return None
        if len(headers.getall("Host", ())) != 1 or len(headers.getall("Content-Length", ())) > 1:
            return None
        ex = Exchange(request_id="", method=method)
        try:
            address, route = self.pipeline.resolve(method, raw_target, headers, ex)
            if route is not None:
                through = self.through
                if through is None or not through.passes_through(route, ex.operation, address):
                    return None
                ex.route = route.name
            target = self.pipeline.target(address)
            if not self._sent_as_built(target):
                return None
        except Exception:
            return None
        return Plan(
            address=address,
            ex=ex,
            headers=headers,
            method=method,
            raw_target=raw_target,
            target=target,
            route=route,
        )

    def _sent_as_built(self, target: UpstreamTarget) -> bool:
        """Whether aiohttp's client would send ``target.url`` unchanged, as the fast path does.
        yarl only ever rewrites the origin part of an encoded URL (a default port, the host's
        case), so the answer is looked up once per origin; a path or query with anything but
        printable ASCII is always checked whole."""
        url = target.url
        rest = len(target.path) + (len(target.query) + 1 if target.query else 0)
        origin = url[: len(url) - rest]
        if "?" in target.path or not _PLAIN_REST.fullmatch(url, len(origin)):
            return str(URL(url, encoded=True)) == url
        known = self._origins.get(origin)
        if known is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            known = self._origins[origin] = str(URL(url, encoded=True)) == url
        return known
