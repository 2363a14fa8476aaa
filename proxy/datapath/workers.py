"""A small pool of worker processes that runs each task within a time budget.

Document work is CPU-bound Python that holds the GIL: in a thread of the proxy's process it
starves the event loop (health checks, passthrough traffic, metrics). Here every task runs in
a worker process started by multiprocessing's forkserver (the proxy has threads and an event
loop: no plain fork), at a lower CPU priority. A task over its budget gets its worker killed
(SIGKILL) and replaced; the caller gets :class:`TaskTimeout`. A worker that dies on its own
(the kernel's OOM killer, a crash) fails only its own task (:class:`WorkerDied`).

Each worker has its own socket pair, so a killed worker cannot leave a shared lock held or a
shared pipe half-written (the failure mode of pools with one queue for all workers).
Frames are an 8-byte length and a pickle. Tasks are module-level functions (pickled by
name); what workers need from the start (compiled mappings) comes from ``initializer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["PoolBusy", "TaskTimeout", "WorkerDied", "WorkerPool"]

_FRAME = struct.Struct("!Q")
#: Longest a new worker may take to start and run its initializer.
_START_TIMEOUT = 120.0
#: Pause between attempts to replace a worker that failed to start.
_RESPAWN_PAUSE = 1.0
#: How often a request waiting for a free worker looks whether the pool was closed.
_WAIT_STEP = 0.5
_PR_SET_PDEATHSIG = 1


class TaskTimeout(Exception):
    """The task ran past its budget; its worker was killed."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"task exceeded its budget of {budget:g} s")
        self.budget = budget


class WorkerDied(Exception):
    """The worker running the task exited without answering."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"worker process stopped unexpectedly (exit code {exitcode})")
        self.exitcode = exitcode


class PoolBusy(Exception):
    """No worker became free within the wait limit."""


class WorkerStartError(Exception):
    """A worker's initializer failed."""


