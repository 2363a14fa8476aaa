"""Every dashboard query returns data from a real Prometheus scraping a real proxy.

One proxy (declared version v2, the ``orders`` route of config/k8s.yaml) in front of moto serves
passthrough traffic and route traffic (reads of XML and JSON objects, a translated write and a
rejected one). A real Prometheus (the Debian server) scrapes it every second with the labels a
PodMonitor would give it, and loads the alert rules file. Each query is then run with Grafana's
variables substituted; it must return at least one finite sample.

The translated requests make every translation panel (the translation metrics) show data too.
A second sidecar runs the same route in ``mode: shadow`` (phase 0 of the runbook) and reads a
good and a broken order, for the Shadow row and its alert; ``format-proxy scan`` pushes the
stored-format gauges to a real Pushgateway that Prometheus scrapes too, for the panel of
objects left in the old format.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml

from proxy.config import load_config
from proxy.datapath.routes import compile_routes
from tests.k8s.dashboard import (
    VARIABLES,
    Query,
    parse_label_values,
    queries,
    substitute,
    variable_queries,
)
from tests.k8s.manifests import K8S
from tests.support.backends import Backend, isolated_aws_env
from tests.support.clients import boto3_client
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.proxy import FORMAT_PROXY, ProxyProcess

pytestmark = pytest.mark.slow

RULES = K8S / "monitoring" / "rules" / "format-proxy.rules.yaml"
#: The labels a PodMonitor's target gets (namespace, pod, app; job set by its relabeling).
TARGET_LABELS = {
    "namespace": VARIABLES["namespace"],
    "pod": "orders-reader-0",
    "app": "orders-reader",
}
#: The second sidecar's pod: the same route in shadow mode.
SHADOW_TARGET_LABELS = {**TARGET_LABELS, "pod": "orders-shadow-0", "app": "orders-shadow"}

ORDER = {
    "id": "EU-1001",
    "status": "paid",
    "placedAt": "2026-11-20T10:15:00Z",
    "customer": {"id": 42, "name": "Ada Lovelace"},
    "items": [{"sku": "A-1", "quantity": 2, "unitPrice": {"currency": "EUR", "amount": 9.5}}],
    "total": {"currency": "EUR", "amount": 19.0},
}


#: What the engine makes of ORDER (used only while the translation engine is not built).
_ORDER_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<order xmlns="urn:example:shop:orders:1" '
    b'id="EU-1001" status="paid"><placedAt>2026-11-20T10:15:00Z</placedAt><customer id="42">'
    b'<name>Ada Lovelace</name></customer><items><item sku="A-1"><quantity>2</quantity>'
    b'<unitPrice currency="EUR">9.5</unitPrice></item></items><total currency="EUR">19.0'
    b"</total></order>"
)


def _proxy_config_dir(directory: Path) -> Path:
    """The ConfigMap of k8s/base as the sidecar sees it: config.yaml + the schema, flat."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in (K8S / "base" / "proxy-config").iterdir():
        (directory / source.name).write_text(source.read_text())
    return directory


def _order_xml(config_dir: Path) -> bytes:
    """The order as a v1 Writer stores it (translated by the engine itself)."""
    config = load_config(config_dir / "config.yaml", environ={"FORMAT_PROXY_APP_VERSION": "v1"})
    try:
        return compile_routes(config)[0].mapping.json_to_xml(json.dumps(ORDER).encode())
    except NotImplementedError:
        return _ORDER_XML


@dataclass
class Prometheus:
    process: ManagedProcess
    url: str

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]


def _start_pushgateway(workdir: Path) -> tuple[ManagedProcess, str]:
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "the Pushgateway is not installed (apt-get install prometheus-pushgateway)"
    address = f"127.0.0.1:{free_port()}"
    gateway = ManagedProcess(
        "pushgateway", [binary, f"--web.listen-address={address}", "--log.level=warn"], workdir
    )

    def ready() -> bool:
        with urllib.request.urlopen(f"http://{address}/-/ready", timeout=2) as r:
            return r.status == 200

    gateway.wait_until(ready, timeout=30, what="ready")
    return gateway, address


