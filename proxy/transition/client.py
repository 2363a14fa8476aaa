"""The S3 client of ``scan`` and ``migrate``: botocore, shared by worker threads, throttled.

botocore rather than aiobotocore: each object is a short sequence of dependent requests plus
CPU-bound translation, which a pool of N threads runs naturally with concurrency exactly N and
no event loop to keep responsive; botocore clients are thread-safe, the connection pool is sized
to the pool, and the standard AWS credential chain, SigV4 and retries come with it.
:class:`RateLimit` (a token bucket) caps S3 requests per second across all threads, retries
included (it hooks every request botocore sends).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import botocore.config
import botocore.session

from proxy.config import Config
from proxy.errors import ConfigError

#: Retries of throttling and 5xx replies (botocore "standard" mode, with backoff).
MAX_ATTEMPTS = 5


class RateLimit:
    """At most ``rate`` acquisitions per second (bursts of up to one second's worth)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


def make_client(
    config: Config,
    *,
    upstream: str | None = None,
    pool: int = 8,
    max_rps: float = 0.0,
) -> Any:
    """An S3 client for ``--upstream`` or the config's upstream, standard credential chain."""
    up = config.upstream
    if upstream is None and up.is_embedded:
        raise ConfigError("--upstream", "the config's upstream is 'embedded': give --upstream URL")
    endpoint = upstream.rstrip("/") if upstream else up.resolved_endpoint()
    session = botocore.session.Session(profile=up.profile)
    style: Literal["virtual", "path"] = "virtual" if up.uses_virtual_hosting(endpoint) else "path"
    client = session.create_client(
        "s3",
        region_name=up.region,
        endpoint_url=endpoint,
        verify=up.verify_tls,
        config=botocore.config.Config(
            s3={"addressing_style": style},
            max_pool_connections=pool + 2,
            connect_timeout=up.connect_timeout,
            read_timeout=up.read_timeout,
            retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            # The migration computes Content-MD5 itself and keeps the stored object's checksum
            # algorithm; nothing extra on other requests (some backends reject trailers).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    if max_rps > 0:
        limit = RateLimit(max_rps)

        def throttle(**_: Any) -> None:
            limit.acquire()

        client.meta.events.register("before-send.s3", throttle)
    return client
