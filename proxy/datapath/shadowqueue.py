"""Shadow mode's background work, bounded: copies of bodies within a global byte budget, a
queue of finished ones, a capped number of checkers running them in the document workers, and
every outcome counted and failures logged (rate-limited per route and reason).

Nothing here ever raises into a request or makes one wait: a body that does not fit (budget,
queue) is counted ``skipped`` with its reason and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Literal

import structlog

from proxy.config import ShadowConfig
from proxy.datapath.documents import other_format
from proxy.datapath.engine import DocumentWorker
from proxy.datapath.formats import detect_stored_format
from proxy.datapath.observe import ShadowDirection, TranslationObserver, direction_of
from proxy.datapath.routes import CompiledRoute
from proxy.errors import SlowDown, TranslationError
from proxy.relay.ratelimit import RateLimitedLog
from proxy.translate import Format

__all__ = ["ShadowChecker", "Tee"]

_log = structlog.get_logger("format_proxy.shadow")

#: Bytes of a body the format sniff looks at.
_HEAD = 512


@dataclass(eq=False, slots=True)
class Tee:
    """A copy of one body as it streams by, within the bytes reserved for it."""

    route: CompiledRoute
    operation: Literal["get", "put"]
    key: str
    reserved: int
    #: The document's format when known up front (a PUT: the writer's); else detected from
    #: ``meta``/``content_type`` and the first bytes, as a read would.
    fmt: Format | None = None
    meta: str | None = None
    content_type: str | None = None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    overflow: bool = False
    ended: bool = False
    #: True once counted or given up; ``skip`` says why a copy was never made.
    settled: bool = False
    skip: str = ""
    #: True while ``reserved`` bytes count against ``shadow.max_buffered_bytes``.
    holding: bool = False

    def add(self, piece: bytes) -> None:
        if self.overflow:
            return
        self.size += len(piece)
        if self.size > self.reserved:
            self.overflow = True
            self.parts.clear()
            return
        self.parts.append(piece if type(piece) is bytes else bytes(piece))

    def end(self) -> None:
        self.ended = True

    def format(self, head: bytes | None) -> Format:
        """The document's format (raises TranslationError when undetectable)."""
        if self.fmt is not None:
            return self.fmt
        return detect_stored_format(self.meta, self.content_type, head)

    def direction(self, head: bytes | None = None) -> ShadowDirection:
        try:
            fmt = self.format(head)
        except TranslationError:
            return "unknown"
        return direction_of(fmt, other_format(fmt))


@dataclass(frozen=True, slots=True)
class _Job:
    tee: Tee
    data: bytes
    fmt: Format