def _start_prometheus(
    workdir: Path, target: str, shadow_target: str, pushgateway: str
) -> Prometheus:
    binary = shutil.which("prometheus")
    assert binary, "the Prometheus server is not installed (apt-get install prometheus)"
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "format-proxy",
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [
                    {"targets": [target], "labels": TARGET_LABELS},
                    {"targets": [shadow_target], "labels": SHADOW_TARGET_LABELS},
                ],
            },
            {
                # As kube-prometheus-stack scrapes a Pushgateway: the pushed job label kept.
                "job_name": "pushgateway",
                "honor_labels": True,
                "scrape_interval": "1s",
                "static_configs": [{"targets": [pushgateway]}],
            },
        ],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = ManagedProcess("prometheus", argv, workdir / "logs")
    prom = Prometheus(process, f"http://127.0.0.1:{port}")

    def ready() -> bool:
        with urllib.request.urlopen(prom.url + "/-/ready", timeout=2) as r:
            return r.status == 200

    process.wait_until(ready, timeout=60, what="ready")
    return prom


def _drive_traffic(proxy: ProxyProcess, backend: Backend, plain: str, shop: str) -> None:
    """Passthrough and route requests of every kind the dashboard shows."""
    s3 = boto3_client(proxy)
    for i in range(3):
        s3.put_object(Bucket=plain, Key=f"blob-{i}", Body=b"x" * 4096)
        s3.get_object(Bucket=plain, Key=f"blob-{i}")["Body"].read()
        s3.head_object(Bucket=plain, Key=f"blob-{i}")
    s3.list_objects_v2(Bucket=plain)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket=plain, Key="missing")  # a 404 for the error-ratio panel
    # The route: a v2 (JSON) reader reads an XML object (translated) and a JSON one (native),
    # writes JSON (stored as XML: translated), and sends an invalid order (a failure).
    s3.get_object(Bucket=shop, Key="orders/EU-1001.xml")["Body"].read()
    s3.get_object(Bucket=shop, Key="orders/EU-1002.json")["Body"].read()
    s3.put_object(Bucket=shop, Key="orders/EU-1003", Body=json.dumps(ORDER).encode())
    with contextlib.suppress(botocore.exceptions.ClientError):  # 400 once writes are validated
        s3.put_object(Bucket=shop, Key="orders/bad", Body=b'{"id": "not an order"}')


def _drive_shadow_traffic(proxy: ProxyProcess, shop: str) -> None:
    """Phase 0 on the shadow sidecar: a good read, a broken read, a good write."""
    s3 = boto3_client(proxy)
    s3.get_object(Bucket=shop, Key="orders/EU-1001.xml")["Body"].read()
    s3.get_object(Bucket=shop, Key="orders/EU-broken.xml")["Body"].read()
    s3.put_object(Bucket=shop, Key="orders/EU-1004", Body=json.dumps(ORDER).encode())


