"""Configuration: typed, layered (flag > env > file > default), validated once at start-up.

``load_config`` is the only entry point. It returns a frozen, validated :class:`Config`, or
raises :class:`proxy.errors.ConfigError` naming the key path and the problem. Nothing else in the
proxy reads files, environment variables or flags for settings. Route mappings are compiled by
the data path (:func:`proxy.datapath.routes.compile_routes`), not here.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from proxy.errors import ConfigError
from proxy.translate import Format

StorePolicy = Literal["xml", "json", "as-written"]

EMBEDDED = "embedded"
DEFAULT_LISTEN = "127.0.0.1:15480"
DEFAULT_METRICS_LISTEN = "0.0.0.0:15490"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip


def _parse_size(value: object) -> object:
    """Accept ``65536``, ``"64KiB"``, ``"1.5 MB"``; leave other types for pydantic to reject."""
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise ValueError(f"not a byte size: {value!r} (use e.g. 65536, '64KiB', '1GiB')")
        return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    return value


ByteSize = Annotated[int, BeforeValidator(_parse_size), Field(ge=0)]


class HostPort(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    port: int

    @classmethod
    def parse(cls, value: object) -> HostPort:
        if isinstance(value, HostPort):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected 'HOST:PORT', got {value!r}")
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")  # [::1]:80
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"not HOST:PORT: {value!r}")
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


Listen = Annotated[HostPort, BeforeValidator(HostPort.parse)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamConfig(_Strict):
    #: ``https://...``/``http://...``, ``embedded`` (in-process moto), or unset for AWS S3 in
    #: ``region``.
    endpoint: str | None = None
    region: str = "us-east-1"
    #: ``auto`` = virtual-hosted for AWS endpoints, path style for anything else.
    addressing_style: Literal["path", "virtual", "auto"] = "auto"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    #: Buckets created at start-up when ``endpoint: embedded`` (route buckets are added).
    buckets: tuple[str, ...] = ()
    #: Optional AWS profile for the credential chain (else the standard chain decides).
    profile: str | None = None
    #: Most pooled upstream connections (0 = unlimited).
    max_connections: int = Field(default=0, ge=0)
    #: Verify the upstream's TLS certificate (turn off only for self-signed test endpoints).
    verify_tls: bool = True

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str | None) -> str | None:
        if v is None or v == EMBEDDED:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a URL: {v!r} (expected http(s)://host[:port] or 'embedded')")
        try:
            parts.port  # noqa: B018 - parsing it is the check (not a number, above 65535)
        except ValueError:
            raise ValueError(f"not a valid port in {v!r} (expected 1-65535)") from None
        if parts.port == 0:
            raise ValueError(f"not a valid port in {v!r} (expected 1-65535)")
        if parts.query or parts.fragment:
            raise ValueError(f"must not have a query or fragment: {v!r}")
        return v.rstrip("/")

    @property
    def is_embedded(self) -> bool:
        return self.endpoint == EMBEDDED

    def resolved_endpoint(self) -> str:
        """The endpoint URL to talk to (not valid for ``embedded`` before it is started)."""
        if self.endpoint is None:
            return f"https://s3.{self.region}.amazonaws.com"
        return self.endpoint

    def uses_virtual_hosting(self, endpoint: str) -> bool:
        if self.addressing_style != "auto":
            return self.addressing_style == "virtual"
        host = urlsplit(endpoint).hostname or ""
        return host.endswith(".amazonaws.com")


class TLSConfig(_Strict):
    cert: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TLSConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be given together")
        for name in ("cert", "key"):
            p = getattr(self, name)
            if p is not None and not p.is_file():
                raise ValueError(f"{name}: no such file: '{p}'")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert is not None


class Limits(_Strict):
    #: Largest stored object (or uploaded document) the proxy will translate.
    max_translate_bytes: ByteSize = 64 * 1024**2
    #: Byte budget of the in-memory cache of translated representations.
    cache_max_bytes: ByteSize = 256 * 1024**2
    #: Deepest element/object nesting accepted in a document.
    max_depth: int = Field(default=256, ge=1)
    #: Longest single text node / string value accepted in a document.
    max_text_bytes: ByteSize = 16 * 1024**2
    #: Longest aws-chunked chunk-size line / trailer section, against slow-loris style framing.
    max_chunk_header_bytes: ByteSize = 8 * 1024
    #: aws-chunked bodies with a trailing checksum are spooled (in memory up to this size, then
    #: in a temporary file) so the checksum is verified before anything goes upstream.
    spool_memory_bytes: ByteSize = 1024**2
    #: Unmodified passthrough GET bodies at least this large move socket to socket inside the
    #: kernel (splice) when client and upstream are plain HTTP; 0 = never.
    zero_copy_min_bytes: ByteSize = 1024**2
    #: Longest a worker process may spend on one document (translation, validation, digests);
    #: past it the worker is killed and the request fails with reason ``too_slow``.
    translate_timeout: float = Field(default=10.0, gt=0)
    #: Document worker processes; None = min(2, CPU count).
    translate_workers: int | None = Field(default=None, ge=1)
    #: How much lower the workers' CPU priority is than the proxy's (``nice`` increment): the
    #: event loop wins the CPU over translations on a small machine.
    translate_nice: int = Field(default=10, ge=0, le=19)
    #: Bytes of documents being translated at once (GET, PUT, multipart completion) across all
    #: requests; a request that would go past it gets ``503 SlowDown``.
    max_inflight_translate_bytes: ByteSize = 128 * 1024**2
    #: Bytes of multipart parts spooled to disk across all open uploads on routes; an
    #: UploadPart that would go past it gets ``503 SlowDown``.
    max_spool_bytes: ByteSize = 1024**3
    #: Translation failures remembered per stored object version (bucket, key, ETag), so a
    #: document that cannot be translated fails fast on the next read; least recently used
    #: entries are forgotten past this count.
    remembered_failures: int = Field(default=4096, ge=0)

    #: Most client connections open on the data listener at once; past it a new connection is
    #: answered ``503 SlowDown`` with ``Connection: close`` and counted. Keep it below the
    #: process's open-file limit.
    max_client_connections: int = Field(default=1024, ge=1)

    @model_validator(mode="after")
    def _budgets_fit(self) -> Limits:
        if self.max_inflight_translate_bytes < self.max_translate_bytes:
            raise _KeyedError(
                "limits.max_inflight_translate_bytes",
                f"must be at least limits.max_translate_bytes ({self.max_translate_bytes}): "
                "otherwise the largest document could never be translated",
            )
        return self

    def workers(self) -> int:
        """The number of document worker processes."""
        return self.translate_workers or min(2, os.cpu_count() or 1)


class ServerConfig(_Strict):
    """Client-side timeouts of the data listener (seconds)."""

    #: A connection with no request in progress (before its first request, or between
    #: keep-alive requests) is closed after this long.
    idle_timeout: float = Field(default=60.0, gt=0)
    #: From a request's first byte until its request line and headers are complete.
    header_timeout: float = Field(default=15.0, gt=0)
    #: Longest wait for the next bytes of a request body (also right after ``100 Continue``).
    body_idle_timeout: float = Field(default=60.0, gt=0)
    #: Serve small passthrough requests on the lean HTTP/1.1 path (everything else, and any
    #: request it is unsure of, goes to the general path on the same connection).
    fast_path: bool = True


SHADOW_DEFAULT_MAX_BYTES = 1024**2


class RouteShadow(_Strict):
    """What a route in ``mode: shadow`` checks in the background."""

    #: Share of GET response and PUT request bodies checked (0–1); the rest is counted
    #: ``skipped`` with reason ``not_sampled``.
    sample: float = Field(default=1.0, ge=0.0, le=1.0)
    #: Largest body checked; larger ones are counted ``skipped`` with reason ``too_large``.
    #: None = 1 MiB, or ``limits.max_translate_bytes`` if that is smaller.
    max_bytes: ByteSize | None = None

    def limit(self, max_translate_bytes: int) -> int:
        """The largest body checked, given ``limits.max_translate_bytes``."""
        if self.max_bytes is not None:
            return self.max_bytes
        return min(SHADOW_DEFAULT_MAX_BYTES, max_translate_bytes)


class ShadowConfig(_Strict):
    """The process-wide bounds of shadow checking (every route in ``mode: shadow``)."""

    #: Checks waiting for a free checker; a completed request whose check finds the queue full
    #: is counted ``skipped`` with reason ``queue_full``.
    queue: int = Field(default=64, ge=1)
    #: Checks run at once, each in one document worker: shadow work never holds more worker
    #: slots than this.
    concurrency: int = Field(default=1, ge=1)
    #: Bytes of bodies held for checks (being copied, queued, being checked) across all
    #: requests; a body that would go past it is counted ``skipped`` with reason ``buffer_full``.
    max_buffered_bytes: ByteSize = 16 * 1024**2
    #: Seconds between two ``shadow_check_failed`` log lines of one route and reason (the next
    #: line carries how many were left out).
    log_interval: float = Field(default=10.0, gt=0)


class RouteConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    bucket: str = Field(min_length=1)
    prefix: str = ""
    formats: dict[str, Format] = Field(min_length=1)
    store: StorePolicy
    mapping: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["fail", "passthrough"] = "fail"
    #: ``active`` translates; ``shadow`` passes everything through unchanged and checks in the
    #: background what active mode would do (docs/transition.md, "Shadow mode").
    mode: Literal["active", "shadow"] = "active"
    shadow: RouteShadow = Field(default_factory=RouteShadow)

    def format_for(self, version: str) -> Format:
        return self.formats[version]


class Config(_Strict):
    listen: Listen = Field(default_factory=lambda: HostPort.parse(DEFAULT_LISTEN))
    metrics_listen: Listen = Field(default_factory=lambda: HostPort.parse(DEFAULT_METRICS_LISTEN))
    app_version: str | None = None
    tls: TLSConfig = Field(default_factory=TLSConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    limits: Limits = Field(default_factory=Limits)
    server: ServerConfig = Field(default_factory=ServerConfig)
    routes: tuple[RouteConfig, ...] = ()
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    #: Host suffixes that mark virtual-hosted requests: ``Host: <bucket>.<suffix>``. Any other
    #: Host (IP literal, ``localhost``, the listen host, a Service name) is a path-style base.
    virtual_host_suffixes: tuple[str, ...] = ("localhost",)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Where multipart uploads on routes are spooled until CompleteMultipartUpload (a private
    #: per-process directory is made inside it); None = the system temp dir.
    spool_dir: Path | None = None

    #: Directory relative paths (schemas) are resolved against; the config file's directory.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _routes_consistent(self) -> Config:
        names: set[str] = set()
        spans: set[tuple[str, str]] = set()
        for i, r in enumerate(self.routes):
            if r.name in names:
                raise _KeyedError(f"routes[{i}].name", f"duplicate route name: {r.name!r}")
            names.add(r.name)
            if (r.bucket, r.prefix) in spans:
                raise _KeyedError(
                    f"routes[{i}].prefix",
                    f"another route already covers bucket {r.bucket!r} prefix {r.prefix!r}",
                )
            spans.add((r.bucket, r.prefix))
            self._shadow_fits(i, r)
            if self.app_version is not None and self.app_version not in r.formats:
                raise _KeyedError(
                    f"routes[{i}].formats",
                    f"declared app_version {self.app_version!r} is not listed "
                    f"(known: {', '.join(sorted(r.formats))})",
                )
        if self.routes and self.app_version is None:
            raise _KeyedError(
                "app_version",
                "required when routes are configured (set app_version, --app-version or "
                "FORMAT_PROXY_APP_VERSION)",
            )
        return self

    def _shadow_fits(self, i: int, r: RouteConfig) -> None:
        limit = r.shadow.limit(self.limits.max_translate_bytes)
        if limit > self.limits.max_translate_bytes:
            raise _KeyedError(
                f"routes[{i}].shadow.max_bytes",
                f"must be at most limits.max_translate_bytes ({self.limits.max_translate_bytes}): "
                "active mode would not translate a larger document either",
            )
        if r.mode == "shadow" and limit > self.shadow.max_buffered_bytes:
            raise _KeyedError(
                f"routes[{i}].shadow.max_bytes",
                f"must be at most shadow.max_buffered_bytes ({self.shadow.max_buffered_bytes}): "
                "otherwise a body of that size could never be checked",
            )


class _KeyedError(ValueError):
    """A validation error that knows its own key path (for cross-field checks)."""

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(problem)
        self.key_path = key_path
        self.problem = problem


#: Flag / environment names and the config key each one sets. Env var = FORMAT_PROXY_<NAME>.
OVERRIDES: dict[str, tuple[str, ...]] = {
    "listen": ("listen",),
    "metrics_listen": ("metrics_listen",),
    "upstream": ("upstream", "endpoint"),
    "region": ("upstream", "region"),
    "app_version": ("app_version",),
    "tls_cert": ("tls", "cert"),
    "tls_key": ("tls", "key"),
    "log_level": ("log_level",),
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _humanise(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    if kind == "extra_forbidden":
        loc = tuple(err.get("loc", ()))
        hint = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1) if loc else []
        return "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "missing":
        return "required key is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict):
        msg = f"{msg} (got {err['input']!r})"
    return msg


def _known_keys(parent: tuple[int | str, ...]) -> list[str]:
    """The keys the config accepts in the mapping at ``parent`` (for "did you mean")."""
    model: type[BaseModel] = Config
    for part in parent:
        if isinstance(part, int):
            continue  # an item of a list of models: the same model
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _yaml_position(exc: yaml.YAMLError) -> str:
    """Where a YAML error is, as a person would point at it.

    PyYAML notices an unfinished construct (a key without ``:``, an unclosed quote, ``[`` or
    ``{``) only at the next token, often on the following line; the construct itself starts at
    the error's context mark. Other errors are where the problem mark says.
    """
    problem = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    text = getattr(exc, "context", None) or ""
    unfinished = text.startswith(("while scanning", "while parsing a flow"))
    mark = context if unfinished and context is not None else problem
    if mark is None:
        return ""
    return f" (line {mark.line + 1}, column {mark.column + 1})"


def _set_path(doc: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    node = doc
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, object | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, layer and validate the configuration.

    ``overrides`` are command-line values keyed by the names in :data:`OVERRIDES` (``None`` =
    not given); ``environ`` defaults to ``os.environ`` and supplies ``FORMAT_PROXY_*`` values,
    including ``FORMAT_PROXY_CONFIG`` when ``path`` is None.
    """
    env = os.environ if environ is None else environ
    path = path or env.get("FORMAT_PROXY_CONFIG") or None
    doc: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("config", f"cannot read '{p}': {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = _yaml_position(exc)
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError("config", f"'{p}' is not valid YAML{where}: {problem}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("config", f"'{p}' must hold a mapping at the top level")
        doc = loaded
        base_dir = p.resolve().parent

    for name, key_path in OVERRIDES.items():
        env_value = env.get(f"FORMAT_PROXY_{name.upper()}")
        if env_value not in (None, ""):
            _set_path(doc, key_path, env_value)
    for name, value in (overrides or {}).items():
        if name not in OVERRIDES:
            raise ValueError(f"unknown override {name!r}")
        if value is not None:
            _set_path(doc, OVERRIDES[name], value)

    doc["base_dir"] = base_dir
    try:
        config = Config.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            ctx_err = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_err, _KeyedError):
                lines.append(f"{ctx_err.key_path}: {ctx_err.problem}")
            else:
                lines.append(f"{_format_loc(tuple(err['loc'])) or 'config'}: {_humanise(err)}")
        first, _, rest = lines[0].partition(": ")
        raise ConfigError(first, "\n".join([rest, *lines[1:]])) from None
    return config
