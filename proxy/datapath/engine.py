"""Runs document work off the event loop, within its time budget, and reports it.

Translation, validation and digests of whole documents are CPU-bound Python that holds the
GIL. They run in a small pool of worker processes (:mod:`proxy.datapath.workers`) so the event
loop keeps serving passthrough traffic, metrics and health checks whatever a document costs.
Each task has ``limits.translate_timeout``: past it the worker is killed and replaced and the
document fails with reason ``too_slow``. Workers run at a lower CPU priority (``nice`` +10),
so on a small machine the event loop wins the CPU over them (``limits.translate_nice``).

Without isolation (in-process tests whose fake mappings live in the test process) the same
functions run in a thread pool, with no budget.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from proxy.config import Config
from proxy.datapath import tasks
from proxy.datapath.documents import (
    ClientDigests,
    Representation,
    ShadowVerdict,
    StoredDocument,
    prepare_write,
    render,
    shadow_verdict,
    verify_digests,
)
from proxy.datapath.observe import TranslationObserver, direction_of
from proxy.datapath.routes import CompiledRoute
from proxy.datapath.spool import Part
from proxy.datapath.workers import PoolBusy, TaskTimeout, WorkerDied, WorkerPool
from proxy.errors import SlowDown, TranslationError, WorkerLost
from proxy.translate import Format

__all__ = ["DocumentWorker"]

T = TypeVar("T")

_log = structlog.get_logger("format_proxy.datapath")

#: Modules the fork server imports once, so a new worker starts with the engine loaded.
_PRELOAD = ("proxy.datapath.tasks", "proxy.translate.mapping")


class DocumentWorker:
    """The document pool; every call reports engine work to the observer."""

    def __init__(
        self,
        observer: TranslationObserver,
        config: Config,
        *,
        isolate: bool = True,
        workers: int | None = None,
    ) -> None:
        self._observer = observer
        limits = config.limits
        self.budget = limits.translate_timeout
        size = workers or limits.workers()
        self._index = {route.name: i for i, route in enumerate(config.routes)}
        # File I/O (assembling spooled parts) stays in threads: it releases the GIL.
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="documents")
        self.pool: WorkerPool | None = None
        if isolate:
            self.pool = WorkerPool(
                size,
                initializer=tasks.compile_routes,
                initargs=(tuple(r.mapping for r in config.routes), config.base_dir, limits),
                nice=limits.translate_nice,
                preload=_PRELOAD,
                wait_limit=max(30.0, 3 * self.budget),
                on_event=self._pool_event,
            )

    def start(self) -> None:
        """Start the worker processes in the background (requests wait for the first one)."""
        if self.pool is not None:
            self.pool.begin()

    @property
    def ready(self) -> bool:
        """False until a document worker runs (at start-up)."""
        return self.pool is None or self.pool.ready

    @staticmethod
    def _pool_event(event: str, fields: dict[str, Any]) -> None:
        _log.warning(event, **fields)

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking file I/O in a thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args))

    async def _run(self, local: Callable[..., T], task: Callable[..., T], *args: Any) -> T:
        """``task(*args)`` in a worker process (``local(*local_args)`` in a thread without
        isolation). Raises TaskTimeout for the caller to name."""
        if self.pool is None:
            return await self.io(local, *args)
        try:
            return await self.pool.run(task, *args, budget=self.budget)  # type: ignore[no-any-return]
        except WorkerDied as exc:
            raise WorkerLost(
                f"a document worker stopped while working on this request: {exc}"
            ) from None
        except PoolBusy as exc:
            self._observer.refused("translate_queue")
            raise SlowDown(f"the proxy is busy translating other documents: {exc}") from None

    def _too_slow(self) -> TranslationError:
        return TranslationError(
            "too_slow",
            "/",
            f"the document took longer than limits.translate_timeout ({self.budget:g} s) "
            "to translate; the worker was stopped",
        )

    async def render(
        self, route: CompiledRoute, data: bytes, source: Format, target: Format
    ) -> Representation:
        try:
            if self.pool is None:
                rep = await self.io(render, route.mapping, data, source, target)
            else:
                rep = await self._run(
                    render, tasks.render_route, self._index[route.name], data, source, target
                )
        except TaskTimeout:
            raise self._too_slow() from None
        self._observer.engine_work(direction_of(source, target), rep.seconds, len(data))
        return rep

    async def prepare_write(
        self,
        route: CompiledRoute,
        data: bytes,
        *,
        writer: Format,
        store: Format,
        digests: ClientDigests,
    ) -> StoredDocument:
        try:
            if self.pool is None:
                doc = await self.io(
                    functools.partial(
                        prepare_write, route.mapping, writer=writer, store=store, digests=digests
                    ),
                    data,
                )
            else:
                doc = await self._run(
                    prepare_write,
                    tasks.prepare_route,
                    self._index[route.name],
                    data,
                    writer,
                    store,
                    digests,
                )
        except TaskTimeout:
            raise self._too_slow() from None
        if doc.translated:
            # Validation-only runs (store format = writer format) are not translations.
            self._observer.engine_work(direction_of(writer, store), doc.seconds, len(data))
        return doc

    async def shadow_check(self, route: CompiledRoute, data: bytes, fmt: Format) -> ShadowVerdict:
        """A shadow check of one document, within the same time budget; every failure is a
        verdict. Raises only :class:`~proxy.errors.SlowDown` (no worker free in time): the
        check did not run. Not counted as engine work: shadow checks are not translations
        anyone is served."""
        if self.pool is None:
            try:
                return await self.io(shadow_verdict, route.mapping, data, fmt)
            except TranslationError as exc:
                return ShadowVerdict(exc.reason, exc.location, exc.detail[:500])
        try:
            verdict = await self.pool.run(
                tasks.shadow_route, self._index[route.name], data, fmt, budget=self.budget
            )
        except TaskTimeout:
            err = self._too_slow()
            return ShadowVerdict(err.reason, err.location, err.detail)
        except WorkerDied as exc:
            return ShadowVerdict("worker_lost", "/", f"the document worker stopped: {exc}")
        except PoolBusy as exc:
            raise SlowDown(f"no document worker was free for a shadow check: {exc}") from None
        except TranslationError as exc:
            return ShadowVerdict(exc.reason, exc.location, exc.detail[:500])
        assert isinstance(verdict, ShadowVerdict)
        return verdict

    async def verify(self, digests: ClientDigests, data: bytes) -> None:
        """Check ``data`` against the client's digests (raises BadDigest)."""
        try:
            await self._run(verify_digests, verify_digests, digests, data)
        except TaskTimeout:
            raise SlowDown("verifying the body's digests took too long; try again") from None

    async def spool_part(
        self,
        digests: ClientDigests,
        directory: Path,
        number: int,
        data: bytes,
        algorithms: tuple[str, ...],
    ) -> Part:
        """Verify an uploaded part and write it into ``directory``."""
        try:
            return await self._run(
                tasks.spool_part, tasks.spool_part, digests, directory, number, data, algorithms
            )
        except TaskTimeout:
            raise SlowDown("storing the part took too long; try again") from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
