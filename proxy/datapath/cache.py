"""A bounded in-memory cache of translated representations, with single-flight fills, and a
bounded memory of the translations that failed.

Keyed by ``(bucket, key, stored ETag, target format)``: a changed stored object has a new ETag,
so stale entries are never served, only aged out. HEAD-then-GET and the many ranged GETs of
s3fs / ``download_file`` then translate an object once. Concurrent misses for the same key wait
for one fill instead of translating in parallel. Lives on one event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

CacheKey = tuple[str, str, str, str]
#: ``(bucket, key, target format)``: all stored versions (ETags) of an object in one format.
ObjectKey = tuple[str, str, str]


def _object_of(key: CacheKey) -> ObjectKey:
    return (key[0], key[1], key[3])


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)
E = TypeVar("E", bound=Exception)


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class RepresentationCache(Generic[V]):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[CacheKey, V] = OrderedDict()
        self._by_object: dict[ObjectKey, set[CacheKey]] = {}
        self._bytes = 0
        self._inflight: dict[CacheKey, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def has_object(self, bucket: str, key: str, target: str) -> bool:
        """True if some stored version of this object is cached in ``target`` format."""
        return (bucket, key, target) in self._by_object

    def discard_stale(self, key: CacheKey) -> None:
        """Drop entries for the same object and format under other ETags (``key``'s ETag is
        the current stored one): they can never be served again."""
        for other in list(self._by_object.get(_object_of(key), ())):
            if other != key:
                self.discard(other)

    def _index(self, key: CacheKey) -> None:
        self._by_object.setdefault(_object_of(key), set()).add(key)

    def _unindex(self, key: CacheKey) -> None:
        obj = _object_of(key)
        keys = self._by_object.get(obj)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_object[obj]

    def get(self, key: CacheKey) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: CacheKey, value: V) -> None:
        size = value.nbytes
        if size > self.max_bytes:
            return  # larger than the whole budget: serve it, don't keep it
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._entries[key] = value
        self._index(key)
        self._bytes += size
        while self._bytes > self.max_bytes:
            evicted_key, evicted = self._entries.popitem(last=False)
            self._unindex(evicted_key)
            self._bytes -= evicted.nbytes
            self.stats.evictions += 1

    def discard(self, key: CacheKey) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._unindex(key)
            self._bytes -= old.nbytes

    async def get_or_fill(self, key: CacheKey, fill: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """Return ``(value, hit)``. On a miss ``fill`` runs once per key however many callers
        wait; a failing fill propagates its exception to every waiter and caches nothing. If the
        filling request is cancelled (client gone), a waiter takes over the fill."""
        while True:
            value = self.get(key)
            if value is not None:
                self.stats.hits += 1
                return value, True
            pending = self._inflight.get(key)
            if pending is None:
                break
            try:
                value = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():
                    continue  # the filler went away, not us: try again
                raise
            # Another request filled this key while we waited: that is a hit for this one.
            self.stats.hits += 1
            return value, True

        self.stats.misses += 1
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fill()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(value)
            self.put(key, value)
            return value, False
        finally:
            del self._inflight[key]


class FailureMemo(Generic[E]):
    """The last ``max_entries`` translation failures by cache key (least recently used go
    first). A stored object version that cannot be translated (a ``too_slow`` document above
    all) then fails fast on every later read, with the same error, instead of costing a
    worker its whole budget again. A new stored version has a new ETag: a new key."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, E] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> E | None:
        err = self._entries.get(key)
        if err is not None:
            self._entries.move_to_end(key)
        return err

    def put(self, key: CacheKey, err: E) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = err
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
