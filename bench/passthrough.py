"""Passthrough benchmark: direct-to-SeaweedFS against through-the-proxy, in one run.

Measures, for each target (``direct`` = SeaweedFS's S3 port, ``proxy`` = format-proxy in front
of the same SeaweedFS):

* 4 KiB GET and PUT at concurrency 1 and 16: requests/s, p50 and p99 latency, and the proxy's
  CPU time (user + system, from its process) per request;
* 64 MiB GET and PUT throughput;
* the proxy's peak RSS growth over idle while streaming a 1 GiB object up and down (with
  ``--https-upstream``, through the HTTPS-upstream proxy as well);
* the proxy's CPU time (user + system) per GiB of 64 MiB GETs relayed.

With ``--https-upstream``, a second SeaweedFS serving S3 over TLS joins with its own pair
(``direct-tls``, the client talking HTTPS to it, and ``proxy-tls-up``, a plain-HTTP proxy whose
upstream is that HTTPS endpoint) for the 4 KiB cases and the 64 MiB transfers.

With ``--ab``, a second proxy with the zero-copy GET relay turned off
(``limits.zero_copy_min_bytes: 0``, target ``proxy-copy``) joins the 64 MiB cases, in the same
back-to-back rotation, so both GET paths are compared against the same direct figures; with
``--https-upstream`` too, so does an HTTPS-upstream proxy with the TLS relay off
(``proxy-tls-copy``).

With ``--ab-general``, a proxy with the lean HTTP/1.1 path off (``server.fast_path: false``,
target ``proxy-general``) joins the 4 KiB and 64 MiB cases, so both front ends are compared in
one run.

Client: one aiohttp ``ClientSession`` (keep-alive pool) sending requests whose SigV4 header
auth was computed with botocore *before* the clock starts, so the client costs only its HTTP
stack, the same for both targets. PUTs carry the body's real sha256 (as boto3 sends over http).
Every run measures both targets, alternating which goes first; figures are medians over runs.

    .venv/bin/python bench/passthrough.py            # full run (about 4-6 minutes)
    .venv/bin/python bench/passthrough.py --quick    # smoke run
    .venv/bin/python bench/passthrough.py --ab       # + the copy path (fast path off)
    .venv/bin/python bench/passthrough.py --https-upstream   # + the HTTPS-upstream pair
    .venv/bin/python bench/passthrough.py --ab-general       # + the general path (lean path off)
    .venv/bin/python bench/passthrough.py --https-upstream --large-only  # no 4 KiB cases
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import wrkclient
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

from tests.support.backends import Backend, Credentials, start_seaweedfs
from tests.support.clients import CLIENT_CREDENTIALS
from tests.support.peakrss import PeakRSS
from tests.support.proxy import ProxyProcess, TLSFiles

TARGETS = ("direct", "proxy")
#: Each proxy target and the direct target it is compared with.
DIRECT_OF = {
    "proxy": "direct",
    "proxy-copy": "direct",
    "proxy-tls-up": "direct-tls",
    "proxy-general": "direct",
    "proxy-tls-copy": "direct-tls",
    "proxy-baseline": "direct",
    "proxy-tls-baseline": "direct-tls",
}


@dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:port
    creds: Credentials
    pid: int | None = None  # the proxy process, for CPU accounting
    ssl: ssl.SSLContext | bool = True  # how the client verifies an HTTPS base

    def cpu_seconds(self) -> float:
        if self.pid is None:
            return 0.0
        t = psutil.Process(self.pid).cpu_times()
        return t.user + t.system


@dataclass
class Small:
    rps: float
    p50_ms: float
    p99_ms: float
    #: proxy CPU milliseconds (user + system) per request; 0 for a direct target
    cpu_ms: float = 0.0


@dataclass
class RunResult:
    small: dict[str, Small] = field(default_factory=dict)  # "GET c1" -> Small
    large_mib_s: dict[str, float] = field(default_factory=dict)  # "GET" -> MiB/s
    #: proxy throughput / direct throughput for each back-to-back pair (proxy entries only)
    large_pair_ratios: dict[str, list[float]] = field(default_factory=dict)
    #: proxy CPU seconds per GiB during the large transfers (proxy entries only)
    large_cpu_s_per_gib: dict[str, float] = field(default_factory=dict)


async def _small(
    session: aiohttp.ClientSession,
    t: Target,
    bucket: str,
    method: str,
    concurrency: int,
    count: int,
    body: bytes,
) -> Small:
    body_hash = hashlib.sha256(body if method == "PUT" else b"").hexdigest()
    urls = [f"{t.base}/{bucket}/small/{i % 64}" for i in range(count)]
    signed = [sign(method, u, t.creds, payload_hash=body_hash) for u in urls]
    data = body if method == "PUT" else None
    latencies: list[float] = []
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < count:
            start = time.perf_counter()
            async with session.request(
                method, urls[i], headers=signed[i], data=data, ssl=t.ssl
            ) as r:
                payload = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{t.name} {method} -> {r.status}: {payload[:300]!r}")
            latencies.append(time.perf_counter() - start)

    cpu_before = t.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Small(
        rps=count / elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        cpu_ms=(t.cpu_seconds() - cpu_before) / count * 1000,
    )


async def _small_wrk(
    t: Target, bucket: str, method: str, concurrency: int, seconds: float, body: bytes
) -> Small:
    """As :func:`_small`, the requests sent by wrk for ``seconds``."""
    requests = wrkclient.raw_requests(method, t.base, bucket, t.creds, body)
    r = await wrkclient.run(t.base, requests, concurrency, seconds, t.cpu_seconds)
    return Small(
        rps=r.requests / r.seconds,
        p50_ms=r.p50_ms,
        p99_ms=r.p99_ms,
        cpu_ms=r.cpu_seconds / r.requests * 1000,
    )


async def _chunks(block: bytes, size: int, chunk: int = MiB) -> AsyncIterator[bytes]:
    view = memoryview(block)
    sent = 0
    while sent < size:
        off = sent % len(block)
        n = min(chunk, size - sent, len(block) - off)
        yield bytes(view[off : off + n])
        sent += n


async def put_large(
    session: aiohttp.ClientSession,
    t: Target,
    bucket: str,
    key: str,
    block: bytes,
    size: int,
    digest: str,
) -> float:
    url = f"{t.base}/{bucket}/{key}"
    headers = sign("PUT", url, t.creds, payload_hash=digest, headers={"Content-Length": str(size)})
    started = time.perf_counter()
    async with session.put(url, headers=headers, data=_chunks(block, size), ssl=t.ssl) as r:
        text = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{t.name} PUT {key} -> {r.status}: {text[:300]!r}")
    return time.perf_counter() - started


async def get_large(session: aiohttp.ClientSession, t: Target, bucket: str, key: str) -> float:
    url = f"{t.base}/{bucket}/{key}"
    headers = sign("GET", url, t.creds, payload_hash=hashlib.sha256(b"").hexdigest())
    started = time.perf_counter()
    got = 0
    async with session.get(url, headers=headers, ssl=t.ssl) as r:
        if r.status != 200:
            raise RuntimeError(f"{t.name} GET {key} -> {r.status}: {(await r.read())[:300]!r}")
        async for chunk in r.content.iter_chunked(MiB):
            got += len(chunk)
    if got != int(r.headers["Content-Length"]):
        raise RuntimeError(f"{t.name} GET {key}: short body {got}")
    return time.perf_counter() - started


def repeat_digest(block: bytes, size: int) -> str:
    h = hashlib.sha256()
    sent = 0
    while sent < size:
        n = min(len(block), size - sent)
        h.update(block[:n])
        sent += n
    return h.hexdigest()


async def one_run(
    session: aiohttp.ClientSession,
    targets: list[Target],
    large_targets: list[Target],
    bucket: str,
    args: argparse.Namespace,
    block: bytes,
    large_digest: str,
) -> dict[str, RunResult]:
    body = os.urandom(4 * KiB)
    results = {t.name: RunResult() for t in large_targets}
    for t in targets:
        results.setdefault(t.name, RunResult())
    for t in targets:  # small objects to GET; warm the pools
        await _small(session, t, bucket, "PUT", 4, 64, body)
        await _small(session, t, bucket, "GET", 4, 64, body)
    for method, conc in (("GET", 1), ("PUT", 1), ("GET", 16), ("PUT", 16)):
        if args.large_only:
            break
        count = args.small_c1 if conc == 1 else args.small_c16
        for t in targets:
            if args.client == "wrk":
                small = await _small_wrk(t, bucket, method, conc, args.wrk_seconds, body)
            else:
                small = await _small(session, t, bucket, method, conc, count, body)
            results[t.name].small[f"{method} c{conc}"] = small
    # Large objects: direct and proxy back to back, repeat after repeat, so that whatever
    # else the machine is doing hits both alike; the per-pair ratio is what is reported.
    size = args.large_mib * MiB
    for op in ("PUT", "GET"):
        secs: dict[str, list[float]] = {t.name: [] for t in large_targets}
        cpu: dict[str, float] = {t.name: 0.0 for t in large_targets}
        for _ in range(args.large_repeats):
            for t in large_targets:
                before = t.cpu_seconds()
                if op == "PUT":
                    key = f"large-{t.name}"
                    secs[t.name].append(
                        await put_large(session, t, bucket, key, block, size, large_digest)
                    )
                else:
                    secs[t.name].append(await get_large(session, t, bucket, f"large-{t.name}"))
                cpu[t.name] += t.cpu_seconds() - before
        gib = args.large_repeats * size / 2**30
        for t in large_targets:
            results[t.name].large_mib_s[op] = args.large_mib / median(secs[t.name])
            if t.name in DIRECT_OF:
                results[t.name].large_pair_ratios[op] = [
                    d / p for d, p in zip(secs[DIRECT_OF[t.name]], secs[t.name], strict=True)
                ]
                results[t.name].large_cpu_s_per_gib[op] = cpu[t.name] / gib
    return results


async def rss_run(
    session: aiohttp.ClientSession,
    proxy: ProxyProcess,
    t: Target,
    bucket: str,
    block: bytes,
    huge_mib: int,
) -> dict[str, Any]:
    size = huge_mib * MiB
    digest = repeat_digest(block, size)
    await asyncio.sleep(1.0)  # idle
    out: dict[str, Any] = {"mib": huge_mib, "idle_rss_mib": proxy.rss() / MiB}
    with PeakRSS(proxy.pid) as put_rss:
        secs = await put_large(session, t, bucket, "huge", block, size, digest)
    out["put_growth_mib"] = put_rss.growth / MiB
    out["put_mib_s"] = huge_mib / secs
    await asyncio.sleep(0.5)
    with PeakRSS(proxy.pid) as get_rss:
        secs = await get_large(session, t, bucket, "huge")
    out["get_growth_mib"] = get_rss.growth / MiB
    out["get_mib_s"] = huge_mib / secs
    out["peak_rss_mib"] = max(put_rss.peak, get_rss.peak) / MiB
    out["samples"] = put_rss.samples + get_rss.samples
    return out


def summarise(
    runs: list[dict[str, RunResult]],
    rss: dict[str, Any],
    proxies: list[str],
    rss_tls: dict[str, Any] | None = None,
) -> tuple[str, dict]:
    lines: list[str] = []
    data: dict[str, Any] = {"runs": len(runs), "small": {}, "large": {}, "rss": rss}
    if rss_tls is not None:
        data["rss_https_upstream"] = rss_tls
    rows = []
    ok = True
    small_pairs = [("proxy", "direct")] if runs[0]["proxy"].small else []
    if "proxy-tls-up" in runs[0] and small_pairs:
        small_pairs.append(("proxy-tls-up", "direct-tls"))
    if "proxy-general" in runs[0] and small_pairs:
        small_pairs.append(("proxy-general", "direct"))
    for name in ("proxy-baseline", "proxy-tls-baseline"):
        if name in runs[0] and small_pairs:
            small_pairs.append((name, DIRECT_OF[name]))
    for pname, dname in small_pairs:
        for case in ("GET c1", "PUT c1", "GET c16", "PUT c16"):
            fields = ("rps", "p50_ms", "p99_ms", "cpu_ms")
            d = {f: median([getattr(r[dname].small[case], f) for r in runs]) for f in fields}
            p = {f: median([getattr(r[pname].small[case], f) for r in runs]) for f in fields}
            added = median(
                [r[pname].small[case].p50_ms - r[dname].small[case].p50_ms for r in runs]
            )
            ratio = median([r[pname].small[case].rps / r[dname].small[case].rps for r in runs])
            key = case if pname == "proxy" else f"{case} {pname}"
            data["small"][key] = {
                "direct": d,
                "proxy": p,
                "ratio": ratio,
                "added_p50_ms": added,
                "proxy_cpu_ms_per_request": p["cpu_ms"],
                "proxy_cpu_ms_per_run": [r[pname].small[case].cpu_ms for r in runs],
            }
            label = f"4 KiB {case}" + {
                "proxy": "",
                "proxy-tls-up": " (HTTPS upstream)",
                "proxy-general": " (general path)",
                "proxy-baseline": " (baseline code)",
                "proxy-tls-baseline": " (baseline code, HTTPS upstream)",
            }.get(pname, f" ({pname})")
            rows.append(
                [
                    label,
                    f"{d['rps']:.0f}",
                    f"{p['rps']:.0f}",
                    f"{ratio:.2f}",
                    f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}",
                    f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f}",
                    f"{added:+.2f}",
                    f"{p['cpu_ms']:.3f}",
                ]
            )
    if rows:
        lines.append(
            table(
                [
                    "case",
                    "direct req/s",
                    "proxy req/s",
                    "ratio",
                    "direct p50/p99 ms",
                    "proxy p50/p99 ms",
                    "added p50 ms",
                    "proxy CPU ms/req",
                ],
                rows,
            )
        )
        lines.append("")
    rows = []
    for op in ("GET", "PUT"):
        for name in proxies:
            d = median([r[DIRECT_OF[name]].large_mib_s[op] for r in runs])
            p = median([r[name].large_mib_s[op] for r in runs])
            ratio = median([x for r in runs for x in r[name].large_pair_ratios[op]])
            cpu = median([r[name].large_cpu_s_per_gib[op] for r in runs])
            key = op if name == "proxy" else f"{op} {name}"
            data["large"][key] = {
                "direct_mib_s": d,
                "proxy_mib_s": p,
                "ratio": ratio,
                "proxy_cpu_s_per_gib": cpu,
                "proxy_cpu_s_per_gib_per_run": [r[name].large_cpu_s_per_gib[op] for r in runs],
            }
            label = f"64 MiB {op}" + ("" if name == "proxy" else f" ({name})")
            rows.append([label, f"{d:.0f}", f"{p:.0f}", f"{ratio:.2f}", f"{cpu:.2f}"])
    lines.append(
        table(
            [
                "case",
                "direct MiB/s",
                "proxy MiB/s",
                "ratio (median of back-to-back pairs)",
                "proxy CPU s/GiB",
            ],
            rows,
        )
    )
    lines.append("")
    huge = f"{rss['mib'] / 1024:g} GiB" if rss["mib"] >= 1024 else f"{rss['mib']} MiB"
    rss_rows = []
    for label, figures in (("", rss), (" (HTTPS upstream)", rss_tls)):
        if figures is None:
            continue
        for op in ("put", "get"):
            rss_rows.append(
                [
                    f"{op.upper()}{label}",
                    f"{figures['idle_rss_mib']:.1f}",
                    f"{figures[f'{op}_growth_mib']:.1f}",
                    f"{figures[f'{op}_mib_s']:.0f}",
                ]
            )
    lines.append(
        table([f"{huge} through the proxy", "idle RSS MiB", "peak growth MiB", "MiB/s"], rss_rows)
    )
    lines.append("")
    verdicts = []
    for op in ("GET", "PUT"):
        r = data["large"][op]["ratio"]
        verdicts.append((f"64 MiB {op} throughput >= 0.8x direct", r >= 0.8, f"{r:.2f}x"))
    small = data["small"]
    if small:
        a = small["GET c1"]["added_p50_ms"]
        verdicts.append(("4 KiB GET c1 added p50 <= 0.6 ms", a <= 0.6, f"{a:+.2f} ms"))
        for case, floor in (("GET c1", 0.6), ("GET c16", 0.4)):
            r = small[case]["ratio"]
            verdicts.append((f"4 KiB {case} >= {floor}x direct", r >= floor, f"{r:.2f}x"))
        get_cpu = small["GET c1"]["proxy_cpu_ms_per_request"]
        put_cpu = small["PUT c1"]["proxy_cpu_ms_per_request"]
        verdicts.append(("4 KiB GET CPU <= 0.35 ms/req", get_cpu <= 0.35, f"{get_cpu:.3f} ms"))
        verdicts.append(
            ("4 KiB PUT CPU <= GET + 0.1 ms/req", put_cpu <= get_cpu + 0.1, f"{put_cpu:.3f} ms")
        )
    if "GET c1 proxy-tls-up" in small:
        c = small["GET c1 proxy-tls-up"]["proxy_cpu_ms_per_request"]
        verdicts.append(("4 KiB GET CPU, HTTPS upstream <= 0.45 ms/req", c <= 0.45, f"{c:.3f} ms"))
    if "GET proxy-tls-up" in data["large"]:
        big = data["large"]["GET proxy-tls-up"]
        verdicts.append(
            ("64 MiB GET, HTTPS upstream >= 0.8x", big["ratio"] >= 0.8, f"{big['ratio']:.2f}x")
        )
        c = big["proxy_cpu_s_per_gib"]
        verdicts.append(("64 MiB GET, HTTPS upstream CPU <= 0.8 s/GiB", c <= 0.8, f"{c:.2f} s"))
    for label, figures in (("", rss), (", HTTPS upstream", rss_tls)):
        for op in ("put", "get") if figures is not None else ():
            g = figures[f"{op}_growth_mib"]
            verdicts.append(
                (f"{huge} {op.upper()}{label} RSS growth <= 64 MiB", g <= 64, f"{g:.1f} MiB")
            )
    for name, passed, value in verdicts:
        ok &= passed
        lines.append(f"- {'MET ' if passed else 'MISSED'}  {name}: {value}")
    data["targets_met"] = ok
    data["verdicts"] = [{"target": n, "met": p, "value": v} for n, p, v in verdicts]
    return "\n".join(lines), data


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    load_at_start = os.getloadavg()
    backend: Backend = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
    proxy = ProxyProcess.start(
        workdir, upstream=backend.endpoint, credentials=backend.credentials, name="proxy"
    )
    bucket = backend.new_bucket("bench")
    targets = [
        Target("direct", backend.endpoint, backend.credentials),
        Target("proxy", proxy.endpoint, CLIENT_CREDENTIALS, proxy.pid),
    ]
    large_targets = list(targets)
    tls_backend: Backend | None = None
    tls_proxy: ProxyProcess | None = None
    tls_pair: list[Target] = []
    if args.https_upstream:
        tls = TLSFiles.create(workdir / "tls")
        tls_backend = start_seaweedfs(
            workdir / "seaweedfs-tls",
            workdir / "logs",
            name="seaweedfs-tls",
            tls=(tls.cert, tls.key, tls.ca),
        )
        tls_backend.direct.create_bucket(Bucket=bucket)
        tls_backend._wait_writable(bucket)  # a new SeaweedFS bucket takes a moment
        tls_proxy = ProxyProcess.start(
            workdir,
            upstream=tls_backend.endpoint,
            credentials=tls_backend.credentials,
            name="proxy-tls-up",
            env={"SSL_CERT_FILE": str(tls.ca)},  # the proxy trusts the test CA
        )
        context = ssl.create_default_context(cafile=str(tls.ca))
        tls_pair = [
            Target("direct-tls", tls_backend.endpoint, tls_backend.credentials, ssl=context),
            Target("proxy-tls-up", tls_proxy.endpoint, CLIENT_CREDENTIALS, tls_proxy.pid),
        ]
        targets += tls_pair
        large_targets += tls_pair
    if args.baseline_src:
        # The same proxy running another checkout's code, for the 4 KiB cases (A/B in one run).
        env = {"PYTHONPATH": args.baseline_src}
        base = ProxyProcess.start(
            workdir,
            upstream=backend.endpoint,
            credentials=backend.credentials,
            name="proxy-baseline",
            env=env,
        )
        targets.append(Target("proxy-baseline", base.endpoint, CLIENT_CREDENTIALS, base.pid))
        if tls_backend is not None:
            tls_base = ProxyProcess.start(
                workdir,
                upstream=tls_backend.endpoint,
                credentials=tls_backend.credentials,
                name="proxy-tls-baseline",
                env={**env, "SSL_CERT_FILE": str(tls.ca)},
            )
            targets.append(
                Target("proxy-tls-baseline", tls_base.endpoint, CLIENT_CREDENTIALS, tls_base.pid)
            )
    if args.ab_general:
        general = ProxyProcess.start(
            workdir,
            upstream=backend.endpoint,
            credentials=backend.credentials,
            name="proxy-general",
            extra_config={"server": {"fast_path": False}},
        )
        gen = Target("proxy-general", general.endpoint, CLIENT_CREDENTIALS, general.pid)
        targets.append(gen)
        large_targets.append(gen)
    if args.ab:
        copy = ProxyProcess.start(
            workdir,
            upstream=backend.endpoint,
            credentials=backend.credentials,
            name="proxy-copy",
            limits={"zero_copy_min_bytes": 0},
        )
        large_targets.append(Target("proxy-copy", copy.endpoint, CLIENT_CREDENTIALS, copy.pid))
        if tls_backend is not None:
            tls_copy = ProxyProcess.start(
                workdir,
                upstream=tls_backend.endpoint,
                credentials=tls_backend.credentials,
                name="proxy-tls-copy",
                limits={"zero_copy_min_bytes": 0},
                env={"SSL_CERT_FILE": str(tls.ca)},
            )
            large_targets.append(
                Target("proxy-tls-copy", tls_copy.endpoint, CLIENT_CREDENTIALS, tls_copy.pid)
            )
    block = os.urandom(64 * MiB)
    large_digest = repeat_digest(block, args.large_mib * MiB)
    connector = aiohttp.TCPConnector(limit=64, limit_per_host=64)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    runs: list[dict[str, RunResult]] = []
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    ) as session:
        for i in range(args.runs):
            order = targets if i % 2 == 0 else targets[::-1]
            large_order = large_targets if i % 2 == 0 else large_targets[::-1]
            runs.append(
                await one_run(session, order, large_order, bucket, args, block, large_digest)
            )
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
        rss = await rss_run(session, proxy, targets[1], bucket, block, args.huge_mib)
        rss_tls = None
        if tls_proxy is not None:
            rss_tls = await rss_run(session, tls_proxy, tls_pair[1], bucket, block, args.huge_mib)
    proxies = [t.name for t in large_targets if t.name in DIRECT_OF]
    report, data = summarise(runs, rss, proxies, rss_tls)
    data["machine"] = machine()
    data["load_average_start_end"] = [load_at_start, os.getloadavg()]
    print(f"load average (1/5/15 min) at start {load_at_start}, at end {os.getloadavg()}")
    data["args"] = vars(args)
    print(report)
    write_json(args.json, data)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small-c1", type=int, default=400, help="requests per c=1 case")
    parser.add_argument("--small-c16", type=int, default=1600, help="requests per c=16 case")
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--large-repeats", type=int, default=4)
    parser.add_argument("--huge-mib", type=int, default=1024, help="size for the RSS transfers")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument(
        "--baseline-src",
        help="also measure the 4 KiB cases through a proxy running this checkout's code",
    )
    parser.add_argument(
        "--ab", action="store_true", help="also measure a proxy with the zero-copy GET path off"
    )
    parser.add_argument(
        "--https-upstream",
        action="store_true",
        help="also measure a proxy whose upstream is SeaweedFS over HTTPS (and it, direct)",
    )
    parser.add_argument(
        "--ab-general",
        action="store_true",
        help="also measure a proxy with the lean HTTP/1.1 path off (server.fast_path: false)",
    )
    parser.add_argument(
        "--large-only",
        action="store_true",
        help="skip the 4 KiB cases: only the 64 MiB transfers and the RSS runs",
    )
    parser.add_argument(
        "--client",
        choices=("aiohttp", "wrk"),
        default="aiohttp",
        help="what sends the 4 KiB requests: an aiohttp session in this process, or wrk",
    )
    parser.add_argument(
        "--wrk-seconds", type=float, default=5.0, help="length of each 4 KiB case under wrk"
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.small_c1, args.small_c16 = 1, 50, 200
        args.large_mib, args.large_repeats, args.huge_mib = 16, 1, 64
        args.wrk_seconds = 1.0
    if args.client == "wrk" and not wrkclient.available():
        parser.error("--client wrk needs wrk on PATH (Debian: apt-get install wrk)")
    return run_in_workdir(lambda workdir: main_async(args, workdir), "bench-passthrough-")


if __name__ == "__main__":
    sys.exit(main())
