"""4 KiB requests sent by wrk, the load generator the product's targets were first measured with.

wrk is C with one event loop per thread: per request it costs a small fraction of what an
aiohttp client costs, so on a 2-core machine it leaves the proxy's caches and the second core
far less disturbed than a Python client does. Requests are SigV4-signed ahead of time (botocore,
through :func:`common.sign`) and handed to wrk as raw HTTP/1.1 bytes in a Lua script, one
request per key, cycled; wrk's ``done`` hook prints the totals as one JSON line.

Needs ``wrk`` on PATH (Debian's package ``wrk``); :func:`available` tells.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common import sign

from tests.support.backends import Credentials

_MARK = "WRKJSON "
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    "MARK", summary.requests, summary.duration, latency:percentile(50.0),
    latency:percentile(99.0), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: the proxy's CPU seconds (user + system) over the run; 0 for a direct target
    cpu_seconds: float


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(data: bytes) -> str:
    """``data`` as a Lua string literal (decimal escapes for anything not plain printable)."""
    out = []
    for b in data:
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C):
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def raw_requests(
    method: str, base: str, bucket: str, creds: Credentials, body: bytes, keys: int = 64
) -> list[bytes]:
    """One signed HTTP/1.1 request per key ``small/0`` .. ``small/{keys-1}``."""
    host = urlsplit(base).netloc
    payload = body if method == "PUT" else b""
    digest = hashlib.sha256(payload).hexdigest()
    out = []
    for i in range(keys):
        path = f"/{bucket}/small/{i}"
        headers = sign(method, f"{base}{path}", creds, payload_hash=digest)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if method == "PUT":
            lines.append(f"Content-Length: {len(payload)}")
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return out


def script(requests: list[bytes]) -> str:
    """The Lua script: cycle through ``requests``; print the totals as JSON at the end."""
    items = ",\n".join(_lua_string(r) for r in requests)
    return (
        f"local reqs = {{\n{items}\n}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #reqs + 1\n"
        "  return reqs[i]\n"
        "end\n" + _DONE.replace("MARK", _MARK)
    )


async def run(
    base: str,
    requests: list[bytes],
    concurrency: int,
    seconds: float,
    cpu: Callable[[], float],
) -> WrkResult:
    """``requests`` sent by wrk to ``base`` over ``concurrency`` connections for ``seconds``;
    ``cpu()`` is read before and after (the proxy's CPU seconds). Any error or non-2xx answer
    fails the run."""
    threads = 1 if concurrency == 1 else 2
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        lua = Path(tmp) / "requests.lua"
        lua.write_text(script(requests))
        before = cpu()
        proc = await asyncio.create_subprocess_exec(
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            base + "/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        used = cpu() - before
    text = out.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-1000:]}")
    got = json.loads(lines[-1][len(_MARK) :])
    if got["errors"] or not got["requests"]:
        raise RuntimeError(f"wrk against {base}: {got['errors']} errors: {text[-1000:]}")
    return WrkResult(
        requests=got["requests"],
        seconds=got["duration_us"] / 1e6,
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        cpu_seconds=used,
    )
