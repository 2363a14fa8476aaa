"""One HTTP exchange with the proxy, classified the way the fault tests judge it: a complete
answer, a clean S3 error, or a connection broken after the answer had started."""

from __future__ import annotations

import hashlib
import http.client
from dataclasses import dataclass

from lxml import etree

from tests.support.proxy import ProxyProcess


@dataclass
class Outcome:
    #: HTTP status, 0 if the connection broke before any status line.
    status: int
    #: The whole body, when it arrived complete.
    body: bytes | None
    #: Set when the connection broke (before or after the status line).
    broken: str | None = None

    @property
    def kind(self) -> str:
        if self.broken is not None:
            return "broken_after_headers" if self.status else "broken_before_headers"
        return str(self.status)


def exchange(
    proxy: ProxyProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Outcome:
    """Send one request on a fresh connection (no auth: the proxy re-signs) and classify it."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    status = 0
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        status = resp.status
        return Outcome(status, resp.read())
    except (http.client.HTTPException, OSError) as exc:
        return Outcome(status, None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def s3_error_code(body: bytes) -> str:
    """The ``Code`` of an S3 XML error document (AssertionError if the body is not one)."""
    root = etree.fromstring(body)
    assert etree.QName(root).localname == "Error", body[:300]
    return next(c.text or "" for c in root if etree.QName(c).localname == "Code")


def check_get(outcome: Outcome, expected: bytes) -> None:
    """A GET ends complete and correct, in a clean 5xx, or broken after its answer started."""
    if outcome.broken is not None:
        assert outcome.status == 200, f"connection broke before any answer: {outcome.broken}"
        return
    if outcome.status == 200:
        assert outcome.body is not None
        assert len(outcome.body) == len(expected), "200 with a short or long body"
        assert hashlib.sha256(outcome.body).digest() == hashlib.sha256(expected).digest()
        return
    assert outcome.status >= 500, (outcome.status, outcome.body)
    assert outcome.body is not None
    s3_error_code(outcome.body)


def check_failed_write(outcome: Outcome) -> None:
    """A PUT that was not acknowledged got a status and a clean S3 error (never a bare close)."""
    assert outcome.broken is None, f"no answer to the PUT: {outcome.broken}"
    assert outcome.status >= 500, (outcome.status, outcome.body)
    assert outcome.body is not None
    s3_error_code(outcome.body)
