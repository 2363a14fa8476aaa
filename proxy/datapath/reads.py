"""GET and HEAD on a route: serve each object in the format this pod's version reads.

Two ways in, chosen per request:

- **Direct** (a plain GET, no cached translation of the object): one upstream GET. The stored
  format is read from the reply's headers (``x-amz-meta-format``, Content-Type) or, failing
  those, from its first bytes. A native object streams through unchanged; any other is read
  whole (up to ``limits.max_translate_bytes``), translated (single-flight, cached) and served.
- **Probe** (HEAD, Range, partNumber, a conditional header, or an object with a cached
  translation): a HEAD of the stored object (the client's request without those headers)
  tells format, stored ETag and size. Native → the client's request goes upstream unchanged,
  so the upstream applies ranges and conditions to the bytes it serves. Otherwise the
  translation comes from the cache (keyed by stored ETag) or from a GET guarded by
  ``If-Match: <stored ETag>``, and ranges and conditions are applied here to the translated
  bytes (:mod:`proxy.s3.ranges`, :mod:`proxy.s3.conditional`).

Translation failures follow the route's ``on_error``: ``fail`` → 422
``UntranslatableObject.<reason>``; ``passthrough`` → the stored bytes exactly as stored. Either
way the failure is logged and counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

from proxy.datapath.cache import CacheKey
from proxy.datapath.common import (
    Context,
    address_without,
    header_value,
    report_failure,
    send_empty,
    without_headers,
)
from proxy.datapath.documents import Representation, other_format
from proxy.datapath.formats import (
    META_HEADER,
    detect_stored_format,
    format_from_content_type,
    format_from_metadata,
    sniff,
)
from proxy.datapath.observe import Operation, direction_of
from proxy.datapath.routes import CompiledRoute
from proxy.errors import (
    ClientError,
    EntityTooLarge,
    PreconditionFailed,
    TranslationError,
    UntranslatableObject,
    UpstreamError,
)
from proxy.relay.pipeline import Forwarder, ProxyResponse, S3Request, UpstreamReply
from proxy.s3.address import S3Address
from proxy.s3.conditional import CONDITIONAL_HEADERS, Outcome, evaluate, has_conditions
from proxy.s3.ranges import ByteRange, parse_range, part_range
from proxy.translate import Format

__all__ = ["SNIFF_BYTES", "Changed", "ReadPath", "UpstreamAnswer", "fetch_prefix"]

#: How much of a body is looked at to find its first non-whitespace byte.
SNIFF_BYTES = 64 * 1024
#: Probe → GET races (the object replaced in between) retried this many times.
_ATTEMPTS = 3

# Request headers that must not reach the upstream when the proxy answers from a translation.
_PROBE_DROP = frozenset({"range", *CONDITIONAL_HEADERS})
# Response headers that describe the stored bytes, replaced for a translated representation.
_STORED_ONLY = frozenset(
    {
        "content-length",
        "content-type",
        "etag",
        "content-md5",
        "content-range",
        "x-amz-mp-parts-count",
    }
)
_CHECKSUM_PREFIX = ("x-amz-checksum-",)
# What a 304 carries (RFC 9110 §15.4.5, as S3 does).
_NOT_MODIFIED_KEEP = frozenset(
    {
        "etag",
        "last-modified",
        "cache-control",
        "expires",
        "date",
        "server",
        "vary",
        "x-amz-request-id",
        "x-amz-id-2",
        "x-amz-version-id",
    }
)


class Changed(Exception):
    """The stored object changed between the probe and the read (If-Match failed)."""


class UpstreamAnswer(Exception):
    """The upstream refused a read the proxy made: pass its answer on."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body

    def response(self, method: str) -> ProxyResponse:
        if method == "HEAD":
            return ProxyResponse(self.status, without_headers(self.headers, {"content-length"}))
        return ProxyResponse(self.status, self.headers, self.body)


async def _answer_of(reply: UpstreamReply) -> UpstreamAnswer:
    try:
        body = await reply.read(SNIFF_BYTES) if reply.has_body else b""
    except EntityTooLarge:
        body = b""
    finally:
        reply.release()
    return UpstreamAnswer(reply.status, reply.headers, body)