class _Channel(asyncio.BufferedProtocol):
    """The proxy's end of one worker's socket: whole frames, read straight into their final
    buffer (no copies of large documents on the event loop beyond the pickle)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._header = bytearray(_FRAME.size)
        self._body: bytearray | None = None
        self._got = 0
        self._frame: asyncio.Future[bytearray] | None = None
        self._ready: bytearray | None = None  # a frame that came before receive() was called
        self._writable: asyncio.Future[None] | None = None
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        target = self._header if self._body is None else self._body
        return memoryview(target)[self._got :]

    def buffer_updated(self, nbytes: int) -> None:
        self._got += nbytes
        if self._body is None and self._got == _FRAME.size:
            (size,) = _FRAME.unpack(self._header)
            self._body, self._got = bytearray(size), 0
        if self._body is not None and self._got == len(self._body):
            body, self._body, self._got = self._body, None, 0
            if self._frame is not None and not self._frame.done():
                self._frame.set_result(body)
            else:
                self._ready = body

    def eof_received(self) -> bool:
        self._fail(EOFError("the worker closed its socket"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or EOFError("the worker's socket closed"))

    def _fail(self, exc: Exception) -> None:
        self._lost = exc
        for waiter in (self._frame, self._writable):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError(str(exc)))

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    async def send(self, payload: bytes) -> None:
        if self._lost is not None or self.transport is None or self.transport.is_closing():
            raise ConnectionError("the worker's socket is closed")
        self.transport.write(_FRAME.pack(len(payload)))
        self.transport.write(payload)
        if self._writable is not None and not self._writable.done():
            await self._writable

    async def receive(self) -> bytearray:
        if self._ready is not None:
            body, self._ready = self._ready, None
            return body
        if self._lost is not None:
            raise ConnectionError(str(self._lost))
        self._frame = asyncio.get_running_loop().create_future()
        try:
            return await self._frame
        finally:
            self._frame = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    channel: _Channel

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.process.kill()
        self.channel.close()


class WorkerPool:
    """``size`` worker processes; :meth:`run` runs one task on a free worker."""

    def __init__(
        self,
        size: int,
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        nice: int = 10,
        preload: Sequence[str] = (),
        wait_limit: float | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self._initializer = initializer
        self._initargs = initargs
        self._nice = nice
        self._wait_limit = wait_limit
        self._on_event = on_event or (lambda _event, _fields: None)
        self._ctx = multiprocessing.get_context("forkserver")
        if preload:
            # Imported once by the fork server: every worker starts with them loaded, and
            # their pages are shared between workers.
            self._ctx.set_forkserver_preload(list(preload))
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: set[_Worker] = set()
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawning: set[asyncio.Task[Any]] = set()

    # --- the caller's side -----------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until they are ready (optional: :meth:`run` starts
        missing workers itself)."""
        self._replenish()
        await asyncio.gather(*self._spawning)

    def begin(self) -> None:
        """Start the workers in the background."""
        self._replenish()

    @property
    def ready(self) -> bool:
        """True once some worker is running (they start in the background)."""
        return bool(self._workers)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    async def run(self, fn: Callable[..., Any], *args: Any, budget: float) -> Any:
        """``fn(*args)`` in a worker. Raises what ``fn`` raised, :class:`TaskTimeout`,
        :class:`WorkerDied` or :class:`PoolBusy`. If the caller is cancelled, the worker
        finishes the task within its budget (result discarded) before it takes another."""
        if self._closed:
            raise WorkerDied(None)
        payload = pickle.dumps((fn, args), protocol=5)
        worker = await self._acquire()
        job = asyncio.create_task(self._exchange(worker, payload, budget))
        job.add_done_callback(lambda t: self._settle(worker, t))
        answer = await asyncio.shield(job)
        try:
            ok, value = pickle.loads(answer)
        except Exception as exc:  # an exception type that does not unpickle
            raise RuntimeError(f"unreadable answer from a document worker: {exc}") from None
        if ok:
            return value
        raise value

    async def _acquire(self) -> _Worker:
        """A free, live worker; waits at most ``wait_limit`` (PoolBusy), and not past close."""
        self._replenish()
        loop = asyncio.get_running_loop()
        deadline = None if self._wait_limit is None else loop.time() + self._wait_limit
        while True:
            if self._closed:
                raise WorkerDied(None)
            step = _WAIT_STEP if deadline is None else min(_WAIT_STEP, deadline - loop.time())
            if step <= 0:
                raise PoolBusy(f"no document worker was free within {self._wait_limit:g} s")
            try:
                worker = await asyncio.wait_for(self._queue().get(), step)
            except TimeoutError:
                continue  # look at the deadline and at close() again
            if not worker.channel.lost:
                return worker
            self._drop(worker, "worker_died", {"pid": worker.process.pid, "while": "idle"})

    def close(self) -> None:
        """Kill every worker now (at shutdown: requests have been drained or given up)."""
        self._closed = True
        for worker in list(self._workers):
            worker.kill()
        self._workers.clear()
        for task in list(self._tasks):
            task.cancel()

    # --- one exchange ----------------------------------------------------------------------

    async def _exchange(self, worker: _Worker, payload: bytes, budget: float) -> bytearray:
        try:
            async with asyncio.timeout(budget):
                await worker.channel.send(payload)
                return await worker.channel.receive()
        except TimeoutError:
            raise TaskTimeout(budget) from None
        except (ConnectionError, OSError):
            worker.channel.close()
            await asyncio.to_thread(worker.process.join, 1.0)
            raise WorkerDied(worker.process.exitcode) from None

    def _settle(self, worker: _Worker, job: asyncio.Task[bytearray]) -> None:
        """Back to the idle queue after an answer; killed and replaced otherwise."""
        exc = None if job.cancelled() else job.exception()
        if exc is None and not job.cancelled() and not self._closed:
            self._queue().put_nowait(worker)
            return
        pid = worker.process.pid
        if isinstance(exc, TaskTimeout):
            self._drop(worker, "worker_killed", {"pid": pid, "budget_seconds": exc.budget})
        elif isinstance(exc, WorkerDied):
            self._drop(worker, "worker_died", {"pid": pid, "exit_code": exc.exitcode})
        else:
            self._drop(worker)

    def _drop(self, worker: _Worker, event: str | None = None, fields: Any = None) -> None:
        """Kill a worker that cannot take another task, and start its replacement."""
        self._workers.discard(worker)
        worker.kill()
        if event is not None:
            self._on_event(event, fields or {})
        self._reap(worker)
        self._replenish()

    def _reap(self, worker: _Worker) -> None:
        if not self._closed:
            self._background(asyncio.to_thread(worker.process.join, 5.0))

    # --- keeping the pool full ---------------------------------------------------------------

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
        return self._idle

    def _background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _replenish(self) -> None:
        """Start workers until the pool is full again."""
        if self._closed:
            return
        for _ in range(self.size - len(self._workers) - len(self._spawning)):
            task = self._background(self._add_worker())
            self._spawning.add(task)
            task.add_done_callback(self._spawning.discard)

    async def _add_worker(self) -> None:
        while not self._closed:
            try:
                worker = await self._spawn()
            except Exception as exc:  # any failure: retry, never give up
                self._on_event("worker_start_failed", {"error": str(exc)})
                await asyncio.sleep(_RESPAWN_PAUSE)
                continue
            if self._closed:
                worker.kill()
                return
            self._workers.add(worker)
            self._queue().put_nowait(worker)
            return

    async def _spawn(self) -> _Worker:
        parent_end, child_end = socket.socketpair()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_end, self._initializer, self._initargs, self._nice),
            name="format-proxy-worker",
            daemon=True,
        )
        try:
            await asyncio.to_thread(process.start)
        finally:
            child_end.close()
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_connection(_Channel, sock=parent_end)
        worker = _Worker(process, channel)
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                ok, value = pickle.loads(await channel.receive())
        except ConnectionError as exc:
            worker.kill()
            raise EOFError(f"worker exited while starting: {exc}") from None
        except BaseException:
            worker.kill()
            raise
        if not ok:
            worker.kill()
            raise WorkerStartError(str(value))
        return worker


# --- the worker's side ---------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this worker when its parent (the fork server, which exits
    with the proxy) goes away: a busy worker never outlives the proxy."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(0)


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_FRAME.pack(len(data)))
    sock.sendall(data)


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n
    return buf


def _answer(ok: bool, value: Any) -> bytes:
    try:
        return pickle.dumps((ok, value), protocol=5)
    except Exception as exc:  # an unpicklable result or exception
        return pickle.dumps((False, RuntimeError(f"{type(value).__name__}: {value} ({exc})")))


def _worker_main(
    sock: socket.socket,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    nice: int,
) -> None:
    # Ctrl-C reaches the whole process group; the proxy decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    try:
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            _send(sock, _answer(False, f"{type(exc).__name__}: {exc}"))
        return
    try:
        _send(sock, _answer(True, None))
        while True:
            (size,) = _FRAME.unpack(_recv_exactly(sock, _FRAME.size))
            fn, args = pickle.loads(_recv_exactly(sock, size))
            try:
                answer = _answer(True, fn(*args))
            except Exception as exc:
                answer = _answer(False, exc)
            del args
            _send(sock, answer)
    except (EOFError, OSError):
        return  # the proxy closed our socket (it stops, or gave up on this worker)
