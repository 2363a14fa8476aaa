"""Documents that cost the engine a lot of CPU for their size, and a plain HTTP client that
measures each request (the proxy strips client auth and re-signs, so none is sent)."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Translated documents stored on the route, by the trouble they make.
HOSTILE_XML: dict[str, bytes] = {
    # lxml's own attribute lookups are quadratic; the reader's must stay linear
    "many_attributes": ("<doc " + " ".join(f'a{i}="v"' for i in range(40_000)) + "/>").encode(),
    "many_namespaces": (
        "<doc " + " ".join(f'xmlns:p{i}="urn:x:{i}"' for i in range(20_000)) + "><a>1</a></doc>"
    ).encode(),
    "long_attribute_values": ('<doc a="' + "x" * 2_000_000 + '"/>').encode(),
    "huge_text": ("<doc><a>" + "y" * 2_000_000 + "</a></doc>").encode(),
    "deep_nesting": ("<doc>" + "<a>" * 250 + "z" + "</a>" * 250 + "</doc>").encode(),
    # linear, but seconds of CPU: 300k sibling elements
    "many_children": ("<doc>" + "<a>x</a>" * 300_000 + "</doc>").encode(),
}

#: An XML document the engine needs seconds of CPU for (1.2M sibling elements, ~10 MB).
SLOW_XML = ("<doc>" + "<a>x</a>" * 1_200_000 + "</doc>").encode()
HOSTILE_XML["slow"] = SLOW_XML


def slower_xml() -> bytes:
    """Seconds of work on any machine (three times :data:`SLOW_XML`), built when needed."""
    return ("<doc>" + "<a>x</a>" * 3_600_000 + "</doc>").encode()


#: A JSON document the engine needs seconds for (written by a v2 pod): 1.2M keys, ~19 MB. With
#: 400k keys a fast machine translated it within the 1 s budget the tests use.
MANY_KEYS_JSON = json.dumps({"doc": {f"k{i}": "v" for i in range(1_200_000)}}).encode()


def schemaless_route(bucket: str, **overrides: Any) -> dict[str, Any]:
    route: dict[str, Any] = {
        "name": "docs",
        "bucket": bucket,
        "prefix": "docs/",
        "formats": {"v1": "xml", "v2": "json"},
        "store": "xml",
        "mapping": {},
        "on_error": "fail",
    }
    route.update(overrides)
    return route


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float


class Client:
    """One keep-alive HTTP connection to the proxy (one per thread)."""

    def __init__(self, endpoint: str, timeout: float = 60.0) -> None:
        parts = urlsplit(endpoint)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        started = time.perf_counter()
        try:
            self._conn.request(method, path, body=body, headers=headers or {})
            resp = self._conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            raise
        return Answer(resp.status, data, time.perf_counter() - started)

    def close(self) -> None:
        self._conn.close()


def measure(endpoint: str, metrics_url: str, path: str, seconds: float, out: Any) -> None:
    """Sequential passthrough GETs of ``path`` (and a /healthz every fifth), for ``seconds``;
    puts ``(GET latencies, healthz latencies, failures)`` on ``out``. Runs in a process of its
    own, so the test's other client threads cannot delay it (they share one GIL)."""
    data, health = Client(endpoint), Client(metrics_url)
    gets: list[float] = []
    checks: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = data.request("GET", path)
        if got.status != 200:
            failures.append(f"GET {got.status}")
        gets.append(got.seconds)
        if len(gets) % 5 == 0:
            ok = health.request("GET", "/healthz")
            if ok.status != 200:
                failures.append(f"healthz {ok.status}")
            checks.append(ok.seconds)
        time.sleep(0.02)
    data.close()
    health.close()
    out.put((gets, checks, failures))
