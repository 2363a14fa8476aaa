"""Where an S3 request points: parse the client's request target, build the upstream one.

Pure: strings in, strings out. The raw request path is never normalised: ``//``, ``%2F``, a
trailing ``/``, ``+``, ``:``, ``$``, ``~`` and unicode keep their meaning byte for byte. The only
rewrite is *encoding* canonicalisation, which is the identity for every AWS SDK (they already
send the SigV4 canonical form): characters that SigV4 requires to be percent-encoded but that a
hand-written client left raw are encoded, escapes of unreserved characters (``%41``) are
decoded and lower-case escapes are upper-cased, so the upstream computes the same canonical URI
as our signature. The key itself never changes.

The request is parsed once: :func:`parse_request` canonicalises the key once, and the decoded
key the router matches is decoded from exactly the string :func:`build_upstream` forwards.
:func:`check_forwardable` refuses what the upstream could read as another bucket or key (see
``docs/security.md``, "Request targets"); :func:`folded` is how a backend that normalises paths
would read a bucket and key.

Addressing style of the client's request (see ``docs/configuration.md``, ``virtual_host_suffixes``):
a ``Host`` of the form ``<bucket>.<suffix>`` for one of the configured suffixes (default
``localhost``, as the JavaScript SDK sends ``bucket.localhost``) is virtual-hosted; every other
Host — IP literals, ``localhost`` itself, the listen host, a Service DNS name — is a path-style
base. A suffix list rather than a "first label is the bucket" guess, because sidecars are often
reached through dotted names (``proxy.ns.svc``) that must not be mistaken for buckets, and bucket
names may themselves contain dots.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from proxy.errors import InvalidBucketName, InvalidURI

__all__ = [
    "AUTH_QUERY_PARAMS",
    "S3Address",
    "UpstreamTarget",
    "build_upstream",
    "canonical_path",
    "check_forwardable",
    "folded",
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
# Fast path: an already-canonical string (what every SDK sends) is returned as is. Always
# ``fullmatch``: ``$`` would also match before a trailing newline.
_CANONICAL_PATH_RE = re.compile(r"(?:[A-Za-z0-9\-_.~/]|%[0-9A-F]{2})*")
_CANONICAL_QUERY_PART_RE = re.compile(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*")
# An escape of an unreserved character ("%41" is "A"): not canonical, decoded.
_UNRESERVED_ESCAPE_RE = re.compile(
    r"%(?:2[DEde]|3[0-9]|4[1-9A-Fa-f]|5[0-9Aa]|5[Ff]|6[1-9A-Fa-f]|7[0-9Aa]|7[Ee])"
)
# DNS-compatible bucket names can be a virtual host label; others fall back to path style.
_DNS_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
# Bucket names the proxy forwards: S3's characters (with the legacy us-east-1 allowance for
# upper case and underscores, up to 255 characters), a letter or digit at both ends, no "..".
# None of them needs encoding or can be a dot segment, so a bucket is forwarded as is.
_BUCKET_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?")
_IPV4_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# An empty, "." or ".." path segment: what a path-cleaning server folds.
_FOLDABLE_RE = re.compile(r"(?:^|/)\.{0,2}(?:/|$)")


def _encode(raw: str, safe: frozenset[int]) -> str:
    """Percent-encode everything outside ``safe``; keep existing ``%XX`` escapes (upper-cased)."""
    data = raw.encode("utf-8", "surrogateescape")
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x25 and i + 2 < n and data[i + 1] in _HEX and data[i + 2] in _HEX:
            escaped = int(data[i + 1 : i + 3], 16)
            out.append(chr(escaped) if escaped in _UNRESERVED else f"%{escaped:02X}")
            i += 3
            continue
        out.append(chr(b) if b in safe else f"%{b:02X}")
        i += 1
    return "".join(out)


def canonical_path(raw_path: str) -> str:
    """The SigV4 canonical (and forwarded) form of a raw request path; meaning unchanged."""
    if _CANONICAL_PATH_RE.fullmatch(raw_path) and not _UNRESERVED_ESCAPE_RE.search(raw_path):
        return raw_path
    return _encode(raw_path, _PATH_SAFE)


def _canonical_query_part(raw: str) -> str:
    # A raw "+" in a query means space to S3 (form decoding); make that explicit as %20 so the
    # upstream decodes the value we signed.
    if _CANONICAL_QUERY_PART_RE.fullmatch(raw) and not _UNRESERVED_ESCAPE_RE.search(raw):
        return raw
    return _encode(raw.replace("+", "%20"), _UNRESERVED)


def _decode(wire: str) -> str:
    # Bytes that are not UTF-8 become lone surrogates (never U+FFFD, which could equal a real
    # character): check_forwardable refuses them.
    return unquote(wire, errors="surrogateescape")


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
    #: Decoded from ``wire_key``: the router sees exactly the key the upstream receives.
    key: str | None
    #: The key as it appeared on the client's request (still percent-encoded), "" for none.
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
    #: The key as forwarded: ``raw_key`` in SigV4 canonical encoding, computed once when the
    #: request is parsed. None for addresses built by hand (then derived from ``raw_key``).
    wire_key: str | None = None

    def forwarded_key(self) -> str:
        """The encoded key exactly as it goes upstream ("" for none)."""
        if self.wire_key is not None:
            return self.wire_key
        return canonical_path(self.raw_key) if self.raw_key else ""


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


# A client sends the same few Host values over and over: parse each once (bounded cache).
@functools.lru_cache(maxsize=1024)
def virtual_bucket(host: str, suffixes: tuple[str, ...]) -> str | None:
    """The bucket named by a virtual-hosted ``Host`` header, or None for a path-style base.

    A fully qualified name's trailing dot (``bucket.localhost.``) is the same host."""
    name = _split_host(host)
    if name.endswith("."):
        name = name[:-1]
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
        wire = canonical_path(raw_key) if raw_key else ""
        return S3Address(
            bucket=vbucket,
            key=_decode(wire) if wire else None,
            raw_key=raw_key,
            raw_query=raw_query,
            params=frozenset(params),
            values=values,
            style="virtual",
            presigned=presigned,
            wire_key=wire,
        )

    rest = path[1:]
    raw_bucket, slash, raw_key = rest.partition("/")
    # "//key" names the bucket "" (refused by check_forwardable), not the service.
    bucket = _decode(raw_bucket) if (raw_bucket or slash) else None
    raw_key = raw_key if bucket else ""
    wire = canonical_path(raw_key) if raw_key else ""
    return S3Address(
        bucket=bucket,
        key=_decode(wire) if wire else None,
        raw_key=raw_key,
        raw_query=raw_query,
        params=frozenset(params),
        values=values,
        style="path",
        presigned=presigned,
        wire_key=wire,
    )


