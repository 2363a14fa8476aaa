"""Redaction reaches rendered tracebacks and exception messages: library log lines with
``exc_info`` (aiohttp's parser errors quote the raw request) carry no secret and no raw bytes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine

from proxy.app.logging import configure_logging, get_logger

SIGNATURE = "5a" * 32
TOKEN = "FwoGZXIvYXdzEJr-unit-session-token-value"
KEY = "customer-ssn-123-45-6789.json"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("debug", stream=buf)
    yield buf
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_library_exception_logs_are_rendered_then_redacted(captured: io.StringIO) -> None:
    header = (
        f"b'Authorization: AWS4-HMAC-SHA256 Credential=AKIAX/20260101/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host, Signature={SIGNATURE}\\x01'"
    )
    line = f"b'GET /b/{KEY}?X-Amz-Security-Token={TOKEN} HTTP/1.1 junk'"
    log = logging.getLogger("aiohttp.server")
    log.error("Error handling request", exc_info=_raised(BadHttpMessage(f"Invalid:\n  {header}")))
    log.error("Error handling request", exc_info=_raised(BadStatusLine(f"Bad status line {line}")))
    text = captured.getvalue()
    for secret in (SIGNATURE, TOKEN, KEY, "AKIAX"):
        assert secret not in text, secret
    lines = _lines(captured)
    assert len(lines) == 2
    for entry in lines:
        assert entry["level"] == "error"
        # The traceback is there, as text, with the quoted bytes masked.
        assert "Traceback" in str(entry["exception"]) and "b[redacted]" in str(entry["exception"])


def test_structlog_exception_and_header_lines_are_redacted(captured: io.StringIO) -> None:
    get_logger("t").error(
        "boom",
        exc_info=_raised(RuntimeError(f"upstream said X-Amz-Security-Token: {TOKEN}")),
        detail=f"Authorization: Bearer {TOKEN}",
    )
    text = captured.getvalue()
    assert TOKEN not in text
    assert "X-Amz-Security-Token: [redacted]" in text
