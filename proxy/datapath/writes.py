"""PUT and CopyObject on a route.

A written body must be a valid document in the writer's format; it is stored in the route's
``store`` format with ``x-amz-meta-format`` and a matching Content-Type. The client's digests
are verified against the bytes it sent (the upstream can no longer do it when the bytes
change), and the upstream receives Content-MD5, the client's checksum algorithms and a real
``x-amz-content-sha256`` of the bytes actually stored. Everything else the client sent
(metadata, tagging, storage class, encryption, conditional-write headers) goes along unchanged.

CopyObject copies stored bytes unchanged; with ``MetadataDirective: REPLACE`` the proxy keeps
the source's format in ``x-amz-meta-format`` (the client's new metadata would otherwise drop it).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from proxy.datapath.common import (
    EMPTY_SHA256,
    Context,
    header_value,
    report_failure,
    send_empty,
    without_headers,
)
from proxy.datapath.documents import (
    ClientDigests,
    StoredDocument,
    client_digests,
    other_format,
)
from proxy.datapath.formats import (
    CONTENT_TYPES,
    META_HEADER,
    format_from_content_type,
)
from proxy.datapath.observe import direction_of
from proxy.datapath.reads import Changed, ReadPath, UpstreamAnswer, stored_format
from proxy.datapath.routes import CompiledRoute
from proxy.errors import InvalidDocument, PreconditionFailed, TranslationError
from proxy.relay.pipeline import Forwarder, ProxyResponse, S3Request, UpstreamReply
from proxy.s3.address import S3Address, parse_copy_source
from proxy.translate import Format

__all__ = ["COPY_SOURCE_HEADERS", "WritePath"]

_log = structlog.get_logger("format_proxy.datapath")

# Client headers replaced by the proxy when it stores a document it validated (and maybe
# translated): framing, digests of the client's bytes, the type and the format label.
_WRITE_DROP = frozenset(
    {
        "content-length",
        "content-md5",
        "content-type",
        "content-encoding",
        "x-amz-decoded-content-length",
        "x-amz-trailer",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-checksum-algorithm",
        META_HEADER,
    }
)
_CHECKSUM_PREFIX = ("x-amz-checksum-",)
_ATTEMPTS = 3
# Headers a HEAD/GET of the written object needs (encryption keys, ownership, payer).
_OBJECT_ACCESS_HEADERS = frozenset(
    {
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-key",
        "x-amz-server-side-encryption-customer-key-md5",
        "x-amz-expected-bucket-owner",
        "x-amz-request-payer",
    }
)

# CopyObject source: the SSE-C and ownership headers a HEAD of the source needs.
COPY_SOURCE_HEADERS = {
    "x-amz-copy-source-server-side-encryption-customer-algorithm": (
        "x-amz-server-side-encryption-customer-algorithm"
    ),
    "x-amz-copy-source-server-side-encryption-customer-key": (
        "x-amz-server-side-encryption-customer-key"
    ),
    "x-amz-copy-source-server-side-encryption-customer-key-md5": (
        "x-amz-server-side-encryption-customer-key-md5"
    ),
    "x-amz-source-expected-bucket-owner": "x-amz-expected-bucket-owner",
    "x-amz-request-payer": "x-amz-request-payer",
}


class WritePath:
    def __init__(self, ctx: Context, reads: ReadPath) -> None:
        self._ctx = ctx
        self._reads = reads

    async def put(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        body = request.body
        limit = self._ctx.limits.max_translate_bytes
        # The document, its translation and their copies live until the upstream has them.
        with self._ctx.inflight.hold(min(body.length, limit) if body.length is not None else limit):
            data = await body.read_all(limit)
            digests = client_digests(
                request.headers, body.extra_headers, body_unchanged=body.unchanged
            )
            headers = without_headers(request.headers.items(), body.drop_headers)
            reply, doc = await self.store(request, route, forward, data, digests, headers)
        if doc.translated:
            # The upstream echoes checksums of what it stored; S3 echoes the client's own.
            reply.headers = [
                *without_headers(reply.headers, (), _CHECKSUM_PREFIX),
                *((f"x-amz-checksum-{alg}", v) for alg, v in digests.checksums.items()),
            ]
        return reply.to_response()

    async def store(
        self,
        request: S3Request,
        route: CompiledRoute,
        forward: Forwarder,
        data: bytes,
        digests: ClientDigests,
        headers: Iterable[tuple[str, str]],
        *,
        address: S3Address | None = None,
    ) -> tuple[UpstreamReply, StoredDocument]:
        """Validate ``data`` (the writer's document), translate it to the store format if
        needed and PUT it upstream with ``headers`` (the client's, minus what is replaced).
        Counts the outcome once the upstream accepted it."""
        ctx = self._ctx
        writer = ctx.version_format(route)
        store = ctx.store_format(route)
        try:
            doc = await ctx.worker.prepare_write(
                route, data, writer=writer, store=store, digests=digests
            )
        except TranslationError as err:
            checked_as = store if store != writer else other_format(writer)
            report_failure(
                ctx,
                route,
                request.address.key,
                "put",
                direction_of(writer, checked_as),
                err,
                "refused",
            )
            raise InvalidDocument(err, expected=writer, route=route.name) from None

        headers = list(headers)
        target = address or request.address
        if_match = header_value(headers, "If-Match")
        if if_match is not None:
            headers = await self._resolve_if_match(
                request, route, forward, target, headers, if_match
            )
        ctype = header_value(headers, "Content-Type")
        if format_from_content_type(ctype) != doc.fmt:
            ctype = CONTENT_TYPES[doc.fmt]
        upstream_headers = without_headers(headers, _WRITE_DROP, _CHECKSUM_PREFIX)
        upstream_headers += [
            ("Content-Type", ctype or CONTENT_TYPES[doc.fmt]),
            (META_HEADER, doc.fmt),
            ("Content-MD5", doc.content_md5),
            *((f"x-amz-checksum-{alg}", v) for alg, v in doc.checksums.items()),
        ]
        if doc.checksums:
            # Names the algorithm, as SDKs do (some backends store the checksum only then).
            first = next(iter(doc.checksums))
            upstream_headers.append(("x-amz-sdk-checksum-algorithm", first.upper()))
        reply = await forward.send(
            request,
            method="PUT",
            address=target,
            headers=upstream_headers,
            body=doc.body,
            payload_hash=doc.sha256,
        )
        if 200 <= reply.status < 300:
            if doc.translated:
                ctx.observer.translated(route.name, "put", direction_of(writer, store))
            else:
                ctx.observer.native(route.name, "put")
        return reply, doc

    async def _resolve_if_match(
        self,
        request: S3Request,
        route: CompiledRoute,
        forward: Forwarder,
        address: S3Address,
        headers: list[tuple[str, str]],
        if_match: str,
    ) -> list[tuple[str, str]]:
        """A conditional write names the ETag its writer *saw*, which for a translated object
        is the translation's. Check it here and send the stored ETag upstream, which then
        enforces it atomically (a change in between still fails with 412)."""
        tags = [t.strip() for t in if_match.split(",") if t.strip()]
        if "*" in tags:
            return headers
        base = [(k, v) for k, v in headers if k.lower() in _OBJECT_ACCESS_HEADERS]
        current = await self._reads.visible_etag(request, route, forward, address, base)
        if current is None:
            return headers  # no such object: the upstream gives its own answer
        stored, visible = current
        seen = {t.removeprefix("W/").strip('"') for t in tags}
        if stored.strip('"') in seen or (visible is not None and visible.strip('"') in seen):
            return [*without_headers(headers, {"if-match"}), ("If-Match", stored)]
        raise PreconditionFailed(
            "At least one of the pre-conditions you specified did not hold (If-Match)"
        )

    # --- CopyObject ------------------------------------------------------------------------------

    async def copy(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        directive = (request.headers.get("x-amz-metadata-directive") or "COPY").strip().upper()
        source = parse_copy_source(request.headers.get("x-amz-copy-source"))
        if directive != "REPLACE" or source is None:
            return await forward.passthrough(request)  # bytes and metadata travel together

        client_guard = any(k.lower().startswith("x-amz-copy-source-if-") for k in request.headers)
        for _ in range(_ATTEMPTS):
            try:
                fmt, etag = await self._source_format(request, forward, source, route)
            except Changed:
                continue
            except UpstreamAnswer:
                # Missing or forbidden source: the upstream's own answer to the copy.
                return await forward.passthrough(request)
            headers = without_headers(request.headers.items(), {META_HEADER, "content-length"})
            headers.append((META_HEADER, fmt))
            if format_from_content_type(header_value(headers, "Content-Type")) != fmt:
                # As for PUT: a routed object's Content-Type always names its stored format.
                headers = without_headers(headers, {"content-type"})
                headers.append(("Content-Type", CONTENT_TYPES[fmt]))
            guarded = bool(etag) and not client_guard
            if guarded:
                # The format was read from this version of the source: copy exactly that one.
                headers.append(("x-amz-copy-source-if-match", etag or ""))
            reply = await forward.send(
                request, headers=headers, body=b"", payload_hash=EMPTY_SHA256
            )
            if guarded and reply.status == 412:
                reply.release()
                continue
            return reply.to_response()
        return await forward.passthrough(request)

    async def _source_format(
        self,
        request: S3Request,
        forward: Forwarder,
        source: S3Address,
        route: CompiledRoute,
    ) -> tuple[Format, str | None]:
        base = [
            (COPY_SOURCE_HEADERS[k.lower()], v)
            for k, v in request.headers.items()
            if k.lower() in COPY_SOURCE_HEADERS
        ]
        probe = await send_empty(forward, request, "HEAD", source, base)
        probe.release()
        if probe.status != 200:
            raise UpstreamAnswer(probe.status, probe.headers, b"")
        etag = probe.header("ETag")
        try:
            ctype = probe.header("Content-Type")
            fmt = await stored_format(request, forward, source, base, probe, ctype)
        except TranslationError as err:
            _log.warning(
                "copy_refused",
                route=route.name,
                key=request.address.key,
                source_key=source.key,
                reason=err.reason,
                detail=err.detail,
            )
            raise InvalidDocument(err, expected="xml or json", route=route.name) from None
        return fmt, etag
