"""Run a job on every item of a (lazy) listing with bounded concurrency and a bounded queue.

At most ``concurrency`` jobs run at once and at most as many more wait, so a listing of
millions of keys is consumed as fast as the workers go, never held in memory. A stop event
(SIGTERM, Ctrl-C) ends the submission; jobs already started finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def for_each(
    items: Iterable[T],
    job: Callable[[T], None],
    *,
    concurrency: int,
    stop: threading.Event,
) -> None:
    """Call ``job(item)`` for every item; re-raise the first exception a job leaked."""
    slots = threading.BoundedSemaphore(2 * concurrency)
    errors: list[BaseException] = []

    def done(fut: Future[None]) -> None:
        exc = fut.exception()
        if exc is not None:
            errors.append(exc)
            stop.set()
        slots.release()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="object") as pool:
        for item in items:
            if not _take_slot(slots, stop):
                break
            pool.submit(job, item).add_done_callback(done)
    if errors:
        raise errors[0]


def _take_slot(slots: threading.BoundedSemaphore, stop: threading.Event) -> bool:
    while not slots.acquire(timeout=0.2):
        if stop.is_set():
            return False
    if stop.is_set():
        slots.release()
        return False
    return True
