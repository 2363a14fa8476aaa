"""End to end on SeaweedFS: documents that cost the engine seconds of CPU do not stall the
proxy. They fail with ``too_slow`` within the budget, fail fast once remembered, and the proxy
keeps answering passthrough requests and health checks meanwhile; SIGTERM still ends it."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import psutil
import pytest

from tests.reliability.hostile import (
    HOSTILE_XML,
    MANY_KEYS_JSON,
    SLOW_XML,
    Client,
    measure,
    schemaless_route,
    slower_xml,
)
from tests.support.backends import Backend

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUDGET = 1.0
MARGIN = 2.0


@pytest.fixture
def bucket(seaweedfs_backend: Backend) -> str:
    return seaweedfs_backend.new_bucket("isolation")


def store(backend: Backend, bucket: str, key: str, body: bytes) -> None:
    backend.direct.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/xml", Metadata={"format": "xml"}
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def start(start_proxy: Any, backend: Backend, bucket: str, **kwargs: Any) -> Any:
    limits = {"translate_timeout": BUDGET, **kwargs.pop("limits", {})}
    return start_proxy(
        backend, app_version="v2", routes=[schemaless_route(bucket)], limits=limits, **kwargs
    )


def test_a_slow_document_fails_too_slow_within_the_budget_then_fails_fast(
    seaweedfs_backend: Backend, bucket: str, start_proxy: Any
):
    proxy = start(start_proxy, seaweedfs_backend, bucket)
    store(seaweedfs_backend, bucket, "docs/slow", SLOW_XML)
    client = Client(proxy.endpoint)
    first = client.request("GET", f"/{bucket}/docs/slow")
    assert first.status == 422, first.body[:300]
    assert b"<Code>UntranslatableObject.too_slow</Code>" in first.body
    assert first.seconds < BUDGET + MARGIN
    second = client.request("GET", f"/{bucket}/docs/slow")
    assert second.status == 422 and b"UntranslatableObject.too_slow" in second.body
    assert second.seconds < 0.25, "the second read translated again"

    # A v2 pod writing a document that is too slow to translate: 400, nothing stored.
    put = client.request(
        "PUT",
        f"/{bucket}/docs/written",
        body=MANY_KEYS_JSON,
        headers={"Content-Type": "application/json"},
    )
    assert put.status == 400 and b"<Code>InvalidDocument.too_slow</Code>" in put.body
    assert put.seconds < BUDGET + MARGIN + 1.0  # plus the upload of 19 MB
    assert not seaweedfs_backend.exists(bucket, "docs/written")

    samples = proxy.scrape()
    get_fail = dict(route="docs", direction="xml_to_json", reason="too_slow")
    assert samples.value("format_proxy_translation_failures_total", **get_fail) == 2
    put_fail = dict(route="docs", direction="json_to_xml", reason="too_slow")
    assert samples.value("format_proxy_translation_failures_total", **put_fail) == 1
    logged = proxy.wait_for_log(
        lambda line: line.get("event") == "translation_failed" and line.get("reason") == "too_slow",
        count=3,
    )
    assert len(logged) == 3
    assert proxy.wait_for_log(lambda line: line.get("event") == "worker_killed", count=2)
    client.close()


def test_hostile_documents_do_not_stall_passthrough_or_health(
    seaweedfs_backend: Backend, bucket: str, start_proxy: Any
):
    proxy = start(start_proxy, seaweedfs_backend, bucket)
    small = b"s" * 4096
    seaweedfs_backend.direct.put_object(Bucket=bucket, Key="plain/small", Body=small)
    # Distinct stored objects (trailing blanks: the same document, a new ETag), so nothing is
    # answered from memory: every GET costs a worker. Stored up front, so the only load while
    # measuring is the proxy's.
    copies = 10
    for name, body in HOSTILE_XML.items():
        for n in range(copies):
            store(seaweedfs_backend, bucket, f"docs/{name}-{n}", body + b" " * n)
    stop = threading.Event()
    outcomes: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def hostile(names: list[str]) -> None:
        client = Client(proxy.endpoint)
        n = 0
        try:
            while not stop.is_set():
                name = names[n % len(names)]
                key = f"docs/{name}-{(n // len(names)) % copies}"
                got = client.request("GET", f"/{bucket}/{key}")
                outcomes.append((name, got.status))
                n += 1
                # Paced: the load is the workers' CPU, not a flood of requests (a flood of
                # any requests slows a proxy down, isolated or not).
                time.sleep(max(0.0, 0.5 - got.seconds))
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    path = f"/{bucket}/plain/small"
    quiet = ctx.Process(target=measure, args=(proxy.endpoint, proxy.metrics_url, path, 3, results))
    quiet.start()
    baseline, _, _ = results.get(timeout=60)  # the same probe on a quiet proxy, for reference
    quiet.join(timeout=10)
    names = list(HOSTILE_XML)
    threads = [threading.Thread(target=hostile, args=(names[i::4],), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the workers are busy
    # Two windows at most: a stall caused by the proxy shows in every window (each hostile
    # document would freeze it for seconds); a spike from another process on a busy machine
    # does not repeat. The last window is the one asserted on.
    windows = []
    try:
        for _ in range(2):
            probe = ctx.Process(
                target=measure, args=(proxy.endpoint, proxy.metrics_url, path, 12, results)
            )
            probe.start()
            windows.append(results.get(timeout=60))
            probe.join(timeout=10)
            gets, health_checks, _ = windows[-1]
            if percentile(gets, 99) < 0.050 and max(health_checks) < 0.100:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    passthrough, checks, _ = windows[-1]
    failures = [f for window in windows for f in window[2]]
    assert not failures, failures
    assert not errors, errors
    slow = {name for name, status in outcomes if status == 422}
    assert "slow" in slow, outcomes
    assert any(status == 200 for _, status in outcomes), outcomes
    assert len(passthrough) > 200
    print(
        f"hostile GETs {len(outcomes)}, window {len(windows)}, "
        f"passthrough GETs {len(passthrough)}: "
        f"p50 {percentile(passthrough, 50) * 1000:.1f} ms, "
        f"p99 {percentile(passthrough, 99) * 1000:.1f} ms; "
        f"healthz max {max(checks) * 1000:.1f} ms; quiet proxy: p50 "
        f"{percentile(baseline, 50) * 1000:.1f} ms, p99 {percentile(baseline, 99) * 1000:.1f} ms"
    )
    assert percentile(passthrough, 99) < 0.050, sorted(passthrough)[-10:]
    assert max(checks) < 0.100, sorted(checks)[-5:]


def all_gone(processes: list[psutil.Process], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = []
        for p in processes:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                continue
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_ends_the_proxy_within_the_grace_period_while_workers_are_busy(
    seaweedfs_backend: Backend, bucket: str, start_proxy: Any
):
    grace = 3.0
    proxy = start(
        start_proxy,
        seaweedfs_backend,
        bucket,
        limits={"translate_timeout": 60},
        shutdown_grace_seconds=grace,
    )
    # Three times the slow document: still being translated well after the pause below on a
    # fast machine.
    store(seaweedfs_backend, bucket, "docs/slow", slower_xml())
    results: list[BaseException | int] = []

    def read() -> None:
        client = Client(proxy.endpoint)
        try:
            results.append(client.request("GET", f"/{bucket}/docs/slow").status)
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=read, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.5)  # both reads are being translated
    everything = list(proxy.psutil().children(recursive=True))
    for p in everything:
        p.cpu_percent(None)  # all measured over the same 0.2 s
    time.sleep(0.2)
    busy = [p for p in everything if p.cpu_percent(None) > 20]
    assert busy, "no worker was busy"
    started = time.monotonic()
    code = proxy.terminate(timeout=grace + 10)
    took = time.monotonic() - started
    assert took < grace + 2.0, took
    assert code == 0
    assert all_gone(everything, within=5.0), "a worker outlived the proxy"
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 2  # every client got an answer or a closed connection
