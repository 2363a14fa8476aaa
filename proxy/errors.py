"""The one exception tree of format-proxy.

Every error the proxy raises itself derives from :class:`ProxyError`, which carries the HTTP
status and the S3 error code it becomes. The server turns these into S3-style XML error
documents in exactly one place (``proxy.relay.server``); the CLI turns them into a message and an
exit status. This module is pure: no aiohttp, no I/O.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error format-proxy raises on purpose."""

    status: int = 500
    code: str = "InternalError"

    def __init__(self, message: str, *, resource: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.resource = resource

    def __str__(self) -> str:
        return self.message


# --- configuration (start-up; exit status 2) ---------------------------------------------------


class UsageError(ProxyError):
    """A command-line mistake: an unknown route name, an unreadable input file (exit status 2)."""

    code = "InvalidArgument"


class ConfigError(ProxyError):
    """Invalid configuration. ``key_path`` names the offending key, e.g. ``upstream.endpoint``."""

    code = "InvalidConfiguration"

    def __init__(self, key_path: str, problem: str) -> None:
        self.key_path = key_path
        self.problem = problem
        super().__init__(f"{key_path}: {problem}" if key_path else problem)


class MappingError(ConfigError):
    """A route mapping (schema or inline options) that cannot be compiled.

    ``key_path`` points into the config or the schema (``routes[0].mapping.schema#/properties/x``).
    """


# --- the client's request ----------------------------------------------------------------------


class ClientError(ProxyError):
    """The client's request is wrong; nothing is forwarded or written for it."""

    status = 400
    code = "InvalidRequest"


class InvalidArgument(ClientError):
    code = "InvalidArgument"


class InvalidBucketName(ClientError):
    """A bucket name the proxy cannot forward unchanged (S3's naming rules)."""

    code = "InvalidBucketName"


class InvalidURI(ClientError):
    """A request target the upstream could read differently from the proxy (see
    ``docs/security.md``, "Request targets")."""

    code = "InvalidURI"


class MalformedBody(ClientError):
    """aws-chunked framing that cannot be decoded, or a body that does not match its headers."""

    code = "IncompleteBody"


class BadDigest(ClientError):
    """A Content-MD5 or x-amz-checksum-* (header or trailer) that does not match the body."""

    code = "BadDigest"


class EntityTooLarge(ClientError):
    code = "EntityTooLarge"


class RequestTimeout(ClientError):
    """The client stopped sending its request body (S3's own code for this)."""

    code = "RequestTimeout"


class SlowDown(ProxyError):
    """The proxy is at a global bound (client connections, bytes of documents in flight,
    bytes of spooled uploads, free document workers): the request is refused before any work,
    as S3 sheds load. SDKs back off and retry."""

    status = 503
    code = "SlowDown"


class NotImplementedByProxy(ProxyError):
    status = 501
    code = "NotImplemented"


class InvalidRange(ProxyError):
    status = 416
    code = "InvalidRange"


class InvalidPartNumber(InvalidRange):
    code = "InvalidPartNumber"


class PreconditionFailed(ProxyError):
    status = 412
    code = "PreconditionFailed"


# --- the upstream ----------------------------------------------------------------------------


class UpstreamError(ProxyError):
    """The upstream could not be reached or did not answer in time. SDKs retry 503s."""

    status = 503
    code = "ServiceUnavailable"


class CredentialsError(ProxyError):
    """The proxy's own credentials could not be resolved or refreshed."""

    status = 503
    code = "ServiceUnavailable"


# --- the proxy's own capacity ---------------------------------------------------------------


class WorkerLost(ProxyError):
    """A document worker process stopped unexpectedly (killed by the kernel, crashed) while
    working on this request. A new worker replaces it; retrying is safe."""

    status = 503
    code = "ServiceUnavailable"


# --- translation ------------------------------------------------------------------------------

#: The fixed, documented set of translation failure reasons. They are metric label values.
TRANSLATION_REASONS: frozenset[str] = frozenset(
    {
        "not_well_formed",
        "doctype_forbidden",
        "mixed_content",
        "interleaved_siblings",
        # an element in another place than the schema's property order puts it (it would come
        # back elsewhere, so the document would not round-trip)
        "out_of_order",
        # a non-array element twice, or (schemaless) an element named like an attribute key
        "duplicate_element",
        # the same key twice in one JSON object (parsers disagree on which one wins)
        "duplicate_key",
        "unknown_element",
        "unknown_attribute",
        "unknown_namespace",
        "missing_element",
        "type_mismatch",
        "number_out_of_range",
        "invalid_name",
        "invalid_character",
        "comment_forbidden",
        "processing_instruction_forbidden",
        "too_deep",
        "too_large",
        "schema_violation",
        "undetectable_format",
        "wrong_root",
        # the engine took longer than limits.translate_timeout: the worker was stopped
        "too_slow",
    }
)


DOCUMENT_ROOT = "/ (the document root)"


def describe_location(location: str) -> str:
    """How every message names a location in a document.

    The document root is spelled ``""`` by JSON Pointer and ``/`` by XPath; both read as
    ``/ (the document root)``. Any other location is shown as it is.
    """
    return DOCUMENT_ROOT if location in ("", "/") else location


class TranslationError(ProxyError):
    """A document outside the mapping's domain.

    ``reason`` is one of :data:`TRANSLATION_REASONS`; ``location`` is an XPath (XML side) or a
    JSON Pointer (JSON side) naming where the problem is.
    """

    status = 400
    code = "InvalidDocument"

    def __init__(self, reason: str, location: str, detail: str) -> None:
        if reason not in TRANSLATION_REASONS:
            raise ValueError(f"unknown translation failure reason: {reason!r}")
        self.reason = reason
        self.location = location
        self.detail = detail
        super().__init__(f"{reason} at {describe_location(location)}: {detail}")

    def __reduce__(self) -> tuple[type[TranslationError], tuple[str, str, str]]:
        # Raised in worker processes: pickled with its own arguments, not the message.
        return (type(self), (self.reason, self.location, self.detail))


# --- the translating data path ----------------------------------------------------------------


class InvalidDocument(ClientError):
    """A body written on a route (PUT, CompleteMultipartUpload) that is not a valid document in
    the writer's format. The code carries the reason (``InvalidDocument.type_mismatch``), the
    message the reason and the location; nothing is written."""

    code = "InvalidDocument"

    def __init__(self, error: TranslationError, *, expected: str, route: str) -> None:
        super().__init__(
            f"the request body is not a valid {expected} document for route {route!r}: {error}"
        )
        self.code = f"InvalidDocument.{error.reason}"
        self.reason = error.reason
        self.location = error.location


class UntranslatableObject(ProxyError):
    """A stored object on a route that cannot be shown in the reader's format (``on_error:
    fail``). 422: the request is fine and retrying cannot help, so SDKs must not retry it."""

    status = 422
    code = "UntranslatableObject"

    def __init__(self, error: TranslationError, *, source: str, target: str, route: str) -> None:
        if error.reason == "undetectable_format":
            # nothing to translate from: say so, and what was looked at (the detail)
            message = (
                f"the stored object's format is unknown, so it cannot be served as {target} on "
                f"route {route!r}: {error}"
            )
        else:
            message = (
                f"the stored object cannot be translated from {source} to {target} on route "
                f"{route!r}: {error}"
            )
        super().__init__(message)
        self.code = f"UntranslatableObject.{error.reason}"
        self.reason = error.reason
        self.location = error.location


class ContentSHA256Mismatch(BadDigest):
    """The body does not match the client's ``x-amz-content-sha256`` (S3's own code)."""

    code = "XAmzContentSHA256Mismatch"


class MalformedXML(ClientError):
    code = "MalformedXML"


class NoSuchUpload(ProxyError):
    status = 404
    code = "NoSuchUpload"


class InvalidPart(ClientError):
    code = "InvalidPart"


class InvalidPartOrder(ClientError):
    code = "InvalidPartOrder"


class EntityTooSmall(ClientError):
    code = "EntityTooSmall"


# --- sidecar injection (``format-proxy inject`` / ``format-proxy webhook``) -------------------


class InjectionError(ProxyError):
    """Input the injector cannot handle: not YAML, not a pod template, an unusable review.

    The message names the document (``document 3``) or the review field that is wrong.
    """

    status = 400
    code = "InvalidRequest"
