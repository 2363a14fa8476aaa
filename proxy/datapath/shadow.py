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

from collections.abc import AsyncIterator, Iterable

from proxy.datapath.common import Context, header_value
from proxy.datapath.formats import META_HEADER
from proxy.datapath.routes import CompiledRoute
from proxy.datapath.shadowqueue import ShadowChecker, Tee
from proxy.relay.pipeline import Forwarder, ProxyResponse, S3Request

__all__ = ["ShadowCopy", "ShadowPath"]


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

    # --- the copies, for this path and for a front end that forwards by itself ----------------

    def response_copy(
        self,
        route: CompiledRoute,
        operation: str,
        key: str,
        status: int,
        headers: Iterable[tuple[str, str]],
    ) -> ShadowCopy | None:
        """A copy to make of a GetObject response body being passed through, or None: nothing
        to copy (another operation or status, or a skip counted already, such as a partial
        body or an unsampled one: the body keeps the zero-copy relay)."""
        if operation != "GetObject" or status not in (200, 206):
            return None
        headers = list(headers)
        declared = header_value(headers, "Content-Length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        tee = self._checker.tee(
            route,
            "get",
            key,
            length,
            meta=header_value(headers, META_HEADER),
            content_type=header_value(headers, "Content-Type"),
        )
        if status == 206:
            self._checker.discard(tee)
            self._checker.skip(tee, "partial")
            return None
        if tee.settled:
            self._checker.finish(tee, complete=False)
            return None
        return ShadowCopy(self._checker, tee, length)

    def request_copy(
        self, route: CompiledRoute, operation: str, key: str, length: int | None
    ) -> ShadowCopy | None:
        """A copy to make of a PutObject request body being passed through (None for other
        operations). Finish it once the upstream accepted the body; discard it otherwise."""
        if operation != "PutObject":
            return None
        tee = self._checker.tee(route, "put", key, length, fmt=self._ctx.version_format(route))
        return ShadowCopy(self._checker, tee, length)

    # --- this path ----------------------------------------------------------------------------

    def _get(
        self, route: CompiledRoute, request: S3Request, response: ProxyResponse
    ) -> ProxyResponse:
        if response.body is None:
            return response
        copy = self.response_copy(
            route, "GetObject", request.address.key or "", response.status, response.headers
        )
        if copy is None:
            return response
        if isinstance(response.body, bytes):
            copy.add(response.body)
            copy.end()
            copy.finish()
            return response
        release = response.release

        def released() -> None:
            # The server calls this once the body was written or abandoned.
            try:
                if callable(release):
                    release()
            finally:
                copy.finish()

        response.body = _TeeBody(response.body, copy)
        response.release = released
        return response

    async def _put(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        body = request.body
        copy = self.request_copy(route, "PutObject", request.address.key or "", body.length)
        assert copy is not None
        if copy.copying:
            body.tap(copy.add)
        try:
            response = await forward.passthrough(request)
        except BaseException:
            copy.discard()
            raise
        if not 200 <= response.status < 300:
            copy.discard()
            return response
        # The upstream accepted the whole body: everything it received went through the tap.
        if body.error is None:
            copy.end()
        copy.finish()
        return response


class ShadowCopy:
    """One body's copy (:class:`~proxy.relay.pipeline.BodyCopy`): filled as the body passes,
    then queued for its check, or counted as skipped, by :meth:`finish`."""

    __slots__ = ("_checker", "_tee", "length")

    def __init__(self, checker: ShadowChecker, tee: Tee, length: int | None) -> None:
        self._checker = checker
        self._tee = tee
        self.length = length

    @property
    def copying(self) -> bool:
        """False when the copy was given up before it started (its skip is counted at
        :meth:`finish`): the body needs no copy."""
        return not self._tee.settled

    def add(self, piece: bytes) -> None:
        if not self._tee.settled:
            self._tee.add(piece)

    def end(self) -> None:
        """The whole body passed: a GET's reached the client, a PUT's the upstream."""
        self._tee.end()

    def finish(self) -> None:
        """Queue the check of a complete copy, or count why there is none. Never raises."""
        tee = self._tee
        if tee.settled:
            self._checker.finish(tee, complete=False)  # counts the skip given up front
            return
        complete = tee.ended and (self.length is None or tee.size == self.length)
        self._checker.finish(tee, complete=complete)

    def discard(self) -> None:
        """The request failed: no outcome is counted."""
        self._checker.discard(self._tee)


class _TeeBody:
    """A response body passed on piece by piece, each piece also added to a copy."""

    __slots__ = ("_copy", "_inner")

    def __init__(self, inner: AsyncIterator[bytes], copy: ShadowCopy) -> None:
        self._inner = inner
        self._copy = copy

    def __aiter__(self) -> _TeeBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            piece = await self._inner.__anext__()
        except StopAsyncIteration:
            # Only after the server wrote every earlier piece: the client has the whole body.
            self._copy.end()
            raise
        self._copy.add(piece)
        return piece
