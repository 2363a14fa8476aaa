"""``scan``: how many objects (and bytes) of a route are stored in each format.

Walks the route's keys (listing or Inventory manifest) and detects each object's stored format
from a HEAD (and a ranged GET of its first bytes when the headers do not tell). With
``validate`` it downloads each object and translates it with the route's mapping. Each object
that is undetectable or fails translation is one JSON line on ``out`` (key, reason, location,
detail). :func:`push_report` hands the counts to a Prometheus Pushgateway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import botocore.exceptions

from proxy.config import RouteConfig
from proxy.errors import TranslationError
from proxy.transition.detect import SNIFF_MAX_BYTES, detect_object, format_of
from proxy.transition.listing import count_in_background, keys_of
from proxy.transition.progress import Progress
from proxy.transition.rewrite import Translator
from proxy.transition.shard import WHOLE, Shard
from proxy.transition.workers import for_each

UNDETECTABLE = "undetectable"
_CHANGED_RETRIES = 3
#: The gauges :func:`push_report` pushes (a contract, like the sidecar's metrics).
STORED_OBJECTS = "format_proxy_stored_objects"
STORED_BYTES = "format_proxy_stored_bytes"


@dataclass
class ScanReport:
    route: str
    #: format -> [objects, bytes]
    formats: dict[str, list[int]] = field(
        default_factory=lambda: {"xml": [0, 0], "json": [0, 0], UNDETECTABLE: [0, 0]}
    )
    failed: int = 0
    errors: int = 0
    gone: int = 0
    validated: bool = False
    interrupted: bool = False

    @property
    def undetectable(self) -> int:
        return self.formats[UNDETECTABLE][0]

    @property
    def ok(self) -> bool:
        return not (self.undetectable or self.failed or self.errors or self.interrupted)

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "objects": {f: c[0] for f, c in self.formats.items()},
            "bytes": {f: c[1] for f, c in self.formats.items()},
            "undetectable": self.undetectable,
            "failed_validation": self.failed,
            "errors": self.errors,
            "deleted_while_scanning": self.gone,
            "validated": self.validated,
            "interrupted": self.interrupted,
        }


def _other(fmt: str) -> str:
    return "json" if fmt == "xml" else "xml"


def run_scan(
    client: Any,
    route: RouteConfig,
    translator: Translator,
    *,
    validate: bool = False,
    manifest: str | None = None,
    shard: Shard = WHOLE,
    concurrency: int = 8,
    out: TextIO,
    progress: Progress,
    stop: threading.Event | None = None,
) -> ScanReport:
    stop = stop or threading.Event()
    report = ScanReport(route.name, validated=validate)
    lock = threading.Lock()

    def emit(entry: Mapping[str, Any]) -> None:
        out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        out.flush()

    def look(key: str) -> tuple[str, int, dict[str, str] | None]:
        for attempt in range(_CHANGED_RETRIES + 1):
            try:
                if validate:
                    return _validate(client, route.bucket, key, translator)
                return _detect(client, route.bucket, key)
            except botocore.exceptions.ClientError as exc:
                # Rewritten between the HEAD and the ranged GET (If-Match): look again.
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status != 412 or attempt == _CHANGED_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def job(ref: Any) -> None:
        try:
            fmt, size, problem = look(ref.key)
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            with lock:
                if status == 404:
                    report.gone += 1
                else:
                    report.errors += 1
                    emit({"key": ref.key, "reason": "s3_error", "location": "", "detail": str(exc)})
            progress.add("gone" if status == 404 else "error")
            return
        with lock:
            counts = report.formats[fmt]
            counts[0] += 1
            counts[1] += size
            if problem is not None:
                if fmt != UNDETECTABLE:
                    report.failed += 1
                emit({"key": ref.key, **problem})
        progress.add(fmt, size)

    count_in_background(lambda: keys_of(client, route, shard, manifest), progress)
    for_each(keys_of(client, route, shard, manifest), job, concurrency=concurrency, stop=stop)
    report.interrupted = stop.is_set()
    return report


def _problem(exc: TranslationError, **extra: str) -> dict[str, str]:
    return {"reason": exc.reason, "location": exc.location, "detail": exc.detail, **extra}


def _detect(client: Any, bucket: str, key: str) -> tuple[str, int, dict[str, str] | None]:
    found = detect_object(client, bucket, key)
    if found.error is not None:
        return UNDETECTABLE, found.size, _problem(found.error)
    return found.fmt or UNDETECTABLE, found.size, None


def _validate(
    client: Any, bucket: str, key: str, translator: Translator
) -> tuple[str, int, dict[str, str] | None]:
    resp = client.get_object(Bucket=bucket, Key=key)
    with resp["Body"] as body:
        data = bytes(body.read())
    try:
        fmt = format_of(resp.get("Metadata", {}), resp.get("ContentType"), data[:SNIFF_MAX_BYTES])
    except TranslationError as exc:
        return UNDETECTABLE, len(data), _problem(exc)
    try:
        if fmt == "xml":
            translator.xml_to_json(data)
        else:
            translator.json_to_xml(data)
    except TranslationError as exc:
        return fmt, len(data), _problem(exc, stored_format=fmt, direction=f"{fmt}_to_{_other(fmt)}")
    return fmt, len(data), None


def push_report(report: ScanReport, url: str, *, job: str = "format-proxy-scan") -> None:
    """Push ``format_proxy_stored_objects`` / ``_bytes{route,format}`` to a Pushgateway."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    objects = Gauge(
        STORED_OBJECTS,
        "Objects stored on a route, by stored format, as of the last scan",
        ["route", "format"],
        registry=registry,
    )
    nbytes = Gauge(
        STORED_BYTES,
        "Bytes stored on a route, by stored format, as of the last scan",
        ["route", "format"],
        registry=registry,
    )
    for fmt, (n, size) in report.formats.items():
        objects.labels(route=report.route, format=fmt).set(n)
        nbytes.labels(route=report.route, format=fmt).set(size)
    push_to_gateway(url, job=job, registry=registry, grouping_key={"route": report.route})
