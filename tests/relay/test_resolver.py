"""The upstream resolver: ``*.localhost`` is loopback, every other name goes to the system."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from proxy.relay.upstream import LocalhostResolver


class Recording(AbstractResolver):
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host, host="10.0.0.1", port=port, family=family, proto=6, flags=0
            )
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "name", ["shop-data.localhost", "a.b.LocalHost", "bucket.localhost.", "localhost."]
)
async def test_localhost_names_resolve_as_localhost(name: str) -> None:
    inner = Recording()
    found = await LocalhostResolver(inner).resolve(name, 9000)
    assert inner.asked == ["localhost"]
    # The original name stays the hostname (TLS server name, Host header are untouched).
    assert [(r["hostname"], r["host"], r["port"]) for r in found] == [(name, "10.0.0.1", 9000)]


@pytest.mark.parametrize(
    "name", ["s3.amazonaws.com", "localhost.example.com", "notlocalhost", "127.0.0.1"]
)
async def test_other_names_go_to_the_system_resolver(name: str) -> None:
    inner = Recording()
    await LocalhostResolver(inner).resolve(name, 443)
    assert inner.asked == [name]


async def test_real_resolution_of_a_bucket_subdomain() -> None:
    resolver = LocalhostResolver()
    try:
        found = await resolver.resolve("my-bucket.localhost", 80)
    finally:
        await resolver.close()
    assert found and all(r["host"] in ("127.0.0.1", "::1") for r in found)
