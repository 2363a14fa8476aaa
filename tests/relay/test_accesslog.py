"""The pre-rendered access line is what structlog's processor chain writes for the same fields."""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.app.logging import configure_logging
from proxy.relay import accesslog

FIELDS = {
    "method": "GET",
    "operation": "GetObject",
    "bucket": "b",
    "status": 200,
    "bytes_in": 0,
    "bytes_out": 4096,
    "duration_ms": 1.234,
    "request_id": "ABCDEF0123456789",
    "proxy_request_id": "ABCDEF0123456789",
    "upstream_ms": 0.5,
    "route": "orders",
    # Secret-looking values and names: both paths must mask them the same way.
    "error": "UpstreamError: https://u/b/k?X-Amz-Signature=" + "ab" * 32 + "&x=1",
    "detail": "Authorization: AWS4-HMAC-SHA256 Credential=AKIA/2024, Signature=" + "f" * 64,
    "token": "session-secret",
    "nested": {"password": "p", "ok": "b'raw request bytes'"},
}


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("info", stream=buf)
    yield buf
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.mark.parametrize("level", ["info", "warning"])
def test_fast_line_equals_the_structlog_chain(out: io.StringIO, level: str) -> None:
    getattr(structlog.get_logger("format_proxy.access"), level)("request", **dict(FIELDS))
    accesslog.emit(level, dict(FIELDS))
    chain, fast = _lines(out)
    assert chain.pop("ts") and isinstance(fast.pop("ts"), str)
    assert fast == chain
    assert list(fast) == list(chain)  # same key order too
    text = out.getvalue()
    for secret in ("ab" * 32, "f" * 64, "session-secret", "raw request bytes", '"p"'):
        assert secret not in text
    assert fast["level"] == level and fast["event"] == "request"


def test_fast_line_respects_the_level(out: io.StringIO) -> None:
    configure_logging("warning", stream=out)
    accesslog.emit("info", dict(FIELDS))
    assert out.getvalue() == ""
    accesslog.emit("warning", dict(FIELDS))
    assert [e["level"] for e in _lines(out)] == ["warning"]


def test_another_structlog_configuration_takes_the_line_back(out: io.StringIO) -> None:
    other = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=other),
    )
    accesslog.emit("info", {"status": 200})
    assert out.getvalue() == ""
    assert json.loads(other.getvalue()) == {"status": 200, "event": "request"}


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "x AWS4-HMAC-SHA256 Credential=a",
        "b'raw'",
        "https://h/k?X-Amz-Signature=abc&y=1",
        "AWS AKIAABCDEFGHIJKLMNOP:sig",
        "Authorization: secret",
        "x-amz-security-token : tok",
        "Signature=0123456789abcdef0123",
        {"nested": "value"},
        ["list"],
        12,
        None,
    ],
)
def test_the_quick_check_never_misses_what_redact_masks(value: object) -> None:
    from proxy.relay.redaction import needs_redaction, redact

    for event in ({"f": value}, {"a": "ok", "f": value, "z": "b"}, {"f": value, "token": 1}):
        before = json.dumps(event, sort_keys=True)
        changed = json.dumps(redact(None, "info", dict(event)), sort_keys=True) != before
        assert needs_redaction(dict(event)) or not changed
    assert needs_redaction({"ok": "plain", "n": 1}) is False


_PIECES = [
    "AWS4-HMAC-SHA256",
    " ",
    "Credential=",
    "AWS ",
    "AKIAABCDEFGHIJKLMNOP",
    ":",
    "b'",
    "'",
    '"',
    "X-Amz-Signature=",
    "Signature=",
    "0123456789abcdef",
    "&",
    "Authorization",
    "x",
    "\n",
    "\x00",
    "X-Amz-Security-Token",
    "ſignature=",
    "é",
    "aWs4-hmac-sha256",
]


@settings(max_examples=500)
@given(
    st.lists(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join), min_size=1, max_size=4)
)
def test_the_quick_check_is_sound(values: list[str]) -> None:
    from proxy.relay.redaction import needs_redaction, redact

    event = {f"f{i}": v for i, v in enumerate(values)}
    if redact(None, "info", dict(event)) != event:
        assert needs_redaction(event)


_FLAT_VALUES = (
    st.text()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(min_size=1), _FLAT_VALUES, max_size=6))
