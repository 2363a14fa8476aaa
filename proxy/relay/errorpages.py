"""S3 XML error documents: how a :class:`~proxy.errors.ProxyError` reads to a client.

The data server (and the lean path, through it) renders every failed request with these, so an
error looks the same whichever front end served it: S3's ``Code``, ``Message``, ``Resource`` and
``RequestId``, and a message that never names the upstream's address or credential sources.
"""

from __future__ import annotations

import os
import random
from xml.sax.saxutils import escape

from proxy.errors import CredentialsError, ProxyError, UpstreamError

__all__ = ["error_document", "error_parts", "new_request_id"]

# What clients are told for failures whose detail (the upstream's address, credential sources)
# belongs in the proxy's log only; the log line keeps the full message. Upstream failures keep
# their kind, told by the wording proxy.relay.upstream gives them.
_UPSTREAM_KINDS = (
    ("did not answer in time", "did not answer in time"),
    ("unreachable", "is unreachable"),
)
_SEE_LOG = "; the proxy's log has the details"


_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_request_id() -> str:
    """16 upper-case hex digits, like S3's own request ids."""
    # Unique, not secret: a PRNG of its own (nothing else seeds it; re-seeded in a forked
    # child) spares a getrandom(2) system call per request.
    return f"{_ids.getrandbits(64):016X}"


def _public_message(err: ProxyError) -> str:
    """The message a client sees for ``err``: never the upstream's address."""
    if isinstance(err, UpstreamError):
        for marker, kind in _UPSTREAM_KINDS:
            if marker in err.message:
                return f"the upstream S3 service {kind}"
        return f"the upstream S3 service failed{_SEE_LOG}"
    if isinstance(err, CredentialsError):
        return f"the proxy has no usable upstream credentials at the moment{_SEE_LOG}"
    return err.message


def error_document(err: ProxyError, resource: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(err.code)}</Code>"
        f"<Message>{escape(_public_message(err))}</Message>"
        f"<Resource>{escape(err.resource or resource)}</Resource>"
        f"<RequestId>{escape(request_id)}</RequestId>"
        "</Error>"
    ).encode()


def error_parts(
    err: ProxyError, method: str, raw_target: str, request_id: str
) -> tuple[dict[str, str], bytes]:
    """The headers (before the HTTP server's own) and body of the answer to a failed request."""
    resource = raw_target.partition("?")[0]  # never the query: it may hold a signature
    body = b"" if method == "HEAD" else error_document(err, resource, request_id)
    headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    if method == "HEAD":
        # web.Response computes Content-Length itself (its setter raises): say 0 up front.
        headers["Content-Length"] = "0"
    return headers, body
