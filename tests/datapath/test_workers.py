"""The document worker pool: budgets kill and replace workers, crashes fail one task cleanly,
answers and errors travel whole, workers run at a lower CPU priority; and the bounded memory
of translation failures and the global byte budget of the data path."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from proxy.datapath.budget import ByteBudget
from proxy.datapath.cache import FailureMemo
from proxy.datapath.spool import UploadStore
from proxy.datapath.workers import PoolBusy, TaskTimeout, WorkerDied, WorkerPool
from proxy.errors import SlowDown, TranslationError
from tests.datapath import worker_tasks as tasks


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    events: list[tuple[str, dict[str, object]]] = []
    p = WorkerPool(1, on_event=lambda e, f: events.append((e, f)))
    p.events = events  # type: ignore[attr-defined]
    await p.start()
    yield p
    p.close()


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


async def test_a_task_runs_in_another_process(pool: WorkerPool):
    assert await pool.run(tasks.add, 2, 3, budget=5) == 5
    assert await pool.run(tasks.pid, budget=5) != os.getpid()
    big = os.urandom(8 * 1024 * 1024)
    assert await pool.run(tasks.echo, big, budget=10) == big


async def test_over_budget_the_worker_is_killed_and_replaced(pool: WorkerPool):
    first = await pool.run(tasks.pid, budget=5)
    started = time.monotonic()
    with pytest.raises(TaskTimeout):
        await pool.run(tasks.spin, budget=0.5)
    assert 0.5 <= time.monotonic() - started < 2.0
    assert gone(first), "the spinning worker was not killed"
    second = await pool.run(tasks.pid, budget=10)  # waits for the replacement
    assert second != first
    assert [e for e, _ in pool.events] == ["worker_killed"]  # type: ignore[attr-defined]


async def test_a_crash_fails_its_task_cleanly_and_a_new_worker_takes_over(pool: WorkerPool):
    first = await pool.run(tasks.pid, budget=5)
    with pytest.raises(WorkerDied) as info:
        await pool.run(tasks.crash, 7, budget=5)
    assert info.value.exitcode == 7
    assert await pool.run(tasks.add, 1, 1, budget=10) == 2
    assert await pool.run(tasks.pid, budget=5) != first


async def test_a_worker_killed_from_outside_mid_task_is_replaced(pool: WorkerPool):
    """What the kernel's OOM killer does: SIGKILL while the worker is busy."""
    victim = await pool.run(tasks.pid, budget=5)
    job = asyncio.ensure_future(pool.run(tasks.sleep, 5, budget=10))
    await asyncio.sleep(0.3)
    os.kill(victim, 9)
    with pytest.raises(WorkerDied) as info:
        await job
    assert info.value.exitcode == -9
    assert await pool.run(tasks.add, 2, 2, budget=10) == 4


async def test_errors_travel_whole(pool: WorkerPool):
    with pytest.raises(TranslationError) as info:
        await pool.run(tasks.refuse, budget=5)
    assert (info.value.reason, info.value.location) == ("type_mismatch", "/doc/a")
    assert info.value.detail == "expected a number"
    assert await pool.run(tasks.add, 1, 2, budget=5) == 3  # the worker is still usable


async def test_a_cancelled_caller_leaves_the_worker_to_finish(pool: WorkerPool):
    first = await pool.run(tasks.pid, budget=5)
    job = asyncio.ensure_future(pool.run(tasks.sleep, 0.3, budget=5))
    await asyncio.sleep(0.1)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    # The same worker, once its task is done: nothing was killed.
    assert await pool.run(tasks.pid, budget=5) == first


async def test_workers_run_at_a_lower_cpu_priority():
    p = WorkerPool(1, nice=10)
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert await p.run(tasks.priority, budget=10) == min(ours + 10, 19)
    finally:
        p.close()


