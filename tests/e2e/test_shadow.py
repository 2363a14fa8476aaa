"""Shadow mode end to end: a route in ``mode: shadow`` answers exactly like passthrough, and
its background checks are counted, explained and bounded.

Real processes on both backends (moto with SigV4 enforced, SeaweedFS): a ``format-proxy serve``
with the ``orders`` route in shadow mode, a second one with no routes at all (plain
passthrough), boto3 clients in both checksum modes, and the backend read directly.
"""

from __future__ import annotations

import base64
import hashlib
import statistics
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.datapath.orders import big_order, json_bytes, order, orders_route, xml_bytes
from tests.support import awschunked
from tests.support.backends import Backend
from tests.support.clients import CHECKSUM_MODES, boto3_client
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import send

MiB = 1024 * 1024
#: Per-request headers that differ between any two responses.
_VOLATILE = {"date", "x-amz-request-id", "x-amzn-requestid", "x-amz-id-2", "x-amz-version-id"}
_CHECKSUM_FIELDS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256")


def _shadow_route(bucket: str, **shadow: Any) -> dict[str, Any]:
    return orders_route(bucket, mode="shadow", shadow={"sample": 1.0, **shadow})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _headers(response: dict[str, Any], *also: str) -> dict[str, str]:
    got = response["ResponseMetadata"]["HTTPHeaders"]
    return {k: v for k, v in got.items() if k not in _VOLATILE and k not in also}


def _settled(proxy: ProxyProcess, total: int, timeout: float = 60.0) -> Any:
    """Wait until every body has its outcome; the scrape."""
    deadline = time.monotonic() + timeout
    while True:
        s = proxy.scrape()
        if s.value("format_proxy_shadow_checks_total", route="orders") >= total:
            return s
        assert time.monotonic() < deadline, f"outcomes {s.find('format_proxy_shadow_checks_total')}"
        time.sleep(0.1)


def _outcomes(s: Any) -> dict[tuple[str, str], float]:
    return {
        (lab["direction"], lab["outcome"]): v
        for lab, v in s.find("format_proxy_shadow_checks_total", route="orders")
        if v
    }


@pytest.fixture
def pair(backend: Backend, bucket: str, start_proxy: Any) -> tuple[ProxyProcess, ProxyProcess]:
    """(shadow proxy, passthrough proxy) on the same backend."""
    shadow = start_proxy(backend, app_version="v1", routes=[_shadow_route(bucket)], name="shadow")
    plain = start_proxy(backend, name="passthrough")
    return shadow, plain


