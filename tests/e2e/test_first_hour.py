"""A newcomer's first hour, as real processes: ``format-proxy demo`` (with and without
``--serve``) and the README's ``serve`` example with its boto3 snippet and the banner's commands.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FORMAT_PROXY = str(VENV_BIN / "format-proxy")
ORDERS = "config/examples/orders.yaml"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FORMAT_PROXY_"))}
    env.update(AWS_EC2_METADATA_DISABLED="true", PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
    return env


def _squash(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def _read_until(stream, needle: str, proc: subprocess.Popen, timeout: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert proc.poll() is None, seen
        assert time.monotonic() < deadline, seen
        seen += stream.readline()
    return seen


def _client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.mark.timeout(120)
def test_demo_walks_a_whole_transition() -> None:
    p = subprocess.run(
        [FORMAT_PROXY, "demo", "--config", ORDERS, "docs/examples/order.xml"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    lines = _squash(p.stdout)
    assert "phase 1 of 2: store: xml" in lines and "phase 2 of 2: store: json" in lines
    # phase 1: everything stored as XML; v2 reads it translated
    assert "v2 writes orders/phase1-by-v2 as json -> 200, stored as xml" in lines
    row = "orders/phase1-by-{} (xml) 200 xml, as stored 200 json, translated"
    assert lines.count(row.format("v1")) == 2 and lines.count(row.format("v2")) == 2
    # phase 2: new objects stored as JSON; now v1 reads translated
    assert "v1 writes orders/phase2-by-v1 as xml -> 200, stored as json" in lines
    row = "orders/phase2-by-{} (json) 200 xml, translated 200 json, as stored"
    assert row.format("v1") in lines and row.format("v2") in lines
    # the same order as each version sees it
    assert '<customer id="42"><name>Ada Lovelace</name></customer>' in p.stdout
    assert '"customer":{"id":42,"name":"Ada Lovelace"}' in p.stdout
    assert lines[-1] == "every version read every object in its own format."


@pytest.mark.timeout(120)
def test_demo_refuses_a_sample_the_mapping_refuses() -> None:
    p = subprocess.run(
        [FORMAT_PROXY, "demo", "--config", ORDERS, "docs/examples/bad-order.xml"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert p.returncode == 1
    assert "400 InvalidDocument.type_mismatch: " in p.stderr
    assert "type_mismatch at /order/customer/@id: 'forty-two' is not an integer" in p.stderr


@pytest.mark.timeout(120)
def test_demo_serve_keeps_a_v1_and_a_v2_proxy_running() -> None:
    proc = subprocess.Popen(
        [FORMAT_PROXY, "demo", "--serve", "--config", ORDERS, "docs/examples/order.xml"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out = _read_until(proc.stdout, "  v2: ", proc)
        urls = dict(
            re.findall(r"^  (v\d): .* --endpoint-url (http://127\.0\.0\.1:\d+) ", out, re.M)
        )
        assert set(urls) == {"v1", "v2"}, out
        key = "orders/phase1-by-v2"
        v1 = _client(urls["v1"]).get_object(Bucket="shop-data", Key=key)
        assert v1["ContentType"] == "application/xml"
        assert b'<customer id="42">' in v1["Body"].read()
        v2 = _client(urls["v2"]).get_object(Bucket="shop-data", Key=key)
        assert v2["ContentType"] == "application/json"
        assert json.loads(v2["Body"].read())["customer"] == {"id": 42, "name": "Ada Lovelace"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _readme_python_snippet() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    return snippet


@pytest.mark.timeout(120)
def test_readme_serve_example_with_its_snippet_and_the_banners_commands(tmp_path: Path) -> None:
    """The README's ``serve --config config/examples/orders.yaml`` (on free ports instead of
    15480/15490), its boto3 snippet, and the route commands the banner suggests."""
    proc = subprocess.Popen(
        [FORMAT_PROXY, "serve", "--config", ORDERS,
         "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        banner = _read_until(proc.stderr, "boto3", proc)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)
        snippet = _readme_python_snippet().replace("http://127.0.0.1:15480", url)
        p = subprocess.run(
            [sys.executable, "-c", snippet],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("application/json {'format': 'xml'} b'{\"id\":\"DK-1001\"")

        commands = [line.strip() for line in banner.splitlines() if "DOC.json" in line]
        assert len(commands) == 2, banner
        assert "s3 cp DOC.json s3://shop-data/orders/DOC.json" in commands[0]
        assert commands[1].endswith("s3 cp s3://shop-data/orders/DOC.json -")
        (tmp_path / "DOC.json").write_bytes((ROOT / "docs/examples/order.json").read_bytes())
        script = "\n".join(commands)
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        got = p.stdout.rsplit("\n", 1)[-1]  # after the upload's progress lines
        assert json.loads(got)["id"] == "DK-1001"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "config/local.yaml"], "give --route NAME (routes: none)"),
        (
            ["--config", ORDERS, "--route", "nope"],
            "no route named 'nope' in the config (routes: orders)",
        ),
        (["--config", "/nonexistent.yaml"], "cannot read '/nonexistent.yaml'"),
        ([], "give --config PATH"),
    ],
)
def test_demo_usage_errors_exit_2(args: list[str], message: str) -> None:
    p = subprocess.run(
        [FORMAT_PROXY, "demo", *args, "docs/examples/order.xml"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
