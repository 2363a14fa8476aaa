"""Multipart uploads on a route, answered by the proxy with S3's own responses.

Parts are verified (Content-MD5, ``x-amz-checksum-*``, ``x-amz-content-sha256``) and spooled
(:mod:`proxy.multipart`); ``CompleteMultipartUpload`` checks the part list like S3
(InvalidPartOrder, InvalidPart, EntityTooSmall), assembles the document and stores it through
the same path as a PUT (validated, translated to the store format, one upstream object).
An invalid document ends the upload (nothing can fix it); a wrong part list or an upstream
failure leaves it open so the client can retry or abort, as with S3.
"""

from __future__ import annotations

from proxy.config import RouteConfig
from proxy.datapath.common import Context, address_without, without_headers
from proxy.datapath.documents import ClientDigests, client_digests, verify_digests
from proxy.datapath.writes import WritePath
from proxy.errors import (
    EntityTooLarge,
    InvalidArgument,
    InvalidDocument,
    NotImplementedByProxy,
)
from proxy.multipart import (
    MAX_PARTS,
    Upload,
    UploadStore,
    assemble,
    complete_result,
    initiate_result,
    list_parts_result,
    parse_complete,
    select_parts,
)
from proxy.pipeline import Forwarder, ProxyResponse, S3Request

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


class UploadPath:
    def __init__(self, ctx: Context, store: UploadStore, writes: WritePath, scheme: str) -> None:
        self._ctx = ctx
        self._store = store
        self._writes = writes
        self._scheme = scheme

    async def handle(
        self, request: S3Request, route: RouteConfig, forward: Forwarder
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
            raise NotImplementedByProxy(
                f"UploadPartCopy onto route {route.name!r} is not supported: a routed object "
                "is validated and stored whole. Use CopyObject (copies the stored document "
                "unchanged) or upload the document."
            )
        raise NotImplementedByProxy(f"{op} is not supported on a route")

    def _upload(self, request: S3Request) -> Upload:
        a = request.address
        return self._store.get(a.values.get("uploadId", ""), a.bucket or "", a.key or "")

    def _create(self, request: S3Request, route: RouteConfig) -> ProxyResponse:
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

    async def _upload_part(self, request: S3Request) -> ProxyResponse:
        upload = self._upload(request)
        raw_number = request.address.values.get("partNumber", "")
        if not raw_number.isdigit() or not 1 <= int(raw_number) <= MAX_PARTS:
            raise InvalidArgument(
                f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive "
                f"(got {raw_number!r})"
            )
        number = int(raw_number)
        body = request.body
        try:
            data = await body.read_all(self._store.room(upload, number))
        except EntityTooLarge:
            raise self._store.too_large() from None
        digests = client_digests(request.headers, body.extra_headers, body_unchanged=body.unchanged)
        algorithms = digests.wanted_algorithms()
        if upload.checksum_algorithm and upload.checksum_algorithm not in algorithms:
            algorithms = (*algorithms, upload.checksum_algorithm)
        token = self._store.reserve(upload, number, len(data))
        path = None
        try:
            await self._ctx.worker.run(verify_digests, digests, data)
            part = await self._ctx.worker.run(
                self._store.write_part, upload, number, data, algorithms
            )
            path = part.path
            self._store.record(upload, part, token)
        except BaseException:
            self._store.release(upload, token, path)
            raise
        headers = [("ETag", part.etag)]
        headers += [
            (f"x-amz-checksum-{alg}", v)
            for alg, v in part.checksums.items()
            if alg in digests.checksums or alg == upload.checksum_algorithm
        ]
        return ProxyResponse(200, headers, b"")

    def _list_parts(self, request: S3Request) -> ProxyResponse:
        upload = self._upload(request)
        values = request.address.values
        marker = values.get("part-number-marker", "0") or "0"
        max_parts = values.get("max-parts", "1000") or "1000"
        if not marker.isdigit() or not max_parts.isdigit():
            raise InvalidArgument("part-number-marker and max-parts must be non-negative integers")
        body = list_parts_result(upload, marker=int(marker), max_parts=min(int(max_parts), 1000))
        return ProxyResponse(200, [_XML], body)

    async def _complete(
        self, request: S3Request, route: RouteConfig, forward: Forwarder
    ) -> ProxyResponse:
        upload = self._upload(request)
        async with upload.lock:
            upload = self._upload(request)  # a concurrent Complete may have finished it
            listed = parse_complete(await request.body.read_all(_MAX_COMPLETE_BODY))
            parts = select_parts(upload, listed)
            data = await self._ctx.worker.run(assemble, parts)
            # A full-object checksum on the Complete request covers the assembled document.
            whole = client_digests(request.headers, (), body_unchanged=False)
            if whole.checksums and (
                request.headers.get("x-amz-checksum-type", "").upper() == "FULL_OBJECT"
            ):
                await self._ctx.worker.run(
                    verify_digests, ClientDigests(checksums=whole.checksums), data
                )
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
