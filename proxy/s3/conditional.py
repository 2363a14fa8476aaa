"""Conditional GET/HEAD evaluated against the representation the client sees.

For a translated object the upstream cannot answer ``If-Match``/``If-None-Match`` (it knows only
the stored ETag), so the proxy evaluates the preconditions itself, in the order RFC 9110 §13.2.2
prescribes and S3 follows: If-Match, else If-Unmodified-Since (412); then If-None-Match, else
If-Modified-Since (304). Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

CONDITIONAL_HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


class Outcome(enum.Enum):
    PROCEED = 200
    NOT_MODIFIED = 304
    PRECONDITION_FAILED = 412


def _etags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag: ``W/"x"`` and ``"x"`` and bare ``x`` all give ``x``."""
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def _matches(header: str, etag: str) -> bool:
    mine = _opaque(etag)
    return any(t == "*" or _opaque(t) == mine for t in _etags(header))


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def has_conditions(headers: Mapping[str, str]) -> bool:
    return any(h in headers for h in CONDITIONAL_HEADERS)


def evaluate(headers: Mapping[str, str], *, etag: str, last_modified: datetime | None) -> Outcome:
    """Evaluate the request's preconditions. ``headers`` must be case-insensitive (or lowercase).

    Invalid dates are ignored, as S3 and RFC 9110 do. Comparisons of dates are at one-second
    resolution, the resolution of HTTP dates.
    """
    lm = last_modified.replace(microsecond=0) if last_modified is not None else None

    if_match = headers.get("if-match")
    if if_match is not None:
        if not _matches(if_match, etag):
            return Outcome.PRECONDITION_FAILED
    else:
        ius = headers.get("if-unmodified-since")
        since = _http_date(ius) if ius is not None else None
        if since is not None and lm is not None and lm > since:
            return Outcome.PRECONDITION_FAILED

    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, etag):
            return Outcome.NOT_MODIFIED
    else:
        ims = headers.get("if-modified-since")
        since = _http_date(ims) if ims is not None else None
        if since is not None and lm is not None and lm <= since:
            return Outcome.NOT_MODIFIED
    return Outcome.PROCEED
