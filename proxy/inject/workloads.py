"""Find the pod template of a Kubernetes object and inject it with the shared patch logic."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch

from proxy.errors import InjectionError
from proxy.inject.options import InjectOptions
from proxy.inject.patch import plan_pod_patch

#: (API group, kind) → the path of the pod template inside the object ("" = core group).
TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): (),
    ("", "ReplicationController"): ("spec", "template"),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class ObjectResult:
    """The injected copy of an object (None = leave the original untouched) and warnings."""

    injected: dict[str, Any] | None
    count: int = 0
    warnings: tuple[str, ...] = ()


def _group(api_version: object) -> str | None:
    if not isinstance(api_version, str) or not api_version:
        return None
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def describe(obj: Mapping[str, Any]) -> str:
    """``Deployment/orders`` (or ``Pod/<generateName>*``) for messages."""
    found = obj.get("metadata")
    meta: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "?")
    return f"{obj.get('kind', '?')}/{name}"


def inject_object(obj: Any, options: InjectOptions, *, where: str) -> ObjectResult:
    """Inject the object's pod template when it opts in; recurse into ``kind: *List`` items."""
    if not isinstance(obj, Mapping):
        return ObjectResult(None)
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        return _inject_list(obj, options, where=where)
    group = _group(obj.get("apiVersion"))
    path = (
        TEMPLATE_PATHS.get((group, kind)) if group is not None and isinstance(kind, str) else None
    )
    if path is None:
        return ObjectResult(None)
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, Mapping) else None
    if not isinstance(template, Mapping):
        return ObjectResult(None)  # no pod template: not ours to judge
    label = f"{where} ({describe(obj)})"
    plan = plan_pod_patch(template, options, where=label)
    if not plan.ops:
        return ObjectResult(None, warnings=plan.warnings)
    try:
        patched = jsonpatch.apply_patch(template, list(plan.ops), in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise InjectionError(f"{label}: cannot apply the sidecar patch: {exc}") from None
    result = copy.deepcopy(dict(obj))
    if not path:
        result = patched
    else:
        parent = result
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = patched
    return ObjectResult(result, count=1, warnings=plan.warnings)


def _inject_list(obj: Mapping[str, Any], options: InjectOptions, *, where: str) -> ObjectResult:
    items = list(obj["items"])
    count = 0
    warnings: list[str] = []
    for i, item in enumerate(items):
        res = inject_object(item, options, where=f"{where} items[{i}]")
        warnings += res.warnings
        if res.injected is not None:
            items[i] = res.injected
            count += res.count
    if not count:
        return ObjectResult(None, warnings=tuple(warnings))
    result = copy.deepcopy(dict(obj))
    result["items"] = items
    return ObjectResult(result, count=count, warnings=tuple(warnings))
