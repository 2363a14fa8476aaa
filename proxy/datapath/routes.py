"""Routes ready to serve: each validated route with its mapping compiled, once, at start-up.

The config only validates; :func:`compile_routes` is where mappings become engines. A mapping
that does not compile is a :class:`~proxy.errors.MappingError` (a configuration error) whose key
path points into the config or the schema, e.g. ``routes[0].mapping.schema#/properties/a``.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config import Config, RouteConfig
from proxy.relay.routing import Router
from proxy.translate import CompiledMapping, compile_mapping

__all__ = ["CompiledRoute", "RouteTable", "compile_routes"]


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route as the data path serves it: its settings and its compiled mapping."""

    config: RouteConfig
    mapping: CompiledMapping

    @property
    def name(self) -> str:
        return self.config.name


def compile_routes(config: Config) -> tuple[CompiledRoute, ...]:
    """Compile every route's mapping, in config order (raises MappingError)."""
    return tuple(
        CompiledRoute(
            route,
            compile_mapping(
                route.mapping,
                base_dir=config.base_dir,
                limits=config.limits,
                key_path=f"routes[{i}].mapping",
            ),
        )
        for i, route in enumerate(config.routes)
    )


class RouteTable:
    """The compiled routes, found by the route the pipeline matched or by bucket and key."""

    def __init__(self, routes: tuple[CompiledRoute, ...]) -> None:
        self._by_name = {r.name: r for r in routes}
        self._router = Router(tuple(r.config for r in routes))

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def of(self, route: RouteConfig) -> CompiledRoute:
        return self._by_name[route.name]

    def match(self, bucket: str | None, key: str | None) -> CompiledRoute | None:
        route = self._router.match(bucket, key)
        return None if route is None else self._by_name[route.name]
