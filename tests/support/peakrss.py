"""Peak resident memory: of this process (resettable, Linux) for what one operation costs in a
fresh process, and of another process (sampled) for what a proxy uses while it works."""

from __future__ import annotations

import threading
import time

import psutil

__all__ = ["PeakRSS", "reset_peak", "status_kib"]


class PeakRSS:
    """Samples a process's RSS in a thread; ``peak`` and ``growth`` over the RSS at start."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
                self.samples += 1
            except psutil.Error:
                return
            time.sleep(self._interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def status_kib(key: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmHWM``: this process's peak RSS, which, unlike
    ``ru_maxrss``, is not inherited from the parent across fork/exec)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def reset_peak() -> None:
    """Restart the peak-RSS watermark at the current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:  # pragma: no cover - then the peak includes the process's earlier life
        pass
