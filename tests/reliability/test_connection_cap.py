"""The global client connection cap: past ``limits.max_client_connections`` a new connection
gets a clean ``503 SlowDown`` with ``Connection: close``, counted; below it, service resumes."""

from __future__ import annotations

import time

from lxml import etree

from tests.reliability.helpers import connect, read_until_closed, status_of
from tests.support.backends import Backend
from tests.support.rawhttp import request_head, send


def test_connections_past_the_cap_are_refused_cleanly(start_proxy, moto_backend: Backend) -> None:
    proxy = start_proxy(backend=moto_backend, limits={"max_client_connections": 4})
    bucket = moto_backend.new_bucket()
    held = [connect(proxy) for _ in range(4)]
    try:
        # All four are accepted (each answers a request and stays open).
        for sock in held:
            sock.sendall(request_head("GET", f"/{bucket}?list-type=2", {"Host": "127.0.0.1"}))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "held connection not served"
        assert proxy.scrape().value("format_proxy_client_connections") == 4

        refused = connect(proxy)
        refused.sendall(request_head("GET", f"/{bucket}?list-type=2", {"Host": "127.0.0.1"}))
        answer, closed_after = read_until_closed(refused, timeout=10)
        refused.close()
        assert status_of(answer) == 503, answer[:300]
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Connection: close" in head
        error = {etree.QName(c).localname: c.text for c in etree.fromstring(body)}
        assert error["Code"] == "SlowDown"
        assert closed_after < 3.0

        samples = proxy.scrape()
        assert samples.value("format_proxy_refused_total", reason="max_client_connections") == 1
        assert samples.value("format_proxy_client_connections") == 4
        assert proxy.wait_for_log(lambda line: line.get("event") == "client_connection_refused")
    finally:
        held.pop().close()
    # One slot free again: requests are served.
    deadline = time.monotonic() + 5
    while proxy.scrape().value("format_proxy_client_connections") > 3:
        assert time.monotonic() < deadline, "the closed connection was never released"
        time.sleep(0.05)
    assert send(proxy.endpoint, "GET", f"/{bucket}?list-type=2").status == 200
    for sock in held:
        sock.close()


def test_refusals_are_logged_at_a_bounded_rate(start_proxy, moto_backend: Backend) -> None:
    proxy = start_proxy(backend=moto_backend, limits={"max_client_connections": 1})
    held = connect(proxy)
    held.sendall(request_head("GET", "/", {"Host": "127.0.0.1"}))
    assert held.recv(65536).startswith(b"HTTP/1.1")
    try:
        for _ in range(50):
            sock = connect(proxy)
            answer, _ = read_until_closed(sock, timeout=10)
            sock.close()
            assert status_of(answer) == 503
    finally:
        held.close()
    assert proxy.scrape().value("format_proxy_refused_total", reason="max_client_connections") == 50
    lines = [ln for ln in proxy.log_lines() if ln.get("event") == "client_connection_refused"]
    assert len(lines) == 1, lines
