"""Request logs never carry secrets; invalid configuration exits 2 with a key path; the metrics
exposition passes promtool."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import structlog
from yarl import URL

from proxy.app.logging import configure_logging, get_logger, redact
from tests.support.inprocess import SECRET_KEY, FakeUpstream, data_url, metrics_url

FORMAT_PROXY = Path(sys.executable).with_name("format-proxy")

CLIENT_SECRET_SIG = "f" * 64
CLIENT_TOKEN = "FwoGZXIvYXdzEJr-client-session-token"
PRESIGNED_SIG = "9c0ffee" * 8


@pytest.fixture
def captured_logs():
    buf = io.StringIO()
    configure_logging("debug", stream=buf)
    yield buf
    structlog.reset_defaults()
    import logging

    logging.getLogger().handlers.clear()


async def test_no_secret_in_any_log_line(
    captured_logs: io.StringIO, fake_upstream: FakeUpstream, start_inprocess_proxy
) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url)
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIACLIENTKEY/20240101/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host, Signature={CLIENT_SECRET_SIG}"
    )
    async with aiohttp.ClientSession() as s:
        for target, headers in [
            ("/b/secret-key.txt", {"Authorization": auth, "X-Amz-Security-Token": CLIENT_TOKEN}),
            ("/b/k?AWSAccessKeyId=AKIACLIENTKEY&Signature=" + PRESIGNED_SIG + "&Expires=9", {}),
            ("/b/k?X-Amz-Credential=AKIACLIENTKEY%2F2024&X-Amz-Signature=" + PRESIGNED_SIG, {}),
            ("/b/k?X-Amz-Security-Token=" + CLIENT_TOKEN, {"Authorization": "AWS AKIA:c2ln"}),
        ]:
            async with s.get(URL(data_url(proxy) + target, encoded=True), headers=headers) as r:
                await r.read()
    log = captured_logs.getvalue()
    lines = [json.loads(line) for line in log.splitlines()]
    requests = [entry for entry in lines if entry.get("event") == "request"]
    assert len(requests) == 4
    for entry in requests:
        assert entry["operation"] == "GetObject"
        assert entry["bucket"] == "b"
        assert entry["status"] == 200
        assert {"bytes_in", "bytes_out", "duration_ms", "request_id", "ts"} <= entry.keys()
        assert entry["ts"].endswith("Z")
    # Keys only at debug level, in their own line.
    assert any(e.get("key") == "secret-key.txt" for e in lines if e["level"] == "debug")
    assert all("key" not in e for e in requests)
    for secret in (
        CLIENT_SECRET_SIG,
        CLIENT_TOKEN,
        PRESIGNED_SIG,
        SECRET_KEY,
        "AKIACLIENTKEY",
        "c2ln",
    ):
        assert secret not in log, secret
    # The proxy's own signature never shows either.
    sent = [v for seen in fake_upstream.seen for k, v in seen.headers if k == "Authorization"]
    assert sent
    for value in sent:
        assert value.rsplit("Signature=", 1)[1] not in log


async def test_info_level_has_no_keys(fake_upstream: FakeUpstream, start_inprocess_proxy) -> None:
    buf = io.StringIO()
    configure_logging("info", stream=buf)
    try:
        proxy = await start_inprocess_proxy(fake_upstream.url)
        async with aiohttp.ClientSession() as s, s.get(data_url(proxy) + "/b/private/k") as r:
            await r.read()
    finally:
        structlog.reset_defaults()
    assert "private/k" not in buf.getvalue()
    assert '"event": "request"' in buf.getvalue()


def test_redaction_processor_masks_names_and_values() -> None:
    event = {
        "event": "x",
        "Authorization": "AWS4-HMAC-SHA256 Credential=A/B, Signature=abc",
        "token": "t",
        "error": "GET /b/k?X-Amz-Signature=deadbeef&x=1 failed; AWS AKIAXXXXXXXXXXXXXXXX:abc=",
        "nested": {"secret_access_key": "s", "ok": "Signature=0123456789abcdef0123"},
    }
    out = redact(None, "info", event)
    text = json.dumps(out)
    for secret in ("abc", "deadbeef", "0123456789abcdef0123", '"t"', '"s"'):
        assert secret not in text, secret
    assert "x=1" in text


def test_get_logger_is_structlog() -> None:
    assert hasattr(get_logger(), "info")


def _run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FORMAT_PROXY), "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("upstream: {endpoint: 'htp:/x'}\n", "upstream.endpoint: not a URL: 'htp:/x'"),
        ("listen: nonsense\n", "listen: not HOST:PORT: 'nonsense'"),
        ("upstream: {read_timeout: -1}\n", "upstream.read_timeout:"),
        ("upstream: {addressing_style: sideways}\n", "upstream.addressing_style:"),
        ("limits: {spool_memory_bytes: lots}\n", "limits.spool_memory_bytes: not a byte size"),
        ("surprise: 1\n", "surprise: unknown key"),
        ("routes: [{name: a}]\n", "routes[0].bucket: required key is missing"),
        ("tls: {cert: /nonexistent.pem}\n", "tls: cert and key must be given together"),
        ("listen: [oops\n", "is not valid YAML"),
        # the line of the mistake, not the line where the parser noticed it
        (
            "upstream:\n  endpoint: embedded\n  region us-east-1\n  buckets: [a]\n",
            "(line 3, column 3)",
        ),
        ("log_level: info\nupstream: {region: x\nroutes: []\n", "(line 2, column 11)"),
        ("log_level: info\nlisten: '127.0.0.1:1\nroutes: []\n", "(line 2, column 9)"),
        ("a: 1\nb:\n  c: 2\n d: 3\n", "(line 4, column 2)"),
        (
            "upstream: {endpont: embedded}\n",
            "upstream.endpont: unknown key (did you mean 'endpoint'?)",
        ),
        ("limts: {}\n", "limts: unknown key (did you mean 'limits'?)"),
        ("routes: [{bukcet: b}]\n", "routes[0].bukcet: unknown key (did you mean 'bucket'?)"),
        ("surprise: 1\n", "surprise: unknown key\n"),  # nothing close: no suggestion
    ],
)
def test_invalid_config_exits_2_with_key_path(
    tmp_path: Path, config: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from proxy.app.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(config)
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_invalid_config_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream:\n  endpoint: 'htp:/x'\n")
    result = _run_serve("--config", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "format-proxy: configuration error: upstream.endpoint: not a URL: 'htp:/x' "
        "(expected http(s)://host[:port] or 'embedded')"
    )
    assert result.stdout == ""


def test_invalid_flag_and_env_values_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.app.cli import main

    assert main(["serve", "--upstream", "ftp://x"]) == 2
    assert "upstream.endpoint: not a URL" in capsys.readouterr().err
    monkeypatch.setenv("FORMAT_PROXY_METRICS_LISTEN", "x:y")
    assert main(["serve"]) == 2
    assert "metrics_listen: not HOST:PORT" in capsys.readouterr().err
    monkeypatch.delenv("FORMAT_PROXY_METRICS_LISTEN")
    assert main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config: cannot read" in capsys.readouterr().err


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    from proxy.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("listen: 127.0.0.1:1111\nupstream: {region: eu-west-1}\n")
    env = {"FORMAT_PROXY_LISTEN": "127.0.0.1:2222", "FORMAT_PROXY_REGION": "eu-west-2"}
    cfg = load_config(path, environ=env)
    assert (cfg.listen.port, cfg.upstream.region) == (2222, "eu-west-2")
    cfg = load_config(path, environ=env, overrides={"listen": "127.0.0.1:3333"})
    assert (cfg.listen.port, cfg.upstream.region) == (3333, "eu-west-2")
    cfg = load_config(path, environ={})
    assert (cfg.listen.port, cfg.upstream.region) == (1111, "eu-west-1")
    assert load_config(None, environ={}).listen.port == 15480


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        port = s.getsockname()[1]
        result = _run_serve(
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            f"127.0.0.1:{port}",
            "--metrics-listen",
            "127.0.0.1:0",
            env={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        )
    finally:
        s.close()
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
async def test_metrics_pass_promtool(fake_upstream: FakeUpstream, start_inprocess_proxy) -> None:
    proxy = await start_inprocess_proxy(fake_upstream.url, app_version="v1")
    async with aiohttp.ClientSession() as s:
        for target in ("/b/k", "/b?list-type=2", "/"):
            async with s.get(data_url(proxy) + target) as r:
                await r.read()
        async with s.get(metrics_url(proxy) + "/metrics") as r:
            text = await r.text()
    proc = await asyncio.create_subprocess_exec(
        "promtool",
        "check",
        "metrics",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(text.encode()), 30)
    assert proc.returncode == 0, out.decode()
