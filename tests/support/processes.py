"""Process lifecycle for test fixtures: start, wait until ready, capture logs, always clean up.

Every process runs in its own session (process group) so that it and anything it spawns can be
signalled at once, and is tied to the test run with ``PR_SET_PDEATHSIG`` so that even a killed
pytest leaves nothing behind. Output goes to files (``<name>.stdout.log`` / ``.stderr.log``)
whose tails are printed when a test fails (see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1

#: Every process started through :func:`start` that has not been stopped yet.
_live: list[ManagedProcess] = []
_live_lock = threading.Lock()


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the test run dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessFailed(RuntimeError):
    """A managed process exited or never became ready; the message holds its log tail."""


class ManagedProcess:
    """A child process with captured output, a readiness wait and guaranteed clean-up."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # PR_SET_PDEATHSIG: see module docstring
        )
        with _live_lock:
            _live.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far, stdout then stderr."""
        self._stdout.flush()
        self._stderr.flush()
        out = self.stdout_path.read_text(errors="replace")
        err = self.stderr_path.read_text(errors="replace")
        return out + err

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or f"--- {self.name}: no output ---"

    def wait_until(
        self, ready: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
    ) -> None:
        """Poll ``ready()`` until it is true; raise with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        last_exc: BaseException | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(
                    f"{self.name} exited with status {self.returncode} before {what}\n"
                    f"{' '.join(self.argv)}\n{self.tail()}"
                )
            try:
                if ready():
                    return
            except Exception as exc:  # readiness probes raise while the server starts
                last_exc = exc
            time.sleep(interval)
        raise ProcessFailed(
            f"{self.name} not {what} after {timeout:.0f}s (last probe error: {last_exc!r})\n"
            f"{' '.join(self.argv)}\n{self.tail()}"
        )

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, *, grace: float = 5.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` to the process group, wait ``grace`` seconds, then SIGKILL it."""
        if self.alive():
            self.send_signal(sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(10)
        # Children that outlived the leader (none expected) go too.
        self.send_signal(signal.SIGKILL)
        self._close()
        return self.popen.returncode

    def _close(self) -> None:
        with _live_lock:
            if self in _live:
                _live.remove(self)
        for f in (self._stdout, self._stderr):
            with contextlib.suppress(Exception):
                f.close()


def live_processes() -> list[ManagedProcess]:
    with _live_lock:
        return list(_live)


def stop_all(grace: float = 3.0) -> None:
    """Stop every process still running (the session-end safety net)."""
    for proc in reversed(live_processes()):
        proc.stop(grace=grace)
