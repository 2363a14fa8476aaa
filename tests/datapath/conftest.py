"""In-process fixtures for data-path unit tests: the proxy (ProxyService with the translating
handler) in front of the fake S3 of :mod:`tests.datapath.fakes`, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import yaml

from proxy.app.service import ProxyService
from proxy.config import load_config
from proxy.datapath import TranslatingHandler
from proxy.datapath.observe import RecordingObserver
from proxy.datapath.routes import CompiledRoute
from proxy.relay.credentials import StaticCredentials
from tests.datapath.fakes import FakeS3, FlatMapping

BUCKET = "shop"


@dataclass
class Proxied:
    service: ProxyService
    handler: TranslatingHandler
    observer: RecordingObserver
    mapping: FlatMapping
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        assert self.service.addresses is not None
        host, port = self.service.addresses.data
        return f"http://{host}:{port}"

    def request(self, method: str, key: str, **kwargs: Any) -> Any:
        """``session.request`` for ``/shop/<key>`` (no client auth: the proxy re-signs)."""
        return self.session.request(method, f"{self.url}/{BUCKET}/{key}", **kwargs)


@pytest.fixture
async def fake_s3(aiohttp_raw_server: Any) -> FakeS3:
    fake = FakeS3()
    fake.server = await aiohttp_raw_server(fake.handle, auto_decompress=False)
    return fake


def route(**overrides: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "name": "docs",
        "bucket": BUCKET,
        "prefix": "docs/",
        "formats": {"v1": "xml", "v2": "json"},
        "store": "xml",
        "mapping": {},
        "on_error": "fail",
    }
    r.update(overrides)
    return r


@pytest.fixture
async def make_proxy(
    fake_s3: FakeS3, tmp_path: Any
) -> AsyncIterator[Callable[..., Awaitable[Proxied]]]:
    started: list[Proxied] = []

    async def start(
        *, app_version: str = "v2", routes: list[dict[str, Any]] | None = None, **config: Any
    ) -> Proxied:
        doc = {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "upstream": {"endpoint": fake_s3.url, "region": "us-east-1"},
            "app_version": app_version,
            "routes": routes if routes is not None else [route()],
            "spool_dir": str(tmp_path / "spool"),
            **config,
        }
        config_file = tmp_path / f"proxy-{len(started)}.yaml"
        config_file.write_text(yaml.safe_dump(doc))
        cfg = load_config(str(config_file), environ={})
        mapping = FlatMapping()
        compiled = tuple(CompiledRoute(r, mapping) for r in cfg.routes)
        observer = RecordingObserver()
        # The fake mapping lives in this process: document work runs in threads here.
        handler = TranslatingHandler(cfg, compiled, observer, isolate=False, workers=2)
        service = ProxyService(
            cfg, credentials=StaticCredentials("AK", "SK"), route_handler=handler
        )
        await service.start()
        session = aiohttp.ClientSession(auto_decompress=False)
        p = Proxied(service, handler, observer, mapping, session)
        started.append(p)
        return p

    yield start
    for p in started:
        await p.session.close()
        await p.service.stop()
        p.handler.close()
