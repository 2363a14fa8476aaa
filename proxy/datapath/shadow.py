"""A route in ``mode: shadow``: every request passes through exactly as on an unrouted bucket,
while GET response and PUT request bodies are copied as they stream by and checked in the
background (:mod:`proxy.datapath.shadowqueue`) for what active mode would do to them.

What is copied: the body of a GetObject answered ``200`` (``206``: counted ``skipped``,
``partial``) and the decoded body of a PutObject answered ``2xx`` — sampled, and only within
the route's ``shadow.max_bytes``. The check is queued only once the request completed: the
whole GET body went to the client, or the upstream accepted the whole PUT body. A GET body
being copied is relayed by the copy path, never by the zero-copy relay (the copy needs the
bytes); an unsampled or too large one keeps the zero-copy relay. Every other operation passes
through without a check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from proxy.datapath.common import Context, header_value
from proxy.datapath.formats import META_HEADER
from proxy.datapath.routes import CompiledRoute
from proxy.datapath.shadowqueue import ShadowChecker, Tee
from proxy.relay.pipeline import Forwarder, ProxyResponse, S3Request

__all__ = ["ShadowPath"]


class ShadowPath:
    def __init__(self, ctx: Context, checker: ShadowChecker) -> None:
        self._ctx = ctx
        self._checker = checker

    async def handle(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        if request.operation == "GetObject":
            return self._get(route, request, await forward.passthrough(request))
        if request.operation == "PutObject":
            return await self._put(request, route, forward)
        return await forward.passthrough(request)

    def _get(
        self, route: CompiledRoute, request: S3Request, response: ProxyResponse
    ) -> ProxyResponse:
        if response.status not in (200, 206) or response.body is None:
            return response
        headers = response.headers
        declared = header_value(headers, "Content-Length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        tee = self._checker.tee(
            route,
            "get",
            request.address.key or "",
            length,
            meta=header_value(headers, META_HEADER),
            content_type=header_value(headers, "Content-Type"),
        )
        if response.status == 206:
            self._checker.discard(tee)
            self._checker.skip(tee, "partial")
            return response
        if tee.settled:
            self._checker.finish(tee, complete=False)
            return response
        if isinstance(response.body, bytes):
            tee.add(response.body)
            tee.end()
            self._checker.finish(tee, complete=True)
            return response
        checker, release = self._checker, response.release

        def released() -> None:
            # The server calls this once the body was written or abandoned.
            try:
                if callable(release):
                    release()
            finally:
                checker.finish(tee, complete=length is None or tee.size == length)

        response.body = _TeeBody(response.body, tee)
        response.release = released
        return response

    async def _put(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        body = request.body
        tee = self._checker.tee(
            route,
            "put",
            request.address.key or "",
            body.length,
            fmt=self._ctx.version_format(route),
        )
        if not tee.settled:
            body.tap(tee.add)
        try:
            response = await forward.passthrough(request)
        except BaseException:
            self._checker.discard(tee)
            raise
        if not 200 <= response.status < 300:
            self._checker.discard(tee)
            return response
        # The upstream accepted the whole body: everything it received went through the tap.
        tee.end()
        complete = body.error is None and (body.length is None or tee.size == body.length)
        self._checker.finish(tee, complete=complete)
        return response


class _TeeBody:
    """A response body passed on piece by piece, each piece also added to a copy."""

    __slots__ = ("_inner", "_tee")

    def __init__(self, inner: AsyncIterator[bytes], tee: Tee) -> None:
        self._inner = inner
        self._tee = tee

    def __aiter__(self) -> _TeeBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            piece = await self._inner.__anext__()
        except StopAsyncIteration:
            # Only after the server wrote every earlier piece: the client has the whole body.
            self._tee.end()
            raise
        self._tee.add(piece)
        return piece