class ShadowChecker:
    """The process-wide shadow bounds (``shadow:`` in the config) and the checkers."""

    def __init__(
        self,
        settings: ShadowConfig,
        worker: DocumentWorker,
        observer: TranslationObserver,
        *,
        max_translate_bytes: int,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._max_translate = max_translate_bytes
        self._worker = worker
        self._observer = observer
        self._random = rng or random.Random()
        #: Bytes reserved by copies being made, queued or being checked.
        self.buffered = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._checkers: list[asyncio.Task[None]] = []
        self._logs: dict[tuple[str, str], RateLimitedLog] = {}
        self._closed = False

    # --- the request side ------------------------------------------------------------------

    def tee(
        self,
        route: CompiledRoute,
        operation: Literal["get", "put"],
        key: str,
        length: int | None,
        *,
        fmt: Format | None = None,
        meta: str | None = None,
        content_type: str | None = None,
    ) -> Tee:
        """A copy to fill, or one already settled as skipped for the reason in ``tee.skip``."""
        settings = route.config.shadow
        limit = settings.limit(self._max_translate)
        reserved = limit if length is None else length
        tee = Tee(route, operation, key, reserved, fmt, meta, content_type)
        if self._closed:
            tee.settled, tee.skip = True, "shutdown"
        elif settings.sample < 1.0 and self._random.random() >= settings.sample:
            tee.settled, tee.skip = True, "not_sampled"
        elif reserved > limit:
            tee.settled, tee.skip = True, "too_large"
        elif self._queue is not None and self._queue.full():
            # Saturated: no copy at all, so the body keeps the cheapest path (zero-copy).
            tee.settled, tee.skip = True, "queue_full"
        elif self.buffered + reserved > self.settings.max_buffered_bytes:
            tee.settled, tee.skip = True, "buffer_full"
        else:
            self.buffered += reserved
            tee.holding = True
        return tee

    def _release(self, tee: Tee) -> None:
        if tee.holding:
            tee.holding = False
            self.buffered -= tee.reserved

    def skip(self, tee: Tee, reason: str, head: bytes | None = None) -> None:
        """Count a body that will not be checked."""
        self._observer.shadow_check(tee.route.name, tee.direction(head), "skipped", reason)

    def discard(self, tee: Tee) -> None:
        """Forget a copy without an outcome (the request itself failed)."""
        tee.settled = True
        tee.parts.clear()
        self._release(tee)

    def finish(self, tee: Tee, *, complete: bool) -> None:
        """The request completed successfully: queue the copy for a check, or count why not.
        Never raises, never waits."""
        try:
            self._finish(tee, complete=complete)
        except Exception:  # a bug here must not reach the request (or the server's clean-up)
            _log.exception("shadow_check_error", route=tee.route.name)
            tee.settled = True
            self._release(tee)
            self._observer.shadow_check(tee.route.name, "unknown", "skipped", "check_error")

    def _finish(self, tee: Tee, *, complete: bool) -> None:
        if tee.settled:
            self.skip(tee, tee.skip)
            return
        tee.settled = True
        data = b"".join(tee.parts)
        tee.parts.clear()
        head = data[:_HEAD]
        reason = ""
        if tee.overflow:
            reason = "too_large"
        elif not complete or not tee.ended:
            reason = "incomplete"
        elif self._closed:
            reason = "shutdown"
        if reason:
            self._release(tee)
            self.skip(tee, reason, head)
            return
        try:
            fmt = tee.format(head)
        except TranslationError as err:
            self._release(tee)
            self._failed(tee, "unknown", err.reason, err.location, err.detail)
            return
        tee.fmt = fmt
        queue = self._start()
        try:
            queue.put_nowait(_Job(tee, data, fmt))
        except asyncio.QueueFull:
            self._release(tee)
            self.skip(tee, "queue_full", head)

    # --- the checkers ----------------------------------------------------------------------

    def _start(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            self._queue = asyncio.Queue(self.settings.queue)
            self._checkers = [
                asyncio.ensure_future(self._run()) for _ in range(self.settings.concurrency)
            ]
        return self._queue

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await self._check(job)
            except asyncio.CancelledError:
                self.skip(job.tee, "shutdown")
                raise
            except Exception:
                _log.exception("shadow_check_error", route=job.tee.route.name)
                self.skip(job.tee, "check_error")
            finally:
                self._release(job.tee)

    async def _check(self, job: _Job) -> None:
        tee = job.tee
        direction = direction_of(job.fmt, other_format(job.fmt))
        try:
            verdict = await self._worker.shadow_check(tee.route, job.data, job.fmt)
        except SlowDown:
            self.skip(tee, "workers_busy")
            return
        if verdict.ok:
            self._observer.shadow_check(tee.route.name, direction, "ok", "")
        else:
            self._failed(tee, direction, verdict.reason, verdict.location, verdict.detail)

    def _failed(
        self, tee: Tee, direction: ShadowDirection, reason: str, location: str, detail: str
    ) -> None:
        """Count a failed check and log it (the key: an operator must find the document to
        fix the mapping; never its bytes)."""
        route = tee.route.name
        self._observer.shadow_check(route, direction, "failed", reason)
        log = self._logs.get((route, reason))
        if log is None:
            log = RateLimitedLog(_log, interval=self.settings.log_interval)
            self._logs[route, reason] = log
        log.warning(
            "shadow_check_failed",
            route=route,
            key=tee.key,
            operation=tee.operation,
            direction=direction,
            reason=reason,
            location=location,
            detail=detail[:500],
        )

    def close(self) -> None:
        """Stop the checkers; what is still queued is counted ``skipped`` (``shutdown``)."""
        self._closed = True
        for task in self._checkers:
            task.cancel()
        queue = self._queue
        while queue is not None and not queue.empty():
            with contextlib.suppress(asyncio.QueueEmpty):
                job = queue.get_nowait()
                self._release(job.tee)
                self.skip(job.tee, "shutdown")
