"""Documents as the data path handles them: pure functions run in the translation pool.

- :func:`render` turns a stored document into the representation a reader sees (translated
  bytes, their ETag and CRC32), cached by :mod:`proxy.datapath.cache`;
- :func:`prepare_write` checks a written body against the client's digests, validates it in the
  writer's format, translates it to the route's store format when they differ, and computes the
  digests the upstream must receive for the bytes actually stored;
- :func:`shadow_verdict` says whether a document on a route in shadow mode would translate to
  the other format and come back (a round trip, as ``format-proxy check`` does).

No I/O, no aiohttp: bytes in, bytes out. The engine (a route's compiled mapping) raises
:class:`~proxy.errors.TranslationError`; digests raise :class:`~proxy.errors.BadDigest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from proxy.datapath.formats import CONTENT_TYPES
from proxy.errors import BadDigest, ContentSHA256Mismatch, InvalidArgument
from proxy.s3.checksums import ALGORITHMS, algorithm_of_header, new_checksum
from proxy.s3.signing import is_real_sha256
from proxy.translate import Format
from proxy.translate.roundtrip import round_trip

if TYPE_CHECKING:
    from proxy.translate.mapping import CompiledMapping

__all__ = [
    "ClientDigests",
    "Representation",
    "ShadowVerdict",
    "StoredDocument",
    "Translator",
    "client_digests",
    "other_format",
    "prepare_write",
    "render",
    "shadow_verdict",
    "verify_digests",
]


# Rough per-entry bookkeeping cost, so many tiny entries still count against the budget.
_ENTRY_OVERHEAD = 512


def other_format(fmt: str) -> Format:
    return "json" if fmt == "xml" else "xml"


class Translator(Protocol):
    """What the data path needs of a compiled mapping (:class:`proxy.translate.CompiledMapping`);
    both raise :class:`~proxy.errors.TranslationError`."""

    def xml_to_json(self, data: bytes) -> bytes: ...

    def json_to_xml(self, data: bytes) -> bytes: ...


def _translate(compiled: Translator, data: bytes, source: str) -> bytes:
    return compiled.xml_to_json(data) if source == "xml" else compiled.json_to_xml(data)


@dataclass(frozen=True, slots=True)
class Representation:
    """A stored document as one reader sees it (translated)."""

    body: bytes
    fmt: Format
    #: Quoted MD5 of ``body``: identifies this representation, changes with its bytes, and
    #: satisfies clients that compare a single-part ETag with the MD5 of what they received.
    etag: str
    #: Base64 big-endian CRC32 of ``body`` (``x-amz-checksum-crc32`` on full responses).
    crc32: str
    #: Engine time, for the duration metric (0 when not freshly translated).
    seconds: float = 0.0

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    @property
    def nbytes(self) -> int:
        return len(self.body) + _ENTRY_OVERHEAD


def render(compiled: Translator, data: bytes, source: Format, target: Format) -> Representation:
    """Translate a stored ``source`` document into ``target`` (raises TranslationError)."""
    started = time.perf_counter()
    body = _translate(compiled, data, source)
    seconds = time.perf_counter() - started
    return Representation(
        body=body,
        fmt=target,
        etag='"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"',
        crc32=base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode("ascii"),
        seconds=seconds,
    )


# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientDigests:
    """What the client claims about the body it sent."""

    content_md5: str | None = None
    #: x-amz-content-sha256 when it is a real digest of the (unencoded) body.
    sha256: str | None = None
    #: ``{"crc32": "<base64>"}`` from x-amz-checksum-* headers (or verified trailers).
    checksums: dict[str, str] = field(default_factory=dict)
    #: Algorithms the client asked for without a value (x-amz-sdk-checksum-algorithm).
    algorithms: tuple[str, ...] = ()

    def wanted_algorithms(self) -> tuple[str, ...]:
        """Checksum algorithms the stored object should carry (the client's, in order)."""
        return tuple(dict.fromkeys([*self.checksums, *self.algorithms]))


def client_digests(
    headers: Mapping[str, str],
    extra_headers: Iterable[tuple[str, str]] = (),
    *,
    body_unchanged: bool = True,
) -> ClientDigests:
    """Collect the client's digests (``headers`` case-insensitive). ``extra_headers`` are the
    checksum headers a decoded aws-chunked body produced from its trailer."""
    checksums: dict[str, str] = {}
    for name, value in [*headers.items(), *extra_headers]:
        alg = algorithm_of_header(name)
        if alg is not None:
            checksums[alg] = value.strip()
    algorithms: list[str] = []
    sdk_alg = headers.get("x-amz-sdk-checksum-algorithm") or headers.get("x-amz-checksum-algorithm")
    if sdk_alg:
        alg = sdk_alg.strip().lower()
        if alg not in ALGORITHMS:
            raise InvalidArgument(f"unsupported checksum algorithm: {sdk_alg!r}")
        algorithms.append(alg)
    sha = headers.get("x-amz-content-sha256")
    return ClientDigests(
        content_md5=(headers.get("Content-MD5") or "").strip() or None,
        sha256=sha.lower() if body_unchanged and is_real_sha256(sha) else None,
        checksums=checksums,
        algorithms=tuple(algorithms),
    )


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def checksum_b64(algorithm: str, data: bytes) -> str:
    c = new_checksum(algorithm)
    c.update(data)
    return c.b64digest()


def verify_digests(digests: ClientDigests, data: bytes) -> None:
    """Raise BadDigest (or XAmzContentSHA256Mismatch) unless ``data`` matches every claim."""
    if digests.content_md5 is not None:
        try:
            claimed = base64.b64decode(digests.content_md5, validate=True)
        except (binascii.Error, ValueError):
            claimed = b""
        if len(claimed) != 16:
            raise BadDigest(f"The Content-MD5 you specified is not valid: {digests.content_md5!r}")
        if claimed != hashlib.md5(data, usedforsecurity=False).digest():
            raise BadDigest("The Content-MD5 you specified did not match what we received.")
    for alg, claimed_b64 in digests.checksums.items():
        actual = checksum_b64(alg, data)
        if actual != claimed_b64:
            raise BadDigest(
                f"The {alg.upper()} you specified did not match the calculated checksum "
                f"(x-amz-checksum-{alg}: {claimed_b64!r}, body: {actual!r})."
            )
    if digests.sha256 is not None:
        actual_hex = hashlib.sha256(data).hexdigest()
        if actual_hex != digests.sha256:
            raise ContentSHA256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed "
                f"(client: {digests.sha256}, body: {actual_hex})."
            )


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """The bytes a write puts upstream, and their digests."""

    body: bytes
    fmt: Format
    #: True when ``body`` is a translation of what the client sent.
    translated: bool
    content_md5: str
    sha256: str
    #: ``{"crc32": "<base64>"}`` of ``body`` for each algorithm the client used.
    checksums: dict[str, str]
    #: Engine time (translation or validation).
    seconds: float


