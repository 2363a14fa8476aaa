"""Multipart uploads on a route, answered by the proxy with S3's own responses.

Parts are verified (Content-MD5, ``x-amz-checksum-*``, ``x-amz-content-sha256``) and spooled
(:mod:`proxy.datapath.spool`); ``CompleteMultipartUpload`` checks the part list like S3
(InvalidPartOrder, InvalidPart, EntityTooSmall), assembles the document and stores it through
the same path as a PUT (validated, translated to the store format, one upstream object).
An invalid document ends the upload (nothing can fix it); a wrong part list or an upstream
failure leaves it open so the client can retry or abort, as with S3.

``UploadPartCopy`` copies what this pod would GET from the source range — the translated
representation when the source is on a route and stored in the other format — because that is
what the client sized its ranges on (a HEAD through this proxy). Onto a route the part is
spooled like an uploaded one; into an upload outside the routes, a translated source part is
sent upstream as an ``UploadPart`` of those bytes, and a source served as stored is left to the
upstream's own server-side copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from multidict import CIMultiDict

from proxy.datapath.common import Context, address_without, without_headers
from proxy.datapath.documents import ClientDigests, client_digests
from proxy.datapath.reads import ReadPath
from proxy.datapath.routes import CompiledRoute, RouteTable
from proxy.datapath.spool import Part, Upload, UploadStore, assemble, select_parts
from proxy.datapath.writes import COPY_SOURCE_HEADERS, WritePath
from proxy.errors import (
    EntityTooLarge,
    InvalidArgument,
    InvalidDocument,
    NotImplementedByProxy,
    PreconditionFailed,
)
from proxy.relay.bodies import RequestBody
from proxy.relay.pipeline import Forwarder, ProxyResponse, S3Request
from proxy.s3.address import S3Address, parse_copy_source
from proxy.s3.multipart import (
    MAX_PARTS,
    complete_result,
    copy_part_result,
    initiate_result,
    list_parts_result,
    parse_complete,
)

__all__ = ["UploadPath"]

_XML = ("Content-Type", "application/xml")
# CreateMultipartUpload headers that describe the upload, not the object.
_CREATE_DROP = frozenset(
    {"content-length", "content-md5", "x-amz-checksum-algorithm", "x-amz-checksum-type"}
)
# Conditional-write headers of CompleteMultipartUpload: they apply to the final PUT.
_COMPLETE_PASS = frozenset({"if-match", "if-none-match"})
_MAX_COMPLETE_BODY = 4 * 1024 * 1024
# Upstream reply headers a CompleteMultipartUpload response carries on.
_COMPLETE_KEEP = ("x-amz-version-id", "x-amz-server-side-encryption", "x-amz-request-id")
# UploadPartCopy's source conditions, as the GET of the source states them.
_COPY_CONDITIONS = {
    "x-amz-copy-source-if-match": "If-Match",
    "x-amz-copy-source-if-none-match": "If-None-Match",
    "x-amz-copy-source-if-modified-since": "If-Modified-Since",
    "x-amz-copy-source-if-unmodified-since": "If-Unmodified-Since",
}
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
# Headers of an UploadPartCopy that describe the copy, not the part sent in its place.
_COPY_DROP_PREFIXES = ("x-amz-copy-source", "x-amz-checksum-")


class UploadPath:
    def __init__(
        self,
        ctx: Context,
        store: UploadStore,
        reads: ReadPath,
        writes: WritePath,
        routes: RouteTable,
        scheme: str,
    ) -> None:
        self._ctx = ctx
        self._store = store
        self._reads = reads
        self._writes = writes
        self._routes = routes
        self._scheme = scheme

    async def handle(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        op = request.operation
        if op == "CreateMultipartUpload":
            return self._create(request, route)
        if op == "UploadPart":
            return await self._upload_part(request)
        if op == "ListParts":
            return self._list_parts(request)
        if op == "AbortMultipartUpload":
            self._store.remove(self._upload(request))
            return ProxyResponse(204, [])
        if op == "CompleteMultipartUpload":
            return await self._complete(request, route, forward)
        if op == "UploadPartCopy":
            return await self.copy_part(request, forward, onto_route=True)
        raise NotImplementedByProxy(f"{op} is not supported on a route")

    def _upload(self, request: S3Request) -> Upload:
        a = request.address
        return self._store.get(a.values.get("uploadId", ""), a.bucket or "", a.key or "")

    def _create(self, request: S3Request, route: CompiledRoute) -> ProxyResponse:
        a = request.address
        alg = request.headers.get("x-amz-checksum-algorithm")
        ctype = request.headers.get("x-amz-checksum-type")
        upload = self._store.create(
            bucket=a.bucket or "",
            key=a.key or "",
            route=route.name,
            headers=without_headers(request.headers.items(), _CREATE_DROP),
            checksum_algorithm=alg,
            checksum_type=ctype,
        )
        headers = [_XML]
        if alg:
            headers.append(("x-amz-checksum-algorithm", alg.upper()))
        if ctype:
            headers.append(("x-amz-checksum-type", ctype))
        return ProxyResponse(
            200, headers, initiate_result(upload.bucket, upload.key, upload.upload_id)
        )

    @staticmethod
    def _part_number(request: S3Request) -> int:
        raw_number = request.address.values.get("partNumber", "")
        if not raw_number.isdigit() or not 1 <= int(raw_number) <= MAX_PARTS:
            raise InvalidArgument(
                f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive "
                f"(got {raw_number!r})"
            )
        return int(raw_number)

    async def _upload_part(self, request: S3Request) -> ProxyResponse:
        upload = self._upload(request)
        number = self._part_number(request)
        body = request.body
        room = self._store.room(upload, number)
        expected = min(body.length, room) if body.length is not None else room
        # Refused before the body is read: the spool (disk) and the bytes in memory.
        self._store.check_budget(expected)
        with self._ctx.inflight.hold(expected):
            try:
                data = await body.read_all(room)
            except EntityTooLarge:
                raise self._store.too_large() from None
            digests = client_digests(
                request.headers, body.extra_headers, body_unchanged=body.unchanged
            )
            part = await self._spool_part(upload, number, data, digests)
        headers = [("ETag", part.etag)]
        headers += [
            (f"x-amz-checksum-{alg}", v)
            for alg, v in part.checksums.items()
            if alg in digests.checksums or alg == upload.checksum_algorithm
        ]
        return ProxyResponse(200, headers, b"")

    async def _spool_part(
        self, upload: Upload, number: int, data: bytes, digests: ClientDigests
    ) -> Part:
        algorithms = digests.wanted_algorithms()
        if upload.checksum_algorithm and upload.checksum_algorithm not in algorithms:
            algorithms = (*algorithms, upload.checksum_algorithm)
        token = self._store.reserve(upload, number, len(data))
        path = None
        try:
            part = await self._ctx.worker.spool_part(
                digests, upload.directory, number, data, algorithms
            )
            path = part.path
            self._store.record(upload, part, token)
        except BaseException:
            self._store.release(upload, token, path)
            raise
        return part

    # --- UploadPartCopy --------------------------------------------------------------------

    async def copy_part(
        self, request: S3Request, forward: Forwarder, *, onto_route: bool
    ) -> ProxyResponse:
        """UploadPartCopy with the part taken from what this pod sees of the source range."""
        number = self._part_number(request)
        upload = self._upload(request) if onto_route else None
        source = parse_copy_source(request.headers.get("x-amz-copy-source"))
        if source is None:  # (only routed uploads get here without a parsed source)
            raise InvalidArgument(
                "x-amz-copy-source must be bucket/key (URL-encoded, optionally ?versionId=...)"
            )
        reply = await self._read_source(request, forward, source)
        if not 200 <= reply.status < 300:
            return reply  # the source's own error (missing, forbidden, untranslatable, ...)
        if upload is None and not reply.translated:
            # Served as stored: the upstream's server-side copy copies the same bytes.
            _release(reply)
            return await forward.passthrough(request)
        limit = (
            self._store.room(upload, number)
            if upload is not None
            else self._ctx.limits.max_translate_bytes
        )
        data = await _collect(reply, limit, self._store.too_large)
        out = [_XML]
        version = source.values.get("versionId")
        if version:
            out.append(("x-amz-copy-source-version-id", version))
        if upload is None:
            return await self._send_part(request, forward, data, out)
        part = await self._spool_part(upload, number, data, ClientDigests())
        checksums = {
            alg: v for alg, v in part.checksums.items() if alg == upload.checksum_algorithm
        }
        return ProxyResponse(200, out, copy_part_result(part.etag, part.last_modified, checksums))

    async def _read_source(
        self, request: S3Request, forward: Forwarder, source: S3Address
    ) -> ProxyResponse:
        """GET the source range as this pod's clients would, with the copy's conditions."""
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            lower = name.lower()
            if lower in _COPY_CONDITIONS:
                headers.add(_COPY_CONDITIONS[lower], value)
            elif lower in COPY_SOURCE_HEADERS:
                headers.add(COPY_SOURCE_HEADERS[lower], value)
        raw_range = request.headers.get("x-amz-copy-source-range")
        if raw_range is not None:
            m = _COPY_RANGE.fullmatch(raw_range.strip())
            if m is None or int(m[1]) > int(m[2]):
                raise InvalidArgument(
                    "x-amz-copy-source-range must be bytes=first-last with first <= last "
                    f"(got {raw_range!r})"
                )
            headers.add("Range", raw_range.strip())
        get = S3Request(
            method="GET",
            address=source,
            operation="GetObject",
            headers=headers,
            body=RequestBody(),
            request_id=request.request_id,
            log_fields=request.log_fields,
        )
        route = self._routes.match(source.bucket, source.key)
        if route is not None and not (source.key or "").endswith("/"):
            reply = await self._reads.serve(get, route, forward)
        else:
            reply = await forward.passthrough(get)
        if reply.status == 304:  # If-None-Match / If-Modified-Since: a copy fails instead
            _release(reply)
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
        return reply

    async def _send_part(
        self,
        request: S3Request,
        forward: Forwarder,
        data: bytes,
        out: list[tuple[str, str]],
    ) -> ProxyResponse:
        """The copied bytes as an UploadPart of an upload the upstream holds."""
        headers = without_headers(
            request.headers.items(), {"content-length", "content-md5"}, _COPY_DROP_PREFIXES
        )
        headers.append(("Content-Length", str(len(data))))
        reply = await forward.send(
            request, method="PUT", headers=headers, body=data, payload_hash=None
        )
        if not 200 <= reply.status < 300:
            return reply.to_response()
        reply.release()
        etag = reply.header("ETag") or ""
        checksums = {
            name[len("x-amz-checksum-") :]: value
            for name, value in reply.headers
            if name.lower().startswith("x-amz-checksum-") and name.lower() != "x-amz-checksum-type"
        }
        return ProxyResponse(200, out, copy_part_result(etag, datetime.now(UTC), checksums))

    def _list_parts(self, request: S3Request) -> ProxyResponse:
        upload = self._upload(request)
        values = request.address.values
        marker = values.get("part-number-marker", "0") or "0"
        max_parts = values.get("max-parts", "1000") or "1000"
        if not marker.isdigit() or not max_parts.isdigit():
            raise InvalidArgument("part-number-marker and max-parts must be non-negative integers")
        body = list_parts_result(
            upload.bucket,
            upload.key,
            upload.upload_id,
            upload.parts.values(),
            marker=int(marker),
            max_parts=min(int(max_parts), 1000),
            checksum_algorithm=upload.checksum_algorithm,
            checksum_type=upload.checksum_type,
        )
        return ProxyResponse(200, [_XML], body)

    async def _complete(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        upload = self._upload(request)
        async with upload.lock:
            upload = self._upload(request)  # a concurrent Complete may have finished it
            listed = parse_complete(await request.body.read_all(_MAX_COMPLETE_BODY))
            parts = select_parts(upload, listed)
            with self._ctx.inflight.hold(sum(part.size for part in parts)):
                data = await self._ctx.worker.io(assemble, parts)
                # A full-object checksum on the Complete request covers the assembled document.
                whole = client_digests(request.headers, (), body_unchanged=False)
                if whole.checksums and (
                    request.headers.get("x-amz-checksum-type", "").upper() == "FULL_OBJECT"
                ):
                    await self._ctx.worker.verify(ClientDigests(checksums=whole.checksums), data)
                digests = ClientDigests(
                    algorithms=(upload.checksum_algorithm,) if upload.checksum_algorithm else ()
                )
                headers = [
                    *upload.headers,
                    *((k, v) for k, v in request.headers.items() if k.lower() in _COMPLETE_PASS),
                ]
                try:
                    reply, _doc = await self._writes.store(
                        request,
                        route,
                        forward,
                        data,
                        digests,
                        headers,
                        address=address_without(request.address, "uploadId"),
                    )
                except InvalidDocument:
                    self._store.remove(upload)  # no retry can make this document valid
                    raise
                if not 200 <= reply.status < 300:
                    return reply.to_response()  # upload kept: the client may retry or abort
                reply.release()
                self._store.remove(upload)
        etag = reply.header("ETag") or ""
        a = request.address
        host = request.headers.get("Host", "")
        location = f"{self._scheme}://{host}/{a.bucket}/{a.raw_key}"
        out = [_XML]
        for name in _COMPLETE_KEEP:
            value = reply.header(name)
            if value is not None:
                out.append((name, value))
        return ProxyResponse(200, out, complete_result(location, upload.bucket, upload.key, etag))


def _release(reply: ProxyResponse) -> None:
    if callable(reply.release):
        reply.release()


async def _collect(
    reply: ProxyResponse, limit: int, too_large: Callable[[], EntityTooLarge]
) -> bytes:
    """A response's whole body, at most ``limit`` bytes; releases it."""
    try:
        body = reply.body
        if body is None:
            return b""
        if isinstance(body, bytes):
            data = body
        else:
            parts: list[bytes] = []
            total = 0
            async for chunk in body:
                total += len(chunk)
                if total > limit:
                    raise too_large()
                parts.append(chunk)
            data = b"".join(parts)
        if len(data) > limit:
            raise too_large()
        return data
    finally:
        _release(reply)
