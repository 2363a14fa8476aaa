"""A mixed-load soak through a real proxy process with random network faults between it and
SeaweedFS (tests.support.faultrelay): passthrough PUT/GET of random sizes, ranged GETs,
deletes, and translated documents on the orders route, from a few worker threads that each own
their keys. At the end: no acknowledged write is lost, no 200 carried a short or wrong body, and
the proxy's RSS and open fds come back to near their baseline once the load stops.

``FORMAT_PROXY_SOAK_SECONDS`` sets the duration (default 60 s, also on CI)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.datapath.orders import order, orders_route, same_xml, xml_bytes
from tests.reliability.faults import Outcome, exchange, s3_error_code
from tests.support.backends import Backend
from tests.support.faultrelay import Fault, FaultRelay
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("FORMAT_PROXY_SOAK_SECONDS", "60"))
WORKERS = 8
KEYS_PER_WORKER = 4
KiB, MiB = 1024, 1024 * 1024
READ_TIMEOUT = 3.0
FAULT_PROBABILITY = 0.15
FAULTS = (
    Fault("reset", "response", after=0),
    Fault("reset", "response", after=48 * KiB),
    Fault("reset", "request", after=32 * KiB),
    Fault("stall", "response", after=16 * KiB, seconds=0.5),
    Fault("stall", "request", after=16 * KiB, seconds=0.5),
    Fault("stall", "response", after=0, seconds=READ_TIMEOUT + 1),
    Fault("drip", "response", after=0, rate=4 * MiB),
    Fault("close_after_headers", "response"),
)
#: Headroom over the idle baseline once the load has stopped.
RSS_MARGIN = 64 * MiB
FD_MARGIN = 16

#: What a key may hold: ("raw", seed, size), ("doc", number, items) or None (no object).
Content = tuple[str, int, int] | None


def raw_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def random_size(rng: random.Random) -> int:
    # Mostly small, some up to 2 MiB: 1 KiB .. 2 MiB, log-uniform.
    return int(2 ** rng.uniform(10, 21))


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, outcome: Outcome) -> None:
        with self.lock:
            self.requests[op] += 1
            self.outcomes[f"{op}:{outcome.kind}"] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


class Worker:
    """One client thread; only it writes its keys, so each key's history is sequential."""

    def __init__(self, n: int, proxy: ProxyProcess, raw_bucket: str, doc_bucket: str) -> None:
        self.rng = random.Random(1000 + n)
        self.proxy = proxy
        self.raw_keys = {f"/{raw_bucket}/w{n}/k{i}": {None} for i in range(KEYS_PER_WORKER)}
        self.doc_keys = {
            f"/{doc_bucket}/orders/w{n}-{i}.json": {None} for i in range(KEYS_PER_WORKER)
        }
        self.candidates: dict[str, set[Content]] = {**self.raw_keys, **self.doc_keys}
        self.seq = n * 1_000_000

    def run(self, deadline: float, tally: Tally) -> None:
        ops = (self.put_raw, self.get_raw, self.get_range, self.delete, self.put_doc, self.get_doc)
        weights = (3, 3, 2, 1, 2, 2)
        while time.monotonic() < deadline:
            op = self.rng.choices(ops, weights)[0]
            try:
                op(tally)
            except AssertionError as exc:
                tally.violation(f"{op.__name__}: {exc}")

    # --- writes ----------------------------------------------------------------------------

    def _write(self, tally: Tally, op: str, key: str, new: Content, body: bytes | None) -> None:
        method = "DELETE" if new is None else "PUT"
        outcome = exchange(self.proxy, method, key, body=body)
        tally.record(op, outcome)
        acked = outcome.broken is None and outcome.status in (200, 204)
        if acked:
            self.candidates[key] = {new}
            return
        # Not acknowledged: the backend may or may not have applied it, never in part.
        self.candidates[key].add(new)
        if outcome.broken is not None:
            assert outcome.status, f"{method} {key}: no answer at all ({outcome.broken})"
        else:
            assert outcome.status >= 500, f"{method} {key}: {outcome.status} {outcome.body!r:.200}"
            assert outcome.body is not None
            s3_error_code(outcome.body)

    def put_raw(self, tally: Tally) -> None:
        key = self.rng.choice(list(self.raw_keys))
        self.seq += 1
        size = random_size(self.rng)
        self._write(tally, "put", key, ("raw", self.seq, size), raw_bytes(self.seq, size))

    def put_doc(self, tally: Tally) -> None:
        key = self.rng.choice(list(self.doc_keys))
        self.seq += 1
        items = self.rng.randint(1, 40)
        body = json.dumps(order(self.seq, items)).encode()
        self._write(tally, "put_doc", key, ("doc", self.seq, items), body)

    def delete(self, tally: Tally) -> None:
        self._write(tally, "delete", self.rng.choice(list(self.candidates)), None, None)

    # --- reads -----------------------------------------------------------------------------

    def _read(self, tally: Tally, op: str, key: str, headers: dict[str, str] | None = None) -> Any:
        outcome = exchange(self.proxy, "GET", key, headers=headers)
        tally.record(op, outcome)
        if outcome.broken is not None:
            # A started answer that broke (any status: a backend's 404 can be cut too) is
            # detectably incomplete; a close without any status line is not acceptable.
            assert outcome.status, f"GET {key}: no answer ({outcome.broken})"
            return None
        if outcome.status == 404:
            assert None in self.candidates[key], f"GET {key}: 404 for an acknowledged object"
            return None
        if outcome.status >= 500:
            assert outcome.body is not None
            s3_error_code(outcome.body)
            return None
        assert outcome.status in (200, 206), f"GET {key}: {outcome.status} {outcome.body!r:.200}"
        return outcome.body

    def get_raw(self, tally: Tally) -> None:
        key = self.rng.choice(list(self.raw_keys))
        body = self._read(tally, "get", key)
        if body is not None:
            digest = hashlib.sha256(body).digest()
            assert any(
                c is not None and hashlib.sha256(raw_bytes(c[1], c[2])).digest() == digest
                for c in self.candidates[key]
            ), f"GET {key}: 200 with a body ({len(body)} bytes) that was never written"

    def get_range(self, tally: Tally) -> None:
        key = self.rng.choice(list(self.raw_keys))
        sizes = [c[2] for c in self.candidates[key] if c is not None]
        if not sizes:
            return
        first = self.rng.randrange(min(sizes))
        last = first + self.rng.randrange(256 * KiB)
        body = self._read(tally, "get_range", key, {"Range": f"bytes={first}-{last}"})
        if body is not None:
            assert any(
                c is not None and raw_bytes(c[1], c[2])[first : last + 1] == body
                for c in self.candidates[key]
            ), f"ranged GET {key} {first}-{last}: {len(body)} bytes that were never written"

    def get_doc(self, tally: Tally) -> None:
        key = self.rng.choice(list(self.doc_keys))
        body = self._read(tally, "get_doc", key)
        if body is not None:
            doc = json.loads(body)
            assert any(c is not None and order(c[1], c[2]) == doc for c in self.candidates[key]), (
                f"GET {key}: a document that was never written"
            )

    # --- the end -----------------------------------------------------------------------------

    def check_stored(self, backend: Backend) -> None:
        """What the backend holds for each key is one of the key's possible contents."""
        for key, possible in self.candidates.items():
            bucket, name = key[1:].split("/", 1)
            if not backend.exists(bucket, name):
                assert None in possible, f"{key}: an acknowledged write was lost"
                continue
            stored = backend.read(bucket, name)
            assert any(
                c is not None
                and (
                    stored == raw_bytes(c[1], c[2])
                    if c[0] == "raw"
                    else same_xml(stored, xml_bytes(order(c[1], c[2])))
                )
                for c in possible
            ), f"{key}: the backend holds {len(stored)} bytes nobody wrote in full"


