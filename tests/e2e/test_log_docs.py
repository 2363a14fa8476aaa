"""docs/configuration.md's table of request-log fields against real log lines of a real proxy."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.exceptions
import pytest

from tests.support.backends import Backend
from tests.support.clients import boto3_client

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- request-log-fields -->"


def documented_fields() -> dict[str, str]:
    """``field -> present`` from the table after the marker."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text[text.index(MARKER) + len(MARKER) :].strip().split("\n\n", 1)[0]
    fields: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            fields[name] = cells[1]
    return fields


def test_the_table_lists_the_fields_every_line_has() -> None:
    fields = documented_fields()
    always = {k for k, v in fields.items() if v == "always"}
    assert {"ts", "level", "event", "request_id", "proxy_request_id", "status"} <= always
    assert {"route", "error", "relay", "upstream_ms"} <= set(fields) - always


@pytest.mark.timeout(120)
def test_every_request_log_line_matches_the_documented_fields(
    start_proxy, moto_backend: Backend
) -> None:
    bucket = moto_backend.new_bucket("logdocs")
    proxy = start_proxy(
        moto_backend,
        app_version="v2",
        routes=[
            {
                "name": "orders",
                "bucket": bucket,
                "prefix": "orders/",
                "formats": {"v1": "xml", "v2": "json"},
                "store": "xml",
                "mapping": {
                    "schema": str(ROOT / "config/examples/schemas/order.schema.json"),
                    "root": "order",
                },
            }
        ],
    )
    s3 = boto3_client(proxy)
    order = (ROOT / "tests/data/orders/minimal.json").read_bytes()
    s3.put_object(Bucket=bucket, Key="orders/1", Body=order)  # route, upstream
    s3.get_object(Bucket=bucket, Key="orders/1")["Body"].read()
    with pytest.raises(botocore.exceptions.ClientError):  # refused by the proxy itself
        s3.put_object(Bucket=bucket, Key="orders/2", Body=b'{"id": 1')
    big = b"z" * (2 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big  # zero-copy relay
    s3.list_buckets()  # no bucket
    lines = proxy.wait_for_log(lambda line: line.get("event") == "request", count=6)
    assert len(lines) == 6, lines

    fields = documented_fields()
    always = {k for k, v in fields.items() if v == "always"}
    seen: set[str] = set()
    for line in lines:
        assert set(line) <= set(fields), f"undocumented: {set(line) - set(fields)} in {line}"
        assert always <= set(line), f"missing: {always - set(line)} in {line}"
        assert line["proxy_request_id"]
        seen |= set(line)
    assert seen == set(fields), f"documented but never seen: {set(fields) - seen}"
    refused = next(line for line in lines if line["status"] == 400)
    assert refused["error"].startswith("InvalidDocument.")
    assert "upstream_ms" not in refused and refused["route"] == "orders"
    assert next(line for line in lines if line["operation"] == "ListBuckets")["bucket"] is None
