"""The floor of an HTTP/1.1 relay in Python: CPU per 4 KiB GET for two trivial relays.

Both relays forward every request unchanged to one upstream (a minimal asyncio server that
answers each request with 4 KiB) over keep-alive connections, and do nothing else — no
parsing of S3 addresses, no signing, no logging, no metrics. What they cost is the least the
proxy can cost on that HTTP stack:

* ``aiohttp``: aiohttp's low-level server (``web.Server``) and an aiohttp ``ClientSession``,
  the stack the proxy's general path is built on;
* ``httptools``: ``asyncio.Protocol`` on both sides with MagicStack's httptools (llhttp)
  parsers, a small keep-alive pool of upstream connections.

Each relay runs in its own process; the figure is that process's CPU time (user + system,
psutil) per request, at concurrency 1 and 16, median of ``--runs``, and the median latency at
concurrency 1 (direct to the origin too, so each relay's added latency is known).

``--proxy`` adds format-proxy itself (``serve``, default config, lean path on) in front of the
same origin, so its own work per request is measured against the two floors in one run without
the noise of a real backend; ``--baseline-src DIR`` adds a second format-proxy that runs the
code of another checkout (``PYTHONPATH=DIR``), for a before/after in one interleaved run. The
client sends the headers a boto3 GET sends (the proxy re-signs; it does not check them) and the
origin answers with the headers an S3 server sends.

    .venv/bin/python bench/floor.py             # 3 runs x 2000 requests per case
    .venv/bin/python bench/floor.py --proxy --baseline-src /tmp/old-checkout --runs 5
    .venv/bin/python bench/floor.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BODY = os.urandom(4096)


# --- the upstream: answers every request with BODY --------------------------------------------


class _Origin(asyncio.Protocol):
    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._head = (
            b"HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b'Etag: "0f343b0931126a20f133d67c2b018a3b"\r\n'
            b"Last-Modified: Thu, 03 Dec 2026 12:00:00 GMT\r\n"
            b"Server: origin\r\nX-Amz-Request-Id: 1A2B3C4D5E6F7A8B\r\n"
            b"Date: Thu, 03 Dec 2026 12:00:00 GMT\r\n"
            b"Content-Length: %d\r\n\r\n" % len(BODY)
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(self._head + BODY)


def run_origin(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Origin, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


# --- relay 1: aiohttp server + aiohttp client -------------------------------------------------


def run_aiohttp(port: int, upstream: int) -> None:
    import aiohttp
    from aiohttp import web

    async def main() -> None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), auto_decompress=False
        )
        base = f"http://127.0.0.1:{upstream}"

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            async with session.request(
                request.method, base + request.raw_path, headers=request.headers
            ) as resp:
                body = await resp.read()
                return web.Response(status=resp.status, body=body, headers=resp.headers)

        server = web.Server(handle, access_log=None)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, "127.0.0.1", port)
        await srv.serve_forever()

    asyncio.run(main())


# --- relay 2: httptools on asyncio protocols --------------------------------------------------


class _UpstreamConn(asyncio.Protocol):
    """One keep-alive upstream connection; parses one response at a time."""

    def __init__(self, pool: list[_UpstreamConn]) -> None:
        import httptools

        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._client: _ClientConn | None = None
        self._headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, client: _ClientConn, head: bytes) -> None:
        self._client = client
        self._headers = []
        assert self.transport is not None
        self.transport.write(head)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        assert self._client is not None
        status = self._parser.get_status_code()
        self._client.write(b"HTTP/1.1 %d OK\r\n" % status + b"".join(self._headers) + b"\r\n")

    def on_body(self, body: bytes) -> None:
        assert self._client is not None
        self._client.write(body)

    def on_message_complete(self) -> None:
        client, self._client = self._client, None
        self._pool.append(self)
        assert client is not None
        client.done()


class _ClientConn(asyncio.Protocol):
    def __init__(self, relay: _Relay) -> None:
        import httptools

        self._relay = relay
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_begin(self) -> None:
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append(name + b": " + value + b"\r\n")

    def on_message_complete(self) -> None:
        head = (
            self._parser.get_method()
            + b" "
            + self._url
            + b" HTTP/1.1\r\n"
            + b"".join(self._headers)
            + b"\r\n"
        )
        asyncio.get_running_loop().create_task(self._relay.forward(self, head))

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def done(self) -> None:
        pass


class _Relay:
    def __init__(self, upstream: int) -> None:
        self._upstream = upstream
        self._pool: list[_UpstreamConn] = []

    async def forward(self, client: _ClientConn, head: bytes) -> None:
        if self._pool:
            conn = self._pool.pop()
        else:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(
                lambda: _UpstreamConn(self._pool), "127.0.0.1", self._upstream
            )
        conn.send(client, head)


def run_httptools(port: int, upstream: int) -> None:
    async def main() -> None:
        relay = _Relay(upstream)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: _ClientConn(relay), "127.0.0.1", port)
        await srv.serve_forever()

    asyncio.run(main())


# --- the driver -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args])


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


#: What a boto3 GetObject sends besides Host (the values need not verify: nothing checks them).
_CLIENT_HEADERS = {
    "User-Agent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1 md/arch#x86_64 "
    "lang/python#3.11.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.0",
    "Accept-Encoding": "identity",
    "X-Amz-Date": "20261203T120000Z",
    "X-Amz-Content-SHA256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20261203/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64,
    "amz-sdk-invocation-id": "0b8f4c2e-5f6a-4c1e-9d1b-2f3a4b5c6d7e",
    "amz-sdk-request": "attempt=1",
}


async def _load(
    port: int, concurrency: int, count: int, cpu: Callable[[], float]
) -> tuple[float, float]:
    """CPU ms per request of the measured process, and the median latency in ms."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/bucket/some/key.json"
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=64)
    skip = ("User-Agent", "Accept", "Accept-Encoding")
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=skip) as session:
        for _ in range(50):  # warm the pools
            async with session.get(url, headers=_CLIENT_HEADERS) as r:
                await r.read()
        counter = itertools.count()

        async def worker() -> None:
            while next(counter) < count:
                started = time.perf_counter()
                async with session.get(url, headers=_CLIENT_HEADERS) as r:
                    body = await r.read()
                    if r.status != 200 or len(body) != len(BODY):
                        raise RuntimeError(f"bad answer {r.status}, {len(body)} bytes")
                latencies.append(time.perf_counter() - started)

        before = cpu()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        latencies.sort()
        return (cpu() - before) / count * 1000, latencies[len(latencies) // 2] * 1000


def _start_proxies(origin_port: int, baseline_src: str | None, workdir: Path) -> dict[str, Any]:
    """format-proxy in front of the origin (and the baseline checkout's, if given)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.backends import Credentials
    from tests.support.proxy import ProxyProcess

    creds = Credentials("AKIDBENCHFLOOR", "bench-floor-secret-key")
    variants: list[tuple[str, dict[str, str]]] = [("format-proxy", {})]
    if baseline_src:
        variants.append(("format-proxy (baseline)", {"PYTHONPATH": baseline_src}))
    return {
        name: ProxyProcess.start(
            workdir,
            upstream=f"http://127.0.0.1:{origin_port}",
            credentials=creds,
            env=env,
            name=f"proxy-{i}",
        )
        for i, (name, env) in enumerate(variants)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=2000, help="requests per case and run")
    parser.add_argument("--proxy", action="store_true", help="also measure format-proxy")
    parser.add_argument(
        "--baseline-src", help="with --proxy: also a format-proxy running this checkout's code"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, *ports = args.serve
        servers: dict[str, Callable[..., None]] = {
            "origin": run_origin,
            "aiohttp": run_aiohttp,
            "httptools": run_httptools,
        }
        servers[kind](*map(int, ports))
        return 0
    if args.quick:
        args.runs, args.count = 1, 300
    import psutil

    origin_port = _free_port()
    procs = [_spawn("--serve", "origin", str(origin_port))]
    relays: dict[str, Any] = {"direct": (origin_port, None)}
    proxies: dict[str, Any] = {}
    try:
        for kind in ("aiohttp", "httptools"):
            port = _free_port()
            proc = _spawn("--serve", kind, str(port), str(origin_port))
            procs.append(proc)
            relays[kind] = (port, psutil.Process(proc.pid))
        _wait_port(origin_port)
        for port, _ in relays.values():
            _wait_port(port)
        if args.proxy:
            workdir = Path(tempfile.mkdtemp(prefix="floor-"))
            proxies = _start_proxies(origin_port, args.baseline_src, workdir)
            for name, proxy in proxies.items():
                relays[name] = (proxy.port, psutil.Process(proxy.pid))
        cpu_ms: dict[tuple[str, int], list[float]] = {}
        p50_ms: dict[str, list[float]] = {}
        for run in range(args.runs):
            kinds = list(relays) if run % 2 == 0 else list(relays)[::-1]
            for kind in kinds:
                port, proc = relays[kind]

                def cpu(p: Any = proc) -> float:
                    if p is None:
                        return 0.0
                    t = p.cpu_times()
                    return float(t.user + t.system)

                for c in (1, 16):
                    ms, p50 = asyncio.run(_load(port, c, args.count, cpu))
                    cpu_ms.setdefault((kind, c), []).append(ms)
                    if c == 1:
                        p50_ms.setdefault(kind, []).append(p50)
        print(f"load average {os.getloadavg()}")
        direct = statistics.median(p50_ms["direct"])
        print("| relay | CPU ms/request c=1 | c=16 | p50 ms c=1 | added p50 ms | runs: c=1; c=16 |")
        print("| --- | --- | --- | --- | --- | --- |")
        for kind in relays:
            if kind == "direct":
                continue
            one, sixteen = cpu_ms[(kind, 1)], cpu_ms[(kind, 16)]
            p50 = statistics.median(p50_ms[kind])
            runs = (
                ", ".join(f"{v:.3f}" for v in one) + "; " + ", ".join(f"{v:.3f}" for v in sixteen)
            )
            print(
                f"| {kind} | {statistics.median(one):.3f} | {statistics.median(sixteen):.3f} "
                f"| {p50:.3f} | {p50 - direct:+.3f} | {runs} |"
            )
        print(f"direct p50 at c=1: {direct:.3f} ms")
    finally:
        for proxy in proxies.values():
            proxy.process.stop(grace=2.0)
        for proc in procs:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