def prepare_write(
    compiled: Translator,
    data: bytes,
    *,
    writer: Format,
    store: Format,
    digests: ClientDigests,
) -> StoredDocument:
    """Verify, validate and (if needed) translate a written document.

    The engine is the validator: a body in the store format is still translated once (to the
    other format, result discarded) so that only documents inside the mapping's domain — ones
    every reader version can read — are ever stored.
    """
    verify_digests(digests, data)
    started = time.perf_counter()
    translated = _translate(compiled, data, writer)
    seconds = time.perf_counter() - started
    body = translated if store != writer else data
    return StoredDocument(
        body=body,
        fmt=store,
        translated=store != writer,
        content_md5=_md5_b64(body),
        sha256=hashlib.sha256(body).hexdigest(),
        checksums={alg: checksum_b64(alg, body) for alg in digests.wanted_algorithms()},
        seconds=seconds,
    )


# --- shadow checks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowVerdict:
    """What active mode would make of one document: ``reason`` is empty when it translates
    to the other format and comes back (exactly or normalised, as ``format-proxy check``
    accepts)."""

    reason: str = ""
    location: str = ""
    #: The engine's message; never a quote of the document for a round-trip mismatch.
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.reason


def shadow_verdict(compiled: CompiledMapping, data: bytes, fmt: Format) -> ShadowVerdict:
    """Translate ``data`` (a ``fmt`` document) to the other format and back, and compare."""
    started = time.perf_counter()
    result = round_trip(compiled, data, fmt)
    seconds = time.perf_counter() - started
    if result.ok:
        return ShadowVerdict(seconds=seconds)
    if result.error is not None:
        err = result.error
        return ShadowVerdict(err.reason, err.location, err.detail[:500], seconds)
    return ShadowVerdict(
        "round_trip_mismatch",
        result.location or "/",
        f"the {fmt.upper()} translated to {other_format(fmt).upper()} and back differs here",
        seconds,
    )
