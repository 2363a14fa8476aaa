"""Multipart uploads on a route: the proxy's own record of them, their parts spooled to disk.

A document uploaded in parts can only be validated and translated whole, so the proxy answers
the multipart operations itself (``proxy.datapath.uploads``) and keeps the parts here, in a
private directory per process, until ``CompleteMultipartUpload`` assembles them. This module
holds that state and checks a Complete request's part list against it; the wire format (the
request body, the XML answers) is :mod:`proxy.s3.multipart`. It does file I/O (the spool) but
nothing else: no network, no aiohttp. Blocking calls (:meth:`UploadStore.write_part`,
:func:`assemble`) are meant to run in a worker thread.

Bounds: one upload holds at most ``max_upload_bytes`` (``limits.max_translate_bytes``), all
uploads together at most ``max_spool_bytes`` (``limits.max_spool_bytes``: past it a part is
refused with ``503 SlowDown``); an upload untouched for ``idle_seconds`` is dropped (like an S3
lifecycle rule aborting incomplete uploads); everything is removed when the proxy stops. The
spool directory's name carries the proxy's pid: at start, directories left by proxies that
died without cleaning up (SIGKILL, OOM kill) are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from proxy.errors import (
    EntityTooLarge,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    SlowDown,
)
from proxy.s3.checksums import ALGORITHMS, new_checksum
from proxy.s3.multipart import MIN_PART_BYTES, CompletedPart

__all__ = [
    "Part",
    "Upload",
    "UploadStore",
    "assemble",
    "remove_stale_spools",
    "select_parts",
    "write_part_file",
]

_SPOOL_PREFIX = "format-proxy-uploads-"
_SPOOL_NAME = re.compile(re.escape(_SPOOL_PREFIX) + r"(\d+)-")


def _opaque(etag: str) -> str:
    return etag.strip().strip('"')


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    size: int
    etag: str  # quoted MD5 hex of the part, as S3
    checksums: dict[str, str]  # algorithm → base64 of the part
    last_modified: datetime
    path: Path


@dataclass(slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    route: str
    #: The client's CreateMultipartUpload headers the final PUT carries (metadata, tagging,
    #: Content-Type, storage class, encryption, ...).
    headers: list[tuple[str, str]]
    checksum_algorithm: str | None
    checksum_type: str | None
    directory: Path
    initiated: datetime = field(default_factory=lambda: datetime.now(UTC))
    touched: float = field(default_factory=time.monotonic)
    parts: dict[int, Part] = field(default_factory=dict)
    #: Bytes of part writes in flight, by a token per write (budgeted before they land).
    reserved: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts.values())


class UploadStore:
    """Uploads in progress, each with a spool directory of parts."""

    def __init__(
        self,
        spool_dir: Path | None,
        max_upload_bytes: int,
        *,
        max_spool_bytes: int | None = None,
        idle_seconds: float = 24 * 3600,
        on_refuse: Callable[[], None] = lambda: None,
    ) -> None:
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True)
        parent = spool_dir if spool_dir is not None else Path(tempfile.gettempdir())
        self.removed_stale = remove_stale_spools(parent)
        prefix = f"{_SPOOL_PREFIX}{os.getpid()}-"
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=spool_dir))
        self.max_upload_bytes = max_upload_bytes
        self.max_spool_bytes = max_spool_bytes
        self.idle_seconds = idle_seconds
        self._on_refuse = on_refuse
        self._uploads: dict[str, Upload] = {}

    def __len__(self) -> int:
        return len(self._uploads)

    def create(
        self,
        *,
        bucket: str,
        key: str,
        route: str,
        headers: list[tuple[str, str]],
        checksum_algorithm: str | None,
        checksum_type: str | None,
    ) -> Upload:
        self.reap()
        alg = checksum_algorithm.lower() if checksum_algorithm else None
        if alg is not None and alg not in ALGORITHMS:
            raise InvalidArgument(f"unsupported checksum algorithm: {checksum_algorithm!r}")
        upload_id = secrets.token_urlsafe(36)
        directory = self.root / upload_id
        directory.mkdir()
        upload = Upload(
            upload_id=upload_id,
            bucket=bucket,
            key=key,
            route=route,
            headers=headers,
            checksum_algorithm=alg,
            checksum_type=checksum_type,
            directory=directory,
        )
        self._uploads[upload_id] = upload
        return upload

    def get(self, upload_id: str, bucket: str, key: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise NoSuchUpload(
                "The specified upload does not exist. The upload ID may be invalid, or the "
                "upload may have been aborted or completed."
            )
        upload.touched = time.monotonic()
        return upload

    def room(self, upload: Upload, number: int) -> int:
        """Bytes part ``number`` may have without the upload exceeding its budget."""
        others = sum(p.size for n, p in upload.parts.items() if n != number)
        return max(0, self.max_upload_bytes - others - sum(upload.reserved.values()))

    def spooled_bytes(self) -> int:
        """Bytes of all uploads' parts, written or being written."""
        return sum(u.size + sum(u.reserved.values()) for u in self._uploads.values())

    def check_budget(self, size: int) -> None:
        """Raise SlowDown (counted) unless ``size`` more bytes fit in the global spool."""
        if self.max_spool_bytes is None:
            return
        spooled = self.spooled_bytes()
        if spooled + size > self.max_spool_bytes:
            self._on_refuse()
            raise SlowDown(
                f"the proxy's multipart spool is full: {spooled} bytes of open uploads, and "
                f"this part needs {size} more, above limits.max_spool_bytes "
                f"({self.max_spool_bytes}); complete or abort uploads, or retry later"
            )

    def reserve(self, upload: Upload, number: int, size: int) -> str:
        """Budget a part write before it goes to disk (call between awaits: race-free)."""
        if size > self.room(upload, number):
            raise EntityTooLarge(self._too_large_message())
        self.check_budget(size)
        token = secrets.token_hex(8)
        upload.reserved[token] = size
        return token

    def _too_large_message(self) -> str:
        return (
            "the multipart upload would exceed limits.max_translate_bytes "
            f"({self.max_upload_bytes} bytes), the largest document this route translates"
        )

    def too_large(self) -> EntityTooLarge:
        return EntityTooLarge(self._too_large_message())

    def write_part(
        self, upload: Upload, number: int, data: bytes, algorithms: tuple[str, ...]
    ) -> Part:
        """Write a part file (blocking; run in a thread). The caller records it."""
        return write_part_file(upload.directory, number, data, algorithms)

    def record(self, upload: Upload, part: Part, token: str) -> None:
        """Make a written part current (the last write of a part number wins, as in S3)."""
        upload.reserved.pop(token, None)
        if self._uploads.get(upload.upload_id) is not upload:  # aborted meanwhile
            _unlink(part.path)
            raise NoSuchUpload("The specified upload was aborted while this part was written.")
        old = upload.parts.get(part.number)
        upload.parts[part.number] = part
        if old is not None and old.path != part.path:
            _unlink(old.path)

    def release(self, upload: Upload, token: str, path: Path | None = None) -> None:
        upload.reserved.pop(token, None)
        if path is not None:
            _unlink(path)

    def remove(self, upload: Upload) -> None:
        """Forget an upload and delete its spool (abort, completion, unrecoverable failure)."""
        self._uploads.pop(upload.upload_id, None)
        shutil.rmtree(upload.directory, ignore_errors=True)

    def reap(self) -> None:
        """Drop uploads idle for longer than ``idle_seconds``."""
        now = time.monotonic()
        for upload in list(self._uploads.values()):
            if now - upload.touched > self.idle_seconds and not upload.lock.locked():
                self.remove(upload)

    def close(self) -> None:
        self._uploads.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def write_part_file(directory: Path, number: int, data: bytes, algorithms: tuple[str, ...]) -> Part:
    """Write one part file into an upload's ``directory`` and digest it (blocking: run in a
    document worker). The caller records the part."""
    path = directory / f"part-{number:05d}-{secrets.token_hex(6)}"
    with open(path, "wb") as f:
        f.write(data)
    return Part(
        number=number,
        size=len(data),
        etag='"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"',
        checksums={alg: _checksum(alg, data) for alg in algorithms},
        last_modified=datetime.now(UTC),
        path=path,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_spools(parent: Path) -> list[Path]:
    """Remove the spool directories in ``parent`` left by proxies that are no longer running
    (and by an earlier process with this one's pid: a restarted container's proxy often has
    the same pid). Returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            m = _SPOOL_NAME.match(entry.name)
            if m is None or not entry.is_dir():
                continue
            pid = int(m.group(1))
            if pid == os.getpid() or not _pid_alive(pid):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _checksum(algorithm: str, data: bytes) -> str:
    c = new_checksum(algorithm)
    c.update(data)
    return c.b64digest()


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


# --- CompleteMultipartUpload -----------------------------------------------------------------


def select_parts(upload: Upload, listed: list[CompletedPart]) -> list[Part]:
    """The uploaded parts a Complete request names, checked the way S3 checks them."""
    previous = 0
    for p in listed:
        if p.number <= previous:
            raise InvalidPartOrder(
                "The list of parts was not in ascending order. The parts list must be "
                "specified in order by part number."
            )
        previous = p.number
    selected: list[Part] = []
    for p in listed:
        part = upload.parts.get(p.number)
        if part is None or (p.etag is not None and _opaque(p.etag) != _opaque(part.etag)):
            raise InvalidPart(
                "One or more of the specified parts could not be found. The part may not have "
                "been uploaded, or the specified entity tag may not match the part's entity "
                f"tag (part {p.number})."
            )
        for alg, value in p.checksums.items():
            if alg in part.checksums and part.checksums[alg] != value:
                raise InvalidPart(
                    f"The {alg.upper()} checksum given for part {p.number} does not match the "
                    "checksum of the uploaded part."
                )
        selected.append(part)
    for part in selected[:-1]:
        if part.size < MIN_PART_BYTES:
            raise EntityTooSmall(
                "Your proposed upload is smaller than the minimum allowed size: every part "
                f"but the last must be at least {MIN_PART_BYTES} bytes (part {part.number} "
                f"is {part.size})."
            )
    return selected


def assemble(parts: list[Part]) -> bytes:
    """The parts' bytes in order (blocking; run in a thread)."""
    chunks = []
    for part in parts:
        with open(part.path, "rb") as f:
            chunks.append(f.read())
    return b"".join(chunks)
