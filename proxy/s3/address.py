"""Where an S3 request points: parse the client's request target, build the upstream one.

Pure: strings in, strings out. The raw request path is never normalised: ``//``, ``%2F``, a
trailing ``/``, ``+``, ``:``, ``$``, ``~`` and unicode keep their meaning byte for byte. The only
rewrite is *encoding* canonicalisation, which is the identity for every AWS SDK (they already
send the SigV4 canonical form): characters that SigV4 requires to be percent-encoded but that a
hand-written client left raw are encoded, and lower-case escapes are upper-cased, so the upstream
computes the same canonical URI as our signature. The key itself never changes.

Addressing style of the client's request (see ``docs/configuration.md``, ``virtual_host_suffixes``):
a ``Host`` of the form ``<bucket>.<suffix>`` for one of the configured suffixes (default
``localhost``, as the JavaScript SDK sends ``bucket.localhost``) is virtual-hosted; every other
Host — IP literals, ``localhost`` itself, the listen host, a Service DNS name — is a path-style
base. A suffix list rather than a "first label is the bucket" guess, because sidecars are often
reached through dotted names (``proxy.ns.svc``) that must not be mistaken for buckets, and bucket
names may themselves contain dots.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

__all__ = [
    "AUTH_QUERY_PARAMS",
    "S3Address",
    "UpstreamTarget",
    "build_upstream",
    "canonical_path",
    "forwarded_query",
    "parse_copy_source",
    "parse_request",
]

AddressingStyle = Literal["path", "virtual"]

#: Query parameters that carry client authentication (SigV4 and SigV2 presigned URLs). Compared
#: case-insensitively; they are dropped before forwarding and never logged.
AUTH_QUERY_PARAMS: frozenset[str] = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-signature",
        "x-amz-security-token",
        "awsaccesskeyid",
        "signature",
        "expires",
    }
)

# RFC 3986 unreserved characters: the only ones SigV4 leaves unencoded (plus "/" in paths).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_PATH_SAFE = _UNRESERVED | {ord("/")}
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Fast path: an already-canonical string (what every SDK sends) is returned as is.
_CANONICAL_PATH_RE = re.compile(r"^(?:[A-Za-z0-9\-_.~/]|%[0-9A-F]{2})*$")
_CANONICAL_QUERY_PART_RE = re.compile(r"^(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*$")
# DNS-compatible bucket names can be a virtual host label; others fall back to path style.
_DNS_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _encode(raw: str, safe: frozenset[int]) -> str:
    """Percent-encode everything outside ``safe``; keep existing ``%XX`` escapes (upper-cased)."""
    data = raw.encode("utf-8", "surrogateescape")
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x25 and i + 2 < n and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append("%" + data[i + 1 : i + 3].decode("ascii").upper())
            i += 3
            continue
        out.append(chr(b) if b in safe else f"%{b:02X}")
        i += 1
    return "".join(out)


def canonical_path(raw_path: str) -> str:
    """The SigV4 canonical (and forwarded) form of a raw request path; meaning unchanged."""
    if _CANONICAL_PATH_RE.match(raw_path):
        return raw_path
    return _encode(raw_path, _PATH_SAFE)


def _canonical_query_part(raw: str) -> str:
    # A raw "+" in a query means space to S3 (form decoding); make that explicit as %20 so the
    # upstream decodes the value we signed.
    if _CANONICAL_QUERY_PART_RE.match(raw):
        return raw
    return _encode(raw.replace("+", "%20"), _UNRESERVED)


def forwarded_query(pairs: tuple[tuple[str, str | None], ...]) -> str:
    """The query we forward: the client's parameters in the client's order, auth removed, each
    name and value in SigV4 canonical encoding (botocore sorts them itself when signing).
    A parameter sent without ``=`` (``?uploads``) is forwarded without one."""
    parts = []
    for name, value in pairs:
        k = _canonical_query_part(name)
        parts.append(k if value is None else f"{k}={_canonical_query_part(value)}")
    return "&".join(parts)


@dataclass(frozen=True, slots=True)
class S3Address:
    """The client's request target, decoded for routing and encoded for forwarding."""

    #: Bucket name, or None for service-level requests (ListBuckets).
    bucket: str | None
    #: Decoded object key, or None for bucket-level requests. May contain "/", "//", "%2F"-
    #: decoded slashes and a trailing "/": it is used for route matching, never re-encoded.
    key: str | None
    #: The key as it appeared on the wire (still percent-encoded), "" for none.
    raw_key: str
    #: Query as ``(raw_name, raw_value)`` pairs (value None when sent without "="), client-auth
    #: parameters removed, order kept.
    raw_query: tuple[tuple[str, str | None], ...]
    #: Decoded query parameter names (for operation detection): subresources like "uploads".
    params: frozenset[str]
    #: Decoded query values, first occurrence wins (for operation detection and logging).
    values: dict[str, str]
    style: AddressingStyle
    #: True if the request carried presigned-URL authentication in its query.
    presigned: bool


