"""The ``format-proxy`` command: one sub-command per module in ``proxy.app.commands``.

Each command module exposes ``register(subparsers) -> None``, which adds its parser and sets
``func`` (``(argparse.Namespace) -> int``) as the parser default. Errors from the proxy's exception
tree become a message on stderr and an exit status here, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from proxy import __version__
from proxy.errors import ConfigError, ProxyError, UsageError

COMMANDS = ("serve", "demo", "translate", "check", "inject", "webhook", "scan", "migrate")

#: Usage and configuration errors (argparse uses 2 for usage errors too).
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="format-proxy",
        description="S3 sidecar that serves each object in the format the pod's version expects.",
    )
    parser.add_argument("--version", action="version", version=f"format-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"proxy.app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"proxy.app.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"format-proxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"format-proxy: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ProxyError as exc:
        print(f"format-proxy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