def test_shadow_is_passthrough_and_every_body_is_counted(
    backend: Backend, bucket: str, pair: tuple[ProxyProcess, ProxyProcess]
) -> None:
    shadow, plain = pair
    direct = backend.direct
    # Stored by a legacy writer straight into the backend: XML and (already migrated) JSON.
    xml_keys = [f"orders/x{i}.xml" for i in range(4)]
    json_keys = [f"orders/j{i}.json" for i in range(3)]
    for i, key in enumerate(xml_keys):
        direct.put_object(Bucket=bucket, Key=key, Body=xml_bytes(order(i, 4)))
    for i, key in enumerate(json_keys):
        direct.put_object(Bucket=bucket, Key=key, Body=json_bytes(order(100 + i, 2)))

    gets = 0
    for mode in CHECKSUM_MODES:
        via_shadow, via_plain = boto3_client(shadow, checksum_mode=mode), boto3_client(plain)
        for key in [*xml_keys, *json_keys]:
            a = via_shadow.get_object(Bucket=bucket, Key=key)
            body = a["Body"].read()
            b = via_plain.get_object(Bucket=bucket, Key=key)
            assert _sha(body) == _sha(b["Body"].read()) == backend.sha256(bucket, key)
            assert _headers(a) == _headers(b), key
            gets += 1

    puts = 0
    for n, mode in enumerate(CHECKSUM_MODES):
        via_shadow = boto3_client(shadow, checksum_mode=mode)
        via_plain = boto3_client(plain, checksum_mode=mode)
        for i in range(3):
            sent = xml_bytes(order(200 + 10 * n + i, 3))
            a = via_shadow.put_object(Bucket=bucket, Key=f"orders/p{n}{i}.xml", Body=sent)
            b = via_plain.put_object(Bucket=bucket, Key=f"orders/q{n}{i}.xml", Body=sent)
            puts += 1
            # Two writes of the same bytes: the same answer but for the time of each write.
            assert _headers(a, "last-modified") == _headers(b, "last-modified")
            assert backend.read(bucket, f"orders/p{n}{i}.xml") == sent
            heads = [
                direct.head_object(Bucket=bucket, Key=k, ChecksumMode="ENABLED")
                for k in (f"orders/p{n}{i}.xml", f"orders/q{n}{i}.xml")
            ]
            stored = [{f: h.get(f) for f in _CHECKSUM_FIELDS} for h in heads]
            assert stored[0] == stored[1]
            if mode == "default":  # boto3's CRC32 reached the backend, and came back
                want = base64.b64encode(zlib.crc32(sent).to_bytes(4, "big")).decode()
                assert stored[0]["ChecksumCRC32"] == want
                assert _headers(a)["x-amz-checksum-crc32"] == want
            assert heads[0]["ETag"] == heads[1]["ETag"] == f'"{hashlib.md5(sent).hexdigest()}"'

    s = _settled(shadow, gets + puts)
    got = _outcomes(s)
    # Every GET of an XML object and every PUT (the v1 writer's XML) is an XML → JSON check.
    assert got == {
        ("xml_to_json", "ok"): len(xml_keys) * len(CHECKSUM_MODES) + puts,
        ("json_to_xml", "ok"): len(json_keys) * len(CHECKSUM_MODES),
    }
    assert s.value("format_proxy_shadow_failures_total") == 0
    assert s.value("format_proxy_shadow_skipped_total") == 0
    # Nothing was translated: the route never changed a byte.
    assert s.value("format_proxy_translations_total") == 0
    assert not [line for line in shadow.log_lines() if line.get("event") == "shadow_check_failed"]


@pytest.mark.parametrize("items", [40, 600], ids=["read-ahead", "streamed"])
@pytest.mark.parametrize("variant", awschunked.VARIANTS)
def test_aws_chunked_put_is_stored_decoded_and_its_decoded_body_checked(
    backend: Backend,
    bucket: str,
    pair: tuple[ProxyProcess, ProxyProcess],
    variant: str,
    items: int,
) -> None:
    """Hand-made aws-chunked framings (small chunks, so a document spans several; the trailer
    variants are spooled), small enough to be read ahead and large enough to be streamed
    upstream: the backend stores the decoded bytes, and the check sees them."""
    shadow, _ = pair
    doc = xml_bytes(order(300, items))
    key = f"orders/chunked-{variant}-{items}.xml"
    up = awschunked.build(
        f"{shadow.endpoint}/{bucket}/{key}", doc, variant=variant, chunk_size=1024
    )
    resp = send(shadow.endpoint, "PUT", f"/{bucket}/{key}", headers=up.headers, body=up.body)
    assert resp.status == 200, resp.body
    assert backend.read(bucket, key) == doc
    s = _settled(shadow, 1)
    assert _outcomes(s) == {("xml_to_json", "ok"): 1}


