"""SIGTERM with an upload stalled in flight: the process exits within one grace period (plus a
moment), not two; kubernetes.md budgets the pod's grace from it."""

from __future__ import annotations

import time

from tests.reliability.helpers import stalled_put
from tests.support.backends import Backend

GRACE = 3.0


def test_exit_within_grace_with_a_stalled_upload(start_proxy, moto_backend: Backend) -> None:
    proxy = start_proxy(backend=moto_backend, shutdown_grace_seconds=GRACE)
    bucket = moto_backend.new_bucket()
    sock = stalled_put(proxy, bucket, "stalled")
    try:
        deadline = time.monotonic() + 5
        while proxy.scrape().value("format_proxy_inflight_requests") != 1:
            assert time.monotonic() < deadline, "the upload never reached the handler"
            time.sleep(0.05)
        started = time.monotonic()
        status = proxy.terminate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert status == 0, proxy.output()[-2000:]
    assert GRACE - 0.5 <= elapsed <= GRACE + 1.0, elapsed
    log = proxy.process.stdout_path.read_text()
    assert '"shutdown_grace_expired"' in log and '"stopped"' in log
    assert not moto_backend.exists(bucket, "stalled")
