"""Tasks for the worker pool's tests: they run in worker processes, imported by name."""

from __future__ import annotations

import os
import time

from proxy.errors import TranslationError


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def spin() -> None:
    while True:  # CPU-bound and never ending: only a kill stops it
        pass


def sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def crash(code: int) -> None:
    os._exit(code)


def refuse() -> None:
    raise TranslationError("type_mismatch", "/doc/a", "expected a number")


def echo(data: bytes) -> bytes:
    return data
