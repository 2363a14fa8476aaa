"""``format-proxy check --config CFG [SAMPLE ...]``: what a team runs in CI before a rollout.

Compiles every route's mapping (a mapping error is a configuration error: exit 2), prints the
mappings' warnings, then round-trips each sample (its format detected) and prints one line per
file: ``OK``, ``OK (normalised: ...)`` or ``FAIL <reason> at <location>: ...``. Exit 1 if any
sample fails (with ``--strict``, also if one only comes back normalised).

A sample is checked against the only route, the ``--route`` given, or the route named in a
``ROUTE=PATH`` argument. A valid config without routes, and no samples, exits 1: nothing was
checked. Usage errors (an unknown route name, samples but no routes) exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.app.commands._routes import find_route, load_for_offline_use
from proxy.errors import TranslationError, UsageError

if TYPE_CHECKING:
    from proxy.datapath.routes import CompiledRoute

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check",
        help="compile every route's mapping and round-trip sample documents",
        description="Compile every route's mapping and round-trip each SAMPLE (format "
        "detected), one line per file. Exit 0 if all pass; 1 if a sample fails or cannot be "
        "read, or there is nothing to check (no routes, no samples); 2 on usage or "
        "configuration errors (the key and the problem on stderr).",
    )
    p.add_argument("--config", metavar="PATH", help="YAML config file (env FORMAT_PROXY_CONFIG)")
    p.add_argument("--route", metavar="NAME", help="check samples against this route")
    p.add_argument(
        "--strict",
        action="store_true",
        help="also fail samples that only come back normalised (e.g. 1 → true)",
    )
    p.add_argument(
        "--app-version", metavar="V", default=None, help="declared version, if the config needs one"
    )
    p.add_argument("samples", nargs="*", metavar="SAMPLE", help="PATH or ROUTE=PATH")
    p.set_defaults(func=run)


def _route_for(
    routes: tuple[CompiledRoute, ...], sample: str, default: str | None
) -> tuple[CompiledRoute, Path]:
    name, sep, path = sample.partition("=")
    # ROUTE=PATH, unless a file is really named like that
    if sep and name and not Path(sample).exists():
        return find_route(routes, name), Path(path)
    if default is not None:
        return find_route(routes, default), Path(sample)
    if len(routes) == 1:
        return routes[0], Path(sample)
    if not routes:
        raise UsageError("the config has no routes to check samples against")
    names = ", ".join(r.name for r in routes)
    raise UsageError(
        f"several routes ({names}): give --route NAME or write the sample as NAME=PATH"
    )


def run(args: argparse.Namespace) -> int:
    _, routes = load_for_offline_use(args.config, args.app_version)
    if not routes and not args.samples:
        # valid, but a CI step that checked nothing must not pass silently
        print(
            "format-proxy: nothing to check: the config is valid but has no routes, and no "
            "samples were given",
            file=sys.stderr,
        )
        return EXIT_FAILED
    # every sample's route is resolved first, so a wrong name fails before any output
    targets = [_route_for(routes, sample, args.route) for sample in args.samples]
    out = sys.stdout
    for route in routes:
        mapping = route.mapping
        schema = route.config.mapping.get("schema")
        what = f"schema {schema}" if schema else "no schema (default convention)"
        print(
            f"route {route.name}: mapping compiled ({what}, root <{mapping.root_name or '*'}>)",
            file=out,
        )
        for warning in mapping.warnings:
            print(f"route {route.name}: warning: {warning}", file=out)
    failed = 0
    from proxy.translate import detect_format
    from proxy.translate.roundtrip import round_trip

    for route, path in targets:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"FAIL  {path}: cannot read: {exc.strerror or exc}", file=out)
            failed += 1
            continue
        try:
            fmt = detect_format(data)
        except TranslationError as exc:
            print(f"FAIL  {path}: {exc}", file=out)
            failed += 1
            continue
        result = round_trip(route.mapping, data, fmt)
        tag = f"{fmt}, route {route.name}"
        if result.outcome == "exact":
            print(f"OK    {path} ({tag})", file=out)
        elif result.outcome == "normalised":
            status = "FAIL " if args.strict else "OK   "
            failed += args.strict
            print(f"{status} {path} ({tag}; normalised: {result.detail})", file=out)
        else:
            failed += 1
            err = result.error
            if err is not None:
                print(f"FAIL  {path} ({tag}): {err}", file=out)
            else:
                print(f"FAIL  {path} ({tag}): {result.detail}", file=out)
    if args.samples:
        total = len(args.samples)
        print(f"{total - failed} of {total} sample(s) OK", file=out)
    return EXIT_FAILED if failed else 0
