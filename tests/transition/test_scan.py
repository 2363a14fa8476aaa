"""``format-proxy scan`` on SeaweedFS: exact counts on 10,000 objects of mixed formats, from a
listing and from an S3 Inventory manifest; ``--validate``; gauges pushed to a real Pushgateway
and read back from a real Prometheus scraping it."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.backends import Backend, direct_client
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.transition.conftest import UNTRANSLATABLE, order, put_xml, run_cli, write_config

N = 10_000


@dataclass
class Population:
    backend: Backend
    bucket: str
    config: Path
    keys: dict[str, tuple[str, int]]  # key -> (expected format, size)

    def expected(self) -> tuple[dict[str, int], dict[str, int]]:
        objects: Counter[str] = Counter()
        nbytes: Counter[str] = Counter()
        for fmt, size in self.keys.values():
            objects[fmt] += 1
            nbytes[fmt] += size
        return dict(objects), dict(nbytes)


def _object(i: int) -> tuple[str, bytes, dict[str, Any], str]:
    """Key, body, PutObject extras and the expected format of the i-th object."""
    pad = " " * (i % 7)
    kind = i % 10
    key = f"orders/{i % 13}/{i:05d}{' +é'[i % 3]}doc"
    if kind < 4:  # labelled by the proxy
        return key, f"<o n='{i}'/>{pad}".encode(), {"Metadata": {"format": "xml"}}, "xml"
    if kind < 7:
        return key, f'{{"n": {i}}}{pad}'.encode(), {"Metadata": {"format": "json"}}, "json"
    if kind == 7:  # by Content-Type
        return key, f"<o n='{i}'/>".encode(), {"ContentType": "text/xml"}, "xml"
    if kind == 8 and i % 1000 == 8:  # nothing tells: undetectable
        return key, b"plain text " + pad.encode(), {}, "undetectable"
    if kind == 8:  # only the first byte tells
        return key, f"{pad}[{i}]".encode(), {"ContentType": "binary/octet-stream"}, "json"
    return key, f"{pad}\n<o n='{i}'/>".encode(), {}, "xml"


@pytest.fixture(scope="module")
def population(seaweedfs_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Population:
    backend = seaweedfs_backend
    bucket = backend.new_bucket("scan")
    client = direct_client(backend.endpoint, backend.credentials, max_pool_connections=32)
    keys: dict[str, tuple[str, int]] = {}

    def put(i: int) -> None:
        key, body, extra, fmt = _object(i)
        client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        keys[key] = (fmt, len(body))

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, range(N)))
    client.put_object(Bucket=bucket, Key="elsewhere/not-on-route", Body=b"<x/>")
    config = write_config(tmp_path_factory.mktemp("scan"), backend, bucket)
    return Population(backend, bucket, config, keys)


def _check(run: Any, population: Population) -> None:
    objects, nbytes = population.expected()
    assert run.summary["objects"] == objects
    assert run.summary["bytes"] == nbytes
    assert run.summary["undetectable"] == objects["undetectable"] == 10
    assert sorted(p["key"] for p in run.problems) == sorted(
        k for k, (fmt, _) in population.keys.items() if fmt == "undetectable"
    )
    assert {p["reason"] for p in run.problems} == {"undetectable_format"}
    assert run.code == 1  # undetectable objects are a finding


def test_scan_counts_from_a_listing(population: Population):
    run = run_cli(population.backend, ["scan", "--config", str(population.config), "--route",
                                       "orders", "--concurrency", "16"])  # fmt: skip
    _check(run, population)


def _inventory(population: Population, directory: Path) -> Path:
    """An S3 Inventory as S3 writes it: gzip'd CSV files in a destination bucket, URL-encoded
    keys, and a manifest.json naming them (plus rows of another bucket and off-route keys)."""
    backend, client = population.backend, population.backend.direct
    dest = backend.new_bucket("inventory")
    keys = sorted(population.keys)
    files = []
    for n, chunk in enumerate((keys[: N // 2], keys[N // 2 :])):
        text = io.StringIO()
        writer = csv.writer(text, quoting=csv.QUOTE_ALL)
        for key in chunk:
            size = population.keys[key][1]
            writer.writerow([population.bucket, urllib.parse.quote_plus(key), size, "2026-01-01"])
        writer.writerow(["another-bucket", "orders/foreign", "3", "2026-01-01"])
        writer.writerow([population.bucket, "elsewhere%2Fnot-on-route", "4", "2026-01-01"])
        data_key = f"inv/{population.bucket}/cfg/data/part-{n}.csv.gz"
        client.put_object(Bucket=dest, Key=data_key, Body=gzip.compress(text.getvalue().encode()))
        files.append({"key": data_key, "size": 0, "MD5checksum": ""})
    manifest = {
        "sourceBucket": population.bucket,
        "destinationBucket": f"arn:aws:s3:::{dest}",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": files,
    }
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_scan_counts_from_an_inventory_manifest(population: Population, tmp_path: Path):
    manifest = _inventory(population, tmp_path)
    run = run_cli(population.backend, ["scan", "--config", str(population.config), "--route",
                                       "orders", "--manifest", str(manifest),
                                       "--concurrency", "16"])  # fmt: skip
    _check(run, population)


def test_validate_reports_every_untranslatable_object(seaweedfs_backend: Backend, tmp_path: Path):
    backend = seaweedfs_backend
    bucket = backend.new_bucket("validate")
    for i in range(5):
        put_xml(backend, bucket, f"orders/good {i}.xml", order(i))
    backend.direct.put_object(
        Bucket=bucket, Key="orders/bad one.xml", Body=UNTRANSLATABLE, Metadata={"format": "xml"}
    )
    config = write_config(tmp_path, backend, bucket)
    plain = run_cli(backend, ["scan", "--config", str(config), "--route", "orders"])
    assert plain.code == 0 and plain.summary["objects"]["xml"] == 6
    run = run_cli(backend, ["scan", "--config", str(config), "--route", "orders", "--validate"])
    assert run.code == 1
    [problem] = run.problems
    assert problem["key"] == "orders/bad one.xml"
    assert problem["reason"] and problem["location"].startswith("/")
    assert problem["direction"] == "xml_to_json"
    assert run.summary["failed_validation"] == 1 and run.summary["objects"]["xml"] == 6


# --- Pushgateway + Prometheus -----------------------------------------------------------------


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_pushed_gauges_reach_prometheus(seaweedfs_backend: Backend, tmp_path: Path):
    gateway_bin, prometheus_bin = shutil.which("prometheus-pushgateway"), shutil.which("prometheus")
    assert gateway_bin and prometheus_bin, "apt-get install prometheus prometheus-pushgateway"
    backend = seaweedfs_backend
    bucket = backend.new_bucket("push")
    for i in range(7):
        put_xml(backend, bucket, f"orders/{i}.xml", order(i))
    for i in range(3):
        backend.direct.put_object(
            Bucket=bucket, Key=f"orders/{i}.json", Body=b'{"n": 1}', Metadata={"format": "json"}
        )
    xml_bytes_total = sum(
        backend.direct.head_object(Bucket=bucket, Key=f"orders/{i}.xml")["ContentLength"]
        for i in range(7)
    )
    gw_port, prom_port = free_port(), free_port()
    gateway = ManagedProcess(
        "pushgateway",
        [gateway_bin, f"--web.listen-address=127.0.0.1:{gw_port}", "--log.level=warn"],
        tmp_path / "logs",
    )
    gateway.wait_until(
        lambda: bool(_get_json(f"http://127.0.0.1:{gw_port}/api/v1/status")),
        timeout=30,
        what="ready",
    )
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "scrape_interval": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{gw_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = ManagedProcess(
        "prometheus",
        [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        tmp_path / "logs",
    )  # fmt: skip
    try:
        run = run_cli(backend, ["scan", "--config", str(write_config(tmp_path, backend, bucket)),
                                "--route", "orders", "--pushgateway",
                                f"http://127.0.0.1:{gw_port}"])  # fmt: skip
        assert run.code == 0

        def query(expr: str) -> dict[str, float]:
            q = urllib.parse.urlencode({"query": expr})
            data = _get_json(f"http://127.0.0.1:{prom_port}/api/v1/query?{q}")["data"]
            return {r["metric"]["format"]: float(r["value"][1]) for r in data["result"]}

        want = {"xml": 7.0, "json": 3.0, "undetectable": 0.0}
        prometheus.wait_until(
            lambda: query('format_proxy_stored_objects{route="orders"}') == want,
            timeout=60,
            what="the pushed gauges scraped",
            interval=0.5,
        )
        stored = query('format_proxy_stored_bytes{route="orders",job="format-proxy-scan"}')
        assert stored == {"xml": float(xml_bytes_total), "json": 24.0, "undetectable": 0.0}
    finally:
        prometheus.stop()
        gateway.stop()
