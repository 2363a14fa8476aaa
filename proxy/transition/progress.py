"""Progress of a long run on stderr: a live line on a terminal, JSON lines otherwise.

Counts, rate and (once the listing is complete, so the total is known) an ETA. Thread-safe:
workers call :meth:`Progress.add`; a timer thread renders every ``interval`` seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from typing import TextIO


class Progress:
    def __init__(
        self,
        what: str,
        *,
        stream: TextIO | None = None,
        interval: float | None = None,
        tty: bool | None = None,
    ) -> None:
        self._what = what
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval if interval is not None else (0.5 if self._tty else 10.0)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._done = 0
        self._bytes = 0
        self._total: int | None = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._render(final=True)

    def add(self, outcome: str, nbytes: int = 0) -> None:
        with self._lock:
            self._counts[outcome] += 1
            self._done += 1
            self._bytes += nbytes

    def set_total(self, total: int) -> None:
        with self._lock:
            self._total = total

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._render(final=False)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            elapsed = time.monotonic() - self._started
            rate = self._done / elapsed if elapsed > 0 else 0.0
            eta = None
            if self._total is not None and rate > 0:
                eta = max(0.0, (self._total - self._done) / rate)
            return {
                "progress": self._what,
                "done": self._done,
                "total": self._total,
                "bytes": self._bytes,
                "counts": dict(sorted(self._counts.items())),
                "rate_per_s": round(rate, 1),
                "eta_s": None if eta is None else round(eta),
                "elapsed_s": round(elapsed, 1),
            }

    def _render(self, *, final: bool) -> None:
        snap = self.snapshot()
        if not self._tty:
            self._stream.write(json.dumps(snap) + "\n")
            self._stream.flush()
            return
        total = snap["total"]
        counts = " ".join(f"{k}={v}" for k, v in snap["counts"].items())  # type: ignore[attr-defined]
        eta = "?" if snap["eta_s"] is None else _clock(float(snap["eta_s"]))  # type: ignore[arg-type]
        line = (
            f"{self._what}: {snap['done']}/{total if total is not None else '?'} "
            f"[{counts}] {snap['rate_per_s']}/s ETA {eta}"
        )
        self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        self._stream.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
