"""Strip the client's authentication, re-sign with the proxy's credentials (SigV4).

Every header we forward is signed: SeaweedFS (and S3 for ``x-amz-*``) rejects requests carrying
unsigned ``x-amz-*`` headers, which is exactly where signing-only-a-few-headers proxies break with
current SDKs. Signing uses botocore's ``S3SigV4Auth`` against the exact encoded path and canonical
query we send (see :mod:`proxy.s3.address`), with two changes: the payload hash is decided by the
caller (the client's own ``x-amz-content-sha256`` when the body is forwarded unchanged, else
``UNSIGNED-PAYLOAD``) instead of hashing the body, and the derived signing key is cached per
day/region/secret so a request costs one HMAC chain, not five.

Client signatures are not verified (see ``docs/security.md``): the listener is loopback-only and
the proxy's credentials, not the client's, decide what upstream accepts.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from hashlib import sha256
from typing import TypeGuard

from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from proxy.s3.address import UpstreamTarget

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Signer",
    "forwardable_request_headers",
    "forwardable_response_headers",
    "is_real_sha256",
]

EMPTY_SHA256 = sha256(b"").hexdigest()

#: Never forwarded in either direction: hop-by-hop (RFC 9110 §7.6.1) plus ``Expect`` (the proxy
#: answers 100-continue itself) and framing headers the proxy recomputes.
HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "content-length",
    }
)

#: The client's own authentication (and what the signer recomputes). Never forwarded. ``Date``
#: is the SigV2 signing time; we sign with X-Amz-Date (botocore would otherwise rewrite Date and
#: drop X-Amz-Date, which some backends require).
CLIENT_AUTH_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "x-amz-security-token",
        "x-amz-date",
        "x-amz-content-sha256",
        "date",
        "x-amz-region-set",  # SigV4a scope; meaningless (and unsigned-looking) after re-signing
    }
)

_DROP_REQUEST = HOP_BY_HOP | CLIENT_AUTH_HEADERS
_DROP_RESPONSE = HOP_BY_HOP - {"content-length"}

_HEX = frozenset("0123456789abcdef")


def is_real_sha256(value: str | None) -> TypeGuard[str]:
    """True for a 64-digit hex digest (not ``UNSIGNED-PAYLOAD`` or a ``STREAMING-*`` marker)."""
    return value is not None and len(value) == 64 and set(value.lower()) <= _HEX


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def forwardable_request_headers(
    headers: Iterable[tuple[str, str]], *, drop: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """The client's headers minus auth, hop-by-hop and ``drop`` (lower-case names)."""
    items = list(headers)
    extra = _connection_tokens(items) | drop
    return [
        (name, value)
        for name, value in items
        if (lname := name.lower()) not in _DROP_REQUEST and lname not in extra
    ]


def forwardable_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream response headers minus hop-by-hop ones (Content-Length is kept)."""
    items = list(headers)
    extra = _connection_tokens(items)
    return [
        (name, value)
        for name, value in items
        if (lname := name.lower()) not in _DROP_RESPONSE and lname not in extra
    ]


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), sha256).digest()


class _ProxySigV4Auth(S3SigV4Auth):
    """botocore's S3 signer with a caller-chosen payload hash and a cached signing key."""

    _key_cache: dict[tuple[str, str, str, str], bytes] = {}  # noqa: RUF012 - shared on purpose

    def __init__(self, credentials: ReadOnlyCredentials, service: str, region: str) -> None:
        super().__init__(credentials, service, region)
        # Our own copies: the key derivation below needs them, botocore keeps them private.
        self._secret = credentials.secret_key or ""
        self._scope = (region, service)

    def payload(self, request: AWSRequest) -> str:
        return str(request.context["payload_hash"])

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        day = str(request.context["timestamp"])[0:8]
        region, service = self._scope
        cache_key = (self._secret, day, region, service)
        k_signing = self._key_cache.get(cache_key)
        if k_signing is None:
            k_date = _hmac(f"AWS4{self._secret}".encode(), day)
            k_signing = _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")
            if len(self._key_cache) > 16:  # rotated credentials / day change: keep it tiny
                self._key_cache.clear()
            self._key_cache[cache_key] = k_signing
        return hmac.new(k_signing, string_to_sign.encode("utf-8"), sha256).hexdigest()


class Signer:
    """Signs forwarded requests for one region."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self._region = region
        self._service = service

    def sign(
        self,
        method: str,
        target: UpstreamTarget,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
        credentials: ReadOnlyCredentials,
    ) -> list[tuple[str, str]]:
        """Headers to send upstream: ``headers`` + Host, X-Amz-Date, X-Amz-Content-SHA256,
        X-Amz-Security-Token (temporary credentials) and Authorization, all signed (except the
        few botocore never signs, such as User-Agent and Expect)."""
        request = AWSRequest(method=method, url=target.url)
        h = request.headers  # botocore HTTPHeaders: __setitem__ appends (repeats kept)
        for name, value in headers:
            h[name] = value
        h["Host"] = target.host
        request.context["payload_hash"] = payload_hash
        _ProxySigV4Auth(credentials, self._service, self._region).add_auth(request)
        return list(h.items())
