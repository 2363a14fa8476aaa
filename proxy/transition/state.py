"""The migration's state file: append-only JSON lines, fsync'd, read back on resume.

Line 1 says what the run is (route, bucket, prefix, target format, shard); a resume with other
settings is refused. Then one line per finished key (``{"key", "outcome"}``) and, around each
multipart write, ``{"upload", "key"}`` before the first part and ``{"upload_done"}`` after, so
a resumed run aborts the uploads a killed one left behind. Writers block until their line is on
disk; concurrent writers share one fsync (group commit). A torn last line (a kill mid-write) is
ignored on reading.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError

#: Outcomes after which a key is not looked at again by a resumed run.
DONE = frozenset({"rewritten", "skipped"})


@dataclass
class Resumed:
    """What an earlier run recorded."""

    done: set[str] = field(default_factory=set)
    #: upload id -> key, for multipart uploads started and not recorded as completed or aborted.
    open_uploads: dict[str, str] = field(default_factory=dict)


class StateFile:
    """Durable progress of one migration; ``record`` returns once the line is fsync'd."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        self.header = dict(header)
        self.resumed = Resumed()
        existing = path.exists() and path.stat().st_size > 0
        if existing:
            self._load()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._written = 0  # lines durable
        self._queued = 0  # lines handed to record()
        self._flushing = False
        if not existing:
            self.record({"state": "format-proxy migrate", **self.header})

    def _load(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        for n, raw in enumerate(lines):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                if n >= len(lines) - 2:  # torn last line of a killed run
                    continue
                raise ConfigError("--state", f"'{self.path}' line {n + 1} is not JSON") from None
            if n == 0:
                self._check_header(entry)
            elif "upload" in entry:
                self.resumed.open_uploads[entry["upload"]] = entry["key"]
            elif "upload_done" in entry:
                self.resumed.open_uploads.pop(entry["upload_done"], None)
            elif entry.get("outcome") in DONE:
                self.resumed.done.add(entry["key"])

    def _check_header(self, entry: Mapping[str, Any]) -> None:
        theirs = {k: entry.get(k) for k in self.header}
        if theirs != self.header:
            raise ConfigError(
                "--state",
                f"'{self.path}' records another run ({json.dumps(theirs)}); this run is "
                f"{json.dumps(self.header)}. Use another state file.",
            )

    def record(self, entry: Mapping[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        with self._cond:
            self._pending.append(line)
            self._queued += 1
            mine = self._queued
            while self._written < mine:
                if self._flushing:
                    self._cond.wait()
                    continue
                # This thread flushes everything queued so far, others wait for it.
                batch, self._pending = self._pending, []
                upto = self._queued
                self._flushing = True
                self._cond.release()
                try:
                    os.write(self._fd, b"".join(batch))
                    os.fsync(self._fd)
                finally:
                    self._cond.acquire()
                    self._flushing = False
                self._written = upto
                self._cond.notify_all()

    def close(self) -> None:
        os.close(self._fd)


class NoState:
    """Stands in for a state file when none is given (or on a dry run): records nothing."""

    def __init__(self) -> None:
        self.resumed = Resumed()

    def record(self, entry: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None
