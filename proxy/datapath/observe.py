"""What the translating data path reports about its work, and where those reports go.

The data path (:mod:`proxy.datapath`) never touches prometheus: it calls a
:class:`TranslationObserver`. The app's :class:`proxy.app.observer.MetricsObserver` records
those calls into the Prometheus metric families; tests use :class:`RecordingObserver`.

Semantics (``docs/datapath.md`` is the reference):

- ``native`` / ``translated`` / ``failed`` are called once per *request* on a route object:
  a GET or HEAD whose object exists, a PUT (or CompleteMultipartUpload) the upstream accepted,
  or any of them whose translation failed. ``translated`` also counts a request answered from
  the cache of translated representations: the transition's progress is about what clients
  see, not about CPU spent.
- ``engine_work`` is called once per document the engine actually translated (cache hits do
  not call it): the duration and byte metrics measure the engine's work.
- ``cache_lookup`` is called once per lookup of the translated-representation cache.
- ``refused`` is called once per request refused with ``503 SlowDown`` because a global
  budget was spent (``reason`` from :data:`REFUSAL_REASONS`).
- ``shadow_check`` is called once per GetObject answered 200 or 206 and per PutObject
  answered 2xx on a route in ``mode: shadow``: ``ok``, ``failed`` (``reason`` from
  :data:`SHADOW_FAILURE_REASONS`) or ``skipped`` (``reason`` from :data:`SHADOW_SKIP_REASONS`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

from proxy.errors import TRANSLATION_REASONS

__all__ = [
    "DIRECTIONS",
    "OPERATIONS",
    "OUTCOMES",
    "REFUSAL_REASONS",
    "SHADOW_DIRECTIONS",
    "SHADOW_FAILURE_REASONS",
    "SHADOW_OUTCOMES",
    "SHADOW_SKIP_REASONS",
    "Direction",
    "NullObserver",
    "Operation",
    "RecordingObserver",
    "ShadowDirection",
    "ShadowOutcome",
    "TranslationObserver",
    "direction_of",
]

Direction = Literal["xml_to_json", "json_to_xml"]
Operation = Literal["get", "head", "put"]

DIRECTIONS: tuple[Direction, ...] = ("xml_to_json", "json_to_xml")
OPERATIONS: tuple[Operation, ...] = ("get", "head", "put")
OUTCOMES = ("native", "translated", "failed")
#: Why a request was refused before any work: the bytes of documents in flight
#: (``limits.max_inflight_translate_bytes``), the bytes of spooled uploads
#: (``limits.max_spool_bytes``), no document worker free in time.
REFUSAL_REASONS = ("translate_budget", "spool_budget", "translate_queue")

#: A shadow check's direction: the translation it exercised, or ``unknown`` when the document's
#: format was never learnt (a skipped body the headers did not label, an undetectable one).
ShadowDirection = Literal["xml_to_json", "json_to_xml", "unknown"]
ShadowOutcome = Literal["ok", "failed", "skipped"]
SHADOW_DIRECTIONS: tuple[ShadowDirection, ...] = ("xml_to_json", "json_to_xml", "unknown")
SHADOW_OUTCOMES: tuple[ShadowOutcome, ...] = ("ok", "failed", "skipped")
#: Why a shadow check failed: the engine's reasons, a document that translates but does not
#: come back (``round_trip_mismatch``), or a worker that died on it (``worker_lost``).
SHADOW_FAILURE_REASONS: frozenset[str] = TRANSLATION_REASONS | {
    "round_trip_mismatch",
    "worker_lost",
}
#: Why a body was not checked (docs/transition.md, "Shadow mode").
SHADOW_SKIP_REASONS = (
    "not_sampled",
    "too_large",
    "partial",
    "incomplete",
    "buffer_full",
    "queue_full",
    "workers_busy",
    "check_error",
    "shutdown",
)


def direction_of(source: str, target: str) -> Direction:
    """``("xml", "json")`` → ``"xml_to_json"``."""
    if (source, target) == ("xml", "json"):
        return "xml_to_json"
    if (source, target) == ("json", "xml"):
        return "json_to_xml"
    raise ValueError(f"no translation from {source!r} to {target!r}")


class TranslationObserver(Protocol):
    def native(self, route: str, operation: Operation) -> None:
        """A request served (or stored) the object in its stored format."""

    def translated(self, route: str, operation: Operation, direction: Direction) -> None:
        """A request was answered from (or stored) a translated representation."""

    def failed(self, route: str, operation: Operation, direction: Direction, reason: str) -> None:
        """A request needed a translation that failed (``reason`` from TRANSLATION_REASONS)."""

    def engine_work(self, direction: Direction, seconds: float, input_bytes: int) -> None:
        """The engine translated one document of ``input_bytes`` in ``seconds``."""

    def cache_lookup(self, hit: bool) -> None:
        """One lookup of the translated-representation cache."""

    def refused(self, reason: str) -> None:
        """A request was refused (503 SlowDown) because a global budget was spent."""

    def shadow_check(
        self, route: str, direction: ShadowDirection, outcome: ShadowOutcome, reason: str
    ) -> None:
        """One body on a shadow route was checked or skipped (``reason`` "" when ok)."""


class NullObserver:
    """Observes nothing (a handler built without metrics)."""

    def native(self, route: str, operation: Operation) -> None:
        pass

    def translated(self, route: str, operation: Operation, direction: Direction) -> None:
        pass

    def failed(self, route: str, operation: Operation, direction: Direction, reason: str) -> None:
        pass

    def engine_work(self, direction: Direction, seconds: float, input_bytes: int) -> None:
        pass

    def cache_lookup(self, hit: bool) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass

    def shadow_check(
        self, route: str, direction: ShadowDirection, outcome: ShadowOutcome, reason: str
    ) -> None:
        pass


@dataclass
class RecordingObserver:
    """Keeps every report in counters (tests assert on them)."""

    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    translations: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failures: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    work: list[tuple[str, float, int]] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    shadow: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def native(self, route: str, operation: Operation) -> None:
        self.outcomes[route, operation, "native"] += 1

    def translated(self, route: str, operation: Operation, direction: Direction) -> None:
        self.outcomes[route, operation, "translated"] += 1
        self.translations[route, direction, operation] += 1

    def failed(self, route: str, operation: Operation, direction: Direction, reason: str) -> None:
        self.outcomes[route, operation, "failed"] += 1
        self.failures[route, direction, reason] += 1

    def engine_work(self, direction: Direction, seconds: float, input_bytes: int) -> None:
        self.work.append((direction, seconds, input_bytes))

    def cache_lookup(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def refused(self, reason: str) -> None:
        self.refusals[reason] += 1

    def shadow_check(
        self, route: str, direction: ShadowDirection, outcome: ShadowOutcome, reason: str
    ) -> None:
        self.shadow[route, direction, outcome, reason] += 1
