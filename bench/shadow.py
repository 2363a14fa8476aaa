"""Shadow-mode benchmark: what a route in ``mode: shadow`` adds to a 4 KiB GET, in one run.

Three targets in front of one SeaweedFS, each measured with the same 4 KiB XML order (a
document the example mapping accepts, so every check runs to ``ok``):

* ``direct``: SeaweedFS's S3 port;
* ``passthrough``: format-proxy with no routes;
* ``shadow``: format-proxy with the ``orders`` route in ``mode: shadow``, ``sample: 1`` (every
  GET body copied, queued and round-tripped in a document worker; ``--sample`` to change it)
  and the default bounds (queue 64, one checker).

Per target and run: GETs at concurrency 1, p50 and p99 latency, and the proxy's CPU time per
request — the proxy process itself, and separately its document workers (where the checks
run). The shadow proxy's check outcomes are read from its ``/metrics`` after each run, so the
figures say how many checks ran and how many were dropped (``queue_full``) at that rate.
Targets rotate order every run; figures are medians over runs.

    .venv/bin/python bench/shadow.py            # full run (about 1-2 minutes)
    .venv/bin/python bench/shadow.py --sample 0.2   # a fifth of the bodies checked
    .venv/bin/python bench/shadow.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from common import machine, median, percentile, run_in_workdir, sign, table, write_json

from tests.datapath.orders import SCHEMA, order, xml_bytes
from tests.support.backends import Backend, Credentials, start_seaweedfs
from tests.support.clients import CLIENT_CREDENTIALS
from tests.support.proxy import ProxyProcess

KEY = "orders/bench-4k.xml"


@dataclass
class Target:
    name: str
    base: str
    creds: Credentials
    proxy: ProxyProcess | None = None

    def cpu(self) -> tuple[float, float]:
        """CPU seconds (user + system) of the proxy process and of its other processes (the
        fork server and document workers)."""
        if self.proxy is None:
            return 0.0, 0.0
        p = psutil.Process(self.proxy.pid)
        own = sum(p.cpu_times()[:2])
        children = 0.0
        for child in p.children(recursive=True):
            try:
                children += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        return own, children


@dataclass
class Figures:
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_ms: float  # proxy process, per request
    worker_cpu_ms: float  # document workers, per request


def _document() -> bytes:
    """An order of about 4 KiB as a v1 writer stores it."""
    items = 1
    while len(xml_bytes(order(1, items + 1))) <= 4096:
        items += 1
    return xml_bytes(order(1, items))


async def measure(session: aiohttp.ClientSession, t: Target, bucket: str, count: int) -> Figures:
    url = f"{t.base}/{bucket}/{KEY}"
    empty = hashlib.sha256(b"").hexdigest()
    signed = [sign("GET", url, t.creds, payload_hash=empty) for _ in range(count)]
    latencies = []
    own0, kids0 = t.cpu()
    started = time.perf_counter()
    for headers in signed:
        start = time.perf_counter()
        async with session.get(url, headers=headers) as r:
            body = await r.read()
            if r.status != 200 or len(body) < 4000:
                raise RuntimeError(f"{t.name}: {r.status} {body[:200]!r}")
        latencies.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - started
    own1, kids1 = t.cpu()
    return Figures(
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        rps=count / elapsed,
        cpu_ms=(own1 - own0) / count * 1000,
        worker_cpu_ms=(kids1 - kids0) / count * 1000,
    )


def _outcomes(proxy: ProxyProcess) -> dict[str, float]:
    s = proxy.scrape()
    out = {
        o: s.value("format_proxy_shadow_checks_total", route="orders", outcome=o)
        for o in ("ok", "failed", "skipped")
    }
    for labels, v in s.find("format_proxy_shadow_skipped_total", route="orders"):
        if v:
            out["skipped " + labels["reason"]] = v
    return out


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    load_at_start = os.getloadavg()
    backend: Backend = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
    bucket = backend.new_bucket("bench")
    route = {
        "name": "orders",
        "bucket": bucket,
        "prefix": "orders/",
        "formats": {"v1": "xml", "v2": "json"},
        "store": "xml",
        "mapping": {"schema": str(SCHEMA), "root": "order"},
        "mode": "shadow",
        "shadow": {"sample": args.sample},
    }
    start = {"upstream": backend.endpoint, "credentials": backend.credentials}
    plain = ProxyProcess.start(workdir, name="passthrough", **start)
    shadow = ProxyProcess.start(workdir, name="shadow", app_version="v1", routes=[route], **start)
    document = _document()
    backend.direct.put_object(Bucket=bucket, Key=KEY, Body=document)
    targets = [
        Target("direct", backend.endpoint, backend.credentials),
        Target("passthrough", plain.endpoint, CLIENT_CREDENTIALS, plain),
        Target("shadow", shadow.endpoint, CLIENT_CREDENTIALS, shadow),
    ]
    runs: list[dict[str, Figures]] = []
    outcomes: list[dict[str, float]] = []
    connector = aiohttp.TCPConnector(limit=4)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        for t in targets:  # warm up connections, caches and the workers
            await measure(session, t, bucket, 50)
        await asyncio.sleep(1.0)  # the warm-up's checks finish before the first count
        for i in range(args.runs):
            before = _outcomes(shadow)
            rotated = targets[i % 3 :] + targets[: i % 3]
            runs.append({t.name: await measure(session, t, bucket, args.requests) for t in rotated})
            await asyncio.sleep(1.0)  # let the last checks finish before counting
            after = _outcomes(shadow)
            outcomes.append({k: after.get(k, 0) - before.get(k, 0) for k in after})
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    rows = []
    data: dict[str, object] = {"document_bytes": len(document), "args": vars(args)}
    for t in targets:
        f = {
            field: median([getattr(r[t.name], field) for r in runs])
            for field in ("p50_ms", "p99_ms", "rps", "cpu_ms", "worker_cpu_ms")
        }
        data[t.name] = f
        rows.append(
            [
                t.name,
                f"{f['p50_ms']:.2f}",
                f"{f['p99_ms']:.2f}",
                f"{f['rps']:.0f}",
                f"{f['cpu_ms']:.3f}" if t.proxy else "–",
                f"{f['worker_cpu_ms']:.3f}" if t.proxy else "–",
            ]
        )
    added = {
        q: median([r["shadow"].__dict__[q] - r["passthrough"].__dict__[q] for r in runs])
        for q in ("p50_ms", "p99_ms", "cpu_ms")
    }
    data["shadow_minus_passthrough"] = added
    data["shadow_outcomes_per_run"] = outcomes
    data["machine"] = machine()
    data["load_average_start_end"] = [load_at_start, os.getloadavg()]
    headers = ["target", "p50 ms", "p99 ms", "req/s", "proxy CPU ms/req", "worker CPU ms/req"]
    print(f"4 KiB GET ({len(document)} bytes), c=1, {args.requests} requests x {args.runs} runs")
    print(table(headers, rows))
    print(
        "shadow - passthrough (median of per-run differences): "
        f"p50 {added['p50_ms']:+.2f} ms, p99 {added['p99_ms']:+.2f} ms, "
        f"proxy CPU {added['cpu_ms']:+.3f} ms/req"
    )
    print("shadow outcomes per run:", outcomes)
    print(f"load average (1/5/15 min) at start {load_at_start}, at end {os.getloadavg()}")
    write_json(args.json, data)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="GETs per target and run")
    parser.add_argument("--sample", type=float, default=1.0, help="the route's shadow.sample")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.requests = 1, 50
    return run_in_workdir(lambda workdir: main_async(args, workdir), "bench-shadow-")


if __name__ == "__main__":
    sys.exit(main())