async def test_closing_the_pool_kills_busy_workers():
    p = WorkerPool(2)
    await p.start()
    pids = p.pids
    jobs = [asyncio.ensure_future(p.run(tasks.spin, budget=60)) for _ in range(2)]
    await asyncio.sleep(0.3)
    p.close()
    assert all(gone(pid) for pid in pids)
    for job in jobs:
        with pytest.raises(WorkerDied):
            await job


# --- the memory of failures, the byte budgets ------------------------------------------------


def test_the_failure_memory_is_bounded_and_forgets_the_least_recently_used():
    memo: FailureMemo[TranslationError] = FailureMemo(3)
    errs = {k: TranslationError("too_slow", "/", k) for k in "abcd"}
    for k in "abc":
        memo.put(("b", k, '"e"', "json"), errs[k])
    assert memo.get(("b", "a", '"e"', "json")) is errs["a"]  # a is now the most recent
    memo.put(("b", "d", '"e"', "json"), errs["d"])
    assert len(memo) == 3
    assert memo.get(("b", "b", '"e"', "json")) is None  # the least recently used went
    assert memo.get(("b", "a", '"e"', "json")) is errs["a"]
    assert memo.get(("b", "a", '"other"', "json")) is None  # another stored version
    off: FailureMemo[TranslationError] = FailureMemo(0)
    off.put(("b", "a", '"e"', "json"), errs["a"])
    assert len(off) == 0


def test_the_byte_budget_refuses_past_its_limit_and_counts():
    refused: list[int] = []
    budget = ByteBudget(100, setting="limits.x", on_refuse=lambda: refused.append(1))
    with budget.hold(60):
        with pytest.raises(SlowDown) as info, budget.hold(50):
            pass
        assert "limits.x" in str(info.value) and info.value.status == 503
        with budget.hold(40):
            assert budget.used == 100
    assert budget.used == 0 and refused == [1]


def test_spool_directories_of_dead_proxies_are_removed_at_start(tmp_path: Path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"format-proxy-uploads-{dead.pid}-abc"
    (stale / "upload").mkdir(parents=True)
    (stale / "upload" / "part-00001").write_bytes(b"x" * 100)
    alive = tmp_path / f"format-proxy-uploads-{os.getppid()}-def"
    alive.mkdir()
    other = tmp_path / "format-proxy-uploads-notapid"
    other.mkdir()
    store = UploadStore(tmp_path, 1000)
    try:
        assert not stale.exists()
        assert alive.exists() and other.exists()
        assert store.removed_stale == [stale]
        assert store.root.name.startswith(f"format-proxy-uploads-{os.getpid()}-")
    finally:
        store.close()


async def test_a_worker_that_died_while_idle_is_replaced_before_it_gets_a_task(pool: WorkerPool):
    idle = await pool.run(tasks.pid, budget=5)
    os.kill(idle, 9)
    assert gone(idle)
    await asyncio.sleep(0.2)  # the proxy's end of the socket sees the end of the stream
    assert await pool.run(tasks.add, 2, 5, budget=10) == 7  # no error for this request
    assert ("worker_died", {"pid": idle, "while": "idle"}) in pool.events  # type: ignore[attr-defined]


async def test_no_free_worker_within_the_wait_limit_is_pool_busy():
    p = WorkerPool(1, wait_limit=0.3)
    try:
        await p.start()
        busy = asyncio.ensure_future(p.run(tasks.sleep, 1.5, budget=10))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(PoolBusy):
            await p.run(tasks.add, 1, 1, budget=10)
        assert time.monotonic() - started < 1.0
        assert await busy  # the busy task was not disturbed
    finally:
        p.close()


async def test_requests_waiting_for_a_worker_end_when_the_pool_closes():
    p = WorkerPool(1)
    await p.start()
    busy = asyncio.ensure_future(p.run(tasks.sleep, 30, budget=60))
    await asyncio.sleep(0.1)
    waiting = asyncio.ensure_future(p.run(tasks.add, 1, 1, budget=10))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    p.close()
    for job in (busy, waiting):
        with pytest.raises(WorkerDied):
            await job
    assert time.monotonic() - started < 2.5
