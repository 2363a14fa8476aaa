"""``format-proxy demo --config CFG [--route NAME] [--serve] SAMPLE``: a whole transition, locally.

Starts the embedded S3 and one proxy per version the route lists (each on a free loopback
port), then walks the rollout: one phase per stored format, in the order the route lists the
versions' formats (``store: xml``, then ``store: json``). In each phase every version writes the
sample in its own format and every version reads every object written so far; a table shows
what each reader got. The document the second writer writes is the first writer's object as
its own proxy serves it, so only the sample is needed. Exit 0 if every reader got its own
format; 1 if a request was refused or a reader got another. ``--serve`` keeps the last phase's
proxies running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import signal
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from proxy.config import Config, RouteConfig, load_config
from proxy.errors import ProxyError, UsageError

EXIT_FAILED = 1
_CONTENT_FORMATS = {"application/xml": "xml", "application/json": "json"}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo",
        help="show a whole transition locally: every version writes and reads, phase by phase",
        description="Start the embedded S3 and one proxy per version of a route, then show "
        "what each version reads of what each version wrote, once per stored format. Exit 1 "
        "if a request is refused or a reader does not get its own format; 2 on usage or "
        "configuration errors.",
    )
    p.add_argument("--config", metavar="PATH", help="YAML config file (env FORMAT_PROXY_CONFIG)")
    p.add_argument("--route", metavar="NAME", help="the route to demonstrate (default: the only)")
    p.add_argument(
        "--serve",
        action="store_true",
        help="keep the last phase's proxies running until Ctrl-C, to try them with any client",
    )
    p.add_argument("sample", metavar="SAMPLE", help="a document the route accepts (XML or JSON)")
    p.set_defaults(func=run)


@dataclass
class _Object:
    key: str
    writer: str
    stored: str


def run(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get("FORMAT_PROXY_CONFIG")
    if not path:
        raise UsageError("give --config PATH: the config with the route to demonstrate")
    doc, route, config = _load(path, args.route)
    try:
        sample = Path(args.sample).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read '{args.sample}': {exc.strerror or exc}") from None
    from proxy.app.logging import configure_logging
    from proxy.translate import detect_format

    sample_format = detect_format(sample)
    if sample_format not in route.formats.values():
        raise UsageError(f"route {route.name!r} has no version that reads {sample_format}")
    configure_logging("warning", stream=sys.stderr)  # the walk-through is the output
    return asyncio.run(
        _Demo(doc, config.base_dir, route, region=config.upstream.region).run(
            sample, sample_format, serve=args.serve
        )
    )


def _load(path: str, name: str | None) -> tuple[dict[str, Any], RouteConfig, Config]:
    """The config file as written, the route to demonstrate, and the validated config (with
    one of the route's versions declared, as the phases will)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        load_config(path, environ={})  # raises the configuration error, with line and column
        raise
    listed = [r for r in (doc or {}).get("routes") or [] if isinstance(r, dict)]
    names = [str(r.get("name")) for r in listed]
    known = ", ".join(names) or "none"
    if name is None and len(names) != 1:
        raise UsageError(f"give --route NAME (routes: {known})")
    name = name or names[0]
    if name not in names:
        raise UsageError(f"no route named {name!r} in the config (routes: {known})")
    formats = listed[names.index(name)].get("formats") or {}
    version = next(iter(formats), None) if isinstance(formats, dict) else None
    config = load_config(path, overrides={"app_version": version}, environ={})
    route = next(r for r in config.routes if r.name == name)
    return doc, route, config


class _Demo:
    def __init__(
        self, doc: dict[str, Any], base_dir: Path, route: RouteConfig, region: str
    ) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.route = route
        self.region = region
        self.versions = list(route.formats)
        self.objects: list[_Object] = []
        self.failures: list[str] = []

    async def run(self, sample: bytes, sample_format: str, *, serve: bool) -> int:
        import aiohttp

        from proxy.app.embedded import EmbeddedS3

        embedded = EmbeddedS3()
        backend = await asyncio.to_thread(embedded.start)
        route = self.route
        formats = "  ".join(f"{v}={f}" for v, f in route.formats.items())
        print(f"route {route.name}: s3://{route.bucket}/{route.prefix}  versions {formats}")
        print(f"embedded S3 (moto, in memory) at {backend}")
        phases = list(dict.fromkeys(route.formats.values()))
        services: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession() as http:
                with tempfile.TemporaryDirectory(prefix="format-proxy-demo-") as tmp:
                    for n, store in enumerate(phases, 1):
                        services = await self._start(Path(tmp), backend, embedded, store)
                        urls = {v: _url(s) for v, s in services.items()}
                        print(f"\nphase {n} of {len(phases)}: store: {store}")
                        print("  " + "   ".join(f"{v} proxy {u}" for v, u in urls.items()))
                        if n == 1:
                            await _call(http, "PUT", f"{urls[self.versions[0]]}/{route.bucket}")
                        await self._writes(http, urls, n, sample, sample_format)
                        await self._reads(http, urls)
                        if n == 1:
                            await self._show(http, urls, self.objects[0].key)
                        if n < len(phases) or not serve:
                            await _stop(services)
                            services = {}
                    if services:
                        await self._serve(urls)
        finally:
            await _stop(services)
            await asyncio.to_thread(embedded.stop)
        if self.failures:
            print("\nFAILED:\n  " + "\n  ".join(self.failures))
            return EXIT_FAILED
        print("\nevery version read every object in its own format.")
        return 0

    async def _start(self, tmp: Path, backend: str, embedded: Any, store: str) -> dict[str, Any]:
        from proxy.app.service import ProxyService

        path = tmp / f"store-{store}.yaml"
        path.write_text(yaml.safe_dump(self._config_doc(store)), encoding="utf-8")
        services: dict[str, Any] = {}
        for version in self.versions:
            config = load_config(
                path,
                overrides={
                    "app_version": version,
                    "listen": "127.0.0.1:0",
                    "metrics_listen": "127.0.0.1:0",
                    "upstream": backend,
                    "region": self.region,
                },
                environ={},
            )
            service = ProxyService(config, credentials=embedded.credentials)
            services[version] = service
            try:
                await service.start()
            except OSError as exc:
                await _stop(services)
                raise ProxyError(f"cannot start a demo proxy: {exc.strerror or exc}") from None
        return services

    def _config_doc(self, store: str) -> dict[str, Any]:
        """The user's config with this phase's store policy, its paths made absolute."""
        doc = dict(self.doc)
        for key in ("upstream", "tls"):  # the embedded S3; plain HTTP on loopback
            doc.pop(key, None)
        routes = []
        for r in doc.get("routes") or []:
            r = dict(r)
            mapping = dict(r.get("mapping") or {})
            if isinstance(mapping.get("schema"), str):
                mapping["schema"] = str(self.base_dir / mapping["schema"])
            r["mapping"] = mapping
            if r.get("name") == self.route.name:
                r["store"] = store
            routes.append(r)
        doc["routes"] = routes
        return doc

    async def _writes(
        self, http: Any, urls: dict[str, str], phase: int, sample: bytes, sample_format: str
    ) -> None:
        route = self.route
        # the writer of the sample's format first; the others write what their proxy shows
        order = sorted(self.versions, key=lambda v: route.formats[v] != sample_format)
        first_key = ""
        for version in order:
            fmt = route.formats[version]
            if fmt == sample_format:
                body = sample
            else:
                url = _object_url(urls[version], route.bucket, first_key)
                _, _, body = await _call(http, "GET", url)
            key = f"{route.prefix}phase{phase}-by-{version}"
            first_key = first_key or key
            headers = {"Content-Type": f"application/{fmt}"}
            url = _object_url(urls[version], route.bucket, key)
            status, _, _ = await _call(http, "PUT", url, body, headers)
            _, head, _ = await _call(http, "HEAD", url)
            stored = head.get("x-amz-meta-format", "?")
            self.objects.append(_Object(key, version, stored))
            print(f"  {version} writes {key} as {fmt} -> {status}, stored as {stored}")

    async def _reads(self, http: Any, urls: dict[str, str]) -> None:
        route = self.route
        width = max(len(o.key) for o in self.objects) + 2
        header = "".join(f"{v} reads ({route.formats[v]})".ljust(26) for v in self.versions)
        print(f"  {'object (stored as)':<{width + 6}}{header}".rstrip())
        for obj in self.objects:
            cells = []
            for version in self.versions:
                want = route.formats[version]
                url = _object_url(urls[version], route.bucket, obj.key)
                status, headers, _ = await _call(http, "GET", url)
                ctype = headers.get("Content-Type", "").split(";")[0]
                got = _CONTENT_FORMATS.get(ctype, ctype or "?")
                how = "as stored" if got == obj.stored else "translated"
                cells.append(f"{status} {got}, {how}".ljust(26))
                if status != 200 or got != want:
                    self.failures.append(f"{version} read {obj.key}: {status} {got}, not {want}")
            print(f"  {f'{obj.key} ({obj.stored})':<{width + 6}}{''.join(cells)}".rstrip())

    async def _show(self, http: Any, urls: dict[str, str], key: str) -> None:
        """The same object as each version sees it."""
        for version in self.versions:
            url = _object_url(urls[version], self.route.bucket, key)
            _, _, body = await _call(http, "GET", url)
            text = body.decode("utf-8", "replace").rstrip()
            shown = text if len(text) <= 600 else text[:600] + " …"
            print(f"\n  {key} as {version} reads it:\n    " + shown.replace("\n", "\n    "))

    async def _serve(self, urls: dict[str, str]) -> None:
        key = self.objects[0].key
        print("\nserving until Ctrl-C; any credentials work (the proxies re-sign):")
        for version, url in urls.items():
            print(
                f"  {version}: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws --endpoint-url "
                f"{url} s3 cp s3://{self.route.bucket}/{key} -"
            )
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def _object_url(base: str, bucket: str, key: str) -> str:
    return f"{base}/{bucket}/{urllib.parse.quote(key, safe='/')}"


def _url(service: Any) -> str:
    host, port = service.addresses.data
    return f"http://{host}:{port}"


async def _call(
    http: Any,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One unsigned request: the proxy strips client authentication and signs itself."""
    async with http.request(method, url, data=body, headers=headers or {}) as resp:
        data = await resp.read()
        if resp.status >= 300:
            raise ProxyError(f"{method} {url}: {resp.status} {_s3_error(data)}")
        return resp.status, dict(resp.headers), data


def _s3_error(body: bytes) -> str:
    """``Code: Message`` of an S3 error document (the body itself if it is not one)."""
    code = re.search(rb"<Code>(.*?)</Code>", body)
    message = re.search(rb"<Message>(.*?)</Message>", body, re.S)
    if code is None:
        return body[:300].decode("utf-8", "replace")
    text = html.unescape((message.group(1) if message else b"").decode("utf-8", "replace"))
    return f"{code.group(1).decode('utf-8', 'replace')}: {text}"


async def _stop(services: dict[str, Any]) -> None:
    for service in services.values():
        await service.stop()
