"""Translating data path benchmark: what translation adds to a 1 MB GET and PUT, in one run.

One SeaweedFS, four format-proxy processes with the ``orders`` route (config/examples):

* ``v1``          — the object stored as XML is native here: GET streams it (the baseline);
* ``v2``          — the same object translated to JSON, then served from the cache;
* ``v2-nocache``  — ``limits.cache_max_bytes: 0``: every GET translates (the cold path);
* ``passthrough`` — no routes: the same bytes as a plain object (reference only).

Cases (concurrency 1, sequential requests, latency per request):

* GET native (v1), GET translated cold (v2-nocache), GET translated cached (v2, after a
  warm-up: one HEAD upstream + the cached representation), GET passthrough;
* PUT native (v1 writes XML, store xml: validated by the engine, stored unchanged), PUT
  translated (v2 writes JSON, stored as XML), PUT passthrough.

Requests carry SigV4 header auth computed before the clock starts (the proxy re-signs anyway).
Each run measures every case back to back, alternating the order; the figures are medians of
the per-run medians. Target: a cached translated GET costs ≤ 1.5× a native GET through the
proxy.

Small documents (a ≈ 4 KiB orders document, in the same run unless ``--skip-small``/
``--small-only``): GET and PUT straight to SeaweedFS (*direct*, the baseline), the same through
the v1 proxy (native), a translated GET *cold* (v2, a different stored object — a new ETag —
for every request, so every one misses the translation cache), a translated GET *cached* (v2,
the same object again: a cache hit) and a translated PUT (v2, JSON in, XML stored; writes never
use the cache). Each case reports requests/s, p50/p99, the ratio to direct (requests/s) and the
proxy's CPU per request: user + system time of the proxy process (psutil, before and after the
case), and the same including its document worker processes.

    .venv/bin/python bench/datapath.py             # full run (about 3-4 minutes)
    .venv/bin/python bench/datapath.py --small-only --runs 5   # just the 4 KiB cases
    .venv/bin/python bench/datapath.py --quick     # smoke run
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
from typing import Any

import aiohttp
import psutil
from common import (
    KiB,
    MiB,
    machine,
    median,
    percentile,
    run_in_workdir,
    sign,
    table,
    write_json,
)

from tests.datapath.orders import big_order, order, orders_route, xml_bytes
from tests.support.backends import Backend, Credentials, start_seaweedfs
from tests.support.clients import CLIENT_CREDENTIALS
from tests.support.proxy import ProxyProcess


def signed(
    method: str, url: str, body: bytes = b"", creds: Credentials = CLIENT_CREDENTIALS
) -> dict[str, str]:
    """SigV4 headers as boto3 sends them over http (the body's real sha256), computed before
    the clock starts."""
    return sign(method, url, creds, payload_hash=hashlib.sha256(body).hexdigest())


GET_CASES = ("GET native", "GET translated cold", "GET translated cached", "GET passthrough")
PUT_CASES = ("PUT native", "PUT translated", "PUT passthrough")


async def timed(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: bytes = b"",
    expect: bytes | None = None,
    ctype: str | None = None,
) -> float:
    headers = signed(method, url, body)
    if ctype:
        headers["Content-Type"] = ctype
    started = time.perf_counter()
    async with session.request(method, url, data=body or None, headers=headers) as r:
        got = await r.read()
    elapsed = time.perf_counter() - started
    if r.status != 200:
        raise RuntimeError(f"{method} {url}: {r.status} {got[:300]!r}")
    if expect is not None and len(got) != len(expect):
        raise RuntimeError(f"{method} {url}: {len(got)} bytes, expected {len(expect)}")
    return elapsed


async def one_run(
    session: aiohttp.ClientSession,
    urls: dict[str, str],
    docs: dict[str, bytes],
    requests: int,
    flip: bool,
) -> dict[str, list[float]]:
    cases: dict[str, tuple[str, str, dict[str, Any]]] = {
        "GET native": ("GET", urls["v1"] + "orders/doc.xml", {"expect": docs["xml"]}),
        "GET translated cold": (
            "GET",
            urls["v2-nocache"] + "orders/doc.xml",
            {"expect": docs["json"]},
        ),
        "GET translated cached": ("GET", urls["v2"] + "orders/doc.xml", {"expect": docs["json"]}),
        "GET passthrough": ("GET", urls["passthrough"] + "plain/doc.xml", {"expect": docs["xml"]}),
        "PUT native": (
            "PUT",
            urls["v1"] + "orders/put-v1.xml",
            {"body": docs["xml"], "ctype": "application/xml"},
        ),
        "PUT translated": (
            "PUT",
            urls["v2"] + "orders/put-v2.json",
            {"body": docs["json"], "ctype": "application/json"},
        ),
        "PUT passthrough": (
            "PUT",
            urls["passthrough"] + "plain/put.xml",
            {"body": docs["xml"], "ctype": "application/xml"},
        ),
    }
    names = list(cases)[::-1] if flip else list(cases)
    out: dict[str, list[float]] = {}
    for name in names:
        method, url, kw = cases[name]
        await timed(session, method, url, **kw)  # warm: pools, and the v2 cache
        out[name] = [await timed(session, method, url, **kw) for _ in range(requests)]
    return out


def summarise(runs: list[dict[str, list[float]]]) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"runs": len(runs), "cases": {}}
    p50 = {c: median([median(r[c]) for r in runs]) * 1000 for c in runs[0]}
    p90 = {c: median([percentile(r[c], 90) for r in runs]) * 1000 for c in runs[0]}
    rows = []
    for case in (*GET_CASES, *PUT_CASES):
        base = "GET native" if case.startswith("GET") else "PUT native"
        ratio = p50[case] / p50[base]
        rows.append(
            [
                case,
                f"{p50[case]:.2f}",
                f"{p90[case]:.2f}",
                f"{p50[case] - p50[base]:+.2f}",
                f"{ratio:.2f}×",
            ]
        )
        data["cases"][case] = {
            "p50_ms": p50[case],
            "p90_ms": p90[case],
            "overhead_ms": p50[case] - p50[base],
            "ratio": ratio,
        }
    cached = p50["GET translated cached"] / p50["GET native"]
    met = cached <= 1.5
    data["target"] = {"cached_over_native": cached, "met": met}
    lines = [
        table(["case", "p50 ms", "p90 ms", "vs native ms", "ratio vs native"], rows),
        "",
        f"- {'MET ' if met else 'MISSED'}  cached translated GET ≤ 1.5× native GET: {cached:.2f}×",
    ]
    return "\n".join(lines), data


# --- small documents -------------------------------------------------------------------------

SMALL_CASES = (
    "GET direct",
    "GET native (v1 proxy)",
    "GET translated cold",
    "GET translated cached",
    "PUT direct",
    "PUT native (v1 proxy)",
    "PUT translated",
)
#: The stored XML of the small order is about this long.
SMALL_BYTES = 4 * KiB


def small_items() -> int:
    """Items that make an order's stored XML about :data:`SMALL_BYTES` long."""
    n = 1
    while len(xml_bytes(order(1, n + 1))) <= SMALL_BYTES:
        n += 1
    return n


def tree_cpu(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of a process, and of its living descendants (the document
    workers and their forkserver)."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    own, children = t.user + t.system, 0.0
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        children += c.user + c.system
    return own, children


@dataclass
class SmallCase:
    method: str
    #: (url, signed headers, body) per request; the first is the warm-up
    requests: list[tuple[str, dict[str, str], bytes]]
    pid: int | None  # the proxy serving it (None: direct)


async def run_small(session: aiohttp.ClientSession, case: SmallCase) -> dict[str, float]:
    async def one(url: str, headers: dict[str, str], body: bytes) -> None:
        async with session.request(case.method, url, data=body or None, headers=headers) as r:
            got = await r.read()
        if r.status != 200 or (case.method == "GET" and not got):
            raise RuntimeError(f"{case.method} {url}: {r.status} {got[:300]!r}")

    await one(*case.requests[0])  # warm: pools, and the v2 cache for the cached case
    timed_requests = case.requests[1:]
    latencies: list[float] = []
    before = tree_cpu(case.pid) if case.pid else (0.0, 0.0)
    started = time.perf_counter()
    for request in timed_requests:
        t0 = time.perf_counter()
        await one(*request)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    after = tree_cpu(case.pid) if case.pid else (0.0, 0.0)
    n = len(timed_requests)
    return {
        "rps": n / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_ms": (after[0] - before[0]) / n * 1000,
        "workers_cpu_ms": (after[1] - before[1]) / n * 1000,
    }


def small_cases(
    urls: dict[str, str],
    direct: str,
    creds: Credentials,
    pids: dict[str, int],
    docs: dict[str, bytes],
    run: int,
    requests: int,
) -> dict[str, SmallCase]:
    """Every small case of run ``run``, signed ahead. Cold GETs read ``cold-<run>-<i>.xml``
    (stored by :func:`store_cold`); PUTs write a new key each time."""
    xml, js = docs["xml"], docs["json"]
    count = range(requests + 1)

    def reqs(
        method: str, base: str, keys: list[str], body: bytes, ctype: str, who: Credentials
    ) -> list[tuple[str, dict[str, str], bytes]]:
        out = []
        for key in keys:
            headers = signed(method, base + key, body, who)
            if body:
                headers["Content-Type"] = ctype
            out.append((base + key, headers, body))
        return out

    def get(base: str, keys: list[str], who: Credentials = CLIENT_CREDENTIALS) -> list:
        return reqs("GET", base, keys, b"", "", who)

    def put(
        base: str, keys: list[str], body: bytes, ctype: str, who: Credentials = CLIENT_CREDENTIALS
    ) -> list:
        return reqs("PUT", base, keys, body, ctype, who)

    same = ["orders/small.xml"] * (requests + 1)
    cold = [f"orders/cold-{run}-{i}.xml" for i in count]
    xml_t, json_t = "application/xml", "application/json"
    return {
        "GET direct": SmallCase("GET", get(direct, same, creds), None),
        "GET native (v1 proxy)": SmallCase("GET", get(urls["v1"], same), pids["v1"]),
        "GET translated cold": SmallCase("GET", get(urls["v2"], cold), pids["v2"]),
        "GET translated cached": SmallCase("GET", get(urls["v2"], same), pids["v2"]),
        "PUT direct": SmallCase(
            "PUT", put(direct, [f"plain/put-{run}-{i}.xml" for i in count], xml, xml_t, creds), None
        ),
        "PUT native (v1 proxy)": SmallCase(
            "PUT",
            put(urls["v1"], [f"orders/put-v1-{run}-{i}.xml" for i in count], xml, xml_t),
            pids["v1"],
        ),
        "PUT translated": SmallCase(
            "PUT",
            put(urls["v2"], [f"orders/put-v2-{run}-{i}.json" for i in count], js, json_t),
            pids["v2"],
        ),
    }


async def store_cold(
    session: aiohttp.ClientSession,
    direct: str,
    creds: Credentials,
    runs: int,
    requests: int,
    items: int,
) -> None:
    """One distinct small order per cold GET (each a new ETag), stored straight to the backend."""
    keys = [(r, i) for r in range(runs) for i in range(requests + 1)]
    sem = asyncio.Semaphore(8)

    async def store(n: int, run: int, i: int) -> None:
        body = xml_bytes(order(10_000 + n, items))
        url = f"{direct}orders/cold-{run}-{i}.xml"
        headers = sign(
            "PUT",
            url,
            creds,
            payload_hash=hashlib.sha256(body).hexdigest(),
            headers={"Content-Type": "application/xml", "x-amz-meta-format": "xml"},
        )
        async with sem, session.put(url, data=body, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"storing {url}: {r.status} {(await r.read())[:300]!r}")

    await asyncio.gather(*(store(n, run, i) for n, (run, i) in enumerate(keys)))


def summarise_small(runs: list[dict[str, dict[str, float]]]) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {}
    rows = []
    for case in SMALL_CASES:
        base = "GET direct" if case.startswith("GET") else "PUT direct"
        fields = ("rps", "p50_ms", "p99_ms", "cpu_ms", "workers_cpu_ms")
        fig = {f: median([r[case][f] for r in runs]) for f in fields}
        ratio = median([r[case]["rps"] / r[base]["rps"] for r in runs])
        total = median([r[case]["cpu_ms"] + r[case]["workers_cpu_ms"] for r in runs])
        data[case] = {
            **fig,
            "ratio_to_direct": ratio,
            "proxy_cpu_ms_per_request": fig["cpu_ms"],
            "with_workers_cpu_ms_per_request": total,
        }
        direct = base == case
        rows.append(
            [
                case,
                f"{fig['rps']:.0f}",
                f"{fig['p50_ms']:.2f} / {fig['p99_ms']:.2f}",
                f"{ratio:.2f}×",
                "—" if direct else f"{fig['cpu_ms']:.3f}",
                "—" if direct else f"{total:.3f}",
            ]
        )
    text = table(
        [
            "4 KiB case (c=1)",
            "req/s",
            "p50 / p99 ms",
            "ratio to direct (req/s)",
            "proxy CPU ms/req",
            "incl. document workers",
        ],
        rows,
    )
    return text, data


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    load_at_start = os.getloadavg()
    backend: Backend = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
    bucket = backend.new_bucket("bench")
    route = orders_route(bucket)
    start = {"upstream": backend.endpoint, "credentials": backend.credentials}
    proxies = {
        "v1": ProxyProcess.start(workdir, app_version="v1", routes=[route], name="v1", **start),
        "v2": ProxyProcess.start(workdir, app_version="v2", routes=[route], name="v2", **start),
    }
    large = not args.small_only
    if large:
        proxies["v2-nocache"] = ProxyProcess.start(
            workdir,
            app_version="v2",
            routes=[route],
            limits={"cache_max_bytes": 0},
            name="v2-nocache",
            **start,
        )
        proxies["passthrough"] = ProxyProcess.start(workdir, name="passthrough", **start)
    urls = {name: f"{p.endpoint}/{bucket}/" for name, p in proxies.items()}
    direct = f"{backend.endpoint}/{bucket}/"
    data: dict[str, Any] = {}
    reports: list[str] = []
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        if large:
            text, figures = await large_documents(session, backend, bucket, urls, args)
            reports.append(text)
            data.update(figures)
        if not args.skip_small:
            text, figures = await small_documents(
                session, backend, bucket, urls, direct, proxies, args
            )
            reports.append(text)
            data["small"] = figures
    data.update(
        machine=machine(), args=vars(args), load_average_start_end=[load_at_start, os.getloadavg()]
    )
    print(f"load average (1/5/15 min) at start {load_at_start}, at end {os.getloadavg()}")
    print("\n\n".join(reports))
    write_json(args.json, data)
    for p in proxies.values():
        p.stop()
    backend.stop()
    return 0


async def large_documents(
    session: aiohttp.ClientSession,
    backend: Backend,
    bucket: str,
    urls: dict[str, str],
    args: argparse.Namespace,
) -> tuple[str, dict[str, Any]]:
    doc = big_order(1, args.size)
    xml = xml_bytes(doc)
    backend.direct.put_object(
        Bucket=bucket,
        Key="orders/doc.xml",
        Body=xml,
        ContentType="application/xml",
        Metadata={"format": "xml"},
    )
    backend.direct.put_object(Bucket=bucket, Key="plain/doc.xml", Body=xml)
    # The JSON form as the proxy serves it (compact), for the v2 PUT and length checks.
    async with session.get(
        urls["v2"] + "orders/doc.xml",
        headers=signed("GET", urls["v2"] + "orders/doc.xml"),
    ) as r:
        served = await r.read()
    docs = {"xml": xml, "json": served}
    runs: list[dict[str, list[float]]] = []
    for i in range(args.runs):
        runs.append(await one_run(session, urls, docs, args.requests, flip=bool(i % 2)))
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    report, data = summarise(runs)
    data["sizes"] = {"stored_xml": len(xml), "served_json": len(served)}
    head = (
        f"document: stored XML {len(xml)} bytes, served JSON {len(served)} bytes; "
        f"{args.runs} runs × {args.requests} requests per case"
    )
    return f"{head}\n\n{report}", data


async def small_documents(
    session: aiohttp.ClientSession,
    backend: Backend,
    bucket: str,
    urls: dict[str, str],
    direct: str,
    proxies: dict[str, ProxyProcess],
    args: argparse.Namespace,
) -> tuple[str, dict[str, Any]]:
    items = small_items()
    xml = xml_bytes(order(1, items))
    backend.direct.put_object(
        Bucket=bucket,
        Key="orders/small.xml",
        Body=xml,
        ContentType="application/xml",
        Metadata={"format": "xml"},
    )
    async with session.get(
        urls["v2"] + "orders/small.xml", headers=signed("GET", urls["v2"] + "orders/small.xml")
    ) as r:
        served = await r.read()
    creds = backend.credentials
    await store_cold(session, direct, creds, args.runs, args.small_requests, items)
    docs = {"xml": xml, "json": served}
    pids = {name: p.pid for name, p in proxies.items()}
    runs: list[dict[str, dict[str, float]]] = []
    for run in range(args.runs):
        cases = small_cases(urls, direct, creds, pids, docs, run, args.small_requests)
        names = list(cases)[::-1] if run % 2 else list(cases)
        runs.append({name: await run_small(session, cases[name]) for name in names})
        print(f"small run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
    report, data = summarise_small(runs)
    head = (
        f"small document: stored XML {len(xml)} bytes, served JSON {len(served)} bytes; "
        f"{args.runs} runs × {args.small_requests} requests per case"
    )
    return f"{head}\n\n{report}", {
        "cases": data,
        "sizes": {"stored_xml": len(xml), "served_json": len(served)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="requests per case per run")
    parser.add_argument("--size", type=int, default=MiB, help="JSON document size (bytes)")
    parser.add_argument(
        "--small-requests", type=int, default=200, help="requests per 4 KiB case per run"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--small-only", action="store_true", help="only the 4 KiB cases")
    which.add_argument("--skip-small", action="store_true", help="only the large-document cases")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.requests, args.small_requests = 1, 3, 20
    return run_in_workdir(lambda workdir: main_async(args, workdir), "bench-datapath-")


if __name__ == "__main__":
    sys.exit(main())
