"""Request targets shaped to slip past a route, end to end on both backends.

Each shape names an object under the ``orders`` route in an escaped, folded or otherwise
awkward spelling. Whatever the spelling, a write with a body that is not a document must either
be refused outright (400, nothing stored) or reach the route's validation (400
``InvalidDocument``, nothing stored), and a v2 read of a stored XML document must either be
refused or come back translated — never the stored bytes untranslated. What is stored is
checked by listing the backend directly. Each shape runs through a proxy forwarding path style
and one forwarding virtual-hosted style.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.datapath.orders import order, orders_route, xml_bytes
from tests.support.backends import Backend
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import Response, send

NOT_A_DOCUMENT = b"plain text, not a document"
REFUSALS = {"InvalidBucketName", "InvalidURI", "InvalidArgument"}

# A shape turns (bucket, key, proxy port) into (Host header, request path). ``key`` always
# starts with "orders/" (the route's prefix).
Shape = Callable[[str, str, int], tuple[str, str]]


def _path(fmt: str) -> Shape:
    def shape(bucket: str, key: str, port: int) -> tuple[str, str]:
        rest = key.removeprefix("orders/")
        return f"127.0.0.1:{port}", fmt.format(b=bucket, rest=rest)

    return shape


def _vhost(host_fmt: str, path_fmt: str) -> Shape:
    def shape(bucket: str, key: str, port: int) -> tuple[str, str]:
        rest = key.removeprefix("orders/")
        return host_fmt.format(b=bucket, port=port), path_fmt.format(rest=rest)

    return shape


SHAPES: dict[str, Shape] = {
    "lf-after-bucket": _path("/{b}%0A/orders/{rest}"),
    "cr-after-bucket": _path("/{b}%0D/orders/{rest}"),
    "tab-after-bucket": _path("/{b}%09/orders/{rest}"),
    "nul-after-bucket": _path("/{b}%00/orders/{rest}"),
    "lf-lower-after-bucket": _path("/{b}%0a/orders/{rest}"),
    "double-slash": _path("/{b}//orders/{rest}"),
    "dot-segment": _path("/{b}/./orders/{rest}"),
    "dot-dot-segment": _path("/{b}/x/../orders/{rest}"),
    "escaped-dot-segment": _path("/{b}/%2E/orders/{rest}"),
    "escaped-leading-slash": _path("/{b}/%2Forders/{rest}"),
    "slash-in-bucket": _path("/{b}%2Forders/{rest}"),
    "slash-in-bucket-lower": _path("/{b}%2forders/{rest}"),
    "escaped-slash-in-key": _path("/{b}/orders%2F{rest}"),
    "escaped-slash-in-key-lower": _path("/{b}/orders%2f{rest}"),
    "escaped-letter-in-key": _path("/{b}/%6Frders/{rest}"),
    "escaped-letter-lower": _path("/{b}/%6frders/{rest}"),
    # The key's first letter after the prefix as an escape (like "%41" for "A").
    "escaped-letter-after-prefix": lambda b, k, port: (
        f"127.0.0.1:{port}",
        f"/{b}/orders/%{ord(k[7]):02X}{k[8:]}",
    ),
    # "%72" is "r", the bucket's first letter (route buckets are named "route-...").
    "escaped-letter-in-bucket": lambda b, k, port: (
        f"127.0.0.1:{port}",
        f"/%72{b.removeprefix('r')}/{k}",
    ),
    "vhost-trailing-dot": _vhost("{b}.localhost.:{port}", "/orders/{rest}"),
    "vhost-double-slash": _vhost("{b}.localhost:{port}", "//orders/{rest}"),
    "vhost-lf-in-host-bucket": _vhost("{b}%0a.localhost:{port}", "/orders/{rest}"),
    "vhost-upper-case": _vhost("{b}.LOCALHOST:{port}", "/orders/{rest}"),
}


def _target(name: str, bucket: str, key: str, port: int) -> tuple[str, str]:
    assert bucket.startswith("route-") and key.startswith("orders/")
    return SHAPES[name](bucket, key, port)


@pytest.fixture(scope="module")
def route_bucket(backend: Backend) -> str:
    return backend.new_bucket("route")


@pytest.fixture(scope="module", params=["path", "virtual"])
def proxy(
    request: pytest.FixtureRequest, backend: Backend, route_bucket: str, proxy_factory: Any
) -> Iterator[ProxyProcess]:
    """A v2 proxy on the orders route, forwarding in the given addressing style (virtual
    through ``localhost``, which the proxy resolves to loopback)."""
    style = request.param
    upstream = backend.endpoint
    if style == "virtual":
        upstream = f"http://localhost:{urlsplit(backend.endpoint).port}"
    p = proxy_factory(
        backend,
        upstream=upstream,
        upstream_options={"addressing_style": style},
        app_version="v2",
        routes=[orders_route(route_bucket)],
        name=f"bypass-{style}-{backend.name}",
    )
    yield p
    p.stop()


_counter = iter(range(1, 10**6))


def _request(proxy: ProxyProcess, method: str, host: str, path: str, **kw: Any) -> Response:
    return send(proxy.endpoint, method, path, headers={"Host": host}, **kw)


def _code(resp: Response) -> str:
    return resp.error()["Code"] if resp.body.startswith(b"<?xml") else ""


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_write_is_refused_or_validated(
    proxy: ProxyProcess, backend: Backend, route_bucket: str, shape: str
) -> None:
    key = f"orders/bypass-{shape}-{next(_counter)}"
    before = set(backend.keys(route_bucket))
    host, path = _target(shape, route_bucket, key, proxy.port)
    resp = _request(proxy, "PUT", host, path, body=NOT_A_DOCUMENT)
    code = _code(resp)
    assert resp.status == 400, (resp.status, resp.body[:300])
    assert code in REFUSALS or code.startswith("InvalidDocument."), code
    # Nothing at all was stored in the route's bucket, under any spelling of the key.
    assert set(backend.keys(route_bucket)) == before


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_read_is_refused_or_translated(
    proxy: ProxyProcess, backend: Backend, route_bucket: str, shape: str
) -> None:
    key = f"orders/read-{shape}-{next(_counter)}"
    backend.direct.put_object(
        Bucket=route_bucket,
        Key=key,
        Body=xml_bytes(order(7)),
        ContentType="application/xml",
        Metadata={"format": "xml"},
    )
    host, path = _target(shape, route_bucket, key, proxy.port)
    resp = _request(proxy, "GET", host, path)
    if resp.status == 400:
        assert _code(resp) in REFUSALS, resp.body[:300]
        return
    # Not refused: then it is the route's answer — the v2 view of the document — or an error
    # of the backend's for a spelling it does not fold (SeaweedFS rejects the signature of a
    # path with "%2F" in the key), never the stored XML.
    assert not resp.body.lstrip().startswith(b"<order") and b"urn:example:shop" not in resp.body
    if resp.status == 200:
        assert resp.header("Content-Type") == "application/json"
        assert json.loads(resp.body)["id"] == order(7)["id"]
    else:
        assert resp.status in (403, 404), (resp.status, resp.body[:300])
        assert resp.error()["Code"] in ("NoSuchKey", "SignatureDoesNotMatch")
