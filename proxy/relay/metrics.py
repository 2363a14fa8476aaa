"""Prometheus metrics: every family format-proxy exports, on a per-app registry.

Names and labels are a contract (dashboard, alerts, docs). Labels never carry a bucket, key or
request id: only bounded sets (S3 operation names, HTTP status codes, route names from the
config, translation directions and failure reasons).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Whole requests: sub-millisecond small objects up to multi-minute large transfers.
_REQUEST_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
# Translating one document: 1 MB is ~30-100 ms with the compiled engine.
_TRANSLATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Metrics:
    """All metric families of one proxy instance (one registry per app, so tests can run many)."""

    def __init__(self, *, version: str, app_version: str | None) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)

        # --- passthrough ---
        self.requests = Counter(
            "format_proxy_requests",
            "S3 requests answered, by S3 operation and HTTP status code.",
            ["operation", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "format_proxy_request_duration_seconds",
            "Whole-request duration as seen by the proxy (first byte in to last byte out).",
            ["operation"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "format_proxy_upstream_duration_seconds",
            "Time from sending a request upstream to receiving its response headers.",
            ["operation"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "format_proxy_inflight_requests",
            "S3 requests currently being handled.",
            registry=r,
        )
        self.request_bytes = Counter(
            "format_proxy_request_bytes",
            "Request body bytes received from clients, by S3 operation.",
            ["operation"],
            registry=r,
        )
        self.response_bytes = Counter(
            "format_proxy_response_bytes",
            "Response body bytes sent to clients, by S3 operation.",
            ["operation"],
            registry=r,
        )
        # --- the client side of the data listener ---
        self.client_connections = Gauge(
            "format_proxy_client_connections",
            "Client connections open on the data listener.",
            registry=r,
        )
        self.refused = Counter(
            "format_proxy_refused",
            "Connections and requests the proxy turned away itself, by reason "
            "(max_client_connections|malformed_request|translate_budget|spool_budget|"
            "translate_queue).",
            ["reason"],
            registry=r,
        )
        self.client_timeouts = Counter(
            "format_proxy_client_timeouts",
            "Client connections closed for a stalled client, by phase (header|body|response).",
            ["phase"],
            registry=r,
        )
        self.accept_errors = Counter(
            "format_proxy_accept_errors",
            "Failed accept() calls on the data listener (e.g. out of file descriptors).",
            registry=r,
        )
        for reason in ("max_client_connections", "malformed_request"):
            self.refused.labels(reason)
        for phase in ("header", "body", "response"):
            self.client_timeouts.labels(phase)
        self.build_info = Gauge(
            "format_proxy_build_info",
            "Always 1; labels carry the proxy version and the pod's declared app version.",
            ["version", "app_version"],
            registry=r,
        )
        self.build_info.labels(version=version, app_version=app_version or "").set(1)

        # --- translation ---
        self.translations = Counter(
            "format_proxy_translations",
            "Documents translated, by route, direction (xml_to_json|json_to_xml) and operation "
            "(get|head|put).",
            ["route", "direction", "operation"],
            registry=r,
        )
        self.route_objects = Counter(
            "format_proxy_route_objects",
            "Objects served or stored on a route, by outcome (native|translated|failed).",
            ["route", "operation", "outcome"],
            registry=r,
        )
        self.translation_failures = Counter(
            "format_proxy_translation_failures",
            "Translation failures, by route, direction and reason.",
            ["route", "direction", "reason"],
            registry=r,
        )
        self.translation_duration = Histogram(
            "format_proxy_translation_duration_seconds",
            "Time spent translating one document, by direction.",
            ["direction"],
            buckets=_TRANSLATION_BUCKETS,
            registry=r,
        )
        self.translated_bytes = Counter(
            "format_proxy_translated_bytes",
            "Bytes of documents translated (input size), by direction.",
            ["direction"],
            registry=r,
        )
        self.cache_hits = Counter(
            "format_proxy_cache_hits",
            "Translated-representation cache hits.",
            registry=r,
        )
        self.cache_misses = Counter(
            "format_proxy_cache_misses",
            "Translated-representation cache misses.",
            registry=r,
        )

        # --- shadow mode ---
        self.shadow_checks = Counter(
            "format_proxy_shadow_checks",
            "Bodies on routes in shadow mode (GET responses, PUT requests), by route, direction "
            "(xml_to_json|json_to_xml|unknown) and outcome (ok|failed|skipped).",
            ["route", "direction", "outcome"],
            registry=r,
        )
        self.shadow_failures = Counter(
            "format_proxy_shadow_failures",
            "Shadow checks that failed, by route, direction and reason.",
            ["route", "direction", "reason"],
            registry=r,
        )
        self.shadow_skipped = Counter(
            "format_proxy_shadow_skipped",
            "Bodies on routes in shadow mode that were not checked, by route and reason "
            "(not_sampled|too_large|partial|incomplete|buffer_full|queue_full|workers_busy|"
            "check_error|shutdown).",
            ["route", "reason"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every family."""
        return generate_latest(self.registry)
