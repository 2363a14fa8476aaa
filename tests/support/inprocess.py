"""In-process proxies for relay and app tests: a scripted fake upstream (a real aiohttp server on
loopback) and a proxy instance (:class:`proxy.app.service.ProxyService`) pointed at it, in the
test's own event loop. The fixtures (``fake_upstream``, ``start_inprocess_proxy``) are registered
in tests/conftest.py; ``start_proxy`` there is always a real proxy process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from proxy.app.service import ProxyService
from proxy.config import load_config
from proxy.relay.credentials import StaticCredentials

ACCESS_KEY = "AKIDPROXYEXAMPLE"
SECRET_KEY = "proxy-secret-key/EXAMPLE+123"
REGION = "eu-west-3"


@dataclass
class Seen:
    """One request as the fake upstream received it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes | None = None
    body_error: str | None = None

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


Responder = Callable[[web.BaseRequest, Seen], Awaitable[web.StreamResponse]]


async def _ok(_request: web.BaseRequest, _seen: Seen) -> web.StreamResponse:
    return web.Response(status=200, headers={"x-amz-request-id": "UPSTREAMREQ1"})


@dataclass
class FakeUpstream:
    server: Any = None
    seen: list[Seen] = field(default_factory=list)
    respond: Responder = _ok
    read_body: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = [(k.decode("latin-1"), v.decode("utf-8")) for k, v in request.raw_headers]
        seen = Seen(request.method, request.raw_path, headers)
        self.seen.append(seen)
        if self.read_body:
            try:
                seen.body = await request.content.read()
            except Exception as exc:  # the proxy aborted the body
                seen.body_error = repr(exc)
                raise
        return await self.respond(request, seen)


@pytest.fixture
async def fake_upstream(aiohttp_raw_server: Any) -> FakeUpstream:
    fake = FakeUpstream()
    fake.server = await aiohttp_raw_server(fake.handle, auto_decompress=False)
    return fake


@pytest.fixture
async def start_inprocess_proxy(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[ProxyService]]]:
    services: list[ProxyService] = []

    async def start(endpoint: str, **config: Any) -> ProxyService:
        doc = {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "upstream": {"endpoint": endpoint, "region": REGION, **config.pop("upstream", {})},
            **config,
        }
        import yaml

        config_file = tmp_path / f"proxy-{len(services)}.yaml"
        config_file.write_text(yaml.safe_dump(doc))
        cfg = load_config(str(config_file), environ={})
        service = ProxyService(cfg, credentials=StaticCredentials(ACCESS_KEY, SECRET_KEY))
        await service.start()
        services.append(service)
        return service

    yield start
    for s in services:
        await s.stop()


def data_url(service: ProxyService) -> str:
    assert service.addresses is not None
    host, port = service.addresses.data
    return f"http://{host}:{port}"


def metrics_url(service: ProxyService) -> str:
    assert service.addresses is not None
    host, port = service.addresses.metrics
    return f"http://{host}:{port}"


# --- an independent SigV4 verifier (no botocore) ------------------------------------------


def _uri_encode(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="-_.~")


def verify_sigv4(seen: Seen, secret: str = SECRET_KEY, region: str = REGION) -> list[str]:
    """Check the upstream request's SigV4 signature from first principles; return the signed
    header names. Raises AssertionError on any mismatch."""
    from urllib.parse import unquote

    auth = seen.header("Authorization")
    assert auth and auth.startswith("AWS4-HMAC-SHA256 "), auth
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    _access, day, reg, service, term = parts["Credential"].split("/")
    assert (reg, service, term) == (region, "s3", "aws4_request")
    signed = parts["SignedHeaders"].split(";")
    path, _, query = seen.raw_path.partition("?")
    pairs = []
    for item in query.split("&") if query else []:
        k, _, v = item.partition("=")
        pairs.append((_uri_encode(unquote(k)), _uri_encode(unquote(v))))
    cq = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    values: dict[str, list[str]] = {}
    for k, v in seen.headers:
        values.setdefault(k.lower(), []).append(" ".join(v.split()))
    ch = "".join(f"{n}:{','.join(values[n])}\n" for n in signed)
    payload = seen.header("x-amz-content-sha256")
    assert payload
    creq = "\n".join([seen.method, path, cq, ch, ";".join(signed), payload])
    amz_date = seen.header("x-amz-date")
    assert amz_date and amz_date.startswith(day)
    sts = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            f"{day}/{region}/s3/aws4_request",
            hashlib.sha256(creq.encode()).hexdigest(),
        ]
    )

    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = h(h(h(h(f"AWS4{secret}".encode(), day), region), "s3"), "aws4_request")
    assert hmac.new(k, sts.encode(), hashlib.sha256).hexdigest() == parts["Signature"], creq
    return signed


async def raw_exchange(
    host: str,
    port: int,
    head: bytes,
    body_parts: list[bytes],
    *,
    close_write: bool = False,
    read_timeout: float = 10.0,
) -> bytes:
    """Send a hand-made HTTP request; return everything the server answers until it closes
    the connection or goes quiet."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head)
    await writer.drain()
    for part in body_parts:
        writer.write(part)
        await writer.drain()
    if close_write:
        writer.write_eof()
    out = bytearray()
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    writer.close()
    return bytes(out)


def spy_on_lean_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods of the requests the lean HTTP/1.1 path serves from now on (in this process),
    in order."""
    from proxy.relay import fastexchange

    seen: list[str] = []
    real = fastexchange.FastExchange.start

    def spy(self: fastexchange.FastExchange, body: bytes) -> None:
        seen.append(self._plan.method)
        real(self, body)

    monkeypatch.setattr(fastexchange.FastExchange, "start", spy)
    return seen
