"""Fakes that isolate the data path's logic: a small in-memory S3 upstream (a real aiohttp
server on loopback that records every request and can be scripted to misbehave) and a tiny
compiled mapping for flat documents (``<doc><a>1</a></doc>`` ⇄ ``{"a": "1"}``)."""

from __future__ import annotations

import base64
import hashlib
import json
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from proxy.errors import TranslationError


class FlatMapping:
    """A CompiledMapping for flat documents: root ``doc``, string children only."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def xml_to_json(self, data: bytes) -> bytes:
        self.calls.append("xml_to_json")
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise TranslationError("not_well_formed", "/", str(exc)) from None
        if root.tag != "doc":
            raise TranslationError("wrong_root", f"/{root.tag}", "expected <doc>")
        out: dict[str, str] = {}
        for child in root:
            if len(child):
                raise TranslationError(
                    "unknown_element", f"/doc/{child.tag}/{child[0].tag}", "nested element"
                )
            out[child.tag] = child.text or ""
        return json.dumps(out, separators=(",", ":")).encode()

    def json_to_xml(self, data: bytes) -> bytes:
        self.calls.append("json_to_xml")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise TranslationError("not_well_formed", "", str(exc)) from None
        if not isinstance(doc, dict):
            raise TranslationError("type_mismatch", "", "expected an object")
        parts = []
        for k, v in doc.items():
            if not isinstance(v, str):
                raise TranslationError("type_mismatch", f"/{k}", "expected a string")
            parts.append(f"<{k}>{v}</{k}>")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<doc>' + "".join(parts) + "</doc>"
        ).encode()


def xml_doc(**fields: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<doc>'
        + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
        + "</doc>"
    ).encode()


def json_doc(**fields: str) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


@dataclass
class StoredObject:
    body: bytes
    headers: dict[str, str]  # content-type, x-amz-meta-*, x-amz-checksum-*, ...
    last_modified: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0)
    )

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes


Hook = Callable[[web.BaseRequest, Request], Awaitable[web.StreamResponse | None]]

_KEPT = ("content-type", "cache-control", "content-disposition", "content-language", "expires")


class FakeS3:
    """Path-style S3 subset: PUT (incl. copy), GET/HEAD (Range, If-Match, If-None-Match),
    DELETE. ``hook`` can answer a request before the fake does (return None to continue)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.requests: list[Request] = []
        self.hook: Hook | None = None
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def put(self, bucket: str, key: str, body: bytes, **headers: str) -> StoredObject:
        obj = StoredObject(body, {k.replace("_", "-").lower(): v for k, v in headers.items()})
        self.objects[bucket, key] = obj
        return obj

    def calls(self, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if method is None or r.method == method]

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.content.read()
        raw_path, _, query = request.raw_path.partition("?")
        seen = Request(
            request.method,
            unquote(raw_path),
            query,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        self.requests.append(seen)
        if self.hook is not None:
            answer = await self.hook(request, seen)
            if answer is not None:
                return answer
        bucket, _, key = seen.path.lstrip("/").partition("/")
        if request.method == "PUT":
            return self._put(bucket, key, seen)
        if request.method in ("GET", "HEAD"):
            return self._get(bucket, key, seen)
        if request.method == "DELETE":
            self.objects.pop((bucket, key), None)
            return web.Response(status=204)
        return _error(405, "MethodNotAllowed", request.method)

    def _put(self, bucket: str, key: str, seen: Request) -> web.StreamResponse:
        h = seen.headers
        source = h.get("x-amz-copy-source")
        if source is not None:
            sb, _, sk = unquote(source.partition("?")[0]).lstrip("/").partition("/")
            src = self.objects.get((sb, sk))
            if src is None:
                return _error(404, "NoSuchKey", "copy source")
            guard = h.get("x-amz-copy-source-if-match")
            if guard is not None and guard.strip('"') != src.etag.strip('"'):
                return _error(412, "PreconditionFailed", "x-amz-copy-source-if-match")
            if h.get("x-amz-metadata-directive", "COPY") == "REPLACE":
                headers = _object_headers(h)
            else:
                headers = dict(src.headers)
            obj = StoredObject(src.body, headers)
            self.objects[bucket, key] = obj
            result = f"<CopyObjectResult><ETag>{obj.etag}</ETag></CopyObjectResult>"
            return web.Response(body=result.encode(), content_type="application/xml")
        current = self.objects.get((bucket, key))
        if "if-match" in h:
            if current is None:
                return _error(404, "NoSuchKey", "If-Match on a missing key")
            if h["if-match"].strip('"') != current.etag.strip('"'):
                return _error(412, "PreconditionFailed", "If-Match")
        if h.get("if-none-match") == "*" and current is not None:
            return _error(412, "PreconditionFailed", "If-None-Match")
        obj = StoredObject(seen.body, _object_headers(h))
        self.objects[bucket, key] = obj
        resp_headers = {"ETag": obj.etag}
        for k, v in obj.headers.items():
            if k.startswith("x-amz-checksum-"):
                resp_headers[k] = v
        return web.Response(status=200, headers=resp_headers)

    def _get(self, bucket: str, key: str, seen: Request) -> web.StreamResponse:
        obj = self.objects.get((bucket, key))
        head = seen.method == "HEAD"
        if obj is None:
            return _error(404, "NoSuchKey", "The specified key does not exist.", head=head)
        h = seen.headers
        if "if-match" in h and h["if-match"].strip('"') != obj.etag.strip('"'):
            return _error(412, "PreconditionFailed", "If-Match", head=head)
        if "if-none-match" in h and h["if-none-match"].strip('"') == obj.etag.strip('"'):
            return web.Response(status=304, headers={"ETag": obj.etag})
        if "if-modified-since" in h:
            since = parsedate_to_datetime(h["if-modified-since"])
            if obj.last_modified <= since:
                return web.Response(status=304, headers={"ETag": obj.etag})
        headers = {
            "ETag": obj.etag,
            "Last-Modified": format_datetime(obj.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
            "x-amz-request-id": "FAKEREQ",
        }
        for k, v in obj.headers.items():
            if k.startswith("x-amz-checksum-"):
                if h.get("x-amz-checksum-mode", "").upper() == "ENABLED":
                    headers[k] = v
            else:
                headers[k] = v
        if "response-content-type=" in seen.query:
            value = seen.query.split("response-content-type=", 1)[1].split("&", 1)[0]
            headers["content-type"] = unquote(value)
        body = obj.body
        status = 200
        rng = h.get("range")
        if rng is not None:
            first, _, last = rng.removeprefix("bytes=").partition("-")
            size = len(body)
            if not first:
                start, end = max(0, size - int(last)), size - 1
            else:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            if start >= size:
                return _error(416, "InvalidRange", rng, head=head)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            body = body[start : end + 1]
            status = 206
        if head:
            headers["Content-Length"] = str(len(body))
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, headers=headers, body=body)


def _object_headers(h: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in h.items() if k in _KEPT or k.startswith("x-amz-meta-")}
    for k, v in h.items():
        if k.startswith("x-amz-checksum-") and k != "x-amz-checksum-type":
            out[k] = v
    out.setdefault("content-type", "binary/octet-stream")
    return out


def _error(status: int, code: str, message: str, *, head: bool = False) -> web.Response:
    body = (
        b""
        if head
        else (f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode())
    )
    return web.Response(status=status, body=body, content_type="application/xml")


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()
