"""Where the data path's reports go in a running proxy: the Prometheus metric families.

:class:`MetricsObserver` is the :class:`proxy.datapath.observe.TranslationObserver` the app
wires in; the data path itself never imports prometheus (``docs/datapath.md`` lists the metrics).
"""

from __future__ import annotations

from proxy.datapath.observe import (
    DIRECTIONS,
    OPERATIONS,
    OUTCOMES,
    REFUSAL_REASONS,
    SHADOW_DIRECTIONS,
    SHADOW_FAILURE_REASONS,
    SHADOW_OUTCOMES,
    SHADOW_SKIP_REASONS,
    Direction,
    Operation,
    ShadowDirection,
    ShadowOutcome,
)
from proxy.errors import TRANSLATION_REASONS
from proxy.relay.metrics import Metrics

__all__ = ["MetricsObserver"]


class MetricsObserver:
    """Records observations into the translation families of a :class:`Metrics`."""

    def __init__(
        self, metrics: Metrics, routes: tuple[str, ...] = (), shadow_routes: tuple[str, ...] = ()
    ) -> None:
        self._m = metrics
        for reason in REFUSAL_REASONS:
            metrics.refused.labels(reason)
        for route in routes:
            self._declare(route)
        for route in shadow_routes:
            self._declare_shadow(route)

    def _declare_shadow(self, route: str) -> None:
        m = self._m
        for d in SHADOW_DIRECTIONS:
            for outcome in SHADOW_OUTCOMES:
                m.shadow_checks.labels(route, d, outcome)
        for d in SHADOW_DIRECTIONS[:2]:
            for reason in sorted(SHADOW_FAILURE_REASONS):
                m.shadow_failures.labels(route, d, reason)
        m.shadow_failures.labels(route, "unknown", "undetectable_format")
        for reason in SHADOW_SKIP_REASONS:
            m.shadow_skipped.labels(route, reason)

    def _declare(self, route: str) -> None:
        # Every series exists from start-up at 0, so rate()/increase() see the first event
        # (a series born at 1 shows no increase) and dashboards show zeros, not "no data".
        m = self._m
        for op in OPERATIONS:
            for outcome in OUTCOMES:
                m.route_objects.labels(route, op, outcome)
            for d in DIRECTIONS:
                m.translations.labels(route, d, op)
        for d in DIRECTIONS:
            m.translation_duration.labels(d)
            m.translated_bytes.labels(d)
            for reason in sorted(TRANSLATION_REASONS):
                m.translation_failures.labels(route, d, reason)

    def native(self, route: str, operation: Operation) -> None:
        self._m.route_objects.labels(route, operation, "native").inc()

    def translated(self, route: str, operation: Operation, direction: Direction) -> None:
        self._m.translations.labels(route, direction, operation).inc()
        self._m.route_objects.labels(route, operation, "translated").inc()

    def failed(self, route: str, operation: Operation, direction: Direction, reason: str) -> None:
        self._m.route_objects.labels(route, operation, "failed").inc()
        self._m.translation_failures.labels(route, direction, reason).inc()

    def engine_work(self, direction: Direction, seconds: float, input_bytes: int) -> None:
        self._m.translation_duration.labels(direction).observe(seconds)
        self._m.translated_bytes.labels(direction).inc(input_bytes)

    def cache_lookup(self, hit: bool) -> None:
        (self._m.cache_hits if hit else self._m.cache_misses).inc()

    def refused(self, reason: str) -> None:
        self._m.refused.labels(reason).inc()

    def shadow_check(
        self, route: str, direction: ShadowDirection, outcome: ShadowOutcome, reason: str
    ) -> None:
        self._m.shadow_checks.labels(route, direction, outcome).inc()
        if outcome == "failed":
            self._m.shadow_failures.labels(route, direction, reason).inc()
        elif outcome == "skipped":
            self._m.shadow_skipped.labels(route, reason).inc()
