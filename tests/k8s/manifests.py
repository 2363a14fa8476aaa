"""Rendering and validating the kustomizations in k8s/ (helpers for the tests)."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
VENV_BIN = Path(sys.executable).parent

#: Custom resources (unknown to kubernetes-validate) → our vendored schema (see schemas/README).
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.schema.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.schema.yaml",
    ("cert-manager.io/v1", "Certificate"): "certificate.schema.yaml",
    ("cert-manager.io/v1", "Issuer"): "issuer.schema.yaml",
}


def kustomize_command() -> list[str]:
    """``kubectl kustomize`` if kubectl exists, else ``kustomize build`` (.ci/run installs one)."""
    for name, sub in (("kubectl", "kustomize"), ("kustomize", "build")):
        found = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
        if found:
            return [found, sub]
    raise RuntimeError(
        "neither kubectl nor kustomize found: install one "
        "(python tests/tools/install_kustomize.py .venv/bin)"
    )


@functools.cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    """The documents ``k8s/<kustomization>`` renders to."""
    proc = subprocess.run(
        [*kustomize_command(), str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kustomize {kustomization} failed:\n{proc.stderr}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def _schema_file(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@functools.cache
def _registry(version: str) -> Registry:
    definitions = json.loads(
        (
            Path(kubernetes_validate.__file__).parent
            / "kubernetes-json-schema"
            / f"v{version}.0-local-strict"
            / "_definitions.json"
        ).read_text()
    )
    resources = [(definitions["$id"], Resource.from_contents(definitions))]
    for path in SCHEMAS.glob("*.yaml"):
        schema = _schema_file(path)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def validate(obj: dict[str, Any], version: str) -> None:
    """Validate one object strictly for Kubernetes ``version`` (e.g. ``"1.33"``).

    Built-in kinds: kubernetes-validate's strict schemas. Custom resources: the vendored schema
    for that kind. Any other kind is an error (never skipped).
    """
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMAS:
        schema = _schema_file(SCHEMAS / CRD_SCHEMAS[key])  # type: ignore[index]
        validator = jsonschema.Draft202012Validator(schema, registry=_registry(version))
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path)
            raise AssertionError(f"{key[1]}/{obj['metadata'].get('name')}: {where}: {e.message}")
        return
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise AssertionError(f"no schema for {key}: {exc.message}") from None
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise AssertionError(
            f"{key[1]}/{obj.get('metadata', {}).get('name')}: {where}: {exc.message}"
        ) from None


def pod_templates(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    """``(Kind/name, pod template)`` of every workload in ``docs``."""
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]))
        elif d["kind"] == "CronJob":
            out.append(
                (f"CronJob/{d['metadata']['name']}", d["spec"]["jobTemplate"]["spec"]["template"])
            )
        elif d["kind"] == "Pod":
            out.append((f"Pod/{d['metadata']['name']}", d))
    return out
