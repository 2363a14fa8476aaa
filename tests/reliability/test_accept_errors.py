"""accept() failing for lack of file descriptors is counted and logged at a bounded rate (asyncio
itself logs one error line per failed accept(), thousands a second)."""

from __future__ import annotations

import socket
import time

import psutil

from proxy.relay.ratelimit import RateLimitedLog
from tests.support.backends import Backend


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def test_rate_limited_log_writes_one_line_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    rec = _Recorder()
    log = RateLimitedLog(rec, interval=10.0, clock=lambda: now[0])
    assert log.warning("accept_failed", error="EMFILE")
    for _ in range(999):
        now[0] += 0.001
        assert not log.warning("accept_failed", error="EMFILE")
    assert len(rec.lines) == 1
    now[0] = 110.5
    assert log.warning("accept_failed", error="EMFILE")
    assert rec.lines[1] == ("accept_failed", {"error": "EMFILE", "suppressed": 999})
    now[0] = 125.0
    assert log.warning("accept_failed")
    assert "suppressed" not in rec.lines[2][1]


def test_accept_errors_at_the_fd_limit_are_rate_limited(start_proxy, moto_backend: Backend) -> None:
    """With the cap above what the open-file limit allows, accept() fails (EMFILE): the proxy
    keeps running, counts the failures and writes at most one line for them per interval."""
    proxy = start_proxy(backend=moto_backend, limits={"max_client_connections": 4000})
    process = psutil.Process(proxy.pid)
    soft, hard = process.rlimit(psutil.RLIMIT_NOFILE)
    process.rlimit(psutil.RLIMIT_NOFILE, (process.num_fds() + 20, hard))
    clients: list[socket.socket] = []
    try:
        for _ in range(200):  # the kernel's backlog queues what the proxy cannot accept
            clients.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=5))
        time.sleep(3.0)
        assert proxy.alive()
    finally:
        for sock in clients:
            sock.close()
    process.rlimit(psutil.RLIMIT_NOFILE, (soft, hard))
    time.sleep(1.5)  # asyncio resumes accepting after a second
    samples = proxy.scrape()
    assert samples.value("format_proxy_accept_errors_total") > 2
    output = proxy.output()
    lines = [ln for ln in proxy.log_lines() if ln.get("event") == "accept_failed"]
    assert 1 <= len(lines) <= 2, len(lines)
    assert output.count("out of system resource") <= 2
