"""The observer → Prometheus adapter, and ``serve``'s wiring of the translating handler."""

from __future__ import annotations

from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from proxy.app.observer import MetricsObserver
from proxy.app.service import ProxyService
from proxy.config import load_config
from proxy.datapath.routes import compile_routes
from proxy.errors import TRANSLATION_REASONS
from proxy.relay.credentials import StaticCredentials
from proxy.relay.metrics import Metrics
from tests.datapath.conftest import BUCKET, route
from tests.datapath.fakes import FakeS3, xml_doc


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), float("nan"))


def test_metrics_observer_records_every_family_and_declares_zeros():
    m = Metrics(version="t", app_version="v2")
    o = MetricsObserver(m, ("orders",))
    text = m.render().decode()
    # every series of the route exists at 0 before anything happens
    assert (
        value(
            text,
            "format_proxy_translations_total",
            route="orders",
            direction="xml_to_json",
            operation="head",
        )
        == 0
    )
    assert (
        value(
            text,
            "format_proxy_route_objects_total",
            route="orders",
            operation="put",
            outcome="failed",
        )
        == 0
    )
    for reason in TRANSLATION_REASONS:
        assert (
            value(
                text,
                "format_proxy_translation_failures_total",
                route="orders",
                direction="json_to_xml",
                reason=reason,
            )
            == 0
        )
    o.native("orders", "get")
    o.translated("orders", "get", "xml_to_json")
    o.translated("orders", "get", "xml_to_json")
    o.failed("orders", "put", "json_to_xml", "type_mismatch")
    o.engine_work("xml_to_json", 0.02, 1000)
    o.cache_lookup(True)
    o.cache_lookup(False)
    o.cache_lookup(False)
    text = m.render().decode()
    assert (
        value(
            text,
            "format_proxy_translations_total",
            route="orders",
            direction="xml_to_json",
            operation="get",
        )
        == 2
    )
    assert (
        value(
            text,
            "format_proxy_route_objects_total",
            route="orders",
            operation="get",
            outcome="native",
        )
        == 1
    )
    assert (
        value(
            text,
            "format_proxy_route_objects_total",
            route="orders",
            operation="get",
            outcome="translated",
        )
        == 2
    )
    assert (
        value(
            text,
            "format_proxy_route_objects_total",
            route="orders",
            operation="put",
            outcome="failed",
        )
        == 1
    )
    assert (
        value(
            text,
            "format_proxy_translation_failures_total",
            route="orders",
            direction="json_to_xml",
            reason="type_mismatch",
        )
        == 1
    )
    assert (
        value(text, "format_proxy_translation_duration_seconds_count", direction="xml_to_json") == 1
    )
    assert value(text, "format_proxy_translated_bytes_total", direction="xml_to_json") == 1000
    assert value(text, "format_proxy_cache_hits_total") == 1
    assert value(text, "format_proxy_cache_misses_total") == 2


async def test_service_wires_the_translating_handler_and_metrics(fake_s3: FakeS3, tmp_path: Any):
    doc = {
        "listen": "127.0.0.1:0",
        "metrics_listen": "127.0.0.1:0",
        "upstream": {"endpoint": fake_s3.url},
        "app_version": "v2",
        "routes": [route()],
        "spool_dir": str(tmp_path / "spool"),
    }
    config_file = tmp_path / "proxy.yaml"
    config_file.write_text(yaml.safe_dump(doc))
    # The real engine, in the service's own document worker processes.
    cfg = load_config(str(config_file), environ={})
    (compiled,) = compile_routes(cfg)
    engine = compiled.mapping
    fake_s3.put(BUCKET, "docs/a", xml_doc(a="1"), x_amz_meta_format="xml")
    written = engine.xml_to_json(xml_doc(a="2"))
    service = ProxyService(cfg, credentials=StaticCredentials("AK", "SK"))
    await service.start()
    try:
        assert service.addresses is not None
        base = "http://{}:{}".format(*service.addresses.data)
        murl = "http://{}:{}/metrics".format(*service.addresses.metrics)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/{BUCKET}/docs/a") as r:
                assert await r.read() == engine.xml_to_json(xml_doc(a="1"))
            async with s.put(f"{base}/{BUCKET}/docs/b", data=written) as r:
                assert r.status == 200
            async with s.get(murl) as r:
                text = await r.text()
        assert fake_s3.objects[BUCKET, "docs/b"].body == engine.json_to_xml(written)
        assert (
            value(
                text,
                "format_proxy_translations_total",
                route="docs",
                direction="xml_to_json",
                operation="get",
            )
            == 1
        )
        assert (
            value(
                text,
                "format_proxy_translations_total",
                route="docs",
                direction="json_to_xml",
                operation="put",
            )
            == 1
        )
        spool = list((tmp_path / "spool").iterdir())
        assert len(spool) == 1  # the per-process upload spool
    finally:
        await service.stop()
    assert list((tmp_path / "spool").iterdir()) == []  # removed at shutdown
