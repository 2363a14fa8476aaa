"""Secret redaction for log lines: the one place that decides what a log may not show.

Pure functions (no I/O, no logging set-up), so both the structlog processor chain
(:mod:`proxy.app.logging`) and the relay's pre-rendered access-log line
(:mod:`proxy.relay.accesslog`) mask exactly the same names and values.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

__all__ = ["REDACTED", "needs_redaction", "redact"]

REDACTED = "[redacted]"

_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-credential",
        "signature",
        "awsaccesskeyid",
        "secret_key",
        "secret_access_key",
        "aws_secret_access_key",
        "session_token",
        "aws_session_token",
        "token",
        "credentials",
        "password",
    }
)
# Values carrying secrets: SigV4/SigV2 Authorization headers and presigned query parameters.
_SECRET_VALUE_RES = (
    # Python bytes literals: raw wire data quoted in exception messages (aiohttp's parser errors
    # quote the offending request line or header — signatures, tokens and object keys).
    re.compile(r"""(\bb)(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""),
    re.compile(r"(AWS4-HMAC-SHA256|AWS4-ECDSA-P256-SHA256)\s+\S.*", re.IGNORECASE),
    re.compile(r"\bAWS [A-Z0-9]{16,}:\S+"),
    re.compile(
        r"((?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)"
        r"=)[^&\s\"']+",
        re.IGNORECASE,
    ),
    re.compile(r"(Signature=)[0-9a-f]{16,}", re.IGNORECASE),
    # Secret headers quoted as header lines ("X-Amz-Security-Token: ...").
    re.compile(
        r"((?:Authorization|Proxy-Authorization|X-Amz-Security-Token|X-Amz-Signature"
        r"|X-Amz-Credential)\s*:\s*)[^\r\n]+",
        re.IGNORECASE,
    ),
)


# Any of the patterns above, in one scan: most values (ids, numbers, bucket names) match none,
# and one search is far cheaper than six substitutions. The case-insensitive ones keep their flag.
_ANY_SECRET_VALUE = re.compile(
    "|".join(
        f"(?i:{rx.pattern})" if rx.flags & re.IGNORECASE else f"(?:{rx.pattern})"
        for rx in _SECRET_VALUE_RES
    )
)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if not _ANY_SECRET_VALUE.search(value):
            return value
        for rx in _SECRET_VALUE_RES:
            if rx.groups:
                value = rx.sub(lambda m: m.group(1) + REDACTED, value)
            else:
                value = rx.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in _SECRET_NAMES else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named fields and secret-looking values."""
    for k in list(event):
        if k.lower() in _SECRET_NAMES:
            event[k] = REDACTED
        else:
            event[k] = _scrub(event[k])
    return event


_PLAIN = (int, float, bool, type(None))
#: The value types :func:`_scrub` leaves alone or scans (exactly these, not subclasses).
_FLAT = frozenset({str, int, float, bool, type(None)})
#: A substring each of _SECRET_VALUE_RES needs to match (lower case).
_MARKERS = ("aws", "signature", "credential", "token", "authorization", "b'", 'b"')
#: Whether an event with these field names (in order) has a secret-named one: lines of one
#: kind have the same names, so each set is checked once.
_secret_names: dict[tuple[str, ...], bool] = {}


def needs_redaction(event: MutableMapping[str, Any]) -> bool:
    """False only if :func:`redact` would change nothing in ``event`` (one scan over all its
    string values; nested containers always count as maybe). Each value appears verbatim in
    the joined text after a non-word separator, and no pattern looks past a value's end, so a
    secret any pattern finds in one value is found in the joined text too."""
    keys = tuple(event)
    secret = _secret_names.get(keys)
    if secret is None:
        secret = not _SECRET_NAMES.isdisjoint(k.lower() for k in keys)
        if len(_secret_names) >= 256:  # a handful in practice; bounded anyway
            _secret_names.clear()
        _secret_names[keys] = secret
    if secret:
        return True
    values = event.values()
    if not _FLAT.issuperset(map(type, values)) and not all(
        type(value) is str or isinstance(value, _PLAIN) for value in values
    ):
        return True
    joined = "\x00".join([value for value in values if type(value) is str])
    # Every pattern above needs one of these (ASCII, case-insensitively); most lines have
    # none. Non-ASCII text goes to the regex itself (its case folding is Unicode's).
    if joined.isascii():
        lowered = joined.lower()
        for marker in _MARKERS:
            if marker in lowered:
                break
        else:
            return False
    return _ANY_SECRET_VALUE.search(joined) is not None