def _split_host(host: str) -> str:
    """Host header without port, lower-cased; IPv6 brackets kept."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def virtual_bucket(host: str, suffixes: tuple[str, ...]) -> str | None:
    """The bucket named by a virtual-hosted ``Host`` header, or None for a path-style base."""
    name = _split_host(host)
    if not name or _is_ip(name):
        return None
    for suffix in suffixes:
        suffix = suffix.lower().strip(".")
        if name.endswith("." + suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix) - 1]
    return None


def _parse_query(query: str) -> tuple[tuple[tuple[str, str | None], ...], bool]:
    pairs: list[tuple[str, str | None]] = []
    presigned = False
    if query:
        for part in query.split("&"):
            if not part:
                continue
            name, eq, value = part.partition("=")
            if unquote(name).lower() in AUTH_QUERY_PARAMS:
                presigned = True
                continue
            pairs.append((name, value if eq else None))
    return tuple(pairs), presigned


def parse_request(raw_target: str, host: str, suffixes: tuple[str, ...]) -> S3Address:
    """Parse a raw request target (``/bucket/key?query`` as sent) and its Host header."""
    path, _, query = raw_target.partition("?")
    if not path.startswith("/"):
        # Absolute-form target (a client using us as an HTTP proxy): keep only path + query.
        path = (urlsplit(path).path or "/") if "://" in path else "/" + path
    raw_query, presigned = _parse_query(query)
    params: set[str] = set()
    values: dict[str, str] = {}
    for name, value in raw_query:
        dname = unquote(name)
        params.add(dname)
        values.setdefault(dname, unquote((value or "").replace("+", " ")))

    vbucket = virtual_bucket(host, suffixes)
    if vbucket is not None:
        raw_key = path[1:]
        return S3Address(
            bucket=vbucket,
            key=unquote(raw_key) if raw_key else None,
            raw_key=raw_key,
            raw_query=raw_query,
            params=frozenset(params),
            values=values,
            style="virtual",
            presigned=presigned,
        )

    rest = path[1:]
    raw_bucket, slash, raw_key = rest.partition("/")
    bucket = unquote(raw_bucket) if raw_bucket else None
    key = unquote(raw_key) if (bucket and slash and raw_key) else None
    return S3Address(
        bucket=bucket,
        key=key,
        raw_key=raw_key if bucket else "",
        raw_query=raw_query,
        params=frozenset(params),
        values=values,
        style="path",
        presigned=presigned,
    )


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where to send the request: the exact encoded URL we sign and send."""

    url: str  # scheme://host[:port]/encoded/path?canonical-query
    host: str  # Host header value (host[:port])
    path: str  # encoded path (canonical form)
    query: str  # forwarded query string ("" for none)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed upstream endpoint URL (computed once at start-up)."""

    scheme: str
    host: str  # hostname (IPv6 in brackets)
    port: int | None
    base_path: str  # "" or "/prefix" without trailing slash
    virtual: bool  # forward in virtual-hosted style

    @classmethod
    def parse(cls, url: str, *, virtual: bool) -> Endpoint:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return cls(
            scheme=parts.scheme,
            host=host,
            port=parts.port,
            base_path=parts.path.rstrip("/"),
            virtual=virtual,
        )

    def netloc(self, host: str) -> str:
        default = 443 if self.scheme == "https" else 80
        return host if self.port in (None, default) else f"{host}:{self.port}"


def build_upstream(address: S3Address, endpoint: Endpoint) -> UpstreamTarget:
    """The upstream URL for ``address`` in the endpoint's addressing style.

    Buckets that cannot be a DNS label (upper case, underscores, dots — dots would break TLS
    wildcard certificates) are always forwarded path style, as the AWS SDKs do.
    """
    bucket = address.bucket
    key_part = canonical_path(address.raw_key) if address.raw_key else ""
    if bucket is not None and endpoint.virtual and _DNS_BUCKET_RE.match(bucket):
        host = endpoint.netloc(f"{bucket}.{endpoint.host}")
        path = f"{endpoint.base_path}/{key_part}"
    else:
        host = endpoint.netloc(endpoint.host)
        if bucket is None:
            path = endpoint.base_path + "/"
        else:
            # A bare bucket is sent as "/bucket" (what the SDKs send), a key after "/bucket/".
            bucket_part = canonical_path(bucket).replace("/", "%2F")
            sep = "/" if address.raw_key else ""
            path = f"{endpoint.base_path}/{bucket_part}{sep}{key_part}"
    query = forwarded_query(address.raw_query)
    url = f"{endpoint.scheme}://{host}{path}" + (f"?{query}" if query else "")
    return UpstreamTarget(url=url, host=host, path=path, query=query)


def parse_copy_source(value: str | None) -> S3Address | None:
    """``x-amz-copy-source`` (``[/]bucket/key[?versionId=v]``, URL-encoded) as an address;
    None for what this proxy does not parse (access-point ARNs), left to the upstream."""
    if not value:
        return None
    path, _, query = value.strip().partition("?")
    path = path.lstrip("/")
    raw_bucket, slash, raw_key = path.partition("/")
    if not slash or not raw_key or not raw_bucket or raw_bucket.startswith("arn:"):
        return None
    raw_query: list[tuple[str, str | None]] = []
    values: dict[str, str] = {}
    for part in query.split("&") if query else ():
        name, _, v = part.partition("=")
        if unquote(name) == "versionId":
            raw_query.append(("versionId", v))
            values["versionId"] = unquote(v)
    return S3Address(
        bucket=unquote(raw_bucket),
        key=unquote(raw_key),
        raw_key=raw_key,
        raw_query=tuple(raw_query),
        params=frozenset(values),
        values=values,
        style="path",
        presigned=False,
    )
