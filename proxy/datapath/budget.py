"""A global byte budget held by requests while they work on whole documents in memory.

A request reserves the size of its document before reading it and gives it back when done;
one that would go past the limit is refused at once with ``503 SlowDown`` (how S3 sheds
load, so SDKs back off and retry) and counted. Lives on one event loop; not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from proxy.errors import SlowDown

__all__ = ["ByteBudget"]


class ByteBudget:
    def __init__(self, limit: int, *, setting: str, on_refuse: Callable[[], None]) -> None:
        self.limit = limit
        self.used = 0
        self._setting = setting
        self._on_refuse = on_refuse

    def check(self, size: int) -> None:
        """Raise SlowDown (counted) unless ``size`` more bytes fit now."""
        if self.used + size > self.limit:
            self._on_refuse()
            raise SlowDown(
                f"the proxy is busy: {self.used} bytes of documents are in flight and this "
                f"request needs {size} more, above {self._setting} ({self.limit}); "
                "reduce your request rate"
            )

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Reserve ``size`` bytes for the duration of the block (raises SlowDown)."""
        self.check(size)
        self.used += size
        try:
            yield
        finally:
            self.used -= size