def check_bucket(name: str) -> None:
    """Refuse a bucket name that could not be forwarded unchanged (InvalidBucketName)."""
    if _BUCKET_RE.fullmatch(name) and ".." not in name and not _IPV4_RE.fullmatch(name):
        return
    raise InvalidBucketName(
        f"the bucket name {name!r} is not valid: letters, digits, '.', '-' and '_', beginning "
        "and ending with a letter or digit, no '..', not an IP address"
    )


def check_forwardable(address: S3Address) -> None:
    """Refuse a request the upstream could read as a different bucket or key than the one
    parsed here: an invalid bucket name (InvalidBucketName) or a key that is not UTF-8
    (InvalidURI). Keys are otherwise forwarded as they are (see :func:`folded` for the
    normalisation some backends apply, which only routes need to care about)."""
    if address.bucket is not None:
        check_bucket(address.bucket)
    key = address.key
    if key is not None and not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidURI("the object key is not valid UTF-8") from None


def folded(bucket: str, key: str, *, in_host: bool = False) -> tuple[str | None, str | None]:
    """``(bucket, key)`` as a backend that normalises request paths would read them: empty
    and ``.`` segments dropped, ``..`` removing the segment before it (SeaweedFS, and any
    server built on a path-cleaning HTTP router). Path style (``/bucket/key``) a ``..`` can
    climb into another bucket; virtual-hosted (``in_host``) the bucket is fixed. The bucket or
    key is None when the folded path names none; a trailing ``/`` is kept.

    Decoded ``%2F`` and ``%2E`` count as ``/`` and ``.``: such servers decode first."""
    if not _FOLDABLE_RE.search(key):
        return bucket, key
    segments = key.split("/") if in_host else [bucket, *key.split("/")]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    trailing = segments[-1] in ("", ".", "..")
    if not in_host:
        if not out:
            return None, None
        bucket, out = out[0], out[1:]
    rest = "/".join(out)
    if rest and trailing:
        rest += "/"
    return bucket, (rest or None)


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
    key_part = address.forwarded_key()
    if bucket is not None and endpoint.virtual and _DNS_BUCKET_RE.fullmatch(bucket):
        host = endpoint.netloc(f"{bucket}.{endpoint.host}")
        path = f"{endpoint.base_path}/{key_part}"
    else:
        host = endpoint.netloc(endpoint.host)
        if bucket is None:
            path = endpoint.base_path + "/"
        else:
            # A bare bucket is sent as "/bucket" (what the SDKs send), a key after "/bucket/".
            bucket_part = canonical_path(bucket).replace("/", "%2F")
            sep = "/" if key_part else ""
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
    wire = canonical_path(raw_key)
    raw_query: list[tuple[str, str | None]] = []
    values: dict[str, str] = {}
    for part in query.split("&") if query else ():
        name, _, v = part.partition("=")
        if unquote(name) == "versionId":
            raw_query.append(("versionId", v))
            values["versionId"] = unquote(v)
    return S3Address(
        bucket=_decode(raw_bucket),
        key=_decode(wire),
        raw_key=raw_key,
        raw_query=tuple(raw_query),
        params=frozenset(values),
        values=values,
        style="path",
        presigned=False,
        wire_key=wire,
    )
