"""Incremental checksums for S3's flexible checksum algorithms (pure).

``x-amz-checksum-<alg>`` values are the base64 of the big-endian digest. CRC32 uses zlib; CRC32C
uses google-crc32c (hardware accelerated); CRC64NVME uses awscrt when it is installed, else a
table-driven pure-Python fallback (correct but slow — roughly 10 MB/s — documented in
docs/configuration.md); SHA-1/SHA-256 use hashlib.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Protocol

__all__ = ["ALGORITHMS", "Checksum", "algorithm_of_header", "new_checksum"]

#: Algorithm name (lower case, as in ``x-amz-checksum-<name>``) → digest size in bytes.
ALGORITHMS: dict[str, int] = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


class Checksum(Protocol):
    name: str

    def update(self, data: bytes | memoryview) -> None: ...

    def b64digest(self) -> str: ...


class _Crc32:
    name = "crc32"

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def b64digest(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode("ascii")


class _Crc32c:
    name = "crc32c"

    def __init__(self) -> None:
        import google_crc32c

        self._extend = google_crc32c.extend
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        self._crc = self._extend(self._crc, bytes(data) if isinstance(data, memoryview) else data)

    def b64digest(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode("ascii")


_CRC64NVME_POLY_REFLECTED = 0x9A6C9329AC4BC9B5
_crc64_table: list[int] | None = None


def _crc64nvme_table() -> list[int]:
    global _crc64_table
    if _crc64_table is None:
        table = []
        for i in range(256):
            crc = i
            for _ in range(8):
                crc = (crc >> 1) ^ _CRC64NVME_POLY_REFLECTED if crc & 1 else crc >> 1
            table.append(crc)
        _crc64_table = table
    return _crc64_table


class _Crc64Nvme:
    name = "crc64nvme"

    def __init__(self) -> None:
        try:
            from awscrt import checksums  # optional, fast

            self._crt = checksums.crc64nvme
        except (ImportError, AttributeError):
            self._crt = None
            self._table = _crc64nvme_table()
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        if self._crt is not None:
            self._crc = self._crt(bytes(data), self._crc)
            return
        table = self._table
        crc = self._crc ^ 0xFFFFFFFFFFFFFFFF
        for b in bytes(data):
            crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
        self._crc = crc ^ 0xFFFFFFFFFFFFFFFF

    def b64digest(self) -> str:
        return base64.b64encode(self._crc.to_bytes(8, "big")).decode("ascii")


class _Hash:
    def __init__(self, name: str) -> None:
        self.name = name
        self._h = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def b64digest(self) -> str:
        return base64.b64encode(self._h.digest()).decode("ascii")


def new_checksum(algorithm: str) -> Checksum:
    """A fresh incremental checksum for ``algorithm`` (``crc32``, ``crc32c``, ...)."""
    alg = algorithm.lower()
    if alg == "crc32":
        return _Crc32()
    if alg == "crc32c":
        return _Crc32c()
    if alg == "crc64nvme":
        return _Crc64Nvme()
    if alg in ("sha1", "sha256"):
        return _Hash(alg)
    raise ValueError(f"unsupported checksum algorithm: {algorithm!r}")


def algorithm_of_header(name: str) -> str | None:
    """``x-amz-checksum-crc32`` → ``crc32``; None for other names or unknown algorithms."""
    lname = name.lower()
    if not lname.startswith("x-amz-checksum-"):
        return None
    alg = lname[len("x-amz-checksum-") :]
    return alg if alg in ALGORITHMS else None
