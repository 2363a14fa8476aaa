"""The one injection logic: a pod (or pod template) in, an RFC 6902 JSON Patch out.

The webhook returns the patch to the API server as it is; ``format-proxy inject`` applies the
same patch to the pod templates of workload manifests. The function is pure: it never mutates
its input and never does I/O.

What a patch does, in order (operations apply one after another, so every index below refers to
the document as the earlier operations left it):

1. Points every app container (and, in native mode, every regular init container that runs
   after the sidecar) at the proxy with ``AWS_ENDPOINT_URL_S3``. A literal endpoint the app
   already had becomes the proxy's upstream (``FORMAT_PROXY_UPSTREAM``).
2. Adds the sidecar: native mode inserts it into ``initContainers`` after any leading native
   sidecars (a service mesh proxy, say) and before the first regular init container; legacy
   mode makes it the first regular container, held ready by a postStart hook.
3. Adds the config and scratch volumes (keeping same-named volumes the pod already has).
4. Raises ``terminationGracePeriodSeconds`` to app drain + proxy drain + margin.
5. Sets the opt-in label (the PodMonitor selects on it) and the status annotation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy import __version__
from proxy.errors import InjectionError
from proxy.inject.options import (
    APP_VERSION,
    CONFIG,
    CONTAINER_NAME,
    DEFAULT_CONTAINER,
    ENDPOINT,
    ENDPOINT_ENV,
    INJECT,
    KUBERNETES_DEFAULT_GRACE,
    MODE,
    MODES,
    STATUS,
    VERSION_LABEL,
    InjectOptions,
    Mode,
    is_dns_subdomain,
)
from proxy.inject.sidecar import sidecar_container, sidecar_volumes, termination_grace

Op = dict[str, Any]


@dataclass(frozen=True)
class PodPatch:
    """What injecting one pod means: the operations, warnings for the user, or why not."""

    ops: tuple[Op, ...]
    warnings: tuple[str, ...] = ()
    #: Why nothing was done (not opted in, already injected); None when ``ops`` is the patch.
    skipped: str | None = None


def escape_pointer(token: str) -> str:
    """One JSON-Pointer reference token (RFC 6901): ``~`` → ``~0``, ``/`` → ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def opted_in(metadata: Mapping[str, Any]) -> bool:
    """Annotation ``format-proxy.io/inject`` if present, else the label of the same name."""
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    value = annotations.get(INJECT, labels.get(INJECT))
    return isinstance(value, str) and value.strip().lower() == "true"


