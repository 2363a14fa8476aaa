"""Hand-made HTTP requests to the proxy, for what real SDKs won't send on demand.

``signed_request`` builds a request signed (SigV4, header auth) with the *client's* credentials,
as an SDK would; ``send`` sends it with http.client; ``send_raw`` writes exact bytes to a socket
(truncated bodies, odd framings) and parses whatever comes back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from lxml import etree

from tests.support.backends import REGION, Credentials
from tests.support.clients import CLIENT_CREDENTIALS

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def error(self) -> dict[str, str]:
        """The S3 XML error document as ``{Code, Message, Resource, RequestId, ...}``."""
        root = etree.fromstring(self.body)
        if etree.QName(root).localname != "Error":
            raise AssertionError(f"not an S3 error document: {self.body[:300]!r}")
        return {etree.QName(c).localname: (c.text or "") for c in root}


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    payload_hash: str,
    credentials: Credentials = CLIENT_CREDENTIALS,
    region: str = REGION,
    when: dt.datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus ``Authorization``/``X-Amz-Date`` (+ token) signed like an SDK would.

    ``url`` must carry the Host the request is sent with (``http://bucket.localhost:port/k``).
    """
    req = AWSRequest(method=method, url=url, headers=dict(headers))
    req.headers["X-Amz-Content-SHA256"] = payload_hash
    creds = BotoCredentials(
        credentials.access_key, credentials.secret_key, credentials.session_token
    )
    signer = S3SigV4Auth(creds, "s3", region)
    if when is not None:
        req.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer.add_auth(req)
    return dict(req.headers.items())


def signing_parts(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """(amz date, credential scope, seed signature) of a SigV4 ``Authorization`` header."""
    auth = headers["Authorization"]
    date = headers["X-Amz-Date"]
    cred = auth.split("Credential=", 1)[1].split(",", 1)[0]
    scope = cred.split("/", 1)[1]
    signature = auth.split("Signature=", 1)[1].strip()
    return date, scope, signature


def _connection(endpoint: str, timeout: float, context: ssl.SSLContext | None) -> Any:
    parts = urlsplit(endpoint)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def send(
    endpoint: str,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | Iterable[bytes] | None = None,
    chunked: bool = False,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> Response:
    """One request with http.client. ``path`` is sent as given (already percent-encoded).

    With ``chunked``, ``body`` (bytes or an iterable of bytes) goes out with
    ``Transfer-Encoding: chunked``.
    """
    conn = _connection(endpoint, timeout, context)
    try:
        conn.putrequest(
            method,
            path,
            skip_host="host" in {k.lower() for k in (headers or {})},
            skip_accept_encoding=True,
        )
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is not None and not any(k.lower() == "content-length" for k in headers or {}):
            assert isinstance(body, bytes), "a streamed body needs Content-Length or chunked"
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            pieces = [body] if isinstance(body, bytes) else body
            for piece in pieces:
                if chunked:
                    if piece:
                        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    conn.send(piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        data = resp.read()
        raw = list(resp.getheaders())
        return Response(
            resp.status, resp.reason, {k.lower(): v for k, v in raw}, data, raw_headers=raw
        )
    finally:
        conn.close()


def send_raw(
    endpoint: str,
    head: bytes,
    body: bytes = b"",
    *,
    half_close: bool = False,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> Response | None:
    """Write ``head`` + ``body`` verbatim to a fresh connection and read one response.

    With ``half_close`` the client shuts down its sending side after the body (how a client that
    dies mid-upload looks from the server). Returns None if the server closed the connection
    without answering.
    """
    parts = urlsplit(endpoint)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    if parts.scheme == "https":
        assert context is not None
        sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    try:
        sock.sendall(head + body)
        if half_close:
            if isinstance(sock, ssl.SSLSocket):
                sock = sock.unwrap()
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
            if _complete(data):
                break
    finally:
        sock.close()
    if not data:
        return None
    return _parse_response(data)


def _complete(data: bytes) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return rest.endswith(b"0\r\n\r\n")
    return False


def _parse_response(data: bytes) -> Response:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = lines[0].split(" ", 2)
    raw = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        raw.append((k.strip(), v.strip()))
    headers = {k.lower(): v for k, v in raw}
    body = rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(rest)
    return Response(int(status), reason[0] if reason else "", headers, body, raw_headers=raw)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def request_head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    """The bytes of a request line and headers (for :func:`send_raw`)."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
