"""Instructions per 4 KiB request: the proxy under valgrind's callgrind, one or more checkouts.

CPU time per request on a small shared machine moves ±20 % from run to run; the number of
instructions the proxy executes per request does not (callgrind counts them, whatever else the
machine does). This benchmark starts SeaweedFS and, for each checkout given (default: this
one), a proxy running that checkout's code under ``valgrind --tool=callgrind``; it warms the
proxy up, zeroes the counters (``callgrind_control -z``), sends ``--requests`` sequential 4 KiB
GETs (then PUTs), dumps the counters and reports user-space instructions per request, and with
``--top`` the functions (C level: interpreter, OpenSSL, llhttp, ...) they went to.

Instructions are not time: at concurrency 1 the caches are cold and the same count costs more
than at concurrency 16. They do tell, without noise, whether a change made the proxy do less.

    .venv/bin/python bench/instructions.py                          # this checkout
    .venv/bin/python bench/instructions.py --src /tmp/other-checkout --src .   # A/B
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import re
import shutil
import sys
from pathlib import Path

import aiohttp
from common import REPO, run_in_workdir, sign, table

import tests.support.proxy as support_proxy
from tests.support.backends import start_seaweedfs
from tests.support.clients import CLIENT_CREDENTIALS

_BODY = b"x" * 4096


async def _send(session: aiohttp.ClientSession, base: str, bucket: str, method: str, n: int):
    digest = hashlib.sha256(_BODY if method == "PUT" else b"").hexdigest()
    for i in range(n):
        url = f"{base}/{bucket}/small/{i % 64}"
        headers = sign(method, url, CLIENT_CREDENTIALS, payload_hash=digest)
        data = _BODY if method == "PUT" else None
        async with session.request(method, url, headers=headers, data=data) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"{method} {url} -> {r.status}")


async def _callgrind_control(option: str, pid: int) -> None:
    """``-z``: zero the counters; ``-d``: dump them (callgrind_control waits for the dump)."""
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control", option, str(pid), stdout=asyncio.subprocess.DEVNULL
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"callgrind_control {option} {pid} failed")


def _dump_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def _self_costs(path: Path) -> collections.Counter[str]:
    """Self instructions per function of a callgrind dump (names are compressed: ``(id) name``
    the first time, ``(id)`` after; the cost line after ``calls=`` is a call's inclusive cost)."""
    names: dict[str, str] = {}
    costs: collections.Counter[str] = collections.Counter()
    fn = "?"
    after_call = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m is not None:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("fn="):
                    fn = names.get(m.group(1), m.group(1))
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2:
                if after_call:
                    after_call = False
                else:
                    costs[fn] += int(parts[1])
    return costs


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    backend = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
    bucket = backend.new_bucket("bench")
    rows = []
    for k, src in enumerate(args.src):
        out = workdir / f"callgrind{k}"
        out.mkdir()
        wrapper = workdir / f"valgrind{k}.sh"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec valgrind --tool=callgrind --callgrind-out-file={out}/dump.%p "
            f'{sys.executable} {support_proxy.FORMAT_PROXY} "$@"\n'
        )
        wrapper.chmod(0o755)
        saved = support_proxy.FORMAT_PROXY
        support_proxy.FORMAT_PROXY = wrapper
        try:
            proxy = support_proxy.ProxyProcess.start(
                workdir,
                upstream=backend.endpoint,
                credentials=backend.credentials,
                name=f"proxy{k}",
                env={"PYTHONPATH": src},
                ready_timeout=900,
            )
        finally:
            support_proxy.FORMAT_PROXY = saved
        async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as session:
            await _send(session, proxy.endpoint, bucket, "PUT", 64)
            for method in ("GET", "PUT"):
                await _send(session, proxy.endpoint, bucket, method, 50)  # warm
                await _callgrind_control("-z", proxy.pid)
                await _send(session, proxy.endpoint, bucket, method, args.requests)
                for old in out.glob("dump.*"):
                    old.unlink()
                await _callgrind_control("-d", proxy.pid)
                dump = max(out.glob("dump.*"), key=_dump_total)
                per = _dump_total(dump) / args.requests
                rows.append([src, method, f"{per:,.0f}"])
                if args.top:
                    print(f"\n{src} {method}: top functions (self instructions per request)")
                    for name, cost in _self_costs(dump).most_common(args.top):
                        print(f"{cost / args.requests:10,.0f}  {name}")
        proxy.stop()
    print()
    print(table(["checkout", "4 KiB request", "instructions per request"], rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--src",
        action="append",
        help="a checkout whose proxy code to measure (repeatable; default: this one)",
    )
    parser.add_argument("--requests", type=int, default=300, help="measured requests per case")
    parser.add_argument("--top", type=int, default=0, help="also list the N costliest functions")
    args = parser.parse_args()
    args.src = [str(Path(s).resolve()) for s in args.src or [REPO]]
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("needs valgrind (Debian: apt-get install valgrind)")
    return run_in_workdir(lambda workdir: main_async(args, workdir), "bench-instructions-")


if __name__ == "__main__":
    sys.exit(main())
