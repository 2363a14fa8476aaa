"""Rate-limited log lines: a recurring event (accept errors, refused connections) is written at
most once per interval, with a count of the lines skipped."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most one line per ``interval`` seconds for a recurring event (accept errors, refused
    connections): a flood must not turn into a flood of log lines. The next line written
    carries how many were skipped (``suppressed``)."""

    def __init__(
        self, logger: Any, *, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def warning(self, event: str, **fields: Any) -> bool:
        """Log ``event`` unless one was logged less than ``interval`` ago; True if written."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._suppressed += 1
            return False
        if self._suppressed:
            fields["suppressed"] = self._suppressed
        self._suppressed = 0
        self._last = now
        self._logger.warning(event, **fields)
        return True