@pytest.fixture
def soak_setup(
    seaweedfs_backend: Backend, start_proxy, tmp_path
) -> Iterator[tuple[FaultRelay, ProxyProcess, str, str]]:
    relay = FaultRelay.start(seaweedfs_backend.endpoint)
    raw_bucket = seaweedfs_backend.new_bucket("soak")
    doc_bucket = seaweedfs_backend.new_bucket("soak-docs")
    proxy = start_proxy(
        backend=seaweedfs_backend,
        upstream=relay.endpoint,
        upstream_options={"read_timeout": READ_TIMEOUT, "connect_timeout": 2},
        app_version="v2",
        routes=[orders_route(doc_bucket)],
        extra_config={"spool_dir": str(tmp_path / "spool")},
        log_level="warning",
        name="soak-proxy",
    )
    try:
        yield relay, proxy, raw_bucket, doc_bucket
    finally:
        proxy.stop()
        relay.stop()


def settled(proxy: ProxyProcess, rss_limit: int, fd_limit: int, timeout: float = 20.0) -> tuple:
    """RSS and fds after the load, polled until both are within bounds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    time.sleep(3.0)
    while True:
        rss, fds = proxy.rss(), proxy.psutil().num_fds()
        if (rss <= rss_limit and fds <= fd_limit) or time.monotonic() > deadline:
            return rss, fds
        time.sleep(0.5)


def test_mixed_load_with_faults_loses_no_acknowledged_write(soak_setup, seaweedfs_backend):
    relay, proxy, raw_bucket, doc_bucket = soak_setup
    workers = [Worker(n, proxy, raw_bucket, doc_bucket) for n in range(WORKERS)]
    # Warm-up without faults: every kind of request once, so lazy pools and imports count
    # in the baseline.
    warm = Tally()
    for w in workers[:2]:
        for op in (w.put_raw, w.get_raw, w.get_range, w.put_doc, w.get_doc, w.delete):
            op(warm)
    assert not warm.violations, warm.violations
    time.sleep(2.0)
    rss_before, fds_before = proxy.rss(), proxy.psutil().num_fds()

    relay.randomize(FAULT_PROBABILITY, FAULTS, seed=7)
    tally = Tally()
    deadline = time.monotonic() + SECONDS
    threads = [threading.Thread(target=w.run, args=(deadline, tally)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    relay.clear()
    assert not any(t.is_alive() for t in threads), "a worker is still running"

    for w in workers:
        try:
            w.check_stored(seaweedfs_backend)
        except AssertionError as exc:
            tally.violation(f"stored: {exc}")
    rss_after, fds_after = settled(proxy, rss_before + RSS_MARGIN, fds_before + FD_MARGIN)
    done = sum(tally.requests.values())
    print(
        f"\nsoak: {SECONDS:.0f} s, {done} requests {dict(tally.requests)}, "
        f"{relay.exchanges} upstream exchanges, faults injected {dict(relay.injected)}, "
        f"outcomes {dict(sorted(tally.outcomes.items()))}, "
        f"RSS {rss_before / MiB:.1f} -> {rss_after / MiB:.1f} MiB, fds {fds_before} -> {fds_after}"
    )
    assert not tally.violations, tally.violations[:20]
    assert done >= 5 * SECONDS, "the soak hardly ran"
    assert sum(relay.injected.values()) >= 10, relay.injected
    assert proxy.probe("/healthz") == 200
    assert rss_after <= rss_before + RSS_MARGIN, (rss_before, rss_after)
    assert fds_after <= fds_before + FD_MARGIN, (fds_before, fds_after)
