"""Strip the client's authentication, re-sign with the proxy's credentials (SigV4).

Every header we forward is signed: SeaweedFS (and S3 for ``x-amz-*``) rejects requests carrying
unsigned ``x-amz-*`` headers, which is exactly where signing-only-a-few-headers proxies break with
current SDKs. The canonical request is built straight from the already-encoded path and query we
send (see :mod:`proxy.s3.address`), byte for byte as botocore's ``S3SigV4Auth`` builds it (a
property test holds the two together); the payload hash is decided by the caller (the client's
own ``x-amz-content-sha256`` when the body is forwarded unchanged, else ``UNSIGNED-PAYLOAD``), and
the derived signing key is cached per day/secret so a request costs one HMAC, not five.

Client signatures are not verified (see ``docs/security.md``): the listener is loopback-only and
the proxy's credentials, not the client's, decide what upstream accepts.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable
from datetime import datetime
from hashlib import sha256
from typing import TypeGuard

from botocore.credentials import ReadOnlyCredentials

from proxy.s3.address import UpstreamTarget

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "KeyedHmac",
    "Signer",
    "forwardable_request_headers",
    "forwardable_response_headers",
    "forwardable_response_pairs",
    "is_real_sha256",
]

EMPTY_SHA256 = sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

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

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def is_real_sha256(value: str | None) -> TypeGuard[str]:
    """True for a 64-digit hex digest (not ``UNSIGNED-PAYLOAD`` or a ``STREAMING-*`` marker)."""
    return value is not None and _SHA256_HEX.fullmatch(value) is not None


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
    return _without(list(headers), (_DROP_REQUEST | drop) if drop else _DROP_REQUEST)


def forwardable_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream response headers minus hop-by-hop ones (Content-Length is kept)."""
    return _without(list(headers), _DROP_RESPONSE)


def forwardable_response_pairs(
    headers: list[tuple[str, str]], lowered: list[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """:func:`forwardable_response_headers` for ``headers`` whose names in lower case are
    ``lowered`` (no name lowered again), and the kept names in lower case. The lists are
    returned as given when nothing is dropped."""
    drop = _DROP_RESPONSE
    if "connection" in lowered:
        drop = drop | _connection_tokens(headers)
    if drop.isdisjoint(lowered):
        return headers, lowered
    kept = [i for i, name in enumerate(lowered) if name not in drop]
    return [headers[i] for i in kept], [lowered[i] for i in kept]


def _without(items: list[tuple[str, str]], drop: frozenset[str]) -> list[tuple[str, str]]:
    """``items`` minus the names in ``drop`` and those a ``Connection`` header lists."""
    lowered = [name.lower() for name, _ in items]
    if "connection" in lowered:
        drop = drop | _connection_tokens(items)
    return [item for item, lname in zip(items, lowered, strict=True) if lname not in drop]


#: Never signed (botocore's list, so signatures match the SDKs'): hop-by-hop and tracing headers
#: a hop may change, and User-Agent/Expect.
_UNSIGNED: frozenset[str] = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


_stamp: tuple[int, str] = (-1, "")


def _timestamp() -> str:
    """The current X-Amz-Date, formatted once per second."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return _stamp[1]


def _hmac(key: bytes, msg: str) -> bytes:
    # hmac.digest is OpenSSL's one-shot HMAC: several times cheaper than an hmac.HMAC object.
    return hmac.digest(key, msg.encode("utf-8"), "sha256")


# HMAC's key pads (RFC 2104), as the hmac module builds them.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyedHmac:
    """HMAC-SHA256 under one key, its padded-key blocks hashed once: a message then costs two
    hash copies, not OpenSSL's per-call digest lookup and two more block hashes."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        size = sha256().block_size
        if len(key) > size:  # RFC 2104; a derived signing key (32 bytes) never is
            key = sha256(key).digest()
        block = key.ljust(size, b"\0")
        self._inner = sha256(block.translate(_IPAD))
        self._outer = sha256(block.translate(_OPAD))

    def hexdigest(self, msg: str) -> str:
        inner = self._inner.copy()
        inner.update(msg.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def canonical_query(query: str) -> str:
    """The SigV4 canonical query of an already-encoded query string: ``key=value`` pairs sorted
    by (key, value); a bare ``key`` becomes ``key=``."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{k}={v}" for k, v in pairs)


class Signer:
    """Signs forwarded requests for one region (SigV4, header auth, ``s3`` rules: the path is
    signed as sent, not normalised)."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self._region = region
        self._service = service
        self._scope_tail = f"/{region}/{service}/aws4_request"
        # (secret, day) → derived signing key: one HMAC per request instead of five.
        self._keys: dict[tuple[str, str], KeyedHmac] = {}

    def _signing_key(self, secret: str, day: str) -> KeyedHmac:
        key = self._keys.get((secret, day))
        if key is None:
            k_date = _hmac(f"AWS4{secret}".encode(), day)
            derived = _hmac(_hmac(_hmac(k_date, self._region), self._service), "aws4_request")
            if len(self._keys) >= 8:  # rotated credentials / day change: keep it tiny
                self._keys.clear()
            key = self._keys[(secret, day)] = KeyedHmac(derived)
        return key

    def sign(
        self,
        method: str,
        target: UpstreamTarget,
        headers: Iterable[tuple[str, str]],
        payload_hash: str,
        credentials: ReadOnlyCredentials,
        *,
        now: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """Headers to send upstream: ``headers`` + Host, X-Amz-Date, X-Amz-Security-Token
        (temporary credentials), X-Amz-Content-SHA256 and Authorization, all signed except the
        few never signed (User-Agent, Expect, hop-by-hop, tracing).

        ``headers`` carry none of the authentication headers (see
        :func:`forwardable_request_headers`); repeated names are kept and signed joined by ``,``.
        """
        timestamp = now.strftime("%Y%m%dT%H%M%SZ") if now is not None else _timestamp()
        out = list(headers)
        out.append(("Host", target.host))
        out.append(("X-Amz-Date", timestamp))
        if credentials.token:
            out.append(("X-Amz-Security-Token", credentials.token))
        out.append(("X-Amz-Content-SHA256", payload_hash))

        # Each signed name's values, trimmed and joined by "," in the order sent.
        signed: dict[str, str] = {}
        for name, value in out:
            lname = name.lower()
            if lname not in _UNSIGNED:
                # Trimall (SigV4): strip, and runs of whitespace become one space.
                value = " ".join(value.split())
                signed[lname] = f"{signed[lname]},{value}" if lname in signed else value
        names = sorted(signed)
        signed_names = ";".join(names)
        canonical = "\n".join(
            (
                method.upper(),
                target.path,
                canonical_query(target.query),
                "".join([f"{n}:{signed[n]}\n" for n in names]),
                signed_names,
                payload_hash,
            )
        )
        day = timestamp[:8]
        scope = day + self._scope_tail
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n"
            + sha256(canonical.encode("utf-8")).hexdigest()
        )
        signature = self._signing_key(credentials.secret_key or "", day).hexdigest(string_to_sign)
        out.append(
            (
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                f"SignedHeaders={signed_names}, Signature={signature}",
            )
        )
        return out