async def _chain(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk


def _last_modified(headers: list[tuple[str, str]]) -> datetime | None:
    value = header_value(headers, "Last-Modified")
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _content_length(reply: UpstreamReply) -> int | None:
    value = reply.header("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


async def fetch_prefix(
    request: S3Request,
    forward: Forwarder,
    address: S3Address,
    base: list[tuple[str, str]],
    etag: str | None,
) -> bytes:
    """A stored object's first bytes, for a sniff (its headers named no format). Raises
    ``Changed`` when the object no longer has ``etag``, ``UpstreamAnswer`` on an error."""
    headers = [*base, ("Range", f"bytes=0-{SNIFF_BYTES - 1}")]
    if etag:
        headers.append(("If-Match", etag))
    reply = await send_empty(forward, request, "GET", address, headers)
    if reply.status == 412:
        reply.release()
        raise Changed
    if reply.status == 416:  # an empty object
        reply.release()
        return b""
    if reply.status not in (200, 206):
        raise await _answer_of(reply)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in reply.stream():
            parts.append(chunk)
            size += len(chunk)
            if size >= SNIFF_BYTES:
                break
    finally:
        reply.release()
    return b"".join(parts)[:SNIFF_BYTES]


async def stored_format(
    request: S3Request,
    forward: Forwarder,
    address: S3Address,
    base: list[tuple[str, str]],
    probe: UpstreamReply,
    content_type: str | None,
) -> Format:
    """The format of the object a HEAD ``probe`` describes: its ``x-amz-meta-format``, else
    ``content_type`` (its Content-Type, or None when that says nothing about what is stored),
    else a sniff of its first bytes. Raises TranslationError, Changed, UpstreamAnswer."""
    meta = probe.header(META_HEADER)
    fmt = format_from_metadata(meta) or format_from_content_type(content_type)
    if fmt is None:
        head = await fetch_prefix(request, forward, address, base, probe.header("ETag"))
        fmt = detect_stored_format(None, content_type, head)
    return fmt


class ReadPath:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def serve(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder
    ) -> ProxyResponse:
        op: Operation = "head" if request.method == "HEAD" else "get"
        target = self._ctx.version_format(route)
        plain = (
            not has_conditions(request.headers)
            and "Range" not in request.headers
            and "partNumber" not in request.address.params
        )
        bucket, key = request.address.bucket or "", request.address.key or ""
        if op == "get" and plain and not self._ctx.cache.has_object(bucket, key, target):
            return await self._direct(request, route, forward, target)
        return await self._probe(request, route, forward, target, op, plain)

    # --- shared ------------------------------------------------------------------------------

    def _header_format(
        self, request: S3Request, meta: str | None, ctype: str | None
    ) -> Format | None:
        """The stored format the headers declare (None: sniff). A ``response-content-type``
        override makes the reply's Content-Type say nothing about what is stored."""
        if "response-content-type" in request.address.params:
            ctype = None
        return format_from_metadata(meta) or format_from_content_type(ctype)

    def _stored_ctype(self, request: S3Request, ctype: str | None) -> str | None:
        return None if "response-content-type" in request.address.params else ctype

    async def _lookup(
        self, key: CacheKey | None, fill: Callable[[], Awaitable[Representation]]
    ) -> Representation:
        if key is None:  # no stored ETag to key on: translate every time
            self._ctx.observer.cache_lookup(False)
            return await fill()
        known = self._ctx.failures.get(key)
        if known is not None:  # this stored version failed before: fail fast, same error
            raise known
        try:
            rep, hit = await self._ctx.cache.get_or_fill(key, fill)
        except TranslationError as err:
            self._ctx.observer.cache_lookup(False)
            self._ctx.failures.put(key, err)
            raise
        except BaseException:
            self._ctx.observer.cache_lookup(False)
            raise
        self._ctx.observer.cache_lookup(hit)
        return rep

    def _too_large(self, size: int) -> TranslationError:
        limit = self._ctx.limits.max_translate_bytes
        return TranslationError(
            "too_large",
            "/",
            f"the stored object is {size} bytes, above limits.max_translate_bytes ({limit})",
        )

    def _fail(
        self,
        request: S3Request,
        route: CompiledRoute,
        op: Operation,
        target: Format,
        err: TranslationError,
    ) -> None:
        """Count and log; raise the S3 error unless the route serves stored bytes instead."""
        source = other_format(target)
        passthrough = route.config.on_error == "passthrough"
        report_failure(
            self._ctx,
            route,
            request.address.key,
            op,
            direction_of(source, target),
            err,
            "served stored bytes" if passthrough else "refused",
        )
        if not passthrough:
            raise UntranslatableObject(err, source=source, target=target, route=route.name)

    # --- direct: one GET -----------------------------------------------------------------------

    async def _direct(
        self, request: S3Request, route: CompiledRoute, forward: Forwarder, target: Format
    ) -> ProxyResponse:
        ctx = self._ctx
        reply = await forward.send(request)
        if reply.status != 200:
            return reply.to_response()
        stream = reply.stream()
        peeked: list[bytes] = []

        def stored_as_is() -> ProxyResponse:
            return ProxyResponse(200, reply.headers, _chain(peeked, stream), reply.release)

        try:
            meta, ctype = reply.header(META_HEADER), reply.header("Content-Type")
            fmt = self._header_format(request, meta, ctype)
            if fmt is None:
                head = await self._peek(stream, peeked)
                fmt = detect_stored_format(None, self._stored_ctype(request, ctype), head)
            size = _content_length(reply)
            if fmt != target and size is not None and size > ctx.limits.max_translate_bytes:
                raise self._too_large(size)
        except TranslationError as err:
            try:
                self._fail(request, route, "get", target, err)
            except BaseException:
                reply.release()
                raise
            return stored_as_is()
        except BaseException:
            reply.release()
            raise

        if fmt == target:
            ctx.observer.native(route.name, "get")
            return stored_as_is()

        etag = reply.header("ETag")
        a = request.address
        cache_key: CacheKey | None = (a.bucket or "", a.key or "", etag, target) if etag else None
        read: list[bytes] = []
        filled = False

        async def fill() -> Representation:
            nonlocal filled
            limit = ctx.limits.max_translate_bytes
            with ctx.inflight.hold(min(size, limit) if size is not None else limit):
                filled = True
                await stream.aclose()
                try:
                    rest = await reply.read(limit)
                except EntityTooLarge:
                    raise self._too_large(limit + 1) from None
                data = b"".join([*peeked, rest])
                if len(data) > limit:
                    raise self._too_large(len(data))
                read.append(data)
                return await ctx.worker.render(route, data, fmt, target)

        try:
            rep = await self._lookup(cache_key, fill)
        except TranslationError as err:
            try:
                self._fail(request, route, "get", target, err)
            except BaseException:
                reply.release()
                raise
            if read:
                return ProxyResponse(200, reply.headers, read[0])
            if filled:  # the body was partly consumed: fetch the stored bytes afresh
                reply.release()
                return await forward.passthrough(request)
            return stored_as_is()  # another request's translation failed; ours is unread
        except BaseException:
            reply.release()
            raise
        if not filled:  # served from the cache: the stored body is not needed
            await stream.aclose()
            reply.release()
        ctx.observer.translated(route.name, "get", direction_of(fmt, target))
        return self._represent(request, "get", reply.headers, rep)

    async def _peek(self, stream: AsyncIterator[bytes], peeked: list[bytes]) -> bytes:
        """Read until the first non-whitespace byte is known (or SNIFF_BYTES, or the end)."""
        size = 0
        while size < SNIFF_BYTES:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            peeked.append(chunk)
            size += len(chunk)
            if sniff(b"".join(peeked)[:SNIFF_BYTES]) is not None:
                break
        return b"".join(peeked)[:SNIFF_BYTES]

    # --- probe: HEAD first -----------------------------------------------------------------------

    async def _probe(
        self,
        request: S3Request,
        route: CompiledRoute,
        forward: Forwarder,
        target: Format,
        op: Operation,
        plain: bool,
    ) -> ProxyResponse:
        ctx = self._ctx
        base = without_headers(request.headers.items(), _PROBE_DROP)
        address = address_without(request.address, "partNumber")
        plain_head = plain and op == "head"

        for _ in range(_ATTEMPTS):
            probe = await send_empty(forward, request, "HEAD", address, base)
            probe.release()
            if probe.status != 200:
                # Missing, forbidden, ...: the upstream's own answer to the client's request
                # (a HEAD's is the probe's; a GET needs the error body).
                return probe.to_response() if plain_head else await forward.passthrough(request)
            etag = probe.header("ETag")
            ctype = self._stored_ctype(request, probe.header("Content-Type"))
            try:
                fmt = await stored_format(request, forward, address, base, probe, ctype)
                size = _content_length(probe)
                if fmt != target and size is not None and size > ctx.limits.max_translate_bytes:
                    raise self._too_large(size)
            except TranslationError as err:
                self._fail(request, route, op, target, err)
                return probe.to_response() if plain_head else await forward.passthrough(request)
            except Changed:
                continue
            except UpstreamAnswer as answer:
                return answer.response(request.method)

            if fmt == target:
                ctx.observer.native(route.name, op)
                return probe.to_response() if plain_head else await forward.passthrough(request)

            source: Format = fmt
            try:
                rep = await self._translation(
                    request, route, forward, address, base, etag, source, target
                )
            except Changed:
                continue
            except UpstreamAnswer as answer:
                return answer.response(request.method)
            except TranslationError as err:
                self._fail(request, route, op, target, err)
                return probe.to_response() if plain_head else await forward.passthrough(request)
            ctx.observer.translated(route.name, op, direction_of(source, target))
            return self._represent(request, op, probe.headers, rep)

        raise UpstreamError("the object changed during every attempt to read it; try again")

    async def _translation(
        self,
        request: S3Request,
        route: CompiledRoute,
        forward: Forwarder,
        address: S3Address,
        base: list[tuple[str, str]],
        etag: str | None,
        source: Format,
        target: Format,
    ) -> Representation:
        """The stored object (``etag``) in ``target`` format: from the cache, or read with
        ``If-Match: <etag>`` and translated. Raises Changed, UpstreamAnswer, TranslationError."""
        ctx = self._ctx
        cache_key: CacheKey | None = None
        if etag:
            cache_key = (address.bucket or "", address.key or "", etag, target)
            ctx.cache.discard_stale(cache_key)

        async def fill() -> Representation:
            headers = [*base, ("If-Match", etag)] if etag else base
            reply = await send_empty(forward, request, "GET", address, headers)
            if reply.status == 412:
                reply.release()
                raise Changed
            if reply.status != 200:
                raise await _answer_of(reply)
            limit = ctx.limits.max_translate_bytes
            size = _content_length(reply)
            try:
                with ctx.inflight.hold(min(size, limit) if size is not None else limit):
                    try:
                        data = await reply.read(limit)
                    except EntityTooLarge:
                        raise self._too_large(limit + 1) from None
                    return await ctx.worker.render(route, data, source, target)
            finally:
                reply.release()

        return await self._lookup(cache_key, fill)

    async def visible_etag(
        self,
        request: S3Request,
        route: CompiledRoute,
        forward: Forwarder,
        address: S3Address,
        base: list[tuple[str, str]],
    ) -> tuple[str, str | None] | None:
        """``(stored ETag, ETag this pod's version sees)`` of the object at ``address``, None if
        it does not exist. The second is None when the object cannot be translated. Counts no
        request outcome: it serves a conditional write, not a read."""
        target = self._ctx.version_format(route)
        probe = await send_empty(forward, request, "HEAD", address, base)
        probe.release()
        etag = probe.header("ETag")
        if probe.status != 200 or not etag:
            return None
        try:
            ctype = probe.header("Content-Type")
            fmt = await stored_format(request, forward, address, base, probe, ctype)
            if fmt == target:
                return etag, etag
            size = _content_length(probe)
            if size is not None and size > self._ctx.limits.max_translate_bytes:
                return etag, None
            rep = await self._translation(request, route, forward, address, base, etag, fmt, target)
        except (TranslationError, Changed, UpstreamAnswer):
            return etag, None
        return etag, rep.etag

    # --- the translated response ---------------------------------------------------------------

    def _represent(
        self,
        request: S3Request,
        op: Operation,
        stored_headers: list[tuple[str, str]],
        rep: Representation,
    ) -> ProxyResponse:
        """Answer ``request`` from ``rep``: preconditions, then Range/partNumber."""
        override = "response-content-type" in request.address.params
        drop = _STORED_ONLY - {"content-type"} if override else _STORED_ONLY
        headers = without_headers(stored_headers, drop, _CHECKSUM_PREFIX)
        if not override:
            headers.append(("Content-Type", rep.content_type))
        headers.append(("ETag", rep.etag))
        if header_value(headers, "Accept-Ranges") is None:
            headers.append(("Accept-Ranges", "bytes"))

        outcome = evaluate(
            request.headers, etag=rep.etag, last_modified=_last_modified(stored_headers)
        )
        if outcome is Outcome.PRECONDITION_FAILED:
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
        if outcome is Outcome.NOT_MODIFIED:
            kept = [(k, v) for k, v in headers if k.lower() in _NOT_MODIFIED_KEEP]
            return ProxyResponse(304, kept)

        size = len(rep.body)
        part = request.address.values.get("partNumber")
        rng = request.headers.get("Range")
        if part is not None and rng is not None:
            raise ClientError("Cannot specify both Range header and partNumber query parameter")
        selected: ByteRange | None = (
            part_range(part, size) if part is not None else parse_range(rng, size)
        )
        if selected is None:
            if self._wants_checksum(request, stored_headers):
                headers += [
                    ("x-amz-checksum-crc32", rep.crc32),
                    ("x-amz-checksum-type", "FULL_OBJECT"),
                ]
            if op == "head":
                return ProxyResponse(200, [*headers, ("Content-Length", str(size))])
            return ProxyResponse(200, headers, rep.body, translated=True)
        headers.append(("Content-Range", selected.content_range))
        if op == "head":
            return ProxyResponse(206, [*headers, ("Content-Length", str(selected.length))])
        return ProxyResponse(206, headers, bytes(selected.slice(rep.body)), translated=True)

    @staticmethod
    def _wants_checksum(request: S3Request, stored_headers: list[tuple[str, str]]) -> bool:
        """S3 returns a full-object checksum when asked and the object has one: so do we —
        the CRC32 of the translated bytes, which botocore then validates."""
        mode = request.headers.get("x-amz-checksum-mode", "")
        return mode.upper() == "ENABLED" and any(
            k.lower().startswith("x-amz-checksum-") and k.lower() != "x-amz-checksum-type"
            for k, _ in stored_headers
        )
