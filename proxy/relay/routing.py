"""Route matching: which configured route (if any) covers a bucket and key (pure).

The longest matching prefix within the request's bucket wins; no match means plain passthrough.
Only object-level requests (a key) match: bucket-level operations such as listings and
DeleteObjects always pass through.

:meth:`Router.route` decides for a parsed request, on the bucket and key the upstream receives,
and refuses (InvalidURI) a key whose route decision a path-normalising backend would change
(``/bucket//orders/x`` is ``orders/x`` to SeaweedFS): such a request cannot be routed the way
the backend will store it, whichever way it is routed here.
"""

from __future__ import annotations

from proxy.config import RouteConfig
from proxy.errors import InvalidURI
from proxy.s3.address import S3Address, folded

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

    def route(self, address: S3Address) -> RouteConfig | None:
        """The route for a parsed request (None: passthrough); InvalidURI when a backend that
        folds ``//``, ``.`` and ``..`` segments would put the key on another route, or on or
        off a route."""
        bucket, key = address.bucket, address.key
        route = self.match(bucket, key)
        if bucket is None or key is None:
            return route
        # Both ways a backend may fold it: forwarded path style ".." can leave the bucket.
        for in_host in (False, True):
            fbucket, fkey = folded(bucket, key, in_host=in_host)
            if (fbucket, fkey) != (bucket, key) and self.match(fbucket, fkey) is not route:
                raise InvalidURI(
                    "the object key has empty, '.' or '..' path segments that would change "
                    "which route covers it; send the key without them"
                )
        return route

    def match(self, bucket: str | None, key: str | None) -> RouteConfig | None:
        if bucket is None or key is None:
            return None
        for route in self._by_bucket.get(bucket, ()):
            if key.startswith(route.prefix):
                return route
        return None
