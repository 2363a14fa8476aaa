"""``format-proxy translate --config CFG --route NAME --to json|xml [FILE]``.

``--dump-fast-path`` prints the route's generated fast-path source instead (both directions,
or the one ``--to`` names) and exits 0: what tracebacks and profilers show as
``<format-proxy fast path ROUTE/DIRECTION>``.

Translates one document (FILE, or standard input) with the route's mapping, exactly as the
proxy would, and writes the result to standard output, followed by a newline. Exit status: 0
translated; 1 the document cannot be translated (the reason and location on stderr, also when
it is already in the target format or in no known format); 2 usage or configuration errors
(an unknown route, an unreadable FILE, an invalid config).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from proxy.app.commands._routes import find_route, load_for_offline_use
from proxy.errors import TranslationError, UsageError, describe_location

if TYPE_CHECKING:
    from proxy.translate import CompiledMapping

EXIT_UNTRANSLATABLE = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "translate",
        help="translate one document with a route's mapping",
        description="Translate one document (FILE or stdin) with a route's mapping and write "
        "it to stdout. Exit 1 with the reason and location on stderr if it cannot be "
        "translated; exit 2 for usage or configuration errors (unknown route, unreadable "
        "FILE, invalid config).",
    )
    p.add_argument("--config", metavar="PATH", help="YAML config file (env FORMAT_PROXY_CONFIG)")
    p.add_argument("--route", required=True, metavar="NAME", help="the route whose mapping to use")
    p.add_argument(
        "--to", choices=("json", "xml"), help="the output format (required to translate)"
    )
    p.add_argument(
        "--dump-fast-path",
        action="store_true",
        help="print the route's generated fast-path source and exit",
    )
    p.add_argument(
        "--app-version", metavar="V", default=None, help="declared version, if the config needs one"
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="input document (default: stdin)")
    p.set_defaults(func=run)


def _read(path: str | None) -> bytes:
    if path is None or path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read '{path}': {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    _, routes = load_for_offline_use(args.config, args.app_version)
    route = find_route(routes, args.route)
    if args.dump_fast_path:
        return _dump_fast_path(route.mapping, args.to)
    if args.to is None:
        print("format-proxy translate: --to json|xml is required", file=sys.stderr)
        return EXIT_USAGE
    data = _read(args.file)
    from proxy.translate import detect_format

    try:
        source = detect_format(data)
        if source == args.to:
            print(
                f"format-proxy: the input is already {source.upper()} (--to {args.to}); "
                "nothing to translate",
                file=sys.stderr,
            )
            return EXIT_UNTRANSLATABLE
        mapping = route.mapping
        out = mapping.xml_to_json(data) if args.to == "json" else mapping.json_to_xml(data)
    except TranslationError as exc:
        print(describe_failure(exc), file=sys.stderr)
        return EXIT_UNTRANSLATABLE
    # a trailing newline, like any text a command prints (insignificant after either format)
    sys.stdout.buffer.write(out + b"\n")
    sys.stdout.buffer.flush()
    return 0


def _dump_fast_path(mapping: CompiledMapping, to: str | None) -> int:
    wanted = {"json": "xml_to_json", "xml": "json_to_xml"}.get(to or "")
    sources = mapping.fast_path_source()
    for filename, source in sources.items():
        if wanted is None or filename.endswith(f"/{wanted}>"):
            print(f"# {filename}\n{source}")
    if not sources:
        print("# no fast path: the mapping is translated by the rule tables alone")
    return 0


def describe_failure(exc: TranslationError) -> str:
    location = describe_location(exc.location)
    return (
        "format-proxy: cannot translate the document\n"
        f"  reason:   {exc.reason}\n"
        f"  location: {location}\n"
        f"  detail:   {exc.detail}"
    )
