"""Shared benchmark helpers: repo import path, SigV4 pre-signing, latency stats, RSS sampling.

Benchmarks compare against a baseline measured in the same run and report ratios and medians
over several runs (the machines are 2 noisy cores). Real processes only: the backends and the
proxy come from ``tests/support`` (the same harness the end-to-end tests use).
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials as BotoCredentials  # noqa: E402

from tests.support.backends import Credentials  # noqa: E402
from tests.support.processes import stop_all  # noqa: E402

KiB = 1024
MiB = 1024 * 1024


class _FixedPayloadAuth(S3SigV4Auth):
    """SigV4 with a payload hash given by the caller: the body isn't in the AWSRequest (it is
    sent later by aiohttp), and botocore would otherwise sign the empty body's hash."""

    def __init__(self, credentials: BotoCredentials, service: str, region: str, h: str) -> None:
        super().__init__(credentials, service, region)
        self._payload_hash = h

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def sign(
    method: str,
    url: str,
    creds: Credentials,
    *,
    payload_hash: str,
    headers: Mapping[str, str] | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    """SigV4 header auth for one request, computed ahead of the timed section.

    A signature stays valid for 15 minutes, so a benchmark can sign every request it will send
    before it starts the clock: the client then costs only what its HTTP stack costs.
    """
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    _FixedPayloadAuth(
        BotoCredentials(creds.access_key, creds.secret_key, creds.session_token),
        "s3",
        region,
        payload_hash,
    ).add_auth(req)
    return {k: v for k, v in req.headers.items() if k.lower() != "host"}


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_json(path: str | None, data: Mapping[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def run_in_workdir(main: Callable[[Path], Awaitable[int]], prefix: str) -> int:
    """Run a benchmark's ``main(workdir)`` and stop every process it started. The backend's
    volumes reach gigabytes: the work directory goes when the run ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        try:
            return asyncio.run(main(Path(workdir)))
        finally:
            stop_all()
