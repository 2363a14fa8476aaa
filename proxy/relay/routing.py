"""Route matching: which configured route (if any) covers a bucket and key (pure).

The longest matching prefix within the request's bucket wins; no match means plain passthrough.
Only object-level requests (a key) match: bucket-level operations such as listings and
DeleteObjects always pass through.
"""

from __future__ import annotations

from proxy.config import RouteConfig

__all__ = ["Router"]


class Router:
    def __init__(self, routes: tuple[RouteConfig, ...]) -> None:
        by_bucket: dict[str, list[RouteConfig]] = {}
        for route in routes:
            by_bucket.setdefault(route.bucket, []).append(route)
        # Longest prefix first, so the first hit is the winner.
        self._by_bucket = {
            bucket: sorted(rs, key=lambda r: len(r.prefix), reverse=True)
            for bucket, rs in by_bucket.items()
        }

    def __bool__(self) -> bool:
        return bool(self._by_bucket)

    def match(self, bucket: str | None, key: str | None) -> RouteConfig | None:
        if bucket is None or key is None:
            return None
        for route in self._by_bucket.get(bucket, ()):
            if key.startswith(route.prefix):
                return route
        return None
