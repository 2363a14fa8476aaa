"""Which keys belong to one shard of a parallel run: a stable hash of the key's bytes.

``--shard I/N`` takes the keys whose ``sha256(key utf-8) mod N == I``; every key is in exactly
one shard whatever the listing order, so N pods (a Kubernetes Indexed Job) cover a route once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.errors import ConfigError

#: Set by Kubernetes on every pod of an Indexed Job.
INDEX_ENV = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    def owns(self, key: str) -> bool:
        if self.count == 1:
            return True
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


#: The whole route, one shard.
WHOLE = Shard()


def parse_shard(value: str | None, environ: Mapping[str, str] | None = None) -> Shard:
    """``I/N``, or ``N`` / ``/N`` with I from ``JOB_COMPLETION_INDEX``; None = the whole route."""
    if value is None or value == "":
        return WHOLE
    env = os.environ if environ is None else environ
    index_text, sep, count_text = value.rpartition("/")
    if not sep:
        index_text, count_text = "", value
    if not index_text:
        index_text = env.get(INDEX_ENV, "")
        if not index_text:
            raise ConfigError("--shard", f"{value!r} gives no index and {INDEX_ENV} is not set")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ConfigError("--shard", f"expected I/N with integers, got {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError("--shard", f"need 0 <= I < N, got {index}/{count}")
    return Shard(index, count)