def _scan_and_push(backend: Backend, proxy: ProxyProcess, pushgateway: str) -> None:
    env = isolated_aws_env(dict(os.environ))
    env.update(backend.credentials.env())
    proc = subprocess.run(
        [str(FORMAT_PROXY), "scan", "--config", str(proxy.config_path), "--route", "orders",
         "--pushgateway", f"http://{pushgateway}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@dataclass
class Observed:
    proxy: ProxyProcess
    prometheus: Prometheus
    shadow: ProxyProcess


@pytest.fixture(scope="module")
def observed(
    moto_backend: Backend, proxy_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    config_dir = _proxy_config_dir(tmp_path_factory.mktemp("configmap"))
    shop = moto_backend.new_bucket("shop-data")
    plain = moto_backend.new_bucket("plain")
    moto_backend.direct.put_object(
        Bucket=shop,
        Key="orders/EU-1001.xml",
        Body=_order_xml(config_dir),
        ContentType="application/xml",
    )
    moto_backend.direct.put_object(
        Bucket=shop,
        Key="orders/EU-1002.json",
        Body=json.dumps({**ORDER, "id": "EU-1002"}).encode(),
        ContentType="application/json",
    )
    # An order with an element the schema does not know: its shadow check fails.
    broken = _order_xml(config_dir).replace(b"<placedAt>", b"<legacyFlag>1</legacyFlag><placedAt>")
    moto_backend.direct.put_object(Bucket=shop, Key="orders/EU-broken.xml", Body=broken)
    # The orders route of config/k8s.yaml (the ConfigMap), on this test's bucket.
    (route,) = yaml.safe_load((config_dir / "config.yaml").read_text())["routes"]
    route = {**route, "bucket": shop}
    route["mapping"] = {**route["mapping"], "schema": str(config_dir / route["mapping"]["schema"])}
    proxy = proxy_factory(moto_backend, app_version="v2", routes=[route])
    shadow = proxy_factory(
        moto_backend, app_version="v2", routes=[{**route, "mode": "shadow"}], name="shadow-pod"
    )
    gateway, pushgateway = _start_pushgateway(tmp_path_factory.mktemp("pushgateway"))
    prom = _start_prometheus(
        tmp_path_factory.mktemp("prometheus"),
        f"127.0.0.1:{proxy.metrics_port}",
        f"127.0.0.1:{shadow.metrics_port}",
        pushgateway,
    )
    try:
        # First scrape before the traffic, so every counter's increase falls inside the window.
        deadline = time.monotonic() + 30
        while not prom.query('up{job="format-proxy"} == 1'):
            assert time.monotonic() < deadline, "Prometheus never scraped the proxy"
            time.sleep(0.2)
        for _ in range(3):
            _drive_traffic(proxy, moto_backend, plain, shop)
            _drive_shadow_traffic(shadow, shop)
            time.sleep(1.2)
        _scan_and_push(moto_backend, proxy, pushgateway)
        time.sleep(2.5)  # two more scrapes after the last request
        yield Observed(proxy, prom, shadow)
    finally:
        prom.process.stop()
        gateway.stop()


QUERIES = queries()


def _assert_data(result: list[dict[str, Any]], what: str) -> None:
    assert result, f"no data: {what}"
    values = [float(s["value"][1]) for s in result]
    assert any(math.isfinite(v) for v in values), f"only NaN/Inf: {what}: {values}"


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_dashboard_query_returns_data(observed: Observed, query: Query):
    expr = query.substituted()
    _assert_data(observed.prometheus.query(expr), expr)


@pytest.mark.parametrize("name", ["namespace", "route"])
def test_template_variable_has_values(observed: Observed, name: str):
    selector, label = parse_label_values(variable_queries()[name])
    params = {"match[]": substitute(selector, {"namespace": VARIABLES["namespace"]})}
    values = observed.prometheus.api(f"label/{label}/values", **params)
    assert VARIABLES[name] in values


def test_passthrough_panels_show_the_traffic_driven(observed: Observed):
    prom = observed.prometheus
    by_op = {
        s["metric"]["operation"]: float(s["value"][1])
        for s in prom.query(
            'sum by (operation) (rate(format_proxy_requests_total{job="format-proxy"}[20s]))'
        )
    }
    for op in ("PutObject", "GetObject", "HeadObject", "ListObjectsV2"):
        assert by_op.get(op, 0) > 0, by_op
    (version,) = prom.query('count by (app_version) (format_proxy_build_info{job="format-proxy"})')
    # Both sidecars (the active one and the shadow one) declare v2.
    assert version["metric"]["app_version"] == "v2" and version["value"][1] == "2"


def test_rules_load_and_evaluate_against_real_metrics(observed: Observed):
    groups = observed.prometheus.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 8
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    alerts = {r["name"]: r["state"] for r in rules if r["type"] == "alerting"}
    assert alerts["FormatProxySidecarDown"] == "inactive"  # the sidecars are up
    assert alerts["FormatProxyRefusingRequests"] == "inactive"  # nothing was refused
    assert [s["value"][1] for s in observed.prometheus.query('up{job="format-proxy"}')] == [
        "1",
        "1",
    ]
    # The broken order read through the shadow sidecar.
    assert alerts["FormatProxyShadowCheckFailures"] == "firing"


def test_transition_recording_rule_has_data(observed: Observed):
    _assert_data(
        observed.prometheus.query("route:format_proxy_reads_translated:ratio_rate5m"),
        "route:format_proxy_reads_translated:ratio_rate5m",
    )


def test_promtool_check_metrics_on_a_scrape_reports_nothing(observed: Observed):
    text = observed.proxy.metrics_text()
    assert "format_proxy_requests_total" in text
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", (
        proc.stdout + proc.stderr
    )


def test_promtool_check_metrics_does_complain_about_bad_metrics():
    bad = "# TYPE requests counter\nrequests 1\n# TYPE latency_ms gauge\nlatency_ms 3\n"
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=bad, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "_total" in proc.stdout + proc.stderr


def test_transition_panels_show_the_traffic_driven(observed: Observed):
    """Three rounds of: one translated read, one native read, one translated write and one
    refused write on the route; the dashboard's metrics count exactly those."""
    prom = observed.prometheus
    selector = '{job="format-proxy", route="orders"}'
    objects = {
        (s["metric"]["operation"], s["metric"]["outcome"]): float(s["value"][1])
        for s in prom.query(
            f"sum by (operation, outcome) (format_proxy_route_objects_total{selector})"
        )
        if float(s["value"][1]) > 0  # the proxy exports every outcome from the start, at 0
    }
    assert objects == {
        ("get", "translated"): 3,
        ("get", "native"): 3,
        ("put", "translated"): 3,
        ("put", "failed"): 3,
    }
    translations = {
        (s["metric"]["direction"], s["metric"]["operation"]): float(s["value"][1])
        for s in prom.query(
            'sum by (direction, operation) (format_proxy_translations_total{job="format-proxy"})'
        )
        if float(s["value"][1]) > 0
    }
    assert translations == {("xml_to_json", "get"): 3, ("json_to_xml", "put"): 3}
    failures = prom.query(
        f"sum by (route, direction, reason) (format_proxy_translation_failures_total{selector})"
    )
    assert [
        (f["metric"]["direction"], f["metric"]["reason"], float(f["value"][1]))
        for f in failures
        if float(f["value"][1]) > 0
    ] == [("json_to_xml", "schema_violation", 3)]
    # The transition curve: half of the reads needed translation.
    (share,) = prom.query(
        substitute(
            next(
                q for q in QUERIES if q.id == "Share of reads translated vs native, per route [A]"
            ).expr,
            VARIABLES,
        )
    )
    assert share["metric"] == {"route": "orders"}
    assert 0.3 < float(share["value"][1]) < 0.7


def test_shadow_panels_show_the_traffic_driven(observed: Observed):
    """Three rounds of one good read, one broken read and one good write on the shadow
    sidecar: two checks ok and one failed per round, none skipped."""
    prom = observed.prometheus
    selector = '{job="format-proxy", route="orders"}'
    outcomes = {
        s["metric"]["outcome"]: float(s["value"][1])
        for s in prom.query(f"sum by (outcome) (format_proxy_shadow_checks_total{selector})")
    }
    assert outcomes == {"ok": 6, "failed": 3, "skipped": 0}
    failures = [
        (f["metric"]["pod"], f["metric"]["direction"], f["metric"]["reason"], float(f["value"][1]))
        for f in prom.query(f"format_proxy_shadow_failures_total{selector} > 0")
    ]
    assert failures == [("orders-shadow-0", "xml_to_json", "unknown_element", 3)]
    # The shadow sidecar translated nothing for its clients.
    assert not prom.query('format_proxy_translations_total{pod="orders-shadow-0"} > 0')


def test_objects_left_panel_shows_the_pushed_scan(observed: Observed):
    (query,) = [q for q in QUERIES if q.id == "Objects left in the old format [A]"]
    got = {
        s["metric"]["format"]: float(s["value"][1])
        for s in observed.prometheus.query(query.substituted())
    }
    # XML: EU-1001.xml, EU-broken.xml and EU-1003 (the active sidecar's v2 writes, stored as
    # XML); JSON: EU-1002.json and EU-1004 (written through the shadow sidecar: stored as sent).
    assert got == {"xml": 3, "json": 2, "undetectable": 0}
