"""AdmissionReview v1 in, AdmissionReview v1 out: the webhook's logic without the server.

Failure policy. The ``MutatingWebhookConfiguration`` in ``k8s/injector`` uses
``failurePolicy: Ignore``: the injector must never be the reason a cluster cannot create pods.
The server mirrors that choice for every review it can answer but not patch (an object that is
not a pod, an opted-in pod that cannot be injected): with ``policy="ignore"`` it answers
``allowed: true`` without a patch and explains why in ``warnings`` (shown by kubectl) and in an
audit annotation; with ``policy="fail"`` it denies the pod with a 400 status and the same
message. A body it cannot answer at all (not JSON, no ``request.uid``) raises
:class:`InjectionError`, which the server turns into an HTTP 400, so the API server applies the
configured ``failurePolicy`` itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from proxy.errors import InjectionError
from proxy.inject.options import InjectOptions
from proxy.inject.patch import plan_pod_patch

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

FailurePolicy = Literal["ignore", "fail"]

#: The API server truncates longer warnings; keep ours readable in ``kubectl`` output.
_MAX_WARNING = 240


@dataclass(frozen=True)
class ReviewOutcome:
    """The response document plus what the server logs about it."""

    review: dict[str, Any]
    uid: str
    injected: bool
    namespace: str | None = None
    name: str | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _response(uid: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, **fields}}


def _warning(text: str) -> str:
    text = f"format-proxy injector: {text}"
    return text if len(text) <= _MAX_WARNING else text[: _MAX_WARNING - 1] + "…"


def decode_review(body: bytes) -> dict[str, Any]:
    """Parse the request body; raise :class:`InjectionError` when no answer is possible."""
    try:
        review = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InjectionError(f"request body is not JSON: {exc}") from None
    if not isinstance(review, dict):
        raise InjectionError("request body is not a JSON object (expected an AdmissionReview)")
    request = review.get("request")
    if not isinstance(request, dict):
        raise InjectionError("AdmissionReview has no 'request' object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InjectionError("AdmissionReview request.uid is missing or not a string")
    return review


def review_response(
    body: bytes, options: InjectOptions, *, policy: FailurePolicy = "ignore"
) -> ReviewOutcome:
    """Answer one AdmissionReview request body."""
    review = decode_review(body)
    request: dict[str, Any] = review["request"]
    uid: str = request["uid"]
    namespace = request.get("namespace") if isinstance(request.get("namespace"), str) else None
    obj = request.get("object")
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else None)
    where = f"pod {namespace or '?'}/{name or '?'}"

    def refuse(problem: str) -> ReviewOutcome:
        if policy == "fail":
            resp = _response(
                uid,
                allowed=False,
                status={"code": 400, "reason": "BadRequest", "message": _warning(problem)},
            )
        else:
            resp = _response(
                uid,
                allowed=True,
                warnings=[_warning(problem + " (pod admitted without the sidecar)")],
                auditAnnotations={"error": problem[:1024]},
            )
        return ReviewOutcome(resp, uid, False, namespace, name, error=problem)

    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        return refuse(
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"{review.get('apiVersion')!r} {review.get('kind')!r}"
        )
    kind = request.get("kind")
    resource = request.get("resource")
    is_pod = (
        isinstance(kind, Mapping)
        and kind.get("group", "") == ""
        and kind.get("kind") == "Pod"
        and isinstance(resource, Mapping)
        and resource.get("resource") == "pods"
        and not request.get("subResource")
    )
    if not is_pod or request.get("operation") != "CREATE":
        # Only pod CREATE is registered; anything else is allowed untouched.
        return ReviewOutcome(_response(uid, allowed=True), uid, False, namespace, name)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("spec"), Mapping):
        return refuse("request.object is missing or is not a Pod with a spec")
    try:
        plan = plan_pod_patch(obj, options, where=where)
    except InjectionError as exc:
        return refuse(str(exc))
    warnings = tuple(_warning(w) for w in plan.warnings)
    fields: dict[str, Any] = {"allowed": True}
    if plan.ops:
        patch = json.dumps(list(plan.ops), separators=(",", ":")).encode()
        fields |= {"patchType": "JSONPatch", "patch": base64.b64encode(patch).decode("ascii")}
    if warnings:
        fields["warnings"] = list(warnings)
    return ReviewOutcome(
        _response(uid, **fields),
        uid,
        bool(plan.ops),
        namespace,
        name,
        warnings=warnings,
        detail={"skipped": plan.skipped} if plan.skipped else {},
    )
