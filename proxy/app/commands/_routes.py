"""Loading the config for the offline commands (``translate``, ``check``).

They use the serving config file unchanged, but do not depend on the pod's declared version:
when the file (and the environment) leave ``app_version`` unset, any version every route lists
is supplied, so that ``load_config``'s cross-checks pass; the mappings then compile exactly as
the proxy compiles them at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from proxy.config import Config, load_config
from proxy.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from proxy.datapath.routes import CompiledRoute


def load_for_offline_use(
    path: str | None, app_version: str | None
) -> tuple[Config, tuple[CompiledRoute, ...]]:
    """The validated config and its routes compiled (ConfigError / MappingError: exit 2)."""
    from proxy.datapath.routes import compile_routes  # deferred: the translator is heavy

    config = _load(path, app_version)
    return config, compile_routes(config)


def _load(path: str | None, app_version: str | None) -> Config:
    try:
        return load_config(path, overrides={"app_version": app_version})
    except ConfigError as exc:
        if app_version is not None or not _about_version(exc):
            raise
    fallback = _common_version(path)
    if fallback is None:
        raise ConfigError(
            "app_version", "not set and no version is listed by every route; pass --app-version"
        )
    return load_config(path, overrides={"app_version": fallback})


def _about_version(exc: ConfigError) -> bool:
    return exc.key_path == "app_version" or (
        exc.key_path.endswith(".formats") and "app_version" in exc.problem
    )


def _common_version(path: str | None) -> str | None:
    path = path or os.environ.get("FORMAT_PROXY_CONFIG")
    if not path:
        return None
    try:
        doc: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    common: set[str] | None = None
    for route in doc.get("routes") or []:
        versions = set((route or {}).get("formats") or {})
        common = versions if common is None else common & versions
    return sorted(common)[0] if common else None


def find_route(routes: tuple[CompiledRoute, ...], name: str) -> CompiledRoute:
    for route in routes:
        if route.name == name:
            return route
    known = ", ".join(r.name for r in routes) or "none"
    raise UsageError(f"no route named {name!r} in the config (routes: {known})")
