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

    .venv/bin/python bench/datapath.py             # full run (about 2-3 minutes)
    .venv/bin/python bench/datapath.py --quick     # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    MiB,
    machine,
    median,
    percentile,
    run_in_workdir,
    sign,
    table,
    write_json,
)

from tests.datapath.orders import big_order, orders_route, xml_bytes
from tests.support.backends import Backend, start_seaweedfs
from tests.support.clients import CLIENT_CREDENTIALS
from tests.support.proxy import ProxyProcess


def signed(method: str, url: str, body: bytes = b"") -> dict[str, str]:
    """SigV4 headers as boto3 sends them over http (the body's real sha256), computed before
    the clock starts."""
    return sign(method, url, CLIENT_CREDENTIALS, payload_hash=hashlib.sha256(body).hexdigest())


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


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    load_at_start = os.getloadavg()
    backend: Backend = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
    bucket = backend.new_bucket("bench")
    route = orders_route(bucket)
    start = {"upstream": backend.endpoint, "credentials": backend.credentials}
    proxies = {
        "v1": ProxyProcess.start(workdir, app_version="v1", routes=[route], name="v1", **start),
        "v2": ProxyProcess.start(workdir, app_version="v2", routes=[route], name="v2", **start),
        "v2-nocache": ProxyProcess.start(
            workdir,
            app_version="v2",
            routes=[route],
            limits={"cache_max_bytes": 0},
            name="v2-nocache",
            **start,
        ),
        "passthrough": ProxyProcess.start(workdir, name="passthrough", **start),
    }
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
    urls = {name: f"{p.endpoint}/{bucket}/" for name, p in proxies.items()}
    connector = aiohttp.TCPConnector(limit=8)
    runs: list[dict[str, list[float]]] = []
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        # The JSON form as the proxy serves it (compact), for the v2 PUT and length checks.
        async with session.get(
            urls["v2"] + "orders/doc.xml",
            headers=signed("GET", urls["v2"] + "orders/doc.xml"),
        ) as r:
            served = await r.read()
        docs = {"xml": xml, "json": served}
        for i in range(args.runs):
            runs.append(await one_run(session, urls, docs, args.requests, flip=bool(i % 2)))
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    report, data = summarise(runs)
    data.update(
        machine=machine(),
        args=vars(args),
        sizes={"stored_xml": len(xml), "served_json": len(served)},
        load_average_start_end=[load_at_start, os.getloadavg()],
    )
    print(
        f"document: stored XML {len(xml)} bytes, served JSON {len(served)} bytes; "
        f"{args.runs} runs × {args.requests} requests per case"
    )
    print(f"load average (1/5/15 min) at start {load_at_start}, at end {os.getloadavg()}")
    print(report)
    write_json(args.json, data)
    for p in proxies.values():
        p.stop()
    backend.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="requests per case per run")
    parser.add_argument("--size", type=int, default=MiB, help="JSON document size (bytes)")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.requests = 1, 3
    return run_in_workdir(lambda workdir: main_async(args, workdir), "bench-datapath-")


if __name__ == "__main__":
    sys.exit(main())
