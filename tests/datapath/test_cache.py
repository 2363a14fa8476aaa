import asyncio
from dataclasses import dataclass

import pytest

from proxy.datapath.cache import RepresentationCache


@dataclass
class Rep:
    body: bytes

    @property
    def nbytes(self) -> int:
        return len(self.body)


def key(n: int):
    return ("b", f"k{n}", '"e"', "json")


def test_lru_by_bytes():
    cache = RepresentationCache[Rep](max_bytes=10)
    cache.put(key(1), Rep(b"1234"))
    cache.put(key(2), Rep(b"1234"))
    assert cache.get(key(1)) is not None  # 1 is now most recent
    cache.put(key(3), Rep(b"1234"))  # 12 > 10: evict least recent (2)
    assert cache.get(key(2)) is None
    assert cache.get(key(1)) is not None and cache.get(key(3)) is not None
    assert cache.nbytes == 8 and cache.stats.evictions == 1
    cache.put(key(4), Rep(b"x" * 11))  # larger than the budget: not kept
    assert cache.get(key(4)) is None and cache.nbytes == 8


async def test_single_flight_and_hits():
    cache = RepresentationCache[Rep](max_bytes=100)
    calls = 0
    gate = asyncio.Event()

    async def fill():
        nonlocal calls
        calls += 1
        await gate.wait()
        return Rep(b"body")

    tasks = [asyncio.create_task(cache.get_or_fill(key(1), fill)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True, True]
    assert (cache.stats.misses, cache.stats.hits) == (1, 4)
    _, hit = await cache.get_or_fill(key(1), fill)
    assert hit and calls == 1


async def test_failed_fill_reaches_waiters_and_caches_nothing():
    cache = RepresentationCache[Rep](max_bytes=100)
    gate = asyncio.Event()

    async def fill():
        await gate.wait()
        raise ValueError("boom")

    tasks = [asyncio.create_task(cache.get_or_fill(key(1), fill)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert len(cache) == 0


async def test_cancelled_filler_hands_over():
    cache = RepresentationCache[Rep](max_bytes=100)
    started = asyncio.Event()

    async def slow_fill():
        started.set()
        await asyncio.sleep(10)
        return Rep(b"never")

    async def quick_fill():
        return Rep(b"quick")

    filler = asyncio.create_task(cache.get_or_fill(key(1), slow_fill))
    await started.wait()
    waiter = asyncio.create_task(cache.get_or_fill(key(1), quick_fill))
    await asyncio.sleep(0)
    filler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await filler
    value, hit = await waiter
    assert value.body == b"quick" and hit is False


def test_object_index_follows_puts_discards_and_evictions():
    cache = RepresentationCache[Rep](max_bytes=10)
    old, new = ("b", "k", '"e1"', "json"), ("b", "k", '"e2"', "json")
    assert not cache.has_object("b", "k", "json")
    cache.put(old, Rep(b"1234"))
    cache.put(new, Rep(b"1234"))
    assert cache.has_object("b", "k", "json") and not cache.has_object("b", "k", "xml")
    cache.discard_stale(new)  # e2 is the current stored version: e1 can never be served
    assert cache.get(old) is None and cache.get(new) is not None and cache.nbytes == 4
    cache.put(key(1), Rep(b"1234"))
    cache.put(key(2), Rep(b"1234"))  # evicts ("b", "k", e2)
    assert not cache.has_object("b", "k", "json")
    cache.discard(key(1))
    assert not cache.has_object("b", "k1", "json") and cache.has_object("b", "k2", "json")
