"""Rewrite one object in the target format without ever overwriting someone else's write.

Read the stored object (its ETag, metadata and, unless the headers already tell, just enough
of the body to detect the format), skip it if it is already in the target format, translate
it with the route's mapping (fail-closed: anything the engine refuses is a failure, the object
untouched), then write it back **conditionally** — ``If-Match: <the ETag read>`` — with
everything a reader could notice besides the body (:mod:`proxy.transition.carry`).

A write in between makes the backend answer 412: that attempt is a *conflict*, and the object is
read afresh and tried again, up to ``max_conflicts`` times. Large results go up as a multipart
upload whose id is recorded (durably) before the first part, so a killed run's leftovers are
aborted on resume; CompleteMultipartUpload carries the If-Match too, preceded by a HEAD for
backends that do not enforce it there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import botocore.exceptions

from proxy.errors import TranslationError
from proxy.transition.carry import checksum_algorithm, content_md5, write_args
from proxy.transition.detect import SNIFF_MAX_BYTES, format_of, undecided
from proxy.translate import Format

Outcome = Literal["rewritten", "skipped", "failed"]

#: S3's smallest part (all parts but the last).
MIN_PART_BYTES = 5 * 1024 * 1024
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_GONE_CODES = frozenset({"NoSuchKey", "404"})


class Translator(Protocol):
    def xml_to_json(self, data: bytes) -> bytes: ...
    def json_to_xml(self, data: bytes) -> bytes: ...


class Recorder(Protocol):
    def record(self, entry: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    #: Bytes written (or that would be, on a dry run).
    nbytes: int = 0
    reason: str = ""
    location: str = ""
    detail: str = ""
    source: Format | None = None
    conflicts: int = 0

    def failure(self, key: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": key,
            "reason": self.reason,
            "location": self.location,
            "detail": self.detail,
        }
        if self.source:
            out["stored_format"] = self.source
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    bucket: str
    target: Format
    translator: Translator
    max_bytes: int
    multipart_threshold: int = 8 * 1024 * 1024
    max_conflicts: int = 5
    dry_run: bool = False

    @property
    def part_size(self) -> int:
        return max(self.multipart_threshold, MIN_PART_BYTES)


class _Conflict(Exception):
    """The object changed between our read and our write."""


def _code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status)


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _is_conflict(exc: botocore.exceptions.ClientError) -> bool:
    return _code(exc) in _CONFLICT_CODES or _status(exc) in (409, 412)


def _is_gone(exc: botocore.exceptions.ClientError) -> bool:
    return _code(exc) in _GONE_CODES or _status(exc) == 404


class Rewriter:
    """Rewrites objects of one bucket; thread-safe (shares one botocore client)."""

    def __init__(
        self,
        client: Any,
        plan: Plan,
        state: Recorder,
        *,
        before_write: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.plan = plan
        self.state = state
        #: Test seam: called after the read and translation, just before the write.
        self.before_write = before_write

    def migrate(self, key: str) -> Result:
        """Bring ``key`` to the target format (or say why not); never raises for S3 refusals."""
        conflicts = 0
        while True:
            try:
                result = self._attempt(key)
            except _Conflict:
                conflicts += 1
                if conflicts > self.plan.max_conflicts:
                    return Result(
                        "failed",
                        reason="conflict_limit",
                        detail=f"changed by another writer during {conflicts} attempts in a row",
                        conflicts=conflicts,
                    )
                continue
            except botocore.exceptions.ClientError as exc:
                error = exc.response.get("Error", {})
                detail = f"{exc.operation_name}: {error.get('Message') or _code(exc)}"
                return Result("failed", reason=_code(exc), detail=detail, conflicts=conflicts)
            except botocore.exceptions.BotoCoreError as exc:
                return Result("failed", reason=type(exc).__name__, detail=str(exc))
            return dataclasses.replace(result, conflicts=conflicts) if conflicts else result

    # --- one attempt ---------------------------------------------------------------------

    def _attempt(self, key: str) -> Result:
        plan = self.plan
        try:
            resp = self.client.get_object(Bucket=plan.bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as exc:
            if _is_gone(exc):
                return Result("skipped", reason="deleted")
            raise
        body = resp["Body"]
        try:
            metadata: Mapping[str, str] = resp.get("Metadata", {})
            content_type = resp.get("ContentType")
            head: bytes | None = None
            try:
                if undecided(metadata, content_type):
                    head = bytes(body.read(SNIFF_MAX_BYTES))
                source = format_of(metadata, content_type, head)
            except TranslationError as exc:
                return _untranslatable(exc, None)
            if source == plan.target:
                return Result("skipped", reason="already", source=source)
            size = int(resp.get("ContentLength", 0))
            if size > plan.max_bytes:
                return Result(
                    "failed",
                    reason="too_large",
                    detail=f"{size} bytes is over limits.max_translate_bytes ({plan.max_bytes})",
                    source=source,
                )
            data = (head or b"") + bytes(body.read())
        finally:
            body.close()
        try:
            out = (
                plan.translator.xml_to_json(data)
                if source == "xml"
                else plan.translator.json_to_xml(data)
            )
        except TranslationError as exc:
            return _untranslatable(exc, source)
        tags: list[dict[str, str]] = []
        if resp.get("TagCount"):
            version = resp.get("VersionId")
            extra = {"VersionId": version} if version and version != "null" else {}
            tags = self.client.get_object_tagging(Bucket=plan.bucket, Key=key, **extra)["TagSet"]
        args = write_args(resp, plan.target, tags)
        if self.before_write is not None:
            self.before_write(key)
        if not plan.dry_run:
            etag = resp["ETag"]
            if len(out) > plan.multipart_threshold:
                self._write_multipart(key, out, etag, args)
            else:
                self._put(key, out, etag, args)
        return Result("rewritten", nbytes=len(out), source=source)

    def _put(self, key: str, data: bytes, etag: str, args: dict[str, Any]) -> None:
        try:
            self.client.put_object(
                Bucket=self.plan.bucket,
                Key=key,
                Body=data,
                IfMatch=etag,
                ContentMD5=content_md5(data),
                **args,
            )
        except botocore.exceptions.ClientError as exc:
            if _is_conflict(exc) or _is_gone(exc):
                raise _Conflict from exc
            raise

    def _write_multipart(self, key: str, data: bytes, etag: str, args: dict[str, Any]) -> None:
        bucket, client = self.plan.bucket, self.client
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **args)["UploadId"]
        self.state.record({"upload": upload_id, "key": key})
        algorithm = args.get("ChecksumAlgorithm")
        try:
            parts = []
            step = self.plan.part_size
            for number, offset in enumerate(range(0, len(data), step), start=1):
                chunk = data[offset : offset + step]
                extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
                reply = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ContentMD5=content_md5(chunk),
                    **extra,
                )
                part = {"PartNumber": number, "ETag": reply["ETag"]}
                alg = checksum_algorithm(reply)
                if alg:
                    part[f"Checksum{alg}"] = reply[f"Checksum{alg}"]
                parts.append(part)
            # Some backends (moto) ignore If-Match on CompleteMultipartUpload: a last look
            # narrows the window there to one round trip; S3 and SeaweedFS enforce it.
            try:
                current = client.head_object(Bucket=bucket, Key=key)["ETag"]
            except botocore.exceptions.ClientError as exc:
                if _is_gone(exc):
                    raise _Conflict from exc
                raise
            if current != etag:
                raise _Conflict
            try:
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfMatch=etag,
                )
            except botocore.exceptions.ClientError as exc:
                if _is_conflict(exc) or _is_gone(exc):
                    raise _Conflict from exc
                raise
        except BaseException:
            abort_upload(client, bucket, key, upload_id)
            self.state.record({"upload_done": upload_id, "aborted": True})
            raise
        self.state.record({"upload_done": upload_id})


def abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort a multipart upload; one already completed or aborted is fine."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except botocore.exceptions.ClientError as exc:
        if not (_is_gone(exc) or _code(exc) == "NoSuchUpload"):
            raise


def _untranslatable(exc: TranslationError, source: Format | None) -> Result:
    return Result(
        "failed",
        reason=exc.reason,
        location=exc.location,
        detail=exc.detail,
        source=source,
    )
