"""``format-proxy inject``: add the sidecar to opted-in pod templates in Kubernetes YAML.

Like ``istioctl kube-inject``: reads one or more YAML documents, injects every Pod, Deployment,
StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob whose pod template
opts in (``format-proxy.io/inject: "true"``), and writes the stream back with every other
document byte-for-byte. Nothing is written unless the whole input could be processed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from proxy.errors import InjectionError
from proxy.inject.options import DEFAULT_CONFIG_MAP, DEFAULT_IMAGE, InjectOptions
from proxy.inject.stream import inject_stream


def add_injector_options(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``inject`` and ``webhook`` (the same defaults for both)."""
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="add the sidecar as a regular container (clusters before Kubernetes 1.29) instead "
        "of a native sidecar; a pod's annotation format-proxy.io/mode overrides this",
    )
    parser.add_argument(
        "--image", default=DEFAULT_IMAGE, help=f"sidecar image (default: {DEFAULT_IMAGE})"
    )
    parser.add_argument(
        "--config-map",
        default=DEFAULT_CONFIG_MAP,
        metavar="NAME",
        help="ConfigMap with the proxy's config.yaml, unless the pod's annotation "
        f"format-proxy.io/config names another (default: {DEFAULT_CONFIG_MAP})",
    )
    parser.add_argument(
        "--proxy-grace-seconds",
        type=int,
        default=25,
        metavar="N",
        help="the proxy's shutdown_grace_seconds, added to the pod's termination grace period "
        "(default: 25)",
    )


def options_from(args: argparse.Namespace) -> InjectOptions:
    try:
        return InjectOptions(
            image=args.image,
            mode="legacy" if args.legacy else "native",
            config_map=args.config_map,
            proxy_grace_seconds=args.proxy_grace_seconds,
        )
    except ValueError as exc:
        raise InjectionError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inject",
        help="add the sidecar to opted-in pod templates in Kubernetes YAML",
        # the module docstring without its reST literal markup
        description=__doc__.split("\n\n", 1)[1].replace("``", "") if __doc__ else None,
    )
    parser.add_argument(
        "-f",
        "--filename",
        default="-",
        metavar="FILE",
        help="YAML (or JSON) file with one or more documents; '-' reads stdin (default)",
    )
    parser.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="write here instead of stdout"
    )
    add_injector_options(parser)
    parser.set_defaults(func=run)


def _read(name: str) -> str:
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise InjectionError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InjectionError(f"{name}: not UTF-8 text ({exc})") from None


def _write(name: str, text: str) -> None:
    if name == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(name)
    # Write a temporary file beside the target and rename it: never a half-written output.
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or Path("."), prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise InjectionError(f"cannot write {name}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    result = inject_stream(_read(args.filename), options)
    for warning in result.warnings:
        print(f"format-proxy inject: warning: {warning}", file=sys.stderr)
    _write(args.output, result.text)
    return 0
