"""Network faults between the proxy and a real backend (SeaweedFS behind tests.support.faultrelay):
resets mid-body, stalls, slow drips and closes right after the response headers, on reads and on
writes. A client gets a complete, correct answer or a clean error: never a 200 with a short or
wrong body; an acknowledged PUT is stored byte for byte, a failed one leaves no object."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from tests.reliability.faults import check_failed_write, check_get, exchange
from tests.support.backends import Backend
from tests.support.faultrelay import Fault, FaultRelay
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.slow

KiB = 1024
#: The proxy's upstream read timeout here: a stall longer than this must end the request.
READ_TIMEOUT = 3.0

READ_FAULTS = {
    "reset_mid_body": Fault("reset", "response", after=300 * KiB),
    "reset_in_headers": Fault("reset", "response", after=20),
    "short_stall": Fault("stall", "response", after=100 * KiB, seconds=1.0),
    "long_stall": Fault("stall", "response", after=100 * KiB, seconds=READ_TIMEOUT + 3),
    "stall_before_headers": Fault("stall", "response", after=0, seconds=READ_TIMEOUT + 3),
    "slow_drip": Fault("drip", "response", after=0, rate=1024 * KiB),
    "close_after_headers": Fault("close_after_headers", "response"),
}

WRITE_FAULTS = {
    "reset_mid_body": Fault("reset", "request", after=300 * KiB),
    "short_stall": Fault("stall", "request", after=100 * KiB, seconds=1.0),
    "long_stall": Fault("stall", "request", after=100 * KiB, seconds=READ_TIMEOUT + 3),
    "slow_drip": Fault("drip", "request", after=0, rate=1024 * KiB),
    "reset_answer": Fault("reset", "response", after=0),
    "close_after_headers": Fault("close_after_headers", "response"),
}


@pytest.fixture(scope="module")
def relay(seaweedfs_backend: Backend) -> Iterator[FaultRelay]:
    relay = FaultRelay.start(seaweedfs_backend.endpoint)
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def faulty_proxy(
    seaweedfs_backend: Backend, relay: FaultRelay, proxy_factory
) -> Iterator[ProxyProcess]:
    proxy = proxy_factory(
        seaweedfs_backend,
        upstream=relay.endpoint,
        upstream_options={"read_timeout": READ_TIMEOUT, "connect_timeout": 2},
        name="faulty-proxy",
    )
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def fault_bucket(seaweedfs_backend: Backend) -> str:
    return seaweedfs_backend.new_bucket("faults")


@pytest.mark.parametrize("name", READ_FAULTS)
def test_a_read_through_a_fault_is_complete_or_a_clean_error(
    name: str,
    relay: FaultRelay,
    faulty_proxy: ProxyProcess,
    seaweedfs_backend: Backend,
    fault_bucket: str,
) -> None:
    data = os.urandom(1024 * KiB)
    key = f"read/{name}"
    seaweedfs_backend.direct.put_object(Bucket=fault_bucket, Key=key, Body=data)
    before = sum(relay.injected.values())
    relay.inject(READ_FAULTS[name])
    outcome = exchange(faulty_proxy, "GET", f"/{fault_bucket}/{key}")
    assert sum(relay.injected.values()) == before + 1, "the fault never fired"
    check_get(outcome, data)
    if name in ("short_stall", "slow_drip"):
        assert outcome.status == 200 and outcome.body == data, outcome.kind
    # The proxy stays healthy and serves the next read in full.
    assert faulty_proxy.probe("/healthz") == 200
    again = exchange(faulty_proxy, "GET", f"/{fault_bucket}/{key}")
    assert again.status == 200 and again.body == data


@pytest.mark.parametrize("fault", ["close_after_headers", "reset_after_headers"])
def test_a_ranged_read_cut_after_the_headers_shows_a_started_answer(
    fault: str,
    relay: FaultRelay,
    faulty_proxy: ProxyProcess,
    seaweedfs_backend: Backend,
    fault_bucket: str,
) -> None:
    """The backend's 206 headers arrive, then nothing: the client sees the status line and a
    short body (a broken response), never a bare close nor a complete-looking one."""
    data = os.urandom(512 * KiB)
    key = f"range/{fault}"
    seaweedfs_backend.direct.put_object(Bucket=fault_bucket, Key=key, Body=data)
    injected = (
        Fault("close_after_headers", "response")
        if fault == "close_after_headers"
        else Fault("reset", "response", after=len(b"HTTP/1.1 206 Partial Content\r\n") + 200)
    )
    relay.inject(injected)
    outcome = exchange(
        faulty_proxy, "GET", f"/{fault_bucket}/{key}", headers={"Range": "bytes=1000-300000"}
    )
    if outcome.broken is None and outcome.status == 206:
        assert outcome.body == data[1000:300001]
    elif outcome.broken is None:
        assert outcome.status >= 500 and outcome.body is not None
    else:
        assert outcome.status == 206, f"connection broke before any answer: {outcome.broken}"


@pytest.mark.parametrize("name", WRITE_FAULTS)
def test_a_write_through_a_fault_is_stored_whole_or_not_at_all(
    name: str,
    relay: FaultRelay,
    faulty_proxy: ProxyProcess,
    seaweedfs_backend: Backend,
    fault_bucket: str,
) -> None:
    data = os.urandom(1024 * KiB)
    key = f"write/{name}"
    before = sum(relay.injected.values())
    relay.inject(WRITE_FAULTS[name])
    outcome = exchange(faulty_proxy, "PUT", f"/{fault_bucket}/{key}", body=data)
    assert sum(relay.injected.values()) == before + 1, "the fault never fired"
    if outcome.status == 200 and outcome.broken is None:
        assert seaweedfs_backend.sha256(fault_bucket, key) == hashlib.sha256(data).hexdigest()
    else:
        check_failed_write(outcome)
        if seaweedfs_backend.exists(fault_bucket, key):
            # The backend may have stored the whole body before its answer was cut: never part.
            assert seaweedfs_backend.sha256(fault_bucket, key) == hashlib.sha256(data).hexdigest()
    if name in ("short_stall", "slow_drip"):
        assert outcome.status == 200, outcome
    assert faulty_proxy.probe("/healthz") == 200
    again = exchange(faulty_proxy, "PUT", f"/{fault_bucket}/{key}", body=data)
    assert again.status == 200, again