def plan_pod_patch(
    pod: Mapping[str, Any], options: InjectOptions, *, where: str = "pod"
) -> PodPatch:
    """The JSON Patch that injects the sidecar into ``pod`` (a Pod or a pod template).

    Raises :class:`InjectionError` (naming ``where``) for an opted-in pod that cannot be
    injected; a pod that is not opted in or already injected gives an empty patch.
    """
    metadata = _mapping(pod.get("metadata"), f"{where}: metadata")
    annotations = _mapping(metadata.get("annotations"), f"{where}: metadata.annotations")
    labels = _mapping(metadata.get("labels"), f"{where}: metadata.labels")
    if not opted_in(metadata):
        return PodPatch(ops=(), skipped="not opted in")
    if STATUS in annotations:
        return PodPatch(ops=(), skipped="already injected")

    spec = _mapping(pod.get("spec"), f"{where}: spec")
    containers = _containers(spec, "containers", where)
    inits = _containers(spec, "initContainers", where)
    if not containers:
        raise InjectionError(f"{where}: spec.containers is empty; nothing to put a sidecar beside")
    if any(c.get("name") == CONTAINER_NAME for c in [*containers, *inits]):
        return PodPatch(ops=(), skipped=f"already has a container named {CONTAINER_NAME!r}")

    if spec.get("hostNetwork"):
        raise InjectionError(
            f"{where}: hostNetwork pods share the node's loopback, so two injected pods on one "
            f"node would collide on the proxy's ports; run the app without hostNetwork"
        )
    mode = _mode(annotations, options, where)
    native = mode == "native"
    restart = spec.get("restartPolicy", "Always")
    if not native and restart != "Always":
        raise InjectionError(
            f"{where}: a legacy (regular container) sidecar never exits, so a pod with "
            f"restartPolicy {restart} would never complete; use native mode (Kubernetes >= 1.29)"
        )
    config_map = annotations.get(CONFIG, options.config_map)
    if not isinstance(config_map, str) or not is_dns_subdomain(config_map):
        raise InjectionError(f"{where}: annotation {CONFIG}: not a ConfigMap name: {config_map!r}")

    warnings: list[str] = []
    if APP_VERSION in annotations:
        version_field = f"metadata.annotations['{APP_VERSION}']"
    else:
        version_field = f"metadata.labels['{VERSION_LABEL}']"
        if VERSION_LABEL not in labels:
            warnings.append(
                f"{where}: no declared version (label {VERSION_LABEL} or annotation "
                f"{APP_VERSION}); the proxy will not start if its config has routes"
            )

    grace = spec.get("terminationGracePeriodSeconds")
    app_grace = grace if isinstance(grace, int) and grace >= 0 else KUBERNETES_DEFAULT_GRACE

    ops: list[Op] = []
    # Native sidecars start in initContainers order: after leading sidecars, before the rest.
    insert_at = 0
    while insert_at < len(inits) and inits[insert_at].get("restartPolicy") == "Always":
        insert_at += 1

    # 1. Point the app at the proxy (before any insertion, so these indices still hold).
    upstreams: list[str] = []
    for i, container in enumerate(containers):
        ops += _endpoint_ops(f"/spec/containers/{i}", container, upstreams, warnings, where)
    if native:
        for i in range(insert_at, len(inits)):
            ops += _endpoint_ops(f"/spec/initContainers/{i}", inits[i], upstreams, warnings, where)
    upstream = upstreams[0] if upstreams else None
    if len(set(upstreams)) > 1:
        warnings.append(
            f"{where}: containers set different {ENDPOINT_ENV} values; "
            f"the proxy forwards to {upstream!r}"
        )

    # 2. The sidecar.
    sidecar = sidecar_container(
        image=options.image,
        native=native,
        version_field=version_field,
        upstream=upstream,
        app_grace=app_grace,
    )
    if native:
        if spec.get("initContainers") is None:
            ops.append({"op": "add", "path": "/spec/initContainers", "value": [sidecar]})
        else:
            index = "-" if insert_at == len(inits) else str(insert_at)
            ops.append({"op": "add", "path": f"/spec/initContainers/{index}", "value": sidecar})
    else:
        ops.append({"op": "add", "path": "/spec/containers/0", "value": sidecar})

    # 3. Volumes; a same-named volume the pod brings (its own config source, say) wins.
    existing = {v.get("name") for v in _containers(spec, "volumes", where)}
    new_volumes = [v for v in sidecar_volumes(config_map) if v["name"] not in existing]
    if spec.get("volumes") is None:
        ops.append({"op": "add", "path": "/spec/volumes", "value": new_volumes})
    else:
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in new_volumes]

    # 4. The shutdown budget ("add" replaces an existing member).
    ops.append(
        {
            "op": "add",
            "path": "/spec/terminationGracePeriodSeconds",
            "value": termination_grace(app_grace, options.proxy_grace_seconds),
        }
    )

    # 5. Metadata.
    if "labels" not in metadata or metadata.get("labels") is None:
        ops.append({"op": "add", "path": "/metadata/labels", "value": {INJECT: "true"}})
    elif labels.get(INJECT) != "true":
        ops.append(
            {"op": "add", "path": f"/metadata/labels/{escape_pointer(INJECT)}", "value": "true"}
        )
    new_annotations = {
        STATUS: json.dumps(
            {"version": __version__, "mode": mode, "appGraceSeconds": app_grace},
            separators=(",", ":"),
        )
    }
    if not native and DEFAULT_CONTAINER not in annotations and containers[0].get("name"):
        new_annotations[DEFAULT_CONTAINER] = containers[0]["name"]
    if "metadata" not in pod or pod.get("metadata") is None:
        ops.append({"op": "add", "path": "/metadata", "value": {"annotations": new_annotations}})
    elif metadata.get("annotations") is None:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": new_annotations})
    else:
        ops += [
            {"op": "add", "path": f"/metadata/annotations/{escape_pointer(k)}", "value": v}
            for k, v in new_annotations.items()
        ]
    return PodPatch(ops=tuple(ops), warnings=tuple(warnings))


def _endpoint_ops(
    path: str,
    container: Mapping[str, Any],
    upstreams: list[str],
    warnings: list[str],
    where: str,
) -> list[Op]:
    entry = {"name": ENDPOINT_ENV, "value": ENDPOINT}
    env = container.get("env")
    if env is None:
        return [{"op": "add", "path": f"{path}/env", "value": [entry]}]
    if not isinstance(env, Sequence) or isinstance(env, str):
        raise InjectionError(f"{where}: {path[1:]}/env must be a list")
    for j, var in enumerate(env):
        if isinstance(var, Mapping) and var.get("name") == ENDPOINT_ENV:
            value = var.get("value")
            if value == ENDPOINT and "valueFrom" not in var:
                return []
            if isinstance(value, str) and value:
                upstreams.append(value)
            elif "valueFrom" in var:
                warnings.append(
                    f"{where}: container {container.get('name')!r} took {ENDPOINT_ENV} from "
                    "valueFrom, which the proxy cannot follow; set upstream.endpoint in its config"
                )
            return [{"op": "replace", "path": f"{path}/env/{j}", "value": entry}]
    return [{"op": "add", "path": f"{path}/env/-", "value": entry}]


def _mode(annotations: Mapping[str, Any], options: InjectOptions, where: str) -> Mode:
    value = annotations.get(MODE, options.mode)
    for mode in MODES:
        if value == mode:
            return mode
    raise InjectionError(f"{where}: annotation {MODE} must be 'native' or 'legacy', got {value!r}")


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InjectionError(f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _containers(spec: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InjectionError(f"{where}: spec.{key} must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InjectionError(f"{where}: spec.{key}[{i}] must be a mapping")
    return list(value)
