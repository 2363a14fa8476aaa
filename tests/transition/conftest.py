"""Helpers for the scan/migrate tests: a config for a test bucket, the CLI as a process, and
documents stored straight on the backend the way v1 apps (or the proxy) left them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.datapath.orders import SCHEMA, json_bytes, order, orders_route, xml_bytes
from tests.support.backends import Backend, isolated_aws_env
from tests.support.proxy import FORMAT_PROXY

#: A document outside the orders mapping's domain (an element the schema does not know).
UNTRANSLATABLE = b'<order xmlns="urn:example:shop:orders:1" id="X"><bogus>1</bogus></order>'


@dataclass
class Run:
    code: int
    lines: list[dict[str, Any]]
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return self.lines[-1]["summary"]

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "summary" not in line]


def write_config(directory: Path, backend: Backend, bucket: str, **route: Any) -> Path:
    config = {
        "app_version": "v2",
        "upstream": {"endpoint": backend.endpoint, "region": backend.region},
        "routes": [orders_route(bucket, store="json", **route)],
    }
    path = directory / f"config-{bucket}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli_env(backend: Backend) -> dict[str, str]:
    env = isolated_aws_env()
    env.update(backend.credentials.env())
    return env


def start_cli(backend: Backend, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(FORMAT_PROXY), *args],
        env=cli_env(backend),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_cli(backend: Backend, args: Sequence[str], timeout: float = 120) -> Run:
    proc = subprocess.run(
        [str(FORMAT_PROXY), *args],
        env=cli_env(backend),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert lines and "summary" in lines[-1], (proc.returncode, proc.stdout, proc.stderr)
    return Run(proc.returncode, lines, proc.stderr)


def put_xml(backend: Backend, bucket: str, key: str, doc: dict[str, Any], **extra: Any) -> str:
    """Store ``doc`` as XML labelled the way the proxy labels it; returns the ETag."""
    extra.setdefault("ContentType", "application/xml")
    metadata = {"format": "xml", **extra.pop("Metadata", {})}
    reply = backend.direct.put_object(
        Bucket=bucket, Key=key, Body=xml_bytes(doc), Metadata=metadata, **extra
    )
    return str(reply["ETag"])


def put_json(backend: Backend, bucket: str, key: str, doc: dict[str, Any], **extra: Any) -> str:
    extra.setdefault("ContentType", "application/json")
    metadata = {"format": "json", **extra.pop("Metadata", {})}
    reply = backend.direct.put_object(
        Bucket=bucket, Key=key, Body=json_bytes(doc), Metadata=metadata, **extra
    )
    return str(reply["ETag"])


def stored(backend: Backend, bucket: str, key: str) -> tuple[dict[str, Any], bytes]:
    resp = backend.direct.get_object(Bucket=bucket, Key=key)
    return resp, resp["Body"].read()


@pytest.fixture
def config_for(tmp_path: Path, backend: Backend):
    def make(bucket: str, **route: Any) -> Path:
        return write_config(tmp_path, backend, bucket, **route)

    return make


__all__ = ["SCHEMA", "UNTRANSLATABLE", "json_bytes", "order", "xml_bytes"]
