"""``format-proxy webhook`` as a real process over TLS (certificates from trustme)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import trustme

from tests.support.ports import free_port
from tests.support.processes import ManagedProcess

FIXTURES = Path(__file__).parent / "fixtures" / "admission"
CASES = sorted(p.name.removesuffix(".review.json") for p in FIXTURES.glob("*.review.json"))
SERVICE = "format-proxy-injector.format-proxy-system.svc"


class _ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that verifies the certificate for the Service DNS name, as the API
    server does."""

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=SERVICE)  # type: ignore[attr-defined]


class Webhook:
    def __init__(self, proc: ManagedProcess, port: int, ca: trustme.CA, tls_dir: Path) -> None:
        self.proc = proc
        self.port = port
        self.ca = ca
        self.tls_dir = tls_dir

    def connection(self, ca: trustme.CA | None = None) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context()
        (ca or self.ca).configure_trust(ctx)
        return _ServiceConnection("127.0.0.1", self.port, context=ctx, timeout=10)

    def request(
        self, method: str, path: str, body: bytes | None = None, ca: trustme.CA | None = None
    ) -> tuple[int, bytes]:
        conn = self.connection(ca)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def issue(ca: trustme.CA, tls_dir: Path) -> None:
    """Write a serving cert for the Service name, replacing the files atomically."""
    cert = ca.issue_cert(SERVICE, f"{SERVICE}.cluster.local")
    for name, blob in (("tls.crt", cert.cert_chain_pems), ("tls.key", [cert.private_key_pem])):
        tmp = tls_dir / f".{name}.tmp"
        tmp.write_bytes(b"".join(b.bytes() for b in blob))
        os.replace(tmp, tls_dir / name)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    tls_dir = tmp_path_factory.mktemp("webhook-tls")
    ca = trustme.CA()
    issue(ca, tls_dir)
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "format-proxy"), "webhook",
        "--tls-cert", str(tls_dir / "tls.crt"), "--tls-key", str(tls_dir / "tls.key"),
        "--listen", f"127.0.0.1:{port}", "--cert-reload-seconds", "0.2",
    ]  # fmt: skip
    proc = ManagedProcess("webhook", argv, tls_dir / "logs")
    hook = Webhook(proc, port, ca, tls_dir)
    try:
        proc.wait_until(lambda: hook.request("GET", "/readyz")[0] == 200, timeout=30, what="ready")
        yield hook
    finally:
        proc.stop()


def decode(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    review = json.loads(body)
    response = dict(review["response"])
    ops = []
    if "patch" in response:
        response.pop("patchType")
        ops = json.loads(base64.b64decode(response.pop("patch")))
    return response, ops


@pytest.mark.parametrize("case", CASES)
def test_reviews_over_tls_match_the_golden_responses(webhook: Webhook, case: str):
    body = (FIXTURES / f"{case}.review.json").read_bytes()
    status, answer = webhook.request("POST", "/mutate", body)
    assert status == 200, answer
    response, ops = decode(answer)
    expected = json.loads((FIXTURES / f"{case}.expected.json").read_text())
    assert {"response": response, "patch": ops} == expected
    if ops:
        pod = jsonpatch.apply_patch(json.loads(body)["request"]["object"], ops)
        kubernetes_validate.validate(pod, "1.33", strict=True)


def test_unanswerable_body_is_a_400_with_a_reason(webhook: Webhook):
    status, answer = webhook.request("POST", "/mutate", b'{"request": {}}')
    assert status == 400
    assert json.loads(answer) == {"error": "AdmissionReview request.uid is missing or not a string"}


def test_every_review_is_logged_as_json(webhook: Webhook):
    body = (FIXTURES / "no-annotations.review.json").read_bytes()
    assert webhook.request("POST", "/mutate", body)[0] == 200
    uid = json.loads(body)["request"]["uid"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in webhook.proc.output().splitlines() if x.startswith("{")]
        hits = [x for x in lines if x.get("uid") == uid]
        if hits:
            assert hits[0]["event"] == "admission" and hits[0]["injected"] is True
            assert hits[0]["namespace"] == "shop" and hits[0]["pod"] == "orders-writer-5f6c7d8e9-*"
            return
        time.sleep(0.1)
    pytest.fail(f"no log line for {uid}:\n{webhook.proc.tail()}")


def test_plain_http_is_refused(webhook: Webhook):
    conn = http.client.HTTPConnection("127.0.0.1", webhook.port, timeout=5)
    try:
        # The TLS listener drops a plain-HTTP client without an HTTP answer.
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/healthz")
            conn.getresponse()
    finally:
        conn.close()


def test_rotated_certificate_is_picked_up_without_restart(webhook: Webhook):
    new_ca = trustme.CA()
    issue(new_ca, webhook.tls_dir)
    deadline = time.monotonic() + 10
    while True:
        try:
            status, _ = webhook.request("GET", "/healthz", ca=new_ca)
            assert status == 200
            break
        except ssl.SSLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with pytest.raises(ssl.SSLError):
        webhook.request("GET", "/healthz", ca=webhook.ca)
    webhook.ca = new_ca
    assert webhook.proc.alive()


def test_sigterm_exits_cleanly(tmp_path: Path):
    ca = trustme.CA()
    issue(ca, tmp_path)
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "format-proxy"), "webhook",
        "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
        "--listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    proc = ManagedProcess("webhook-sigterm", argv, tmp_path / "logs")
    hook = Webhook(proc, port, ca, tmp_path)
    try:
        proc.wait_until(lambda: hook.request("GET", "/healthz")[0] == 200, timeout=30, what="up")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert '"event": "stopping"' in proc.output()
    finally:
        proc.stop()


def test_bad_certificate_files_are_a_clear_error(tmp_path: Path):
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    argv = [
        str(Path(sys.executable).parent / "format-proxy"), "webhook",
        "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
        "--listen", f"127.0.0.1:{free_port()}",
    ]  # fmt: skip
    proc = ManagedProcess("webhook-badcert", argv, tmp_path / "logs")
    try:
        assert proc.wait(30) == 1
        assert "cannot load TLS certificate" in proc.output()
        assert "Traceback" not in proc.output()
    finally:
        proc.stop()
