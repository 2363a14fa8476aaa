"""Runs document work off the event loop and reports it.

Translation is CPU-bound Python: it runs in a small dedicated thread pool so the event loop
keeps serving other requests (passthrough traffic, metrics, health) while a document is
translated. The pool is the data path's own so that translations queue behind each other,
not behind unrelated ``to_thread`` work.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from proxy.datapath.documents import (
    ClientDigests,
    Representation,
    StoredDocument,
    Translator,
    prepare_write,
    render,
)
from proxy.datapath.observe import TranslationObserver, direction_of
from proxy.translate import Format

__all__ = ["DocumentWorker"]

P = ParamSpec("P")
T = TypeVar("T")


class DocumentWorker:
    """The translation pool; every call reports engine work to the observer."""

    def __init__(self, observer: TranslationObserver, workers: int | None = None) -> None:
        self._observer = observer
        self._pool = ThreadPoolExecutor(
            max_workers=workers or min(4, os.cpu_count() or 1),
            thread_name_prefix="translate",
        )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def render(
        self, compiled: Translator, data: bytes, source: Format, target: Format
    ) -> Representation:
        rep = await self.run(render, compiled, data, source, target)
        self._observer.engine_work(direction_of(source, target), rep.seconds, len(data))
        return rep

    async def prepare_write(
        self,
        compiled: Translator,
        data: bytes,
        *,
        writer: Format,
        store: Format,
        digests: ClientDigests,
    ) -> StoredDocument:
        doc = await self.run(
            prepare_write, compiled, data, writer=writer, store=store, digests=digests
        )
        if doc.translated:
            # Validation-only runs (store format = writer format) are not translations.
            self._observer.engine_work(direction_of(writer, store), doc.seconds, len(data))
        return doc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