def test_flat_lines_are_written_as_the_renderer_writes_them(fields: dict[str, object]) -> None:
    render = structlog.processors.JSONRenderer(sort_keys=False)
    assert accesslog._same_json(render)
    line = accesslog._flat_json(dict(fields))
    if line is None:  # NaN and infinities go through the renderer
        assert any(
            (type(v) is float and v != v) or v in (math.inf, -math.inf) for v in fields.values()
        )
    else:
        assert line == render(None, "info", dict(fields))


def test_a_different_renderer_or_stamper_keeps_its_own_output() -> None:
    assert accesslog._flat_json({1: "not a str key"}) is None  # the renderer's job
    assert not accesslog._same_json(structlog.processors.JSONRenderer(sort_keys=True))
    assert not accesslog._same_json(structlog.processors.KeyValueRenderer())
    buf = io.StringIO()
    stamp = structlog.processors.TimeStamper(fmt="%Y", utc=True, key="ts")
    render = structlog.processors.JSONRenderer(sort_keys=True)
    processors = [structlog.processors.add_log_level, stamp, render]
    structlog.configure(processors=processors)
    try:
        chain = structlog.get_config()["processors"]
        accesslog.install(buf, 20, stamp=stamp, render=render, chain=chain)
        accesslog.emit("info", {"b": 1, "a": "x"})
        line = json.loads(buf.getvalue())
        assert list(line) == sorted(line) and len(line["ts"]) == 4  # theirs, not ours
    finally:
        structlog.reset_defaults()


def test_the_fast_timestamp_is_iso_utc_and_now(out: io.StringIO) -> None:
    flat = {k: v for k, v in FIELDS.items() if not isinstance(v, dict)}
    assert accesslog._sink is not None and accesslog._sink.iso_key == "ts"
    assert accesslog._sink.flat_json
    before = datetime.now(UTC)
    accesslog.emit("info", dict(flat))
    structlog.get_logger("format_proxy.access").info("request", **dict(flat))
    after = datetime.now(UTC)
    fast, chain = _lines(out)
    for line in (fast, chain):
        stamp = str(line.pop("ts"))
        assert stamp.endswith("Z") and stamp[10] == "T"
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before - timedelta(milliseconds=1) <= at <= after + timedelta(milliseconds=1)
    assert fast == chain and list(fast) == list(chain)


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_lines_of_one_loop_iteration_are_written_together() -> None:
    import asyncio

    stream = _CountingStream()
    configure_logging("info", stream=stream)
    try:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for i in range(5):
                accesslog.emit("info", {"status": 200, "n": i}, loop=loop)
            assert stream.getvalue() == ""  # not before the iteration ends
            await asyncio.sleep(0)
            assert stream.writes == 1
            accesslog.emit("warning", {"status": 502, "n": 5}, loop=loop)
            await asyncio.sleep(0)
            assert stream.writes == 2
            # The last request in flight ended: its line (and any waiting) goes out at once.
            accesslog.emit("info", {"status": 200, "n": 6}, loop=loop)
            accesslog.emit("info", {"status": 200, "n": 7})
            assert stream.writes == 3

        asyncio.run(main())
        lines = _lines(stream)
        assert [line["n"] for line in lines] == list(range(8)) and stream.writes == 3
        assert lines[5]["level"] == "warning"
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_a_flush_lost_with_its_loop_does_not_hold_later_lines() -> None:
    import asyncio

    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        gone = asyncio.new_event_loop()
        accesslog.emit("info", {"status": 200, "n": 0}, loop=gone)  # its flush never runs
        gone.close()
        assert stream.getvalue() == ""
        accesslog.emit("info", {"status": 200, "n": 1}, loop=gone)  # a closed loop: at once
        assert [line["n"] for line in _lines(stream)] == [0, 1]

        gone = asyncio.new_event_loop()
        accesslog.emit("info", {"status": 200, "n": 2}, loop=gone)
        gone.close()

        async def main() -> None:
            accesslog.emit("info", {"status": 200, "n": 3}, loop=asyncio.get_running_loop())
            await asyncio.sleep(0)

        asyncio.run(main())
        assert [line["n"] for line in _lines(stream)] == [0, 1, 2, 3]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_lines_waiting_when_the_stream_changes_go_to_the_old_one() -> None:
    import asyncio

    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", stream=first)
    try:

        async def main() -> None:
            accesslog.emit("info", {"status": 200}, loop=asyncio.get_running_loop())
            configure_logging("info", stream=second)

        asyncio.run(main())
        assert len(_lines(first)) == 1 and second.getvalue() == ""
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
