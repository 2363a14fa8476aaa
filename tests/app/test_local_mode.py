"""The README's local default as a real process: `format-proxy serve --config config/local.yaml`
with no AWS credentials anywhere, driven by boto3, stopped with SIGTERM (exit 0)."""

from __future__ import annotations

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
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
FORMAT_PROXY = Path(sys.executable).with_name("format-proxy")


@pytest.mark.timeout(120)
def test_local_config_runs_without_aws_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FORMAT_PROXY_"))}
    env.update(
        HOME=str(tmp_path),  # no ~/.aws either
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        # a newcomer's shell may name a profile this machine lacks: the local mode needs none
        AWS_PROFILE="no-such-profile",
    )
    proc = subprocess.Popen(
        [
            str(FORMAT_PROXY),
            "serve",
            "--config",
            str(ROOT / "config" / "local.yaml"),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "boto3" not in banner:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, banner
            banner += proc.stderr.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)
        assert m, banner
        url = m.group(1)
        assert f"aws --endpoint-url {url} s3 ls" in banner
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="anything",
            aws_secret_access_key="anything",
            config=Config(retries={"max_attempts": 1}),
        )
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["demo"]
        s3.put_object(Bucket="demo", Key="hello world.txt", Body=b"hi")
        assert s3.get_object(Bucket="demo", Key="hello world.txt")["Body"].read() == b"hi"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        out = proc.stdout.read()
        assert '"event": "request"' in out and '"operation": "PutObject"' in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(120)
def test_embedded_backend_accepts_only_the_proxys_own_key(tmp_path: Path) -> None:
    """docs/security.md: the embedded moto enforces SigV4 with a key only the proxy holds, so a
    client talking to it directly with made-up keys is refused, while the proxy's requests pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FORMAT_PROXY_"))}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")
    proc = subprocess.Popen(
        [
            *(str(FORMAT_PROXY), "serve", "--config", str(ROOT / "config" / "local.yaml")),
            *("--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "boto3" not in banner:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, banner
            banner += proc.stderr.readline()
        m = re.search(r"listening on (http://\S+) -> upstream (http://127\.0\.0\.1:\d+)", banner)
        assert m, banner
        proxy_url, moto_url = m.groups()

        def client(url: str, key: str) -> object:
            return boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id=key,
                aws_secret_access_key=key,
                config=Config(retries={"max_attempts": 1}),
            )

        for key in ("x", "format-proxy-local"):
            with pytest.raises(ClientError) as err:
                client(moto_url, key).list_buckets()
            assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
        assert [b["Name"] for b in client(proxy_url, "x").list_buckets()["Buckets"]] == ["demo"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