def test_broken_document_fails_its_check_and_is_still_served(
    backend: Backend, bucket: str, pair: tuple[ProxyProcess, ProxyProcess]
) -> None:
    shadow, _ = pair
    bad = xml_bytes(order(7, 2)).replace(b"<placedAt>", b"<legacyFlag>yes</legacyFlag><placedAt>")
    backend.direct.put_object(Bucket=bucket, Key="orders/bad.xml", Body=bad)
    client = boto3_client(shadow)
    for _ in range(3):
        got = client.get_object(Bucket=bucket, Key="orders/bad.xml")["Body"].read()
        assert got == bad
    # A PUT the mapping cannot take (JSON from a writer that declares XML) is stored as sent.
    sent = json_bytes(order(8, 1))
    client.put_object(Bucket=bucket, Key="orders/wrong.xml", Body=sent)
    assert backend.read(bucket, "orders/wrong.xml") == sent

    s = _settled(shadow, 4)
    assert _outcomes(s) == {("xml_to_json", "failed"): 4}
    failures = {
        lab["reason"]: v
        for lab, v in s.find("format_proxy_shadow_failures_total", route="orders")
        if v
    }
    assert failures == {"unknown_element": 3, "not_well_formed": 1}
    lines = [line for line in shadow.log_lines() if line.get("event") == "shadow_check_failed"]
    # Rate-limited per route and reason: the first of each is written, the repeats are not.
    assert sorted((line["key"], line["reason"]) for line in lines) == [
        ("orders/bad.xml", "unknown_element"),
        ("orders/wrong.xml", "not_well_formed"),
    ]
    first = next(line for line in lines if line["reason"] == "unknown_element")
    assert "legacyFlag" in first["location"]
    assert first["operation"] == "get" and first["direction"] == "xml_to_json"
    assert all("<order" not in str(line) for line in lines)  # never the document's bytes


def test_saturated_shadow_drops_and_never_slows_requests(
    backend: Backend, bucket: str, start_proxy: Any
) -> None:
    """One checker, a queue of one, checks far slower than the GETs: requests keep their
    latency, and every body that found no room is counted ``skipped``/``queue_full``."""
    route = _shadow_route(bucket, max_bytes="8MiB")
    shadow = start_proxy(
        backend,
        app_version="v1",
        routes=[route],
        limits={"translate_workers": 1},
        extra_config={"shadow": {"queue": 1, "concurrency": 1, "max_buffered_bytes": "32MiB"}},
        name="shadow-saturated",
    )
    plain = start_proxy(backend, name="passthrough-saturated")
    body = xml_bytes(big_order(1, 3 * MiB))
    backend.direct.put_object(
        Bucket=bucket, Key="orders/big.xml", Body=body, ContentType="application/xml"
    )
    want = _sha(body)

    def timed(proxy: ProxyProcess, n: int) -> list[float]:
        client = boto3_client(proxy)
        seconds = []
        for _ in range(n):
            started = time.perf_counter()
            data = client.get_object(Bucket=bucket, Key="orders/big.xml")["Body"].read()
            seconds.append(time.perf_counter() - started)
            assert _sha(data) == want
        return seconds

    timed(plain, 3)  # warm both connections
    baseline = timed(plain, 10)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: timed(shadow, 10), range(4)))
    latencies = [t for run in runs for t in run]
    total = len(latencies)
    s = _settled(shadow, total)
    skipped = {
        lab["reason"]: v
        for lab, v in s.find("format_proxy_shadow_skipped_total", route="orders")
        if v
    }
    got = _outcomes(s)
    assert skipped.get("queue_full", 0) >= 1, (skipped, got)
    assert set(skipped) <= {"queue_full"}, skipped
    checked = got.get(("xml_to_json", "ok"), 0)
    assert checked >= 1
    assert checked + skipped["queue_full"] == total
    assert set(got) <= {("xml_to_json", "ok"), ("xml_to_json", "skipped")}
    # Four clients at once against one sequential baseline client: generous, but a request
    # that waited for a check (hundreds of ms each) would break it.
    assert statistics.median(latencies) < 4 * statistics.median(baseline) + 0.25, (
        statistics.median(latencies),
        statistics.median(baseline),
    )
    assert max(latencies) < 5.0

    # Copied bodies take the copy path (the others keep the zero-copy relay); passthrough
    # relays the same 3 MiB kernel-side.
    def relays(proxy: ProxyProcess) -> Counter[object]:
        return Counter(
            line.get("relay")
            for line in proxy.log_lines()
            if line.get("event") == "request" and line.get("operation") == "GetObject"
        )

    assert set(relays(plain)) == {"zero-copy"}
    shadow_relays = relays(shadow)
    assert set(shadow_relays) <= {None, "zero-copy"}
    assert shadow_relays[None] >= checked
